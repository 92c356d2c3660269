//! Static int8 in QDQ form, laid out the way ONNX Runtime fuses it into QLinear kernels
//! (the same shape `onnxruntime.quantization.quantize_static` produces):
//! - every float activation entering or leaving a selected Conv/Gemm/MatMul gets a
//!   `QuantizeLinear → DequantizeLinear` pair (uint8 by default, asymmetric, calibrated range;
//!   int8 on request: ONNX Runtime 1.32 on AVX-512 VNNI Xeons, with or without AMX, fused
//!   only 8 of resnet18's 20 convolutions with int8 activations, all of them with uint8);
//! - so do the outputs of the "glue" between them (`Add` of two quantized tensors, pools,
//!   `Flatten`, `Relu`...), so ORT can run QLinearAdd/QLinearGlobalAveragePool and never
//!   leaves int8 between two convolutions; data-movement glue (MaxPool, Reshape, Flatten,
//!   Transpose, Squeeze, Unsqueeze) reuses its input's scale and zero point;
//! - a `Relu` whose input feeds nothing else is folded away: quantizing its input over
//!   `[0, max]` (zero point 0 in uint8, -128 in int8) clamps negatives to exactly 0, which is
//!   what the Relu did; so is a `Clip` with a constant minimum of 0 (ReLU6): its output range
//!   `[0, hi]`, `hi` at most its maximum, saturates exactly where the Clip and the Clip
//!   output's own quantization did. Left unfolded, ONNX Runtime removes the Clip but keeps a
//!   standalone DequantizeLinear and QuantizeLinear between every pair of convolutions
//!   (MobileNetV2: 2.7 of 5.8 ms per image), and the convolution's output is quantized over
//!   its whole pre-activation range first (min-max, ImageNet: logit cosine 0.951 vs 0.981);
//! - weights are int8 symmetric (per output channel by default) behind a DequantizeLinear;
//! - a Conv/Gemm bias becomes int32 with scale `x_scale * w_scale[c]`, as QLinearConv wants.
//!
//! Graph outputs stay float and unquantized so callers see exactly the tensors they had.
use std::collections::{HashMap, HashSet};

use profagent_onnx::proto::{GraphProto, NodeProto, TensorProto};
use profagent_onnx::{attr, tensor, GraphIndex, Model, NameGen, Patch};

use profagent_onnx::ActivationSource;

use crate::calibrate::{calibrate, Range};
use crate::error::{QuantError, Result};
use crate::linear::{default_opset, float_initializer, require_opset};
use crate::numeric::{
    activation_int8, activation_uint8, bias_int32, int8_symmetric_within, ChannelLayout,
};
use crate::opset;
use crate::select::{NodeId, Verdict};
use crate::spec::{
    ActivationType, QuantReport, QuantSpec, QuantizedLayer, SkippedLayer, WeightRange,
};

/// Ops whose float output is quantized when all their float inputs are, so ORT keeps the
/// data int8 between quantized layers.
const GLUE_OPS: &[&str] = &[
    "Add",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
];

/// Glue ops that only move or select values: their output reuses the input's scale and zero
/// point (as `onnxruntime.quantization` does), so ONNX Runtime can drop the DQ/Q pair around
/// them or run them on int8 data directly.
const SAME_AS_INPUT_OPS: &[&str] = &[
    "MaxPool",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
];

/// A selected compute node and where its weight lies.
struct Target {
    id: NodeId,
    /// Float activation inputs (positions in the node).
    activations: Vec<usize>,
    /// `(input position, per-channel axis)` of a constant weight, if any.
    weight: Option<(usize, usize)>,
    /// Input position of a bias that can become int32.
    bias: Option<usize>,
}

/// Static QDQ of `model`. Per-channel weight scales need opset 13: an older model is
/// upgraded when its ops allow (`opset::upgrade`), else written with per-tensor scales (opset
/// 10 and up), else refused with the ops that stand in the way.
pub fn quantize_static(
    model: &Model,
    spec: &QuantSpec,
    calibration: Option<&mut dyn ActivationSource>,
) -> Result<(Model, QuantReport)> {
    let per_channel = spec.per_channel();
    let found = default_opset(&model.proto);
    let needed = if per_channel {
        PER_CHANNEL_OPSET
    } else {
        PER_TENSOR_OPSET
    };
    if found >= needed {
        return rewrite_static(model, spec, calibration, per_channel);
    }
    match opset::upgrade(model)? {
        Ok(upgraded) => {
            let (out, mut report) =
                rewrite_static(&upgraded.model, spec, calibration, per_channel)?;
            if report.quantized.is_empty() {
                return Ok((model.clone(), report));
            }
            report.notes.push(upgraded.note());
            Ok((out, report))
        }
        Err(blockers) if per_channel && found >= PER_TENSOR_OPSET => {
            let (out, mut report) = rewrite_static(model, spec, calibration, false)?;
            if !report.quantized.is_empty() {
                report.notes.push(format!(
                    "opset {found}: per-tensor weight scales (per-channel needs opset {PER_CHANNEL_OPSET}, and the model cannot be upgraded automatically: {})",
                    blockers.join("; ")
                ));
            }
            Ok((out, report))
        }
        Err(blockers) => match rewrite_static(model, spec, calibration, per_channel) {
            Err(QuantError::Opset { found, needed, .. }) => Err(QuantError::OpsetUpgrade {
                found,
                needed,
                blockers: blockers.join("; "),
            }),
            other => other,
        },
    }
}

/// Opset of QuantizeLinear/DequantizeLinear with the `axis` attribute (per-channel scales).
const PER_CHANNEL_OPSET: i64 = 13;
/// First opset with QuantizeLinear/DequantizeLinear.
const PER_TENSOR_OPSET: i64 = 10;

fn rewrite_static(
    model: &Model,
    spec: &QuantSpec,
    calibration: Option<&mut dyn ActivationSource>,
    per_channel: bool,
) -> Result<(Model, QuantReport)> {
    if !spec.signed_weights {
        return Err(QuantError::Option("static mode writes signed int8 weights (what ONNX Runtime's QLinear kernels run fastest); drop the unsigned-weights option".into()));
    }
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    let resolved = spec.layers.resolve(graph)?;
    let mut report = QuantReport {
        mode: spec.mode.name().into(),
        ..Default::default()
    };
    let mut targets = Vec::new();
    for &i in &index.topo {
        if !matches!(graph.node[i].op_type(), "MatMul" | "Gemm" | "Conv") {
            continue;
        }
        let id = NodeId::of(graph, i);
        let verdict = match resolved.verdict(&id) {
            Verdict::Skipped(reason) => Err(reason),
            Verdict::Selected => classify(graph, &index, i),
        };
        match verdict {
            Ok((activations, weight, bias)) => targets.push(Target {
                id,
                activations,
                weight,
                bias,
            }),
            Err(reason) => report.skipped.push(SkippedLayer {
                layer: id.layer,
                node: id.node,
                op_type: id.op_type,
                reason,
            }),
        }
    }
    if targets.is_empty() {
        return Ok((model.clone(), report));
    }
    let source = calibration.ok_or(QuantError::NoCalibration)?;
    require_opset(
        &model.proto,
        if per_channel {
            PER_CHANNEL_OPSET
        } else {
            PER_TENSOR_OPSET
        },
        "QuantizeLinear/DequantizeLinear with int8 (per-channel needs the axis attribute)",
    )?;

    let plan = plan_tensors(graph, &index, &targets);
    let (tensors, folds) = (&plan.tensors, &plan.folds);
    // Tensors that reuse their input's parameters are not calibrated themselves.
    let mut calibrated: Vec<String> = tensors
        .iter()
        .filter(|t| !plan.same_as_input.contains_key(*t))
        .cloned()
        .collect();
    calibrated.sort();
    let ranges = calibrate(model, &calibrated, source, spec.calibration)?;
    report.calibration_batches = source.batches().unwrap_or(0);

    let mut names = NameGen::new(graph);
    let mut patch = Patch::new();
    // Consumers get their inputs renamed; collect all renames per node, replace once.
    let mut edited: HashMap<usize, NodeProto> = HashMap::new();
    let mut params: HashMap<String, ActivationQuant> = HashMap::new();
    for t in tensors {
        let quant = match plan
            .same_as_input
            .get(t)
            .and_then(|input| params.get(input))
        {
            Some(shared) => shared.clone(),
            None => {
                let range = ranges.get(t).copied().unwrap_or(Range { lo: 0.0, hi: 0.0 });
                let quant = ActivationQuant::new(range, spec.activations, t, &mut names);
                patch.set_initializer(tensor::from_f32(&quant.scale_name, &[], &[quant.scale]));
                patch.set_initializer(quant.zero_point_tensor());
                quant
            }
        };
        let source = folds
            .get(t)
            .map(|(_, input)| input.clone())
            .unwrap_or_else(|| t.clone());
        let q = names.fresh(&format!("{t}_QuantizeLinear_Output"));
        let dq = names.fresh(&format!("{t}_DequantizeLinear_Output"));
        let (scale_name, zero_name) = (quant.scale_name.as_str(), quant.zero_name.as_str());
        patch.add_node(attr::node(
            "QuantizeLinear",
            &names.fresh(&format!("{t}_QuantizeLinear")),
            &[&source, scale_name, zero_name],
            &[&q],
            vec![],
        ));
        patch.add_node(attr::node(
            "DequantizeLinear",
            &names.fresh(&format!("{t}_DequantizeLinear")),
            &[&q, scale_name, zero_name],
            &[&dq],
            vec![],
        ));
        for &(node, slot) in index.consumer_nodes(t) {
            let entry = edited
                .entry(node)
                .or_insert_with(|| graph.node[node].clone());
            entry.input[slot] = dq.clone();
        }
        params.insert(t.clone(), quant);
    }
    for (relu, _) in folds.values() {
        patch.remove_node(*relu);
    }
    report.folded_relus = folds.len();
    report.quantized_activations = tensors.len();

    let mut replaced = Vec::new();
    let mut weight_cache: HashMap<String, (String, Vec<f32>, usize)> = HashMap::new();
    for target in &targets {
        let node = &graph.node[target.id.index];
        let mut before = 0;
        let mut after = 0;
        let mut w_scales = vec![];
        if let Some((slot, axis)) = target.weight {
            let name = node.input[slot].clone();
            if !weight_cache.contains_key(&name) {
                let (dims, data) =
                    float_initializer(graph, &index, &name).ok_or_else(|| QuantError::Weight {
                        tensor: name.clone(),
                        reason: "is no longer a float constant".into(),
                    })?;
                let data = data?;
                let layout = if per_channel {
                    ChannelLayout::along(&dims, axis)
                } else {
                    ChannelLayout::per_tensor()
                };
                let (q, scales) = int8_symmetric_within(&data, layout, spec.weight_range);
                let dims_i64: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
                let q_name = names.fresh(&format!("{name}_quantized"));
                let s_name = names.fresh(&format!("{name}_scale"));
                let z_name = names.fresh(&format!("{name}_zero_point"));
                let dq = names.fresh(&format!("{name}_DequantizeLinear_Output"));
                let param_dims: Vec<i64> = if per_channel {
                    vec![scales.len() as i64]
                } else {
                    vec![]
                };
                let q_tensor = tensor::from_i8(&q_name, &dims_i64, &q);
                after += tensor::payload_bytes(&q_tensor) + scales.len() * 5;
                patch.set_initializer(q_tensor);
                patch.set_initializer(tensor::from_f32(&s_name, &param_dims, &scales));
                patch.set_initializer(tensor::from_i8(
                    &z_name,
                    &param_dims,
                    &vec![0; scales.len()],
                ));
                let attributes = if per_channel {
                    vec![attr::int("axis", axis as i64)]
                } else {
                    vec![]
                };
                patch.add_node(attr::node(
                    "DequantizeLinear",
                    &names.fresh(&format!("{name}_DequantizeLinear")),
                    &[&q_name, &s_name, &z_name],
                    &[&dq],
                    attributes,
                ));
                before += index
                    .initializer(graph, &name)
                    .map(tensor::payload_bytes)
                    .unwrap_or(0);
                replaced.push(name.clone());
                weight_cache.insert(name.clone(), (dq, scales, axis));
            }
            let (dq, scales, _) = &weight_cache[&name];
            w_scales = scales.clone();
            let entry = edited
                .entry(target.id.index)
                .or_insert_with(|| node.clone());
            entry.input[slot] = dq.clone();
        }
        if let (Some(slot), Some(x_scale)) = (
            target.bias,
            params.get(&node.input[0]).map(|quant| quant.scale),
        ) {
            let name = node.input[slot].clone();
            if let Some((_, Ok(bias))) = float_initializer(graph, &index, &name) {
                let (q, scales) = bias_int32(&bias, x_scale, &w_scales);
                let q_name = names.fresh(&format!("{name}_quantized"));
                let s_name = names.fresh(&format!("{name}_quantized_scale"));
                let z_name = names.fresh(&format!("{name}_quantized_zero_point"));
                let dq = names.fresh(&format!("{name}_DequantizeLinear_Output"));
                let n = bias.len() as i64;
                patch.set_initializer(tensor::from_i32(&q_name, &[n], &q));
                // One scale per channel needs DequantizeLinear's axis (opset 13); with
                // per-tensor weights every bias scale is the same, so a scalar does (opset 10).
                let (scale_dims, scales, axis): (Vec<i64>, Vec<f32>, _) = if per_channel {
                    (vec![n], scales, vec![attr::int("axis", 0)])
                } else {
                    (vec![], scales[..1.min(scales.len())].to_vec(), vec![])
                };
                let zeros = vec![0; scales.len()];
                patch.set_initializer(tensor::from_f32(&s_name, &scale_dims, &scales));
                patch.set_initializer(tensor::from_i32(&z_name, &scale_dims, &zeros));
                patch.add_node(attr::node(
                    "DequantizeLinear",
                    &names.fresh(&format!("{name}_DequantizeLinear")),
                    &[&q_name, &s_name, &z_name],
                    &[&dq],
                    axis,
                ));
                let entry = edited
                    .entry(target.id.index)
                    .or_insert_with(|| node.clone());
                entry.input[slot] = dq;
                replaced.push(name);
            }
        }
        report.quantized.push(QuantizedLayer {
            layer: target.id.layer.clone(),
            node: target.id.node.clone(),
            op_type: target.id.op_type.clone(),
            scheme: format!(
                "QDQ int8 ({}{}, {} activations)",
                match target.weight {
                    None => "activation x activation",
                    Some(_) if per_channel => "per-channel weights",
                    Some(_) => "per-tensor weights",
                },
                match (target.weight, spec.weight_range) {
                    (Some(_), WeightRange::Reduced) => " in 7 bits",
                    _ => "",
                },
                spec.activations.name()
            ),
            weight_bytes_before: before,
            weight_bytes_after: after,
        });
    }
    for (node, replacement) in edited {
        patch.replace_node(node, replacement);
    }
    let out = crate::rewrite::apply(model, &patch, &replaced)?;
    Ok((out, report))
}

type Classified = (Vec<usize>, Option<(usize, usize)>, Option<usize>);

/// Which inputs of node `i` are activations, weight and bias; or why it is left in float.
fn classify(
    graph: &GraphProto,
    index: &GraphIndex,
    i: usize,
) -> std::result::Result<Classified, String> {
    let node = &graph.node[i];
    let is_weight = |slot: usize| {
        node.input
            .get(slot)
            .and_then(|name| float_initializer(graph, index, name))
            .map(|(dims, _)| dims)
    };
    let is_activation = |slot: usize| {
        node.input
            .get(slot)
            .is_some_and(|n| !n.is_empty() && !index.initializers.contains_key(n))
    };
    let bias_ok = |slot: usize, channels: usize| {
        is_weight(slot)
            .filter(|d| d.len() == 1 && d[0] == channels)
            .map(|_| slot)
    };
    match node.op_type() {
        "Conv" => {
            let Some(dims) = is_weight(1) else {
                return Err("its weight is not a float32 constant".into());
            };
            if !is_activation(0) {
                return Err("its input is a constant".into());
            }
            Ok((vec![0], Some((1, 0)), bias_ok(2, dims[0])))
        }
        "Gemm" => {
            if attr::get_int(node, "transA").unwrap_or(0) != 0
                || attr::get_float(node, "alpha").unwrap_or(1.0) != 1.0
            {
                return Err("Gemm with transA or alpha != 1 is not supported".into());
            }
            let Some(dims) = is_weight(1).filter(|d| d.len() == 2) else {
                return Err("its B operand is not a 2-D float32 constant".into());
            };
            if !is_activation(0) {
                return Err("its A operand is a constant".into());
            }
            let axis = if attr::get_int(node, "transB").unwrap_or(0) != 0 {
                0
            } else {
                1
            };
            let beta_one = attr::get_float(node, "beta").unwrap_or(1.0) == 1.0;
            Ok((
                vec![0],
                Some((1, axis)),
                if beta_one {
                    bias_ok(2, dims[axis])
                } else {
                    None
                },
            ))
        }
        _ => {
            // MatMul: x · W with a constant W, or activation × activation (attention).
            if !is_activation(0) {
                return Err("the constant is the left operand; only x · W is supported".into());
            }
            match is_weight(1) {
                Some(dims) if dims.len() == 2 => Ok((vec![0], Some((1, 1)), None)),
                Some(dims) => Err(format!(
                    "its weight has shape {dims:?}; only 2-D weights are supported"
                )),
                None if is_activation(1) => Ok((vec![0, 1], None, None)),
                None => Err("its weight is not a float32 constant".into()),
            }
        }
    }
}

/// Which activations get a QuantizeLinear/DequantizeLinear pair.
struct TensorPlan {
    /// Quantized tensors in graph order.
    tensors: Vec<String>,
    /// Folded Relus and Clips: quantized tensor (their output) → (node index, their input).
    folds: HashMap<String, (usize, String)>,
    /// Outputs of data-movement ops (`SAME_AS_INPUT_OPS`) → their quantized input, whose
    /// scale and zero point they reuse.
    same_as_input: HashMap<String, String>,
}

fn plan_tensors(graph: &GraphProto, index: &GraphIndex, targets: &[Target]) -> TensorPlan {
    let mut set: HashSet<String> = HashSet::new();
    let mut same_as_input: HashMap<String, String> = HashMap::new();
    let float_elem = |name: &str| !index.initializers.contains_key(name) && !index.is_output(name);
    let selected: HashSet<usize> = targets.iter().map(|t| t.id.index).collect();
    for t in targets {
        let node = &graph.node[t.id.index];
        for &slot in &t.activations {
            if float_elem(&node.input[slot]) {
                set.insert(node.input[slot].clone());
            }
        }
        if let Some(out) = node.output.first().filter(|o| float_elem(o)) {
            set.insert(out.clone());
        }
    }
    // Glue: in topological order, an op whose float inputs are all quantized gets its output
    // quantized too when something quantized (or more glue) reads it.
    let feeds_quantized = |value: &str| {
        index
            .consumer_nodes(value)
            .iter()
            .any(|&(c, _)| selected.contains(&c) || GLUE_OPS.contains(&graph.node[c].op_type()))
    };
    for &i in &index.topo {
        let node = &graph.node[i];
        if !GLUE_OPS.contains(&node.op_type()) || node.output.len() != 1 {
            continue;
        }
        let data_inputs: Vec<&String> = node
            .input
            .iter()
            .filter(|n| !n.is_empty() && !index.initializers.contains_key(n.as_str()))
            .collect();
        let data_inputs: Vec<&String> = match node.op_type() {
            // Only the data input of these; shapes and axes are constants or int64.
            "Reshape" | "Squeeze" | "Unsqueeze" | "Clip" => {
                data_inputs.into_iter().take(1).collect()
            }
            _ => data_inputs,
        };
        let out = &node.output[0];
        if !data_inputs.is_empty()
            && data_inputs.iter().all(|n| set.contains(n.as_str()))
            && float_elem(out)
            && feeds_quantized(out)
        {
            set.insert(out.clone());
            if SAME_AS_INPUT_OPS.contains(&node.op_type()) {
                same_as_input.insert(out.clone(), data_inputs[0].clone());
            }
        }
    }
    // Relu folding, and Clip(0, max) folding (ReLU6 in MobileNets and EfficientNet-Lite).
    let mut folds = HashMap::new();
    for &i in &index.topo {
        let node = &graph.node[i];
        let foldable = match node.op_type() {
            "Relu" => true,
            "Clip" => clip_bounds(graph, index, node).is_some_and(|(lo, hi)| lo == 0.0 && hi > 0.0),
            _ => false,
        };
        if !foldable {
            continue;
        }
        let (input, output) = (&node.input[0], &node.output[0]);
        let sole_use = index.consumer_nodes(input).len() == 1 && !index.is_output(input);
        if set.contains(output) && sole_use && index.producer.contains_key(input) {
            set.remove(input);
            folds.insert(output.clone(), (i, input.clone()));
        }
    }
    let mut ordered: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for v in index
        .inputs
        .iter()
        .chain(index.topo.iter().flat_map(|&i| graph.node[i].output.iter()))
    {
        if set.contains(v) && seen.insert(v.clone()) {
            ordered.push(v.clone());
        }
    }
    TensorPlan {
        tensors: ordered,
        folds,
        same_as_input,
    }
}

/// A Clip's `(min, max)` when both are known constants: inputs 1 and 2 from opset 11 (an
/// initializer or a Constant node; absent means unbounded), attributes before. `None` when a
/// bound is computed at run time.
fn clip_bounds(graph: &GraphProto, index: &GraphIndex, node: &NodeProto) -> Option<(f32, f32)> {
    let constant = |slot: usize, default: f32| -> Option<f32> {
        let Some(name) = node.input.get(slot).filter(|n| !n.is_empty()) else {
            return Some(default);
        };
        let tensor = match index.initializers.get(name) {
            Some(&at) => &graph.initializer[at],
            None => {
                let &(producer, _) = index.producer.get(name)?;
                let producer = &graph.node[producer];
                if producer.op_type() != "Constant" {
                    return None;
                }
                attr::get_tensor(producer, "value")?
            }
        };
        let values = tensor::to_f32(tensor).ok()?;
        (values.len() == 1).then(|| values[0])
    };
    if node.input.len() > 1 {
        Some((constant(1, f32::NEG_INFINITY)?, constant(2, f32::INFINITY)?))
    } else {
        Some((
            attr::get_float(node, "min").unwrap_or(f32::MIN),
            attr::get_float(node, "max").unwrap_or(f32::MAX),
        ))
    }
}

/// Scale and zero point of one quantized activation, and the initializers that hold them.
#[derive(Clone)]
struct ActivationQuant {
    scale: f32,
    zero_point: i32,
    activations: ActivationType,
    scale_name: String,
    zero_name: String,
}

impl ActivationQuant {
    fn new(range: Range, activations: ActivationType, tensor: &str, names: &mut NameGen) -> Self {
        let (scale, zero_point) = match activations {
            ActivationType::Uint8 => {
                let (scale, zero) = activation_uint8(range.lo, range.hi);
                (scale, zero as i32)
            }
            ActivationType::Int8 => {
                let (scale, zero) = activation_int8(range.lo, range.hi);
                (scale, zero as i32)
            }
        };
        ActivationQuant {
            scale,
            zero_point,
            activations,
            scale_name: names.fresh(&format!("{tensor}_scale")),
            zero_name: names.fresh(&format!("{tensor}_zero_point")),
        }
    }

    /// The zero point initializer; its element type sets the QuantizeLinear output type.
    fn zero_point_tensor(&self) -> TensorProto {
        match self.activations {
            ActivationType::Uint8 => {
                tensor::from_u8(&self.zero_name, &[], &[self.zero_point as u8])
            }
            ActivationType::Int8 => tensor::from_i8(&self.zero_name, &[], &[self.zero_point as i8]),
        }
    }
}
