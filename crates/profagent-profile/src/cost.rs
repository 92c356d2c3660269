//! Per-op static cost: multiply-accumulates from shape facts, as a registry (op type → cost
//! function). Ops not in the registry cost 0 MACs: elementwise work, normalisation and data
//! movement are memory-bound and conventionally left out of MAC counts (as in the published
//! 4.09 G for ResNet-50).
use std::collections::HashMap;
use std::sync::OnceLock;

use profagent_onnx::proto::NodeProto;
use profagent_onnx::{attr, ShapeFacts};

/// A cost function: `Some(macs)`, or `None` when the shapes it needs are unknown.
pub type MacsFn = fn(&NodeProto, &ShapeFacts) -> Option<u64>;

fn registry() -> &'static HashMap<&'static str, MacsFn> {
    static REGISTRY: OnceLock<HashMap<&'static str, MacsFn>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let table: &[(&'static str, MacsFn)] = &[
            ("Conv", |n, f| conv_macs(n, f, 1)),
            ("ConvInteger", |n, f| conv_macs(n, f, 1)),
            ("QLinearConv", |n, f| conv_macs(n, f, 3)),
            ("ConvTranspose", conv_transpose_macs),
            ("Gemm", gemm_macs),
            ("MatMul", |n, f| matmul_macs(n, f, 0)),
            ("MatMulInteger", |n, f| matmul_macs(n, f, 0)),
            ("QLinearMatMul", |n, f| matmul_macs(n, f, 0)),
            ("MatMulNBits", |n, f| matmul_macs(n, f, 0)),
            ("DynamicQuantizeMatMul", |n, f| matmul_macs(n, f, 0)),
            ("MatMulIntegerToFloat", |n, f| matmul_macs(n, f, 0)),
        ];
        table.iter().copied().collect()
    })
}

/// True for ops that do multiply-accumulate work (their MACs must be known for a complete
/// profile).
pub fn is_compute_op(op_type: &str) -> bool {
    registry().contains_key(op_type)
}

/// MACs of one node: `Some(0)` for ops without MAC work, `None` when a compute op's shapes
/// are unknown.
pub fn node_macs(node: &NodeProto, facts: &ShapeFacts) -> Option<u64> {
    match registry().get(node.op_type()) {
        Some(cost) => cost(node, facts),
        None => Some(0),
    }
}

fn elements(dims: &[i64]) -> u64 {
    dims.iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d.max(0) as u64))
}

fn output_elements(node: &NodeProto, facts: &ShapeFacts) -> Option<u64> {
    let out = node.output.first()?;
    Some(elements(&facts.known_dims(out)?))
}

/// Conv: every output element takes `(Cin/group)·kh·kw` MACs, i.e. weight elements / Cout.
fn conv_macs(node: &NodeProto, facts: &ShapeFacts, weight_slot: usize) -> Option<u64> {
    let weight = facts.known_dims(node.input.get(weight_slot)?)?;
    let per_output = elements(weight.get(1..)?);
    Some(output_elements(node, facts)?.saturating_mul(per_output))
}

/// ConvTranspose: every *input* element scatters into `(Cout/group)·kh·kw` outputs.
fn conv_transpose_macs(node: &NodeProto, facts: &ShapeFacts) -> Option<u64> {
    let input = facts.known_dims(node.input.first()?)?;
    let weight = facts.known_dims(node.input.get(1)?)?;
    Some(elements(&input).saturating_mul(elements(weight.get(1..)?)))
}

fn gemm_macs(node: &NodeProto, facts: &ShapeFacts) -> Option<u64> {
    let a = facts.known_dims(node.input.first()?)?;
    let trans_a = attr::get_int(node, "transA").unwrap_or(0) != 0;
    let k = *if trans_a { a.first()? } else { a.get(1)? };
    Some(output_elements(node, facts)?.saturating_mul(k.max(0) as u64))
}

/// MatMul (batched too, so attention's `q·kᵀ` and `·v` count): output elements × K, K being
/// the last dim of A.
fn matmul_macs(node: &NodeProto, facts: &ShapeFacts, a_slot: usize) -> Option<u64> {
    let a = facts.known_dims(node.input.get(a_slot)?)?;
    let k = *a.last()?;
    Some(output_elements(node, facts)?.saturating_mul(k.max(0) as u64))
}
