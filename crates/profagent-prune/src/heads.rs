//! Attention heads of a fused-qkv self-attention (timm's `Attention`, and exports that share
//! its shape): `MatMul(x, Wqkv) [+ bias] → Reshape [.., 3, H, hd] → …attention… → Reshape
//! [.., H*hd] → MatMul(·, Wproj)`.
//!
//! The matcher follows the head axis through every node between the two reshapes (Transpose,
//! Split, Squeeze, Gather, scalar Mul/Div, Softmax, the two attention MatMuls) and only
//! accepts the pattern when no node on the way mixes heads. Removing head `h` then removes
//! columns `{s*E + h*hd + d}` of Wqkv and its bias, rows `{h*hd + d}` of Wproj, and rewrites
//! the head count in the first reshape target and `H*hd` in the second.
use std::collections::{HashMap, HashSet};

use profagent_onnx::proto::GraphProto;
use profagent_onnx::{attr, index::node_label, GraphIndex};

use crate::consts::{resolve_shape_vector, Consts};
use crate::group::{AxisMap, Rewrite, Slice, SliceRole};

/// A matched attention block.
#[derive(Debug, Clone)]
pub struct HeadsMatch {
    pub qkv_node: usize,
    pub proj_node: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub slices: Vec<Slice>,
    pub rewrites: Vec<Rewrite>,
    /// Nodes between the qkv MatMul and the projection that the pattern owns.
    pub claimed: HashSet<usize>,
    /// The attention MatMuls between the reshapes (their MACs scale with the head count).
    pub attention_matmuls: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Axes {
    rank: usize,
    head: usize,
    head_dim: Option<usize>,
}

/// Result of trying the pattern at a MatMul: `Ok(None)` when it is not an attention block at
/// all, `Err(reason)` when it looks like one but something on the way is not understood.
pub fn match_fused_qkv(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    qkv_node: usize,
) -> Result<Option<HeadsMatch>, String> {
    let node = &graph.node[qkv_node];
    if node.op_type() != "MatMul" || node.input.len() != 2 {
        return Ok(None);
    }
    let Some(weight) = consts.initializer(&node.input[1]) else {
        return Ok(None);
    };
    if weight.dims.len() != 2 {
        return Ok(None);
    }
    let fused = weight.dims[1] as usize;
    let mut claimed = HashSet::new();
    let mut value = node.output[0].clone();
    let mut bias: Option<String> = None;
    let single_consumer = |v: &str| -> Option<usize> {
        match index.consumer_nodes(v) {
            [(n, _)] => Some(*n),
            _ => None,
        }
    };
    let Some(mut next) = single_consumer(&value) else {
        return Ok(None);
    };
    if graph.node[next].op_type() == "Add" {
        let add = &graph.node[next];
        let other = add.input.iter().find(|v| **v != value).cloned();
        match other.and_then(|o| consts.initializer(&o).map(|t| (o, t))) {
            Some((name, t)) if t.dims == [fused as i64] => bias = Some(name),
            _ => return Ok(None),
        }
        claimed.insert(next);
        value = add.output[0].clone();
        let Some(n) = single_consumer(&value) else {
            return Ok(None);
        };
        next = n;
    }
    let reshape = &graph.node[next];
    if reshape.op_type() != "Reshape" {
        return Ok(None);
    }
    let Some(target) = resolve_shape_vector(graph, index, consts, &reshape.input[1]) else {
        return Ok(None);
    };
    let rank = target.len();
    if rank < 3 || target[rank - 3].value != Some(3) {
        return Ok(None);
    }
    let reshape_label = node_label(reshape, next);
    let (Some(heads), head_dim_elem) = (target[rank - 2].value, target[rank - 1].value) else {
        return Err(format!(
            "attention reshape '{reshape_label}' has a dynamic head count"
        ));
    };
    if heads <= 0 || !fused.is_multiple_of(3 * heads as usize) {
        return Ok(None);
    }
    let heads = heads as usize;
    let head_dim = fused / (3 * heads);
    if head_dim_elem.is_some_and(|d| d != -1 && d as usize != head_dim) {
        return Ok(None);
    }
    let Some((heads_value, heads_element)) = target[rank - 2].source.clone() else {
        return Err(format!("head count of '{reshape_label}' is not a constant"));
    };
    claimed.insert(next);
    let embed = heads * head_dim;

    // Follow the head axis from the first reshape to the second.
    let mut tracked: HashMap<String, Axes> = HashMap::new();
    tracked.insert(
        reshape.output[0].clone(),
        Axes {
            rank,
            head: rank - 2,
            head_dim: Some(rank - 1),
        },
    );
    let start = index.topo.iter().position(|&i| i == next).unwrap_or(0);
    let mut merge: Option<(usize, (String, usize))> = None;
    let mut attention_matmuls = Vec::new();
    for &ni in &index.topo[start + 1..] {
        let n = &graph.node[ni];
        let ins: Vec<Option<Axes>> = n.input.iter().map(|v| tracked.get(v).copied()).collect();
        let Some(first) = ins.iter().flatten().next().copied() else {
            continue;
        };
        let label = node_label(n, ni);
        let fail = |why: &str| Err(format!("attention node '{label}' ({}): {why}", n.op_type()));
        if merge.is_some() {
            return fail("reads the heads after they were merged");
        }
        let out: Option<Axes> = match n.op_type() {
            "Shape" => None,
            "Identity" | "Cast" => Some(first),
            "Transpose" => {
                let perm = attr::get_ints(n, "perm")
                    .unwrap_or_else(|| (0..first.rank as i64).rev().collect());
                let pos = |a: usize| perm.iter().position(|&p| p as usize == a);
                let Some(head) = pos(first.head) else {
                    return fail("bad perm");
                };
                Some(Axes {
                    rank: first.rank,
                    head,
                    head_dim: first.head_dim.and_then(pos),
                })
            }
            "Split" | "Softmax" => {
                let default = if n.op_type() == "Softmax" { -1 } else { 0 };
                let axis = normalize(attr::get_int(n, "axis").unwrap_or(default), first.rank);
                if axis == Some(first.head) || (n.op_type() == "Split" && axis == first.head_dim) {
                    return fail("acts along the head axis");
                }
                Some(first)
            }
            "Squeeze" | "Unsqueeze" | "Gather" => {
                let axes: Vec<i64> = if n.op_type() == "Gather" {
                    let scalar = n
                        .input
                        .get(1)
                        .and_then(|v| consts.dims(v))
                        .is_some_and(|d| d.is_empty());
                    if !scalar {
                        return fail("gathers more than one index");
                    }
                    vec![attr::get_int(n, "axis").unwrap_or(0)]
                } else {
                    match n
                        .input
                        .get(1)
                        .and_then(|v| consts.ints(v))
                        .or_else(|| attr::get_ints(n, "axes"))
                    {
                        Some(a) => a,
                        None => return fail("axes are not constant"),
                    }
                };
                match reindex(first, &axes, n.op_type() == "Unsqueeze") {
                    Some(a) => Some(a),
                    None => return fail("removes the head axis"),
                }
            }
            "Mul" | "Div" | "Add" | "Sub" => {
                let ok = n.input.iter().zip(&ins).all(|(v, a)| match a {
                    Some(a) => *a == first,
                    None => consts.is_scalar_like(v) || shape_derived(graph, index, consts, v, 0),
                });
                if !ok {
                    return fail("combines the heads with a tensor of unknown layout");
                }
                Some(first)
            }
            "MatMul" => {
                let (Some(a), Some(b)) = (ins[0], ins.get(1).copied().flatten()) else {
                    return fail("multiplies one head tensor by a non-head tensor");
                };
                let last = a.rank - 1;
                if a.rank != b.rank || a.head != b.head || a.head + 2 > a.rank {
                    return fail("operands disagree on the head axis");
                }
                let head_dim = if a.head_dim == Some(last) && b.head_dim == Some(last - 1) {
                    None
                } else if a.head_dim.is_none() && b.head_dim == Some(last) {
                    Some(last)
                } else {
                    return fail("contracts an unexpected axis");
                };
                Some(Axes { head_dim, ..a })
            }
            "Reshape" => {
                if first.head + 2 != first.rank || first.head_dim != Some(first.rank - 1) {
                    return fail("merges axes other than (heads, head size)");
                }
                let Some(target) = resolve_shape_vector(graph, index, consts, &n.input[1]) else {
                    return fail("target shape is not understood");
                };
                let last = target.last().cloned();
                match last.and_then(|e| e.value.map(|v| (v, e.source))) {
                    Some((v, Some(src)))
                        if v as usize == embed && target.len() + 1 == first.rank =>
                    {
                        merge = Some((ni, src));
                    }
                    _ => return fail("target does not end in a constant heads*head_size"),
                }
                None
            }
            _ => return fail("operation not understood inside attention"),
        };
        claimed.insert(ni);
        if n.op_type() == "MatMul" {
            attention_matmuls.push(ni);
        }
        if let Some(a) = out {
            for o in &n.output {
                tracked.insert(o.clone(), a);
            }
        }
    }
    let Some((merge_node, (embed_value, embed_element))) = merge else {
        return Err(format!(
            "no head-merging Reshape found after '{reshape_label}'"
        ));
    };
    let merged = &graph.node[merge_node].output[0];
    let proj_node = match single_consumer(merged) {
        Some(p) if graph.node[p].op_type() == "MatMul" && graph.node[p].input[0] == *merged => p,
        _ => {
            return Err(format!(
                "merged heads after '{}' do not feed one MatMul",
                node_label(&graph.node[merge_node], merge_node)
            ))
        }
    };
    let proj = &graph.node[proj_node];
    let proj_weight = match consts.initializer(&proj.input[1]) {
        Some(t) if t.dims.len() == 2 && t.dims[0] as usize == embed => proj.input[1].clone(),
        _ => return Err("output projection weight is not a constant [H*hd, D] matrix".into()),
    };
    for v in [&heads_value, &embed_value] {
        if index.consumer_nodes(v).len() != 1 {
            return Err(format!("shape constant '{v}' is shared by several nodes"));
        }
    }
    let qkv_map = AxisMap {
        base: 0,
        blocks: 3,
        block_stride: embed,
        unit_len: head_dim,
    };
    let mut slices = vec![Slice {
        tensor: node.input[1].clone(),
        axis: 1,
        map: qkv_map,
        role: SliceRole::ProducerWeight,
        node: qkv_node,
    }];
    if let Some(b) = bias {
        let add = index.consumer_nodes(&node.output[0])[0].0;
        slices.push(Slice {
            tensor: b,
            axis: 0,
            map: qkv_map,
            role: SliceRole::Bias,
            node: add,
        });
    }
    slices.push(Slice {
        tensor: proj_weight,
        axis: 0,
        map: AxisMap {
            base: 0,
            blocks: 1,
            block_stride: 0,
            unit_len: head_dim,
        },
        role: SliceRole::ConsumerWeight,
        node: proj_node,
    });
    Ok(Some(HeadsMatch {
        qkv_node,
        proj_node,
        heads,
        head_dim,
        slices,
        rewrites: vec![
            Rewrite::ShapeConst {
                value: heads_value,
                element: heads_element,
                per_unit: 1,
            },
            Rewrite::ShapeConst {
                value: embed_value,
                element: embed_element,
                per_unit: head_dim as i64,
            },
        ],
        claimed,
        attention_matmuls,
    }))
}

fn normalize(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

/// New head/head-size positions after removing (Squeeze, Gather) or inserting (Unsqueeze) axes.
fn reindex(a: Axes, axes: &[i64], insert: bool) -> Option<Axes> {
    let new_rank = if insert {
        a.rank + axes.len()
    } else {
        a.rank.checked_sub(axes.len())?
    };
    let norm_rank = if insert { new_rank } else { a.rank };
    let mut list: Vec<usize> = axes
        .iter()
        .map(|&x| normalize(x, norm_rank))
        .collect::<Option<_>>()?;
    list.sort_unstable();
    let shift = |p: usize| -> Option<usize> {
        if insert {
            let mut p = p;
            for &x in &list {
                if x <= p {
                    p += 1;
                }
            }
            Some(p)
        } else {
            if list.contains(&p) {
                return None;
            }
            Some(p - list.iter().filter(|&&x| x < p).count())
        }
    };
    let head_dim = match a.head_dim {
        Some(d) => Some(shift(d)?),
        None => None,
    };
    Some(Axes {
        rank: new_rank,
        head: shift(a.head)?,
        head_dim,
    })
}

/// True for small values computed only from `Shape` and constants (e.g. the `1/sqrt(hd)`
/// scale timm computes at run time): they broadcast and adapt to pruned shapes by themselves.
pub fn shape_derived(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    value: &str,
    depth: usize,
) -> bool {
    if consts.get(value).is_some() {
        return true;
    }
    if depth > 16 {
        return false;
    }
    let Some((_, node)) = index.producer_node(graph, value) else {
        return false;
    };
    match node.op_type() {
        "Shape" => true,
        "Gather" | "Slice" | "Cast" | "Sqrt" | "Div" | "Mul" | "Add" | "Sub" | "Unsqueeze"
        | "Squeeze" | "Concat" | "Reciprocal" => node
            .input
            .iter()
            .filter(|v| !v.is_empty())
            .all(|v| shape_derived(graph, index, consts, v, depth + 1)),
        _ => false,
    }
}
