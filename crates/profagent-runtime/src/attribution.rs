//! Maps a runtime's kernels back to the ONNX nodes they execute.
//!
//! ORT at full optimisation fuses and renames: a `FusedConv` keeps its Conv's name, but after
//! layout optimisation a Conv+Relu kernel is named after the Relu's *output tensor* plus
//! `_nchwc`, and ORT inserts kernels of its own (`ReorderOutput`, `BiasGelu_token_7`). tract
//! names pieces of a lowered node `<onnx name>.<suffix>`. Each kernel is attributed, in order:
//! 1. by name: it is an ONNX node's name (tract: after dropping `.suffix` parts);
//! 2. by tensor: its name, without `_nchwc`/`_token_N`, is an ONNX value; the kernel is charged
//!    to the upstream node whose op matches the kernel's op, and covers the chain in between;
//! 3. by position: runtime-inserted kernels are charged to the node of the kernel executed just
//!    before them (the layout reorder after a Conv, the bias+GELU after a MatMul);
//! 4. otherwise unattributed (reported on their own, never dropped).
use std::collections::{HashMap, HashSet};

use profagent_onnx::proto::GraphProto;

use crate::trace::KernelRecord;

/// How far upstream a fused kernel may reach to find its anchor node (Conv→Add→Relu is 2).
const MAX_FUSION_DEPTH: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionMethod {
    Name,
    Tensor,
    Position,
    Unattributed,
}

/// Where one kernel's time goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// Index of the ONNX node charged with the kernel's time.
    pub node: Option<usize>,
    /// ONNX nodes the kernel covers (the charged node first), when known.
    pub covers: Vec<usize>,
    pub method: AttributionMethod,
}

/// Attributes every kernel (same order as `kernels`).
pub fn attribute(graph: &GraphProto, kernels: &[KernelRecord]) -> Vec<Attribution> {
    let by_name: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.name().is_empty())
        .map(|(i, n)| (n.name(), i))
        .collect();
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let named_kernels: HashSet<usize> = kernels
        .iter()
        .filter_map(|k| by_name.get(k.name.as_str()).copied())
        .collect();
    let mut result: Vec<Attribution> = kernels
        .iter()
        .map(|kernel| {
            if let Some(node) = match_name(&by_name, &kernel.name) {
                return Attribution {
                    node: Some(node),
                    covers: vec![node],
                    method: AttributionMethod::Name,
                };
            }
            if let Some(&start) = producer.get(tensor_name(&kernel.name)) {
                let covers = fused_chain(graph, &producer, &named_kernels, start, &kernel.op_type);
                return Attribution {
                    node: covers.first().copied(),
                    covers,
                    method: AttributionMethod::Tensor,
                };
            }
            Attribution {
                node: None,
                covers: Vec::new(),
                method: AttributionMethod::Unattributed,
            }
        })
        .collect();
    // Position: charge inserted kernels to the previous attributed kernel's node (or the next
    // one when nothing ran before).
    let anchors: Vec<Option<usize>> = result.iter().map(|a| a.node).collect();
    for (position, attribution) in result.iter_mut().enumerate() {
        if attribution.node.is_some() {
            continue;
        }
        let before = anchors[..position].iter().rev().find_map(|a| *a);
        let after = || anchors[position + 1..].iter().find_map(|a| *a);
        if let Some(node) = before.or_else(after) {
            attribution.node = Some(node);
            attribution.method = AttributionMethod::Position;
        }
    }
    result
}

/// Exact node name, the name less ORT's `_token_N` (a QDQ group fused into `QLinearConv` is
/// named `<Conv's name>_token_N`), or (tract) the name with trailing `.suffix` parts removed.
fn match_name(by_name: &HashMap<&str, usize>, kernel: &str) -> Option<usize> {
    if let Some(&node) = by_name.get(kernel) {
        return Some(node);
    }
    if let Some(&node) = strip_token(kernel).and_then(|base| by_name.get(base)) {
        return Some(node);
    }
    let mut candidate = kernel;
    loop {
        if let Some(&node) = by_name.get(candidate) {
            return Some(node);
        }
        let (head, _) = candidate.rsplit_once('.')?;
        if head.is_empty() {
            return None;
        }
        candidate = head;
    }
}

/// `X_token_12` → `X` (None without such a suffix).
fn strip_token(name: &str) -> Option<&str> {
    let (head, tail) = name.rsplit_once("_token_")?;
    (!head.is_empty() && !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()))
        .then_some(head)
}

/// `X_nchwc` / `X_token_12` → `X` (ORT's suffixes for layout-transformed and inserted values).
fn tensor_name(kernel: &str) -> &str {
    let mut name = kernel;
    loop {
        if let Some(stripped) = name.strip_suffix("_nchwc") {
            name = stripped;
            continue;
        }
        if let Some((head, tail)) = name.rsplit_once("_token_") {
            if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
                name = head;
                continue;
            }
        }
        return name;
    }
}

/// From the producer of a kernel's output, walk upstream (first non-constant input) to the node
/// whose op is the kernel's op; the result starts with that anchor and lists the chain. If no
/// such node is near, the producer alone.
fn fused_chain(
    graph: &GraphProto,
    producer: &HashMap<&str, usize>,
    named_kernels: &HashSet<usize>,
    start: usize,
    kernel_op: &str,
) -> Vec<usize> {
    let mut chain = vec![start];
    let mut current = start;
    for _ in 0..MAX_FUSION_DEPTH {
        if graph.node[current].op_type() == kernel_op {
            chain.reverse();
            let anchor_position = chain.iter().position(|&n| n == current).unwrap_or(0);
            chain.rotate_left(anchor_position);
            return chain;
        }
        let upstream = graph.node[current]
            .input
            .iter()
            .find_map(|input| producer.get(input.as_str()).copied());
        match upstream {
            Some(previous) if !named_kernels.contains(&previous) => {
                chain.push(previous);
                current = previous;
            }
            _ => break,
        }
    }
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;
    use profagent_onnx::proto::NodeProto;

    fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            name: Some(name.to_string()),
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn kernel(name: &str, op: &str) -> KernelRecord {
        KernelRecord {
            name: name.to_string(),
            op_type: op.to_string(),
            samples_ms: vec![1.0],
            output_bytes: None,
        }
    }

    #[test]
    fn attributes_by_name_tensor_and_position() {
        let graph = GraphProto {
            node: vec![
                node("/conv1/Conv", "Conv", &["x", "w"], &["c1"]),
                node("/relu/Relu", "Relu", &["c1"], &["r1"]),
                node("/fc/MatMul", "MatMul", &["r1", "w2"], &["m"]),
                node("/blocks.0/mlp/fc1/MatMul", "MatMul", &["m", "w3"], &["y"]),
            ],
            ..Default::default()
        };
        let kernels = vec![
            kernel("r1_nchwc", "Conv"),
            kernel("ReorderOutput", "ReorderOutput"),
            kernel("/fc/MatMul", "MatMul"),
            kernel("/blocks.0/mlp/fc1/MatMul.matmatmul", "OptMatMul"),
            kernel("/conv1/Conv_token_4", "QLinearConv"),
        ];
        let result = attribute(&graph, &kernels);
        assert_eq!(result[0].node, Some(0));
        assert_eq!(result[0].covers, vec![0, 1]);
        assert_eq!(result[0].method, AttributionMethod::Tensor);
        assert_eq!(result[1].node, Some(0));
        assert_eq!(result[1].method, AttributionMethod::Position);
        assert_eq!(result[2].node, Some(2));
        assert_eq!(result[2].method, AttributionMethod::Name);
        assert_eq!(result[3].node, Some(3));
        assert_eq!(result[4].node, Some(0));
        assert_eq!(result[4].method, AttributionMethod::Name);
        assert_eq!(tensor_name("BiasGelu_token_70"), "BiasGelu");
        assert_eq!(tensor_name("a_b_nchwc"), "a_b");
    }
}
