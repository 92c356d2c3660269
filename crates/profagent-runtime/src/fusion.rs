//! Fusion coverage: which quantized layers of a model the runtime actually runs as int8
//! kernels, after its own graph optimisation.
//!
//! A QDQ graph is only fast when the runtime turns each `DequantizeLinear → op →
//! QuantizeLinear` into one integer kernel (ONNX Runtime: `QLinearConv`, `QLinearAdd`, `QGemm`,
//! ...). Where it does not, the op runs in float between a dequantize and a quantize (a *float
//! island*), often with layout `Transpose`s around it: slower than the float model. This module
//! reads the graph the runtime executes (`Runtime::optimized_model`), maps its nodes back to
//! the input's nodes the way `attribution` maps kernels (name, name less ORT's `_token_N`, or
//! the tensor a layout-transformed node is named after), and classifies every quantized node of
//! the input. It decides nothing: `profile` shows it, `quantize` warns about islands.
use std::collections::{BTreeMap, HashMap, HashSet};

use profagent_onnx::proto::{GraphProto, NodeProto};
use profagent_onnx::{index::node_label, layer_of_node};

use crate::attribution::{attribute, AttributionMethod};
use crate::trace::KernelRecord;

/// Op types of integer kernels (standard ONNX and ONNX Runtime's `com.microsoft` ones).
pub const INT8_KERNELS: &[&str] = &[
    "QLinearConv",
    "QLinearMatMul",
    "QLinearAdd",
    "QLinearMul",
    "QGemm",
    "QLinearGlobalAveragePool",
    "QLinearAveragePool",
    "QLinearConcat",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QLinearSoftmax",
    "QLinearReduceMean",
    "QLinearWhere",
    "QAttention",
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
];

/// Float ops a quantized node may be left as (ONNX Runtime's fused forms included).
const FLOAT_COMPUTE: &[&str] = &[
    "Conv",
    "FusedConv",
    "ConvTranspose",
    "MatMul",
    "FusedMatMul",
    "Gemm",
    "FusedGemm",
    "Add",
    "Mul",
    "GlobalAveragePool",
    "AveragePool",
    "Concat",
];

/// Ops the runtime inserts to change data layout (NCHW ↔ NHWC, NCHWc blocks).
const LAYOUT_OPS: &[&str] = &["Transpose", "ReorderInput", "ReorderOutput"];

/// Ops that have an int8 kernel when their activation input comes from a `DequantizeLinear`.
const QUANTIZABLE: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "Add",
    "Mul",
    "GlobalAveragePool",
    "AveragePool",
    "Concat",
];

/// How the runtime executes one quantized node of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelPrecision {
    /// One integer kernel (QLinearConv, QGemm, DynamicQuantizeMatMul, ...).
    Int8,
    /// A float kernel between dequantize and quantize: a float island.
    Float,
    /// No kernel of its own: folded into a neighbour (a bias Add into its MatMul).
    Absorbed,
}

/// One quantized node of the input and what the runtime made of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FusedNode {
    /// The input's node name (`op#index` when unnamed).
    pub node: String,
    pub op_type: String,
    /// The layer it belongs to (`profagent_onnx::layer_of_node`).
    pub layer: String,
    /// The runtime's op that executes it (absent when absorbed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    pub runs_as: KernelPrecision,
    /// Layout ops the runtime inserted next to it (Transpose, NCHWc reorders).
    pub layout_ops: usize,
}

/// Fusion coverage of one model on one runtime.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FusionReport {
    /// Every quantized node of the input (QDQ compute ops and integer ops), in graph order.
    pub nodes: Vec<FusedNode>,
    /// Integer kernels in the runtime's graph, by op type.
    pub int8_kernel_ops: BTreeMap<String, usize>,
    /// Layout ops the runtime inserted (not in the input), by op type.
    pub layout_ops: BTreeMap<String, usize>,
    /// `DequantizeLinear`/`QuantizeLinear` nodes left in the runtime's graph.
    pub qdq_left: usize,
}

impl FusionReport {
    /// Quantized nodes of the input.
    pub fn quantized(&self) -> usize {
        self.nodes.len()
    }

    /// Quantized nodes that run as one int8 kernel.
    pub fn int8(&self) -> usize {
        self.count(KernelPrecision::Int8)
    }

    /// Quantized nodes left in float between dequantize and quantize.
    pub fn float_islands(&self) -> Vec<&FusedNode> {
        self.nodes
            .iter()
            .filter(|n| n.runs_as == KernelPrecision::Float)
            .collect()
    }

    /// Layout ops inserted in all.
    pub fn layout_op_count(&self) -> usize {
        self.layout_ops.values().sum()
    }

    fn count(&self, precision: KernelPrecision) -> usize {
        self.nodes.iter().filter(|n| n.runs_as == precision).count()
    }

    /// One line: `21 of 21 quantized layers run as int8 kernels (QLinearConv x21); 0 float
    /// islands; 2 layout ops inserted (Transpose x2)`.
    pub fn summary_line(&self) -> String {
        let kernels = counts_text(&self.int8_kernel_ops);
        let layout = counts_text(&self.layout_ops);
        let absorbed = self.count(KernelPrecision::Absorbed);
        let absorbed = if absorbed > 0 {
            format!(", {absorbed} folded into neighbours")
        } else {
            String::new()
        };
        format!(
            "{} of {} quantized nodes run as int8 kernels{}{absorbed}; {} float island(s); {} layout op(s) inserted{}",
            self.int8(),
            self.quantized(),
            if kernels.is_empty() { String::new() } else { format!(" ({kernels})") },
            self.float_islands().len(),
            self.layout_op_count(),
            if layout.is_empty() { String::new() } else { format!(" ({layout})") },
        )
    }
}

/// `{QLinearConv: 21, QGemm: 1}` → `QLinearConv x21, QGemm x1`.
fn counts_text(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(op, n)| format!("{op} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Classifies the quantized nodes of `input` by what `optimized` (the runtime's graph of the
/// same model) runs them as.
pub fn fusion_report(input: &GraphProto, optimized: &GraphProto) -> FusionReport {
    let quantized = quantized_nodes(input);
    let records: Vec<KernelRecord> = optimized
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| KernelRecord {
            name: node_label(n, i),
            op_type: n.op_type().to_string(),
            samples_ms: Vec::new(),
            output_bytes: None,
        })
        .collect();
    let attributions = attribute(input, &records);
    let mapped: Vec<Option<usize>> = attributions
        .iter()
        .map(|a| match a.method {
            AttributionMethod::Name | AttributionMethod::Tensor => a.node,
            _ => None,
        })
        .collect();
    let input_names: HashSet<&str> = input.node.iter().map(NodeProto::name).collect();
    let mut kernels: HashMap<usize, Vec<&str>> = HashMap::new();
    for (position, node) in optimized.node.iter().enumerate() {
        if let Some(original) = mapped[position] {
            kernels.entry(original).or_default().push(node.op_type());
        }
    }
    let mut int8_kernel_ops = BTreeMap::new();
    let mut layout_ops = BTreeMap::new();
    let mut layout_near: HashMap<usize, usize> = HashMap::new();
    let mut qdq_left = 0;
    for (position, node) in optimized.node.iter().enumerate() {
        let op = node.op_type();
        if INT8_KERNELS.contains(&op) {
            *int8_kernel_ops.entry(op.to_string()).or_insert(0) += 1;
        } else if op == "QuantizeLinear" || op == "DequantizeLinear" {
            qdq_left += 1;
        } else if LAYOUT_OPS.contains(&op) && !input_names.contains(node.name()) {
            *layout_ops.entry(op.to_string()).or_insert(0) += 1;
            if let Some(near) = layout_neighbour(optimized, &mapped, &quantized, position) {
                *layout_near.entry(near).or_insert(0) += 1;
            }
        }
    }
    let nodes = quantized
        .iter()
        .map(|&index| {
            let node = &input.node[index];
            let ran = kernels.get(&index).map(Vec::as_slice).unwrap_or_default();
            let int8 = ran.iter().find(|op| INT8_KERNELS.contains(op));
            let float = ran.iter().find(|op| FLOAT_COMPUTE.contains(op));
            let (kernel, runs_as) = match (int8, float) {
                (Some(op), _) => (Some(op.to_string()), KernelPrecision::Int8),
                (None, Some(op)) => (Some(op.to_string()), KernelPrecision::Float),
                (None, None) => (ran.first().map(|op| op.to_string()), absorbed_or_float(ran)),
            };
            FusedNode {
                node: node_label(node, index),
                op_type: node.op_type().to_string(),
                layer: layer_of_node(node.name(), node.op_type(), index),
                kernel,
                runs_as,
                layout_ops: layout_near.get(&index).copied().unwrap_or(0),
            }
        })
        .collect();
    FusionReport {
        nodes,
        int8_kernel_ops,
        layout_ops,
        qdq_left,
    }
}

/// A node that maps to kernels of neither kind but to some other op (a `Relu` it became part
/// of) runs in float; one that maps to nothing was folded away.
fn absorbed_or_float(ran: &[&str]) -> KernelPrecision {
    if ran.is_empty() {
        KernelPrecision::Absorbed
    } else {
        KernelPrecision::Float
    }
}

/// The quantized node a layout op serves: the first quantized node that reads its output
/// (directly or through other layout/QDQ ops), else the one that wrote its input.
fn layout_neighbour(
    optimized: &GraphProto,
    mapped: &[Option<usize>],
    quantized: &[usize],
    position: usize,
) -> Option<usize> {
    let is_quantized = |node: Option<usize>| node.filter(|n| quantized.contains(n));
    let mut frontier: Vec<&str> = optimized.node[position]
        .output
        .iter()
        .map(String::as_str)
        .collect();
    for _ in 0..4 {
        let mut next = Vec::new();
        for (i, node) in optimized.node.iter().enumerate() {
            if !node.input.iter().any(|x| frontier.contains(&x.as_str())) {
                continue;
            }
            if let Some(found) = is_quantized(mapped[i]) {
                return Some(found);
            }
            next.extend(node.output.iter().map(String::as_str));
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    let input = optimized.node[position].input.first()?;
    optimized
        .node
        .iter()
        .position(|n| n.output.contains(input))
        .and_then(|i| is_quantized(mapped[i]))
}

/// Indices of the input's quantized nodes: integer ops, and QDQ compute ops whose activation
/// input is a dequantized activation (not a dequantized weight).
pub fn quantized_nodes(graph: &GraphProto) -> Vec<usize> {
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let producer: HashMap<&str, &NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let dequantized_activation = |value: &str| {
        producer.get(value).is_some_and(|dq| {
            dq.op_type() == "DequantizeLinear"
                && dq.input.first().is_some_and(|x| {
                    !initializers.contains(x.as_str())
                        && producer
                            .get(x.as_str())
                            .is_none_or(|p| p.op_type() != "Constant")
                })
        })
    };
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, node)| {
            let op = node.op_type();
            INT8_KERNELS.contains(&op)
                || (QUANTIZABLE.contains(&op)
                    && node
                        .input
                        .first()
                        .is_some_and(|x| dequantized_activation(x)))
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            name: Some(name.to_string()),
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// x → Q → DQ → conv1 → Q → DQ → conv2 → Q → DQ → y, weights dequantized from
    /// initializers.
    fn qdq_input() -> GraphProto {
        let weight = |name: &str| profagent_onnx::proto::TensorProto {
            name: Some(name.to_string()),
            ..Default::default()
        };
        GraphProto {
            initializer: vec![weight("w1q"), weight("w2q")],
            node: vec![
                node("q0", "QuantizeLinear", &["x", "s", "z"], &["xq"]),
                node("dq0", "DequantizeLinear", &["xq", "s", "z"], &["xd"]),
                node("dqw1", "DequantizeLinear", &["w1q", "s", "z"], &["w1"]),
                node("/a/conv1/Conv", "Conv", &["xd", "w1"], &["c1"]),
                node("q1", "QuantizeLinear", &["c1", "s", "z"], &["c1q"]),
                node("dq1", "DequantizeLinear", &["c1q", "s", "z"], &["c1d"]),
                node("dqw2", "DequantizeLinear", &["w2q", "s", "z"], &["w2"]),
                node("/a/conv2/Conv", "Conv", &["c1d", "w2"], &["c2"]),
                node("q2", "QuantizeLinear", &["c2", "s", "z"], &["c2q"]),
                node("dq2", "DequantizeLinear", &["c2q", "s", "z"], &["y"]),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn finds_quantized_compute_nodes_not_weight_dequantizes() {
        assert_eq!(quantized_nodes(&qdq_input()), vec![3, 7]);
    }

    #[test]
    fn classifies_int8_kernels_islands_and_layout_ops() {
        // conv1 fused (ORT names it `<node>_token_N`), conv2 left in float between a DQ and a
        // Q with a Transpose inserted before it.
        let optimized = GraphProto {
            node: vec![
                node("q0", "QuantizeLinear", &["x", "s", "z"], &["xq"]),
                node("/a/conv1/Conv_token_3", "QLinearConv", &["xq"], &["c1q"]),
                node("Transpose_token_9", "Transpose", &["c1q"], &["t"]),
                node("dq1", "DequantizeLinear", &["t", "s", "z"], &["c1d"]),
                node("/a/conv2/Conv", "Conv", &["c1d", "w2"], &["c2"]),
                node("q2", "QuantizeLinear", &["c2", "s", "z"], &["c2q"]),
                node("dq2", "DequantizeLinear", &["c2q", "s", "z"], &["y"]),
            ],
            ..Default::default()
        };
        let report = fusion_report(&qdq_input(), &optimized);
        assert_eq!(report.quantized(), 2);
        assert_eq!(report.int8(), 1);
        assert_eq!(report.nodes[0].kernel.as_deref(), Some("QLinearConv"));
        assert_eq!(report.nodes[0].layer, "a.conv1");
        let islands = report.float_islands();
        assert_eq!(islands.len(), 1);
        assert_eq!(islands[0].node, "/a/conv2/Conv");
        assert_eq!(islands[0].layout_ops, 1);
        assert_eq!(report.layout_ops.get("Transpose"), Some(&1));
        assert_eq!(report.qdq_left, 4);
        assert_eq!(report.int8_kernel_ops.get("QLinearConv"), Some(&1));
        assert!(report
            .summary_line()
            .starts_with("1 of 2 quantized nodes run as int8 kernels (QLinearConv x1)"));
    }
}
