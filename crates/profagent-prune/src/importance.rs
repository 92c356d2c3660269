//! Unit importance, aggregated over the whole group: every weight slice a unit owns (producer
//! rows, depthwise filters, consumer columns) contributes, so coupled layers decide together.
use std::collections::HashMap;

use profagent_onnx::proto::GraphProto;
use profagent_onnx::tensor;

use crate::calibrate::{ActivationSource, StatRequest};
use crate::error::{PruneError, Result};
use crate::group::{Group, SliceRole};
use crate::spec::Importance;
use profagent_onnx::Model;

/// Per-index sums of |w| (L1) or w² (L2) along `axis` of a tensor.
fn axis_sums(data: &[f32], dims: &[i64], axis: usize, squared: bool) -> Vec<f64> {
    let len = dims[axis].max(0) as usize;
    let inner: usize = dims[axis + 1..]
        .iter()
        .map(|&d| d.max(0) as usize)
        .product();
    let mut sums = vec![0f64; len];
    if len == 0 || inner == 0 {
        return sums;
    }
    for (i, &v) in data.iter().enumerate() {
        let c = (i / inner) % len;
        let v = v as f64;
        sums[c] += if squared { v * v } else { v.abs() };
    }
    sums
}

/// Scores for every unit of each group in `groups` (same order).
pub fn scores(
    model: &Model,
    groups: &[&Group],
    importance: Importance,
    seed: u64,
    calib: Option<&mut dyn ActivationSource>,
) -> Result<Vec<Vec<f64>>> {
    let graph = model.graph();
    match importance {
        Importance::L1 | Importance::L2 => {
            let squared = importance == Importance::L2;
            let mut cache: HashMap<(String, usize), Vec<f64>> = HashMap::new();
            groups
                .iter()
                .map(|g| weight_scores(graph, g, squared, &mut cache))
                .collect()
        }
        Importance::Random => {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
            Ok(groups
                .iter()
                .map(|g| {
                    (0..g.units)
                        .map(|_| {
                            state = state
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            (state >> 11) as f64
                        })
                        .collect()
                })
                .collect())
        }
        Importance::Bn => groups.iter().map(|g| bn_scores(graph, g)).collect(),
        Importance::Activation => {
            let Some(source) = calib else {
                return Err(PruneError::ImportanceUnavailable {
                    importance: "activation".into(),
                    what: "calibration data".into(),
                    hint: "pass --calib DATA (a dataset folder) or choose l1/l2".into(),
                });
            };
            activation_scores(model, groups, source)
        }
        Importance::Weighted => {
            let Some(source) = calib else {
                return Err(PruneError::ImportanceUnavailable {
                    importance: "weighted".into(),
                    what: "calibration data".into(),
                    hint: "pass --calib DATA (a dataset folder) or choose l1/l2".into(),
                });
            };
            weighted_scores(model, groups, source)
        }
        Importance::Obs => {
            // Without kept counts the greedy order runs down to one unit per group.
            let source = calib.ok_or_else(obs_needs_data)?;
            let with_keep: Vec<(&Group, usize)> = groups.iter().map(|g| (*g, 1)).collect();
            let mut warnings = Vec::new();
            Ok(crate::obs::rank(model, &with_keep, source, &mut warnings)?.scores)
        }
    }
}

/// The error of `obs` importance without calibration data.
pub(crate) fn obs_needs_data() -> PruneError {
    PruneError::ImportanceUnavailable {
        importance: "obs".into(),
        what: "calibration data (it ranks units by the reconstruction error their removal adds)"
            .into(),
        hint: "pass --calib DATA (a dataset folder) or choose l1/l2".into(),
    }
}

/// A consumer slice `weighted` importance reads: a Conv with `group` 1, a Gemm or a `MatMul`.
fn weighted_consumer(graph: &GraphProto, s: &crate::group::Slice) -> bool {
    let node = &graph.node[s.node];
    s.role == SliceRole::ConsumerWeight
        && match node.op_type() {
            "Conv" => profagent_onnx::attr::get_int(node, "group").unwrap_or(1) == 1,
            "Gemm" | "MatMul" => true,
            _ => false,
        }
}

/// True when `weighted` importance can score `group` (a layer it reads has a weight).
pub(crate) fn has_weighted_consumer(graph: &GraphProto, group: &Group) -> bool {
    group.slices.iter().any(|s| weighted_consumer(graph, s))
}

/// `Importance::Weighted`: per unit, the root of `Σ ||W[:, c]||² · E[x_c²]` over the consumer
/// slices (Conv with `group` 1, Gemm, `MatMul`) of the unit's channels `c`, with `x` the
/// consumer's input on calibration data.
pub(crate) fn weighted_scores(
    model: &Model,
    groups: &[&Group],
    source: &mut dyn ActivationSource,
) -> Result<Vec<Vec<f64>>> {
    let graph = model.graph();
    let usable = |s: &crate::group::Slice| weighted_consumer(graph, s);
    let mut requests: Vec<StatRequest> = Vec::new();
    for g in groups {
        for s in g.slices.iter().filter(|s| usable(s)) {
            let node = &graph.node[s.node];
            let axis = if node.op_type() == "Conv" { 1 } else { -1 };
            if !requests.iter().any(|r| r.value == node.input[0]) {
                requests.push(StatRequest {
                    value: node.input[0].clone(),
                    axis,
                });
            }
        }
    }
    let stats = if requests.is_empty() {
        Vec::new()
    } else {
        crate::calibrate::channel_stats(source, model, &requests)
            .map_err(PruneError::Calibration)?
    };
    let energy: HashMap<&str, Vec<f64>> = requests
        .iter()
        .zip(&stats)
        .map(|(r, st)| {
            let e = st
                .mean
                .iter()
                .zip(&st.var)
                .map(|(m, v)| v + m * m)
                .collect();
            (r.value.as_str(), e)
        })
        .collect();
    let mut norms: HashMap<(String, usize), Vec<f64>> = HashMap::new();
    let mut all = Vec::new();
    for g in groups {
        let mut out = vec![0f64; g.units];
        let mut found = false;
        for s in g.slices.iter().filter(|s| usable(s)) {
            let Some(e) = energy.get(graph.node[s.node].input[0].as_str()) else {
                continue;
            };
            let key = (s.tensor.clone(), s.axis);
            if !norms.contains_key(&key) {
                let t = find_tensor(graph, &s.tensor).ok_or_else(|| PruneError::Group {
                    group: g.id.clone(),
                    reason: format!("weight '{}' not found", s.tensor),
                })?;
                let data = tensor::to_f32(t)?;
                norms.insert(key.clone(), axis_sums(&data, &t.dims, s.axis, true));
            }
            let sq = &norms[&key];
            found = true;
            for (u, score) in out.iter_mut().enumerate() {
                *score += s
                    .map
                    .indices(u)
                    .map(|c| sq.get(c).copied().unwrap_or(0.0) * e.get(c).copied().unwrap_or(0.0))
                    .sum::<f64>();
            }
        }
        if !found {
            return Err(PruneError::ImportanceUnavailable {
                importance: "weighted".into(),
                what: format!(
                    "a Conv, Gemm or MatMul reading the units of group '{}'",
                    g.id
                ),
                hint: "use l1 or l2 for this group".into(),
            });
        }
        all.push(out.into_iter().map(f64::sqrt).collect());
    }
    Ok(all)
}

pub(crate) fn weight_scores(
    graph: &GraphProto,
    g: &Group,
    squared: bool,
    cache: &mut HashMap<(String, usize), Vec<f64>>,
) -> Result<Vec<f64>> {
    let mut out = vec![0f64; g.units];
    for s in &g.slices {
        if !matches!(
            s.role,
            SliceRole::ProducerWeight | SliceRole::ConsumerWeight
        ) {
            continue;
        }
        let key = (s.tensor.clone(), s.axis);
        if !cache.contains_key(&key) {
            let t = find_tensor(graph, &s.tensor).ok_or_else(|| PruneError::Group {
                group: g.id.clone(),
                reason: format!("weight '{}' not found", s.tensor),
            })?;
            let data = tensor::to_f32(t)?;
            cache.insert(key.clone(), axis_sums(&data, &t.dims, s.axis, squared));
        }
        let sums = &cache[&key];
        for (u, score) in out.iter_mut().enumerate() {
            let total: f64 = s
                .map
                .indices(u)
                .map(|i| sums.get(i).copied().unwrap_or(0.0))
                .sum();
            *score += if squared { total.sqrt() } else { total };
        }
    }
    Ok(out)
}

fn bn_scores(graph: &GraphProto, g: &Group) -> Result<Vec<f64>> {
    let mut out = vec![0f64; g.units];
    let mut found = false;
    for s in g.slices.iter().filter(|s| s.role == SliceRole::BnScale) {
        found = true;
        let t = find_tensor(graph, &s.tensor).ok_or_else(|| PruneError::Group {
            group: g.id.clone(),
            reason: format!("BatchNormalization scale '{}' not found", s.tensor),
        })?;
        let data = tensor::to_f32(t)?;
        for (u, score) in out.iter_mut().enumerate() {
            *score += s
                .map
                .indices(u)
                .map(|i| data.get(i).map_or(0.0, |v| v.abs() as f64))
                .sum::<f64>();
        }
    }
    if !found {
        return Err(PruneError::ImportanceUnavailable {
            importance: "bn".into(),
            what: format!("BatchNormalization nodes in group '{}'", g.id),
            hint: "this model has BatchNorm folded into its convolutions; use l1, l2 or activation"
                .into(),
        });
    }
    Ok(out)
}

fn activation_scores(
    model: &Model,
    groups: &[&Group],
    source: &mut dyn ActivationSource,
) -> Result<Vec<Vec<f64>>> {
    let mut requests = Vec::new();
    for g in groups {
        for p in &g.probes {
            requests.push(StatRequest {
                value: p.value.clone(),
                axis: p.axis_from_end,
            });
        }
    }
    requests.dedup_by(|a, b| a.value == b.value);
    let stats = crate::calibrate::channel_stats(source, model, &requests)
        .map_err(PruneError::Calibration)?;
    let by_value: HashMap<&str, &crate::calibrate::ChannelStats> = requests
        .iter()
        .map(|r| r.value.as_str())
        .zip(stats.iter())
        .collect();
    let mut all = Vec::new();
    for g in groups {
        let mut out = vec![0f64; g.units];
        if g.probes.is_empty() {
            return Err(PruneError::ImportanceUnavailable {
                importance: "activation".into(),
                what: format!("a channel activation to measure in group '{}'", g.id),
                hint: "attention heads are scored by weights; use l1 or l2 for them".into(),
            });
        }
        for p in &g.probes {
            let Some(st) = by_value.get(p.value.as_str()) else {
                continue;
            };
            for (u, score) in out.iter_mut().enumerate() {
                let start = p.base + u * p.width;
                *score += (start..start + p.width)
                    .map(|c| st.mean_abs.get(c).copied().unwrap_or(0.0))
                    .sum::<f64>();
            }
        }
        all.push(out);
    }
    Ok(all)
}

pub(crate) fn find_tensor<'g>(
    graph: &'g GraphProto,
    name: &str,
) -> Option<&'g profagent_onnx::proto::TensorProto> {
    if let Some(t) = graph.initializer.iter().find(|t| t.name() == name) {
        return Some(t);
    }
    // An `Identity` of an initializer (PyTorch de-duplicates equal tensors this way).
    let node = graph
        .node
        .iter()
        .find(|n| n.op_type() == "Identity" && n.output.first().is_some_and(|o| o == name))?;
    find_tensor(graph, node.input.first()?)
}
