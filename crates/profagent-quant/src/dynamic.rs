//! Dynamic int8: MatMul/Gemm weights stored as int8, activations quantized on the fly.
//!
//! For ONNX Runtime the layer becomes one `com.microsoft.DynamicQuantizeMatMul` (measured the
//! fastest there with signed weights on VNNI CPUs). For other runtimes it becomes standard
//! ops: `DynamicQuantizeLinear` → `MatMulInteger` → `Cast` → `Mul` by `a_scale * w_scale`.
//! A float bias stays float: fused into `DynamicQuantizeMatMul` when it is a `[n]` vector (a
//! Gemm's C, or a constant `Add` that alone reads a MatMul's output, as exporters write
//! `nn.Linear`), an `Add` otherwise. Convolutions are left alone: ONNX Runtime's `ConvInteger`
//! is slower than float Conv (0.17x on ResNet-50), so static mode is the way for CNNs.
use rayon::prelude::*;

use profagent_onnx::proto::{tensor_proto::DataType, NodeProto, TensorProto};
use profagent_onnx::{attr, tensor, GraphIndex, Model, NameGen, Patch};

use crate::error::Result;
use crate::linear::{
    ensure_ms_domain, ms_node, select_linear_layers, trailing_bias_add, Bias, Linear,
};
use crate::numeric::{int8_symmetric_within, uint8_asymmetric, ChannelLayout};
use crate::spec::{QuantReport, QuantSpec, QuantizedLayer, Target, WeightRange};

/// Why dynamic mode leaves convolutions in float.
pub const CONV_SKIP_REASON: &str = "dynamic int8 Conv would run as ConvInteger, which ONNX Runtime executes slower than float Conv; use static mode for convolutions";

/// Quantized weight payload of one layer.
struct QuantWeight {
    data: TensorProto,
    scale: TensorProto,
    zero_point: TensorProto,
}

pub fn quantize_dynamic(model: &Model, spec: &QuantSpec) -> Result<(Model, QuantReport)> {
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    let (mut chosen, mut report) = select_linear_layers(graph, &index, spec, CONV_SKIP_REASON)?;
    if chosen.is_empty() {
        return Ok((model.clone(), report));
    }
    // ONNX Runtime: a MatMul's trailing bias Add becomes DynamicQuantizeMatMul's bias input.
    let mut absorbed_adds = Vec::new();
    if spec.target == Target::Ort {
        for (id, linear) in chosen.iter_mut() {
            if linear.bias.is_some() || id.op_type != "MatMul" {
                continue;
            }
            if let Some(trailing) = trailing_bias_add(graph, &index, id.index, linear.n) {
                linear.bias = Some(Bias::Vector(trailing.bias));
                linear.output = trailing.output;
                absorbed_adds.push(trailing.add);
            }
        }
    }

    let per_channel = spec.per_channel();
    let mut names = NameGen::new(graph);
    let prefixes: Vec<String> = chosen
        .iter()
        .map(|(_, l)| names.fresh(&format!("{}_quantized", l.weight_name)))
        .collect();
    // The arithmetic is independent per layer: spread it over the cores.
    let weights: Vec<QuantWeight> = chosen
        .par_iter()
        .zip(prefixes.par_iter())
        .map(|((_, l), prefix)| {
            quantize_weight(
                l,
                prefix,
                per_channel,
                spec.signed_weights,
                spec.weight_range,
            )
        })
        .collect();

    let mut patch = Patch::new();
    let scheme = format!(
        "{} ({}, {})",
        match spec.target {
            Target::Ort => "DynamicQuantizeMatMul",
            Target::Standard => "DynamicQuantizeLinear + MatMulInteger",
        },
        match (spec.signed_weights, spec.weight_range) {
            (false, _) => "uint8",
            (true, WeightRange::Full) => "int8",
            (true, WeightRange::Reduced) => "int8 in 7 bits",
        },
        if per_channel {
            "per-channel"
        } else {
            "per-tensor"
        }
    );
    for ((id, linear), weight) in chosen.iter().zip(weights) {
        let original = &graph.node[id.index];
        let nodes = match spec.target {
            Target::Ort => ort_nodes(original, linear, &weight, &mut names),
            Target::Standard => standard_nodes(original, linear, &weight, &mut names),
        };
        report.quantized.push(QuantizedLayer {
            layer: id.layer.clone(),
            node: id.node.clone(),
            op_type: id.op_type.clone(),
            scheme: scheme.clone(),
            weight_bytes_before: linear.weight_bytes,
            weight_bytes_after: [&weight.data, &weight.scale, &weight.zero_point]
                .iter()
                .map(|t| tensor::payload_bytes(t))
                .sum(),
        });
        patch.remove_node(id.index);
        for n in nodes {
            patch.add_node(n);
        }
        patch.set_initializer(weight.data);
        patch.set_initializer(weight.scale);
        patch.set_initializer(weight.zero_point);
    }
    for add in absorbed_adds {
        patch.remove_node(add);
    }
    let replaced: Vec<String> = chosen.iter().map(|(_, l)| l.weight_name.clone()).collect();
    let mut out = crate::rewrite::apply(model, &patch, &replaced)?;
    if spec.target == Target::Ort {
        ensure_ms_domain(&mut out.proto);
    }
    Ok((out, report))
}

/// Unsigned weights run on ONNX Runtime's u8 x u8 kernels, which widen before they add: the
/// reduced range concerns signed weights only.
fn quantize_weight(
    l: &Linear,
    prefix: &str,
    per_channel: bool,
    signed: bool,
    range: WeightRange,
) -> QuantWeight {
    let layout = if per_channel {
        ChannelLayout::along(&[l.k, l.n], 1)
    } else {
        ChannelLayout::per_tensor()
    };
    let dims = [l.k as i64, l.n as i64];
    let param_dims: Vec<i64> = if per_channel {
        vec![l.n as i64]
    } else {
        vec![]
    };
    if signed {
        let (q, scales) = int8_symmetric_within(&l.weight_kn, layout, range);
        let zeros = vec![0i8; scales.len()];
        QuantWeight {
            data: tensor::from_i8(prefix, &dims, &q),
            scale: tensor::from_f32(&format!("{prefix}_scale"), &param_dims, &scales),
            zero_point: tensor::from_i8(&format!("{prefix}_zero_point"), &param_dims, &zeros),
        }
    } else {
        let (q, scales, zeros) = uint8_asymmetric(&l.weight_kn, layout);
        QuantWeight {
            data: tensor::from_u8(prefix, &dims, &q),
            scale: tensor::from_f32(&format!("{prefix}_scale"), &param_dims, &scales),
            zero_point: tensor::from_u8(&format!("{prefix}_zero_point"), &param_dims, &zeros),
        }
    }
}

/// `DynamicQuantizeMatMul` keeps the original node name so layer names survive.
fn ort_nodes(
    original: &NodeProto,
    l: &Linear,
    w: &QuantWeight,
    names: &mut NameGen,
) -> Vec<NodeProto> {
    let base = original.name().to_string();
    let mut inputs = vec![
        l.activation.as_str(),
        w.data.name(),
        w.scale.name(),
        w.zero_point.name(),
    ];
    let mut nodes = Vec::new();
    let matmul_out = match &l.bias {
        Some(Bias::Vector(b)) => {
            inputs.push(b);
            l.output.clone()
        }
        Some(Bias::Tensor(c)) => {
            let tmp = names.fresh(&format!("{}_no_bias", l.output));
            nodes.push(attr::node(
                "Add",
                &names.fresh(&format!("{base}_bias")),
                &[&tmp, c],
                &[&l.output],
                vec![],
            ));
            tmp
        }
        None => l.output.clone(),
    };
    nodes.insert(
        0,
        ms_node(
            "DynamicQuantizeMatMul",
            &base,
            &inputs,
            &[&matmul_out],
            vec![],
        ),
    );
    nodes
}

fn standard_nodes(
    original: &NodeProto,
    l: &Linear,
    w: &QuantWeight,
    names: &mut NameGen,
) -> Vec<NodeProto> {
    let base = original.name().to_string();
    let mut v = |s: &str| names.fresh(&format!("{}_{s}", l.output));
    let (aq, a_scale, a_zero) = (v("quant"), v("scale"), v("zero_point"));
    let (acc, accf, scale) = (v("int32"), v("float"), v("rescale"));
    let mut nodes = vec![
        attr::node(
            "DynamicQuantizeLinear",
            &format!("{base}_DynamicQuantizeLinear"),
            &[&l.activation],
            &[&aq, &a_scale, &a_zero],
            vec![],
        ),
        attr::node(
            "MatMulInteger",
            &format!("{base}_MatMulInteger"),
            &[&aq, w.data.name(), &a_zero, w.zero_point.name()],
            &[&acc],
            vec![],
        ),
        attr::node(
            "Cast",
            &format!("{base}_Cast"),
            &[&acc],
            &[&accf],
            vec![attr::int("to", DataType::Float as i64)],
        ),
        attr::node(
            "Mul",
            &format!("{base}_ScaleMul"),
            &[&a_scale, w.scale.name()],
            &[&scale],
            vec![],
        ),
    ];
    match &l.bias {
        None => nodes.push(attr::node(
            "Mul",
            &format!("{base}_Rescale"),
            &[&accf, &scale],
            &[&l.output],
            vec![],
        )),
        Some(Bias::Vector(b) | Bias::Tensor(b)) => {
            let tmp = v("no_bias");
            nodes.push(attr::node(
                "Mul",
                &format!("{base}_Rescale"),
                &[&accf, &scale],
                &[&tmp],
                vec![],
            ));
            nodes.push(attr::node(
                "Add",
                &format!("{base}_Bias"),
                &[&tmp, b],
                &[&l.output],
                vec![],
            ));
        }
    }
    nodes
}
