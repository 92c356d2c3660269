//! Repairs after pruning, from calibration statistics:
//! - bias correction (for graphs with BatchNorm folded into Conv): a removed input channel `c`
//!   of a consumer contributed `Σ_k W[o, c, k] · x_c`; its expectation `E[x_c]·Σ_k W[o, c, k]`
//!   is folded into the consumer's bias, so the layer's mean output is kept;
//! - BatchNormalization re-estimation: running mean/variance are measured again on the pruned
//!   graph (two sweeps, because each BN's input depends on the BNs before it).
use std::collections::{HashMap, HashSet};

use profagent_onnx::{attr, tensor, GraphIndex, Model, Patch};

use crate::calibrate::{ActivationSource, StatRequest};
use crate::error::{PruneError, Result};
use crate::group::{Group, SliceRole};
use crate::importance::find_tensor;

/// Sweeps of BN re-estimation (the second one sees the first one's corrected statistics).
pub const BN_RECALIBRATION_SWEEPS: usize = 2;

/// Where a consumer's bias lives: (node, input slot) and its length.
pub(crate) fn bias_slot(model: &Model, index: &GraphIndex, ni: usize) -> Option<(usize, usize)> {
    let graph = model.graph();
    let node = &graph.node[ni];
    match node.op_type() {
        "Conv" | "Gemm" => node.input.get(2).filter(|b| !b.is_empty()).map(|_| (ni, 2)),
        "MatMul" => {
            let [(add, _)] = index.consumer_nodes(&node.output[0]) else {
                return None;
            };
            let add_node = &graph.node[*add];
            if add_node.op_type() != "Add" {
                return None;
            }
            let slot = add_node.input.iter().position(|v| *v != node.output[0])?;
            find_tensor(graph, &add_node.input[slot])
                .filter(|t| t.dims.len() == 1)
                .map(|_| (*add, slot))
        }
        _ => None,
    }
}

/// Bias deltas (in the original, unsliced shape) keyed by (node, input slot).
pub fn bias_corrections(
    model: &Model,
    groups: &[&Group],
    removed: &HashMap<String, Vec<usize>>,
    source: &mut dyn ActivationSource,
    warnings: &mut Vec<String>,
) -> Result<HashMap<(usize, usize), Vec<f32>>> {
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    // (consumer node, weight tensor, weight axis of input channels, removed input indices)
    let mut jobs = Vec::new();
    for g in groups {
        let Some(units) = removed.get(&g.id) else {
            continue;
        };
        for s in g
            .slices
            .iter()
            .filter(|s| s.role == SliceRole::ConsumerWeight)
        {
            let node = &graph.node[s.node];
            if attr::get_int(node, "group").unwrap_or(1) != 1 {
                continue;
            }
            let indices: Vec<usize> = units.iter().flat_map(|&u| s.map.indices(u)).collect();
            jobs.push((s.node, s.tensor.clone(), s.axis, indices));
        }
    }
    let mut requests: Vec<StatRequest> = Vec::new();
    for (ni, weight, _, _) in &jobs {
        let node = &graph.node[*ni];
        let _ = weight;
        let axis = if node.op_type() == "Conv" { 1 } else { -1 };
        if !requests.iter().any(|r| r.value == node.input[0]) {
            requests.push(StatRequest {
                value: node.input[0].clone(),
                axis,
            });
        }
    }
    if requests.is_empty() {
        return Ok(HashMap::new());
    }
    let stats = crate::calibrate::channel_stats(source, model, &requests)
        .map_err(PruneError::Calibration)?;
    let mean_of: HashMap<&str, &Vec<f64>> = requests
        .iter()
        .map(|r| r.value.as_str())
        .zip(stats.iter().map(|s| &s.mean))
        .collect();
    let mut out: HashMap<(usize, usize), Vec<f32>> = HashMap::new();
    let mut missing = HashSet::new();
    for (ni, weight, axis, indices) in jobs {
        let node = &graph.node[ni];
        let Some(slot) = bias_slot(model, &index, ni) else {
            missing.insert(crate::walk::layer_name(model, ni));
            continue;
        };
        let Some(means) = mean_of.get(node.input[0].as_str()) else {
            continue;
        };
        let Some(w) = find_tensor(graph, &weight) else {
            continue;
        };
        let data = tensor::to_f32(w)?;
        let dims: Vec<usize> = w.dims.iter().map(|&d| d.max(0) as usize).collect();
        let out_axis = if axis == 0 { 1 } else { 0 };
        let cout = dims[out_axis];
        let inner: usize = dims[2..].iter().product::<usize>().max(1);
        let delta = out.entry(slot).or_insert_with(|| vec![0.0; cout]);
        if delta.len() != cout {
            continue;
        }
        for &c in &indices {
            let m = means.get(c).copied().unwrap_or(0.0);
            if m == 0.0 {
                continue;
            }
            for (o, d) in delta.iter_mut().enumerate() {
                let (row, col) = if axis == 1 { (o, c) } else { (c, o) };
                let start = (row * dims[1] + col) * inner;
                let sum: f64 = data[start..start + inner].iter().map(|&v| v as f64).sum();
                *d += (m * sum) as f32;
            }
        }
    }
    if !missing.is_empty() {
        let mut m: Vec<String> = missing.into_iter().collect();
        m.sort();
        warnings.push(format!("no bias to correct in: {}", m.join(", ")));
    }
    Ok(out)
}

/// Re-estimates running mean/variance of every BatchNormalization node in `model`.
pub fn recalibrate_batchnorm(
    model: &mut Model,
    source: &mut dyn ActivationSource,
) -> Result<usize> {
    let mut bn: Vec<usize> = model
        .graph()
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type() == "BatchNormalization" && n.input.len() == 5)
        .map(|(i, _)| i)
        .collect();
    if bn.is_empty() {
        return Ok(0);
    }
    for _ in 0..BN_RECALIBRATION_SWEEPS {
        let graph = model.graph();
        let requests: Vec<StatRequest> = bn
            .iter()
            .map(|&i| StatRequest {
                value: graph.node[i].input[0].clone(),
                axis: 1,
            })
            .collect();
        let stats = crate::calibrate::channel_stats(source, model, &requests)
            .map_err(PruneError::Calibration)?;
        let mut patch = Patch::new();
        let mut names = profagent_onnx::NameGen::new(graph);
        let mut replaced = HashMap::new();
        for (&i, st) in bn.iter().zip(&stats) {
            let node = &graph.node[i];
            let mut new_node = node.clone();
            for (slot, values) in [(3, &st.mean), (4, &st.var)] {
                let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                let t = find_tensor(graph, &node.input[slot]).ok_or_else(|| {
                    PruneError::InvalidResult(format!("'{}' not found", node.input[slot]))
                })?;
                if t.dims != [values.len() as i64] {
                    return Err(PruneError::Calibration(format!(
                        "statistics of '{}' have {} channels, expected {:?}",
                        node.input[slot],
                        values.len(),
                        t.dims
                    )));
                }
                // A private tensor per BN node: exports may share equal statistics tensors.
                let name = names.fresh(&format!("{}_recalibrated", node.input[slot]));
                patch.set_initializer(tensor::from_f32(&name, &t.dims, &values));
                new_node.input[slot] = name;
            }
            replaced.insert(i, new_node);
        }
        for (i, n) in replaced {
            patch.replace_node(i, n);
        }
        patch.prune_dead(true);
        let mut graph = model.graph().clone();
        patch
            .apply(&mut graph)
            .map_err(|e| PruneError::InvalidResult(e.to_string()))?;
        *model.graph_mut() = graph;
        // Node indices may have moved with the re-sort: find BN nodes again next sweep.
        let again: Vec<usize> = model
            .graph()
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| n.op_type() == "BatchNormalization" && n.input.len() == 5)
            .map(|(i, _)| i)
            .collect();
        if again.len() != bn.len() {
            return Err(PruneError::InvalidResult(
                "BatchNormalization nodes changed during recalibration".into(),
            ));
        }
        bn = again;
    }
    Ok(bn.len())
}
