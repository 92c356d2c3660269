//! Attention heads of a self-attention block, in the two shapes exporters write:
//! - fused qkv (timm's `Attention`): `MatMul(x, Wqkv) [+ bias] → Reshape [.., 3, H, hd] → …`;
//! - separate query, key and value (Hugging Face BERT, MiniLM, DistilBERT exports): three
//!   `MatMul(x, W) [+ bias] → Reshape [.., H, hd]` reading the same `x`.
//!
//! Either way the heads meet in `…attention… → Reshape [.., H*hd] → MatMul(·, Wproj)`.
//!
//! The matcher follows the head axis through every node between the reshapes (Transpose,
//! Split, Squeeze, Gather, scalar Mul/Div, an additive mask that is the same for every head,
//! Softmax, the two attention MatMuls) and only accepts the pattern when no node on the way
//! mixes heads. Removing head `h` then removes columns `{s*E + h*hd + d}` of Wqkv (`{h*hd + d}`
//! of each of Wq, Wk, Wv) and their biases, rows `{h*hd + d}` of Wproj, and rewrites the head
//! count in the first reshape target(s) and `H*hd` in the merging one.
use std::collections::{HashMap, HashSet};

use profagent_onnx::proto::GraphProto;
use profagent_onnx::{attr, index::node_label, GraphIndex};

use crate::consts::{resolve_shape_vector, Consts, ShapeElem};
use crate::group::{AxisMap, Rewrite, Slice, SliceRole};

/// A matched attention block.
#[derive(Debug, Clone)]
pub struct HeadsMatch {
    /// The MatMuls projecting into heads: one (fused qkv) or three (query, key, value).
    pub projections: Vec<usize>,
    pub proj_node: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub slices: Vec<Slice>,
    pub rewrites: Vec<Rewrite>,
    /// Nodes between the projections and the output projection that the pattern owns.
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

/// `MatMul(x, W) [+ b] → Reshape(target)`: a projection into heads, before its target is
/// read as fused or separate.
struct Projection {
    matmul: usize,
    weight: String,
    columns: usize,
    /// The bias and the `Add` node reading it.
    bias: Option<(String, usize)>,
    reshape: usize,
    target: Vec<ShapeElem>,
}

/// The projection starting at MatMul `ni`, if it has that shape.
fn projection(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    ni: usize,
) -> Option<Projection> {
    let node = &graph.node[ni];
    if node.op_type() != "MatMul" || node.input.len() != 2 {
        return None;
    }
    let weight = consts.initializer(&node.input[1])?;
    if weight.dims.len() != 2 {
        return None;
    }
    let columns = weight.dims[1] as usize;
    // Exporters read the projected tensor's size (`x.size()[:-1]`): Shape consumers aside,
    // each value on the way has one consumer.
    let single_consumer = |v: &str| {
        let mut others = index
            .consumer_nodes(v)
            .iter()
            .filter(|(n, _)| graph.node[*n].op_type() != "Shape");
        match (others.next(), others.next()) {
            (Some((n, _)), None) => Some(*n),
            _ => None,
        }
    };
    let mut next = single_consumer(&node.output[0])?;
    let mut bias = None;
    if graph.node[next].op_type() == "Add" {
        let add = &graph.node[next];
        let other = add.input.iter().find(|v| **v != node.output[0])?;
        let t = consts.initializer(other)?;
        if t.dims != [columns as i64] {
            return None;
        }
        bias = Some((other.clone(), next));
        next = single_consumer(&add.output[0])?;
    }
    let reshape = &graph.node[next];
    if reshape.op_type() != "Reshape" {
        return None;
    }
    let target = resolve_shape_vector(graph, index, consts, &reshape.input[1])?;
    (target.len() >= 3).then_some(Projection {
        matmul: ni,
        weight: node.input[1].clone(),
        columns,
        bias,
        reshape: next,
        target,
    })
}

/// What the projections split into: head count, head size, and the constant holding the head
/// count in each reshape target.
struct Split {
    heads: usize,
    head_dim: usize,
    fused: bool,
    head_counts: Vec<(String, usize)>,
}

/// Reads `p`'s reshape target as `[.., 3, H, hd]` (fused) or `[.., H, hd]` (separate).
/// `Ok(None)`: not a head split; `Err`: a head split the pruner cannot rewrite.
fn head_split(graph: &GraphProto, p: &Projection) -> Result<Option<(usize, usize, bool)>, String> {
    let rank = p.target.len();
    let label = node_label(&graph.node[p.reshape], p.reshape);
    let head_dim_elem = p.target[rank - 1].value;
    let fused = p.target[rank - 3].value == Some(3);
    let Some(heads) = p.target[rank - 2].value else {
        return if fused {
            Err(format!(
                "attention reshape '{label}' has a dynamic head count"
            ))
        } else {
            Ok(None)
        };
    };
    let blocks = if fused { 3 } else { 1 };
    if heads <= 0 || !p.columns.is_multiple_of(blocks * heads as usize) {
        return Ok(None);
    }
    let head_dim = p.columns / (blocks * heads as usize);
    match head_dim_elem {
        None | Some(-1) if fused => {}
        Some(d) if d > 0 && d as usize == head_dim => {}
        _ => return Ok(None),
    }
    if p.target[rank - 2].source.is_none() {
        return Err(format!("head count of '{label}' is not a constant"));
    }
    Ok(Some((heads as usize, head_dim, fused)))
}

/// Tries the pattern at MatMul `ni`: `Ok(None)` when it is not the first projection of an
/// attention block, `Err(reason)` when it looks like one but something on the way is not
/// understood.
pub fn match_attention(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    ni: usize,
) -> Result<Option<HeadsMatch>, String> {
    let Some(first) = projection(graph, index, consts, ni) else {
        return Ok(None);
    };
    let Some((heads, head_dim, fused)) = head_split(graph, &first)? else {
        return Ok(None);
    };
    let projections = if fused {
        vec![first]
    } else {
        // Query, key and value: the MatMuls reading the same input, split the same way.
        let input = &graph.node[ni].input[0];
        let mut siblings = Vec::new();
        for &(other, _) in index.consumer_nodes(input) {
            let Some(p) = projection(graph, index, consts, other) else {
                continue;
            };
            if let Ok(Some((h, d, false))) = head_split(graph, &p) {
                if (h, d) == (heads, head_dim) {
                    siblings.push(p);
                }
            }
        }
        let topo_position = |n: usize| index.topo.iter().position(|&i| i == n);
        siblings.sort_by_key(|p| topo_position(p.matmul));
        if siblings.len() != 3 || siblings[0].matmul != ni {
            // Not query/key/value, or not the first of them (matched from the first).
            return Ok(None);
        }
        siblings
    };
    let split = Split {
        heads,
        head_dim,
        fused,
        head_counts: projections
            .iter()
            .filter_map(|p| p.target[p.target.len() - 2].source.clone())
            .collect(),
    };
    finish_match(graph, index, consts, projections, split)
}

/// Follows the heads from the projections' reshapes to the merging reshape and the output
/// projection, and lists what removing a head slices and rewrites.
fn finish_match(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    projections: Vec<Projection>,
    split: Split,
) -> Result<Option<HeadsMatch>, String> {
    let Split {
        heads,
        head_dim,
        fused,
        head_counts,
    } = split;
    let embed = heads * head_dim;
    let mut claimed = HashSet::new();
    let mut seeds = Vec::new();
    for p in &projections {
        if let Some((_, add)) = &p.bias {
            claimed.insert(*add);
        }
        claimed.insert(p.reshape);
        let rank = p.target.len();
        seeds.push((
            graph.node[p.reshape].output[0].clone(),
            Axes {
                rank,
                head: rank - 2,
                head_dim: Some(rank - 1),
            },
        ));
    }
    let start = projections
        .iter()
        .filter_map(|p| index.topo.iter().position(|&i| i == p.reshape))
        .min()
        .unwrap_or(0);
    let followed = follow_heads(graph, index, consts, seeds, start, embed, &mut claimed)?;
    let (merge_node, (embed_value, embed_element)) = followed.merge;
    let merged = &graph.node[merge_node].output[0];
    let proj_node = match index.consumer_nodes(merged) {
        [(p, _)] if graph.node[*p].op_type() == "MatMul" && graph.node[*p].input[0] == *merged => {
            *p
        }
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
    // A head-count constant may be shared by the projections' reshape targets (one rewrite
    // serves them all), but by nothing else.
    let mut target_nodes: HashSet<usize> = HashSet::new();
    for p in &projections {
        target_nodes.insert(p.reshape);
        if let Some((maker, _)) = index.producer_node(graph, &graph.node[p.reshape].input[1]) {
            target_nodes.insert(maker);
        }
    }
    let mut rewrites: Vec<Rewrite> = Vec::new();
    for (value, element) in &head_counts {
        if index
            .consumer_nodes(value)
            .iter()
            .any(|(n, _)| !target_nodes.contains(n))
        {
            return Err(format!(
                "shape constant '{value}' is shared by several nodes"
            ));
        }
        let seen = rewrites.iter().any(|r| {
            matches!(r, Rewrite::ShapeConst { value: v, element: e, .. } if v == value && e == element)
        });
        if !seen {
            rewrites.push(Rewrite::ShapeConst {
                value: value.clone(),
                element: *element,
                per_unit: 1,
            });
        }
    }
    if index.consumer_nodes(&embed_value).len() != 1 {
        return Err(format!(
            "shape constant '{embed_value}' is shared by several nodes"
        ));
    }
    rewrites.push(Rewrite::ShapeConst {
        value: embed_value,
        element: embed_element,
        per_unit: head_dim as i64,
    });
    let map = AxisMap {
        base: 0,
        blocks: if fused { 3 } else { 1 },
        block_stride: embed,
        unit_len: head_dim,
    };
    let mut slices = Vec::new();
    for p in &projections {
        slices.push(Slice {
            tensor: p.weight.clone(),
            axis: 1,
            map,
            role: SliceRole::ProducerWeight,
            node: p.matmul,
        });
        if let Some((bias, add)) = &p.bias {
            slices.push(Slice {
                tensor: bias.clone(),
                axis: 0,
                map,
                role: SliceRole::Bias,
                node: *add,
            });
        }
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
        projections: projections.iter().map(|p| p.matmul).collect(),
        proj_node,
        heads,
        head_dim,
        slices,
        rewrites,
        claimed,
        attention_matmuls: followed.attention_matmuls,
    }))
}

/// Where the heads were merged and which MatMuls ran per head.
struct Followed {
    /// The merging Reshape and the constant (value, element) holding `H*hd` in its target.
    merge: (usize, (String, usize)),
    attention_matmuls: Vec<usize>,
}

/// Follows the head axis from the seeds (the projections' reshape outputs) in topological
/// order until a Reshape merges heads and head size back into one axis.
fn follow_heads(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    seeds: Vec<(String, Axes)>,
    start: usize,
    embed: usize,
    claimed: &mut HashSet<usize>,
) -> Result<Followed, String> {
    let mut tracked: HashMap<String, Axes> = seeds.into_iter().collect();
    let mut merge: Option<(usize, (String, usize))> = None;
    let mut attention_matmuls = Vec::new();
    for &ni in &index.topo[start + 1..] {
        let n = &graph.node[ni];
        if claimed.contains(&ni) {
            continue;
        }
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
                    None => {
                        consts.is_scalar_like(v)
                            || shape_derived(graph, index, consts, v, 0)
                            || same_for_every_head(graph, index, consts, v, first, 0)
                    }
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
    match merge {
        Some(merge) => Ok(Followed {
            merge,
            attention_matmuls,
        }),
        None => Err("no head-merging Reshape found after the attention projections".into()),
    }
}

/// True for a tensor added to (or multiplying) the attention scores that is the same for
/// every head: its axis at the heads' position (aligned from the right) has size 1, as in
/// BERT's additive mask `(1 − mask[:, None, None, :]) · min`. Followed through Cast and
/// element-wise ops with scalars down to the `Unsqueeze` that inserts that axis.
fn same_for_every_head(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    value: &str,
    heads: Axes,
    depth: usize,
) -> bool {
    if depth > 16 {
        return false;
    }
    let Some((_, node)) = index.producer_node(graph, value) else {
        return false;
    };
    match node.op_type() {
        "Cast" | "Neg" | "Identity" | "Not" => {
            same_for_every_head(graph, index, consts, &node.input[0], heads, depth + 1)
        }
        "Mul" | "Add" | "Sub" | "Div" | "Where" => {
            let mut tensors = node.input.iter().filter(|v| !consts.is_scalar_like(v));
            match (tensors.next(), tensors.next()) {
                (Some(only), None) => {
                    same_for_every_head(graph, index, consts, only, heads, depth + 1)
                }
                _ => false,
            }
        }
        "Unsqueeze" => {
            let Some(rank) = value_rank(graph, index, consts, &node.input[0], 0) else {
                return false;
            };
            let Some(axes) = node
                .input
                .get(1)
                .and_then(|v| consts.ints(v))
                .or_else(|| attr::get_ints(node, "axes"))
            else {
                return false;
            };
            let out_rank = rank + axes.len();
            let Some(head) = (heads.head + out_rank).checked_sub(heads.rank) else {
                return true;
            };
            axes.iter().any(|&a| normalize(a, out_rank) == Some(head))
        }
        _ => false,
    }
}

/// The rank of a graph input (from its declared type), followed through Cast, Unsqueeze and
/// element-wise ops with scalars.
fn value_rank(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    value: &str,
    depth: usize,
) -> Option<usize> {
    if let Some(input) = graph.input.iter().find(|i| i.name() == value) {
        use profagent_onnx::proto::type_proto;
        return match input.r#type.as_ref()?.value.as_ref()? {
            type_proto::Value::TensorType(t) => Some(t.shape.as_ref()?.dim.len()),
            _ => None,
        };
    }
    if depth > 16 {
        return None;
    }
    let (_, node) = index.producer_node(graph, value)?;
    match node.op_type() {
        "Cast" | "Neg" | "Identity" | "Not" => {
            value_rank(graph, index, consts, &node.input[0], depth + 1)
        }
        "Unsqueeze" => {
            let axes = node
                .input
                .get(1)
                .and_then(|v| consts.ints(v))
                .or_else(|| attr::get_ints(node, "axes"))?;
            Some(value_rank(graph, index, consts, &node.input[0], depth + 1)? + axes.len())
        }
        _ => None,
    }
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
