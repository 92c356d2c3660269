//! Recognising "linear layers with a constant weight" (`MatMul` by an initializer, plain
//! `Gemm`) and the small graph helpers every pass shares (opsets, initializer access).
//!
//! Weight-only and dynamic passes rewrite exactly these; anything else gets a skip reason
//! that ends up in the `QuantReport`.
use profagent_onnx::proto::{
    tensor_proto::DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
};
use profagent_onnx::{attr, tensor, GraphIndex};

use crate::error::{QuantError, Result};

/// ONNX Runtime's contrib-op domain.
pub const MS_DOMAIN: &str = "com.microsoft";

/// A linear layer `y = x · W (+ bias)` with `W` a constant `[k, n]` matrix.
pub struct Linear {
    pub activation: String,
    pub output: String,
    pub k: usize,
    pub n: usize,
    /// Row-major `[k, n]` (transposed from a `Gemm` with `transB = 1`).
    pub weight_kn: Vec<f32>,
    pub weight_name: String,
    /// Float bytes of the weight initializer.
    pub weight_bytes: usize,
    pub bias: Option<Bias>,
}

/// A `Gemm` bias: a `[n]` constant we can fuse, or any other tensor to add afterwards.
pub enum Bias {
    Vector(String),
    Tensor(String),
}

/// The float32 initializer `name` with its dims, if `name` is one (and not also a graph input,
/// which a caller could override at run time).
pub fn float_initializer(
    graph: &GraphProto,
    index: &GraphIndex,
    name: &str,
) -> Option<(Vec<usize>, Result<Vec<f32>>)> {
    let t = index.initializer(graph, name)?;
    if t.data_type() != DataType::Float as i32 || graph.input.iter().any(|i| i.name() == name) {
        return None;
    }
    let dims = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    Some((dims, tensor::to_f32(t).map_err(QuantError::from)))
}

/// Classifies node `i` as a linear layer, or says why it is not one.
pub fn linear_of(
    graph: &GraphProto,
    index: &GraphIndex,
    i: usize,
) -> Result<std::result::Result<Linear, String>> {
    let node = &graph.node[i];
    match node.op_type() {
        "MatMul" => matmul(graph, index, node),
        "Gemm" => gemm(graph, index, node),
        other => Ok(Err(format!("{other} is not a MatMul or Gemm"))),
    }
}

fn matmul(
    graph: &GraphProto,
    index: &GraphIndex,
    node: &NodeProto,
) -> Result<std::result::Result<Linear, String>> {
    let (Some(a), Some(b)) = (node.input.first(), node.input.get(1)) else {
        return Ok(Err("MatMul needs two inputs".into()));
    };
    let Some((dims, data)) = float_initializer(graph, index, b) else {
        let reason = if index.initializers.contains_key(a.as_str()) {
            "the constant is the left operand; only x · W is supported"
        } else if index.initializers.contains_key(b.as_str()) {
            "its weight is not a float32 constant"
        } else {
            "both operands are activations (e.g. attention scores); there is no weight to quantize"
        };
        return Ok(Err(reason.into()));
    };
    if dims.len() != 2 {
        return Ok(Err(format!(
            "its weight has shape {dims:?}; only 2-D weights are supported"
        )));
    }
    let weight_bytes = index
        .initializer(graph, b)
        .map(tensor::payload_bytes)
        .unwrap_or(0);
    Ok(Ok(Linear {
        activation: a.clone(),
        output: node.output[0].clone(),
        k: dims[0],
        n: dims[1],
        weight_kn: data?,
        weight_name: b.clone(),
        weight_bytes,
        bias: None,
    }))
}

fn gemm(
    graph: &GraphProto,
    index: &GraphIndex,
    node: &NodeProto,
) -> Result<std::result::Result<Linear, String>> {
    let alpha = attr::get_float(node, "alpha").unwrap_or(1.0);
    let beta = attr::get_float(node, "beta").unwrap_or(1.0);
    let trans_a = attr::get_int(node, "transA").unwrap_or(0);
    let trans_b = attr::get_int(node, "transB").unwrap_or(0);
    if trans_a != 0 || alpha != 1.0 {
        return Ok(Err("Gemm with transA or alpha != 1 is not supported".into()));
    }
    let (Some(a), Some(b)) = (node.input.first(), node.input.get(1)) else {
        return Ok(Err("Gemm needs two inputs".into()));
    };
    let Some((dims, data)) = float_initializer(graph, index, b) else {
        return Ok(Err("its B operand is not a float32 constant".into()));
    };
    if dims.len() != 2 {
        return Ok(Err(format!(
            "its weight has shape {dims:?}; Gemm needs 2-D"
        )));
    }
    let data = data?;
    let (k, n, weight_kn) = if trans_b != 0 {
        (
            dims[1],
            dims[0],
            crate::numeric::transpose(&data, dims[0], dims[1]),
        )
    } else {
        (dims[0], dims[1], data)
    };
    let bias = match node.input.get(2).filter(|c| !c.is_empty()) {
        None => None,
        Some(_) if beta != 1.0 => {
            return Ok(Err("Gemm with a bias and beta != 1 is not supported".into()))
        }
        Some(c) => match index.initializer(graph, c) {
            Some(t)
                if t.dims.len() == 1
                    && t.dims[0] as usize == n
                    && t.data_type() == DataType::Float as i32 =>
            {
                Some(Bias::Vector(c.clone()))
            }
            _ => Some(Bias::Tensor(c.clone())),
        },
    };
    let weight_bytes = index
        .initializer(graph, b)
        .map(tensor::payload_bytes)
        .unwrap_or(0);
    Ok(Ok(Linear {
        activation: a.clone(),
        output: node.output[0].clone(),
        k,
        n,
        weight_kn,
        weight_name: b.clone(),
        weight_bytes,
        bias,
    }))
}

/// A MatMul's bias written as a separate `Add` (what PyTorch exporters emit for
/// `nn.Linear`): the Add's node index, the `[n]` bias initializer and the Add's output.
pub struct TrailingBias {
    pub add: usize,
    pub bias: String,
    pub output: String,
}

/// The `Add` of a constant `[n]` vector that is the only reader of MatMul node `i`'s output,
/// if there is one. Folding it into the quantized MatMul's bias input lets ONNX Runtime run
/// matmul and bias as one kernel (on vit_tiny its graph otherwise spent 0.87 ms in
/// BiasGelu + Add where onnxruntime's own quantized graph spent 0.45 ms).
pub fn trailing_bias_add(
    graph: &GraphProto,
    index: &GraphIndex,
    i: usize,
    n: usize,
) -> Option<TrailingBias> {
    let value = graph.node[i].output.first()?;
    let [(add, slot)] = index.consumer_nodes(value) else {
        return None;
    };
    let node = &graph.node[*add];
    if index.is_output(value)
        || node.op_type() != "Add"
        || !node.domain().is_empty()
        || node.input.len() != 2
        || node.output.len() != 1
    {
        return None;
    }
    let bias = &node.input[1 - slot];
    let (dims, _) = float_initializer(graph, index, bias)?;
    (dims == [n]).then(|| TrailingBias {
        add: *add,
        bias: bias.clone(),
        output: node.output[0].clone(),
    })
}

/// The default-domain opset of the model (ONNX's rule: a missing entry means opset 1).
pub fn default_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
        .and_then(|o| o.version)
        .unwrap_or(1)
}

/// Fails unless the default opset is at least `needed`.
pub fn require_opset(model: &ModelProto, needed: i64, what: &str) -> Result<()> {
    let found = default_opset(model);
    if found < needed {
        return Err(QuantError::Opset {
            found,
            needed,
            what: what.to_string(),
        });
    }
    Ok(())
}

/// Declares the `com.microsoft` domain (version 1) if it is not declared yet.
pub fn ensure_ms_domain(model: &mut ModelProto) {
    if !model.opset_import.iter().any(|o| o.domain() == MS_DOMAIN) {
        model.opset_import.push(OperatorSetIdProto {
            domain: Some(MS_DOMAIN.to_string()),
            version: Some(1),
        });
    }
}

/// A node in the `com.microsoft` domain.
pub fn ms_node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<profagent_onnx::proto::AttributeProto>,
) -> NodeProto {
    let mut node = attr::node(op_type, name, inputs, outputs, attributes);
    node.domain = Some(MS_DOMAIN.to_string());
    node
}

/// Names of initializers that no node (or graph output) reads any more after a rewrite that
/// stopped using `candidates`; callers remove them so the float copies leave the file.
pub fn unused_after(graph: &GraphProto, candidates: &[String]) -> Vec<String> {
    let used: std::collections::HashSet<String> = graph
        .node
        .iter()
        .flat_map(profagent_onnx::index::node_reads)
        .chain(graph.output.iter().map(|o| o.name().to_string()))
        .collect();
    let mut out: Vec<String> = candidates
        .iter()
        .filter(|c| !used.contains(c.as_str()))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The MatMul/Gemm layers `spec` selects, with their weights, and a report that already lists
/// every layer left in float and why (not selected, a Conv (`conv_reason`), or a weight this
/// rewrite cannot take). Shared by the weight-only modes (dynamic int8, int4).
pub fn select_linear_layers(
    graph: &profagent_onnx::proto::GraphProto,
    index: &profagent_onnx::GraphIndex,
    spec: &crate::spec::QuantSpec,
    conv_reason: &str,
) -> crate::error::Result<(
    Vec<(crate::select::NodeId, Linear)>,
    crate::spec::QuantReport,
)> {
    use crate::select::{NodeId, Verdict};
    use crate::spec::{QuantReport, SkippedLayer};
    let resolved = spec.layers.resolve(graph)?;
    let mut report = QuantReport {
        mode: spec.mode.name().into(),
        ..Default::default()
    };
    let mut chosen = Vec::new();
    for &i in &index.topo {
        let op = graph.node[i].op_type();
        if !matches!(op, "MatMul" | "Gemm" | "Conv") {
            continue;
        }
        let id = NodeId::of(graph, i);
        let skip = |reason: String| SkippedLayer {
            layer: id.layer.clone(),
            node: id.node.clone(),
            op_type: id.op_type.clone(),
            reason,
        };
        if let Verdict::Skipped(reason) = resolved.verdict(&id) {
            report.skipped.push(skip(reason));
            continue;
        }
        if op == "Conv" {
            report.skipped.push(skip(conv_reason.into()));
            continue;
        }
        match linear_of(graph, index, i)? {
            Ok(linear) => chosen.push((id, linear)),
            Err(reason) => report.skipped.push(skip(reason)),
        }
    }
    Ok((chosen, report))
}
