//! `prune`: decide how many units each group keeps, pick the least important ones, and remove
//! them as one `Patch` (weights sliced, shape constants and depthwise `group` rewritten), then
//! re-validate. Also predicts the parameter and MAC savings from the plan itself.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use profagent_onnx::proto::{GraphProto, TensorProto};
use profagent_onnx::{attr, index::node_label, tensor, GraphIndex, Model, NameGen, Patch};
use serde::Serialize;

use crate::calibrate::ActivationSource;
use crate::error::{PruneError, Result};
use crate::group::{Group, GroupKind, GroupStatus, Rewrite};
use crate::importance::{find_tensor, scores};
use crate::repair;
use crate::spec::{compile, kept_units, matches_group, Importance, PruneSpec};
use crate::walk::analyze;

/// What happened to one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupOutcome {
    pub id: String,
    pub kind: GroupKind,
    pub producers: Vec<String>,
    pub layers: Vec<String>,
    pub units_before: usize,
    pub units_after: usize,
    pub unit_width: usize,
    /// The ratio asked for this group (for an exact `keep` rule: the fraction it removes).
    pub ratio: f64,
    /// `pruned`, `unchanged`, `protected` or `unprunable`.
    pub action: String,
    /// Why the group was left alone (protected, unprunable reason, rounding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Removed unit indices (in the original numbering).
    pub removed: Vec<usize>,
}

/// The result of a prune: per-group outcomes and predicted cost before/after (batch 1).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub spec: PruneSpec,
    pub groups: Vec<GroupOutcome>,
    pub params_before: u64,
    pub params_after: u64,
    pub macs_before: u64,
    pub macs_after: u64,
    /// BatchNormalization nodes whose statistics were re-estimated.
    pub bn_recalibrated: usize,
    /// Consumer biases corrected for the mean of removed channels.
    pub biases_corrected: usize,
    /// Layers whose weights were refitted on calibration data (layer-wise reconstruction).
    pub reconstructed: Vec<String>,
    /// Where reconstruction spent its time (absent when it did not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconstruct_timing: Option<crate::reconstruct::ReconstructTiming>,
    /// Where `obs` importance spent its time (absent for other importances).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub obs_timing: Option<ObsTiming>,
    pub warnings: Vec<String>,
}

/// Seconds `obs` importance spent: streaming calibration data into Gram matrices (running
/// the model included; independent reconstruction reuses them), and the greedy ranking.
#[derive(Debug, Clone, Serialize)]
pub struct ObsTiming {
    pub statistics_s: f64,
    pub ranking_s: f64,
}

impl PruneReport {
    pub fn pruned_groups(&self) -> impl Iterator<Item = &GroupOutcome> {
        self.groups.iter().filter(|g| g.action == "pruned")
    }
}

/// The layers protected by default: the first Conv and the layers producing graph outputs.
pub fn default_protected(model: &Model) -> Result<Vec<String>> {
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    let mut out = Vec::new();
    if let Some(&ni) = index
        .topo
        .iter()
        .find(|&&i| graph.node[i].op_type() == "Conv")
    {
        let n = &graph.node[ni];
        out.push(profagent_onnx::layer_of_node(n.name(), n.op_type(), ni));
    }
    for o in &index.outputs {
        if let Some((ni, n)) = index.producer_node(graph, o) {
            out.push(profagent_onnx::layer_of_node(n.name(), n.op_type(), ni));
        }
    }
    Ok(out)
}

/// Prunes `model` according to `spec`. Groups named by a `keep` rule keep exactly that many
/// units; the others keep `kept_units` of their ratio. `calib` is needed for activation
/// importance and for the repairs (BN re-estimation, bias correction); without it they are
/// skipped.
pub fn prune(
    model: &Model,
    spec: &PruneSpec,
    mut calib: Option<&mut dyn ActivationSource>,
) -> Result<(Model, PruneReport)> {
    spec.validate()?;
    let groups = analyze(model)?;
    let rules = spec
        .rules
        .iter()
        .map(|r| Ok((compile(&r.pattern)?, r)))
        .collect::<Result<Vec<_>>>()?;
    for (re, rule) in &rules {
        if !groups.iter().any(|g| matches_group(re, g)) {
            return Err(PruneError::PatternMatchesNothing {
                pattern: rule.pattern.clone(),
            });
        }
    }
    let mut protected = spec
        .protected
        .iter()
        .map(|p| compile(p))
        .collect::<Result<Vec<_>>>()?;
    if spec.protect_first_and_last {
        for layer in default_protected(model)? {
            protected.push(compile(&regex::escape(&layer))?);
        }
    }

    let keep_rules = keep_rules(spec, &groups)?;

    let mut outcomes = Vec::new();
    let mut to_prune: Vec<(&Group, usize)> = Vec::new();
    for g in &groups {
        let exact = keep_rules.get(g.id.as_str()).copied();
        let ratio = match exact {
            Some(keep) => (g.units - keep) as f64 / g.units as f64,
            None => rules
                .iter()
                .find(|(re, _)| matches_group(re, g))
                .map_or(spec.global_ratio, |(_, r)| r.ratio),
        };
        let mut outcome = GroupOutcome {
            id: g.id.clone(),
            kind: g.kind,
            producers: g.producers.clone(),
            layers: g.layers.clone(),
            units_before: g.units,
            units_after: g.units,
            unit_width: g.unit_width,
            ratio,
            action: "unchanged".into(),
            reason: None,
            removed: Vec::new(),
        };
        let protected_by = g
            .producers
            .iter()
            .find(|p| protected.iter().any(|re| re.is_match(p)));
        if let GroupStatus::Unprunable { reason } = &g.status {
            if exact.is_some() {
                return Err(PruneError::Group {
                    group: g.id.clone(),
                    reason: format!("a keep rule names it, but it cannot be pruned: {reason}"),
                });
            }
            outcome.action = "unprunable".into();
            outcome.reason = Some(reason.clone());
        } else if let Some(p) = protected_by {
            if exact.is_some() {
                return Err(PruneError::Group {
                    group: g.id.clone(),
                    reason: format!("a keep rule names it, but its layer '{p}' is protected"),
                });
            }
            outcome.action = "protected".into();
            outcome.reason = Some(format!("layer '{p}' is protected"));
        } else if let Some(keep) = exact {
            if keep < g.units {
                to_prune.push((g, keep));
            } else {
                outcome.reason = Some(format!("the keep rule keeps all {keep} units"));
            }
        } else if ratio > 0.0 {
            let keep = kept_units(g.units, ratio, spec.round_to, g.kind, g.unit_width);
            if keep == 0 && g.units > 0 {
                return Err(PruneError::NothingLeft {
                    group: g.id.clone(),
                    ratio,
                    units: g.units,
                });
            }
            if keep < g.units {
                to_prune.push((g, keep));
            } else {
                outcome.reason = Some(format!(
                    "ratio {ratio} removes no whole unit after rounding"
                ));
            }
        }
        outcomes.push(outcome);
    }

    let chosen: Vec<&Group> = to_prune.iter().map(|(g, _)| *g).collect();
    let mut warnings = Vec::new();
    let Ranked {
        scores: all_scores,
        mut prepared,
        obs_timing,
    } = rank_units(model, spec, &to_prune, reborrow(&mut calib), &mut warnings)?;
    let mut removed_by_group: HashMap<String, Vec<usize>> = HashMap::new();
    for ((g, keep), score) in to_prune.iter().zip(&all_scores) {
        let mut order: Vec<usize> = (0..g.units).collect();
        order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
        let mut removed: Vec<usize> = order[..g.units - keep].to_vec();
        removed.sort_unstable();
        removed_by_group.insert(g.id.clone(), removed);
    }
    for o in outcomes.iter_mut() {
        if let Some(r) = removed_by_group.get(&o.id) {
            o.units_after = o.units_before - r.len();
            o.removed = r.clone();
            o.action = "pruned".into();
        }
    }

    let corrections = match (
        reborrow(&mut calib),
        spec.bias_correction && !chosen.is_empty(),
    ) {
        (Some(source), true) => {
            repair::bias_corrections(model, &chosen, &removed_by_group, source, &mut warnings)?
        }
        _ => HashMap::new(),
    };
    let mut corrections = corrections;
    let mut reconstructed = Vec::new();
    let mut reconstruct_timing = None;
    if spec.reconstruct && !chosen.is_empty() {
        if let Some(source) = reborrow(&mut calib) {
            // The pruned model with the bias corrections and the deltas fitted so far
            // (sequential reconstruction runs it).
            let rebuild = |deltas: &HashMap<(usize, usize), Vec<f32>>| {
                let mut all = corrections.clone();
                all.extend(deltas.iter().map(|(k, v)| (*k, v.clone())));
                Ok(rewrite(model, &chosen, &removed_by_group, &all)?.0)
            };
            let fit = crate::reconstruct::reconstruct(
                model,
                &chosen,
                &removed_by_group,
                source,
                spec.reconstruct_target,
                &rebuild,
                &mut prepared,
                &mut warnings,
            )?;
            // A refitted layer's bias already absorbs the removed channels' mean.
            corrections.extend(fit.deltas);
            reconstructed = fit.layers;
            reconstruct_timing = Some(fit.timing);
        }
    }
    let biases_corrected = corrections
        .keys()
        .filter(|(ni, slot)| {
            let n = &model.graph().node[*ni];
            !(*slot == 1 && matches!(n.op_type(), "Conv" | "Gemm" | "MatMul"))
        })
        .count();
    let (mut pruned, cost) = rewrite(model, &chosen, &removed_by_group, &corrections)?;
    let mut bn_recalibrated = 0;
    if spec.recalibrate_bn && !chosen.is_empty() {
        if let Some(source) = reborrow(&mut calib) {
            bn_recalibrated = repair::recalibrate_batchnorm(&mut pruned, source)?;
        } else {
            warnings.push("BatchNormalization statistics were not re-estimated: no calibration data was given".into());
        }
    }
    let report = PruneReport {
        spec: spec.clone(),
        groups: outcomes,
        params_before: cost.params_before,
        params_after: cost.params_after,
        macs_before: cost.macs_before,
        macs_after: cost.macs_after,
        bn_recalibrated,
        biases_corrected,
        reconstructed,
        reconstruct_timing,
        obs_timing,
        warnings,
    };
    Ok((pruned, report))
}

/// Unit scores of the groups to prune and, from `obs`, the Gram matrices it accumulated
/// (for independent reconstruction) and its timing.
struct Ranked {
    scores: Vec<Vec<f64>>,
    prepared: crate::reconstruct::Prepared,
    obs_timing: Option<ObsTiming>,
}

/// Scores every unit of `to_prune` (group, kept count) by `spec.importance`: `obs` ranks with
/// the kept counts and leaves its Gram matrices for an independent reconstruction.
fn rank_units(
    model: &Model,
    spec: &PruneSpec,
    to_prune: &[(&Group, usize)],
    calib: Option<&mut dyn ActivationSource>,
    warnings: &mut Vec<String>,
) -> Result<Ranked> {
    if spec.importance != Importance::Obs || to_prune.is_empty() {
        let chosen: Vec<&Group> = to_prune.iter().map(|(g, _)| *g).collect();
        return Ok(Ranked {
            scores: scores(model, &chosen, spec.importance, spec.seed, calib)?,
            prepared: Default::default(),
            obs_timing: None,
        });
    }
    let source = calib.ok_or_else(crate::importance::obs_needs_data)?;
    let ranking = crate::obs::rank(model, to_prune, source, warnings)?;
    let mut prepared = ranking.grams;
    if spec.reconstruct_target != crate::spec::ReconstructTarget::Independent {
        // Sequential targets fit on the pruned model's inputs, not these.
        prepared.clear();
    }
    Ok(Ranked {
        scores: ranking.scores,
        prepared,
        obs_timing: Some(ObsTiming {
            statistics_s: ranking.statistics_s,
            ranking_s: ranking.ranking_s,
        }),
    })
}

/// The `keep` rules by group id, each checked against the model: a known group, one rule per
/// group, and a count between 1 and the group's units.
fn keep_rules<'s>(spec: &'s PruneSpec, groups: &[Group]) -> Result<HashMap<&'s str, usize>> {
    let mut out = HashMap::new();
    for rule in &spec.keep {
        let Some(group) = groups.iter().find(|g| g.id == rule.group) else {
            return Err(PruneError::UnknownGroup {
                group: rule.group.clone(),
            });
        };
        if rule.keep == 0 || rule.keep > group.units {
            return Err(PruneError::BadKeep {
                group: rule.group.clone(),
                keep: rule.keep,
                units: group.units,
            });
        }
        if out.insert(rule.group.as_str(), rule.keep).is_some() {
            return Err(PruneError::Group {
                group: rule.group.clone(),
                reason: "two keep rules name it; give one count per group".into(),
            });
        }
    }
    Ok(out)
}

/// Shortens the trait object's lifetime so the source can be lent several times.
fn reborrow<'s>(
    calib: &'s mut Option<&mut dyn ActivationSource>,
) -> Option<&'s mut dyn ActivationSource> {
    match calib {
        Some(c) => Some(&mut **c),
        None => None,
    }
}

struct Cost {
    params_before: u64,
    params_after: u64,
    macs_before: u64,
    macs_after: u64,
}

/// Per (node, input slot): the (axis, removed indices) cuts to apply.
type Cuts = BTreeMap<(usize, usize), Vec<(usize, BTreeSet<usize>)>>;

fn rewrite(
    model: &Model,
    groups: &[&Group],
    removed: &HashMap<String, Vec<usize>>,
    corrections: &HashMap<(usize, usize), Vec<f32>>,
) -> Result<(Model, Cost)> {
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    let mut cuts: Cuts = BTreeMap::new();
    let mut kept_fraction: HashMap<usize, f64> = HashMap::new();
    let mut patch = Patch::new();
    let mut node_edits: BTreeMap<usize, profagent_onnx::proto::NodeProto> = BTreeMap::new();
    let mut const_edits: BTreeMap<String, Vec<(usize, i64)>> = BTreeMap::new();
    let mut group_attr_nodes = BTreeMap::new();
    for g in groups {
        let Some(units) = removed.get(&g.id) else {
            continue;
        };
        let kept = (g.units - units.len()) as i64;
        for s in &g.slices {
            let node = &graph.node[s.node];
            let Some(slot) = node.input.iter().position(|i| *i == s.tensor) else {
                return Err(PruneError::Group {
                    group: g.id.clone(),
                    reason: format!(
                        "node '{}' does not read '{}'",
                        node_label(node, s.node),
                        s.tensor
                    ),
                });
            };
            let indices: BTreeSet<usize> = units.iter().flat_map(|&u| s.map.indices(u)).collect();
            let entry = cuts.entry((s.node, slot)).or_default();
            match entry.iter_mut().find(|(a, _)| *a == s.axis) {
                Some((_, set)) => set.extend(indices),
                None => entry.push((s.axis, indices)),
            }
        }
        for r in &g.rewrites {
            match r {
                Rewrite::ConvGroupFromWeight {
                    node,
                    channels_per_group,
                } => {
                    group_attr_nodes.insert(*node, *channels_per_group as i64);
                }
                Rewrite::ShapeConst {
                    value,
                    element,
                    per_unit,
                } => {
                    const_edits
                        .entry(value.clone())
                        .or_default()
                        .push((*element, kept * per_unit));
                }
            }
        }
        for &n in &g.scaled_nodes {
            *kept_fraction.entry(n).or_insert(1.0) *= kept as f64 / g.units as f64;
        }
    }

    // Slice tensors; private copies for tensors read elsewhere too.
    let mut names = NameGen::new(graph);
    let mut new_numel: HashMap<usize, (u64, u64)> = HashMap::new();
    let mut reads_after: HashMap<String, usize> = HashMap::new();
    for v in graph.node.iter().flat_map(|n| n.input.iter()) {
        *reads_after.entry(v.clone()).or_default() += 1;
    }
    let mut params_delta: i64 = 0;
    for key in corrections.keys() {
        cuts.entry(*key).or_default();
    }
    for (&(ni, slot), axes) in &cuts {
        let name = graph.node[ni].input[slot].clone();
        let t = find_tensor(graph, &name)
            .ok_or_else(|| PruneError::InvalidResult(format!("tensor '{name}' not found")))?;
        let mut dims = t.dims.clone();
        let mut data = tensor::to_f32(t)?;
        if t.data_type() != tensor::ElemType::Float as i32 {
            return Err(PruneError::InvalidResult(format!(
                "tensor '{name}' is not float32"
            )));
        }
        // Corrections are in the original shape: add them before slicing.
        if let Some(delta) = corrections.get(&(ni, slot)) {
            if delta.len() == data.len() {
                for (v, d) in data.iter_mut().zip(delta) {
                    *v += d;
                }
            }
        }
        for (axis, cut) in axes {
            (data, dims) = remove_indices(&data, &dims, *axis, cut).ok_or_else(|| {
                PruneError::InvalidResult(format!(
                    "cannot slice '{name}' {:?} on axis {axis}",
                    t.dims
                ))
            })?;
        }
        let old = t.dims.iter().product::<i64>().max(0) as u64;
        let new = dims.iter().product::<i64>().max(0) as u64;
        new_numel.insert(ni * 64 + slot, (old, new));
        let in_place = graph.initializer.iter().any(|i| i.name() == name)
            && reads_after.get(&name) == Some(&1);
        if in_place {
            patch.set_initializer(tensor::from_f32(&name, &dims, &data));
            params_delta += new as i64 - old as i64;
        } else {
            let fresh = names.fresh(&format!("{name}_pruned"));
            patch.set_initializer(tensor::from_f32(&fresh, &dims, &data));
            let node = node_edits
                .entry(ni)
                .or_insert_with(|| graph.node[ni].clone());
            node.input[slot] = fresh;
            params_delta += new as i64;
            let count = reads_after.entry(name.clone()).or_default();
            *count -= 1;
            if *count == 0 {
                params_delta -= old as i64;
            }
        }
        if let (Some(&per_group), 1) = (group_attr_nodes.get(&ni), slot) {
            let node = node_edits
                .entry(ni)
                .or_insert_with(|| graph.node[ni].clone());
            attr::set(node, attr::int("group", dims[0] / per_group));
        }
    }
    for (value, edits) in &const_edits {
        apply_const_edit(graph, &index, value, edits, &mut patch, &mut node_edits)?;
    }
    for (ni, node) in node_edits {
        patch.replace_node(ni, node);
    }
    for v in &graph.value_info {
        patch.invalidate_value_info(v.name());
    }
    patch.prune_dead(true);
    let mut out = model.clone();
    patch
        .apply(out.graph_mut())
        .map_err(|e| PruneError::InvalidResult(e.to_string()))?;

    let profile = profagent_profile::static_profile(model, &Default::default())
        .map_err(|e| PruneError::InputProfile(e.to_string()))?;
    let macs_by_name: HashMap<&str, u64> = profile
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.macs))
        .collect();
    let mut macs_after = profile.model.macs as f64;
    for (ni, node) in graph.node.iter().enumerate() {
        let macs = macs_by_name
            .get(node_label(node, ni).as_str())
            .copied()
            .unwrap_or(0) as f64;
        if macs == 0.0 {
            continue;
        }
        let mut fraction = kept_fraction.get(&ni).copied().unwrap_or(1.0);
        if matches!(node.op_type(), "Conv" | "Gemm" | "MatMul") {
            if let Some(&(old, new)) = new_numel.get(&(ni * 64 + 1)) {
                fraction *= new as f64 / old.max(1) as f64;
            }
        }
        macs_after -= macs * (1.0 - fraction);
    }
    Ok((
        out,
        Cost {
            params_before: profile.model.params,
            params_after: (profile.model.params as i64 + params_delta).max(0) as u64,
            macs_before: profile.model.macs,
            macs_after: macs_after.round().max(0.0) as u64,
        },
    ))
}

fn apply_const_edit(
    graph: &GraphProto,
    index: &GraphIndex,
    value: &str,
    edits: &[(usize, i64)],
    patch: &mut Patch,
    node_edits: &mut BTreeMap<usize, profagent_onnx::proto::NodeProto>,
) -> Result<()> {
    let edit = |t: &TensorProto| -> Result<TensorProto> {
        let mut values = tensor::to_i64(t)?;
        for &(i, v) in edits {
            let slot = values.get_mut(i).ok_or_else(|| {
                PruneError::InvalidResult(format!("shape constant '{value}' has no element {i}"))
            })?;
            *slot = v;
        }
        let mut out = match tensor::ElemType::try_from(t.data_type()) {
            Ok(tensor::ElemType::Int32) => {
                let v: Vec<i32> = values.iter().map(|&x| x as i32).collect();
                tensor::from_i32(t.name(), &t.dims, &v)
            }
            _ => tensor::from_i64(t.name(), &t.dims, &values),
        };
        out.name = t.name.clone();
        Ok(out)
    };
    if let Some(t) = index.initializer(graph, value) {
        patch.set_initializer(edit(t)?);
        return Ok(());
    }
    let Some((ni, node)) = index.producer_node(graph, value) else {
        return Err(PruneError::InvalidResult(format!(
            "shape constant '{value}' not found"
        )));
    };
    let t = attr::get_tensor(node, "value")
        .ok_or_else(|| PruneError::InvalidResult(format!("'{value}' is not a Constant")))?;
    let new_t = edit(t)?;
    let n = node_edits.entry(ni).or_insert_with(|| node.clone());
    attr::set(n, attr::tensor("value", new_t));
    Ok(())
}

/// Removes `cut` indices along `axis` of a row-major tensor.
fn remove_indices(
    data: &[f32],
    dims: &[i64],
    axis: usize,
    cut: &BTreeSet<usize>,
) -> Option<(Vec<f32>, Vec<i64>)> {
    let len = *dims.get(axis)? as usize;
    if cut.iter().any(|&i| i >= len) || cut.len() >= len {
        return None;
    }
    let inner: usize = dims[axis + 1..].iter().map(|&d| d as usize).product();
    let outer: usize = dims[..axis].iter().map(|&d| d as usize).product();
    let keep: Vec<usize> = (0..len).filter(|i| !cut.contains(i)).collect();
    let mut out = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in &keep {
            let start = (o * len + k) * inner;
            out.extend_from_slice(data.get(start..start + inner)?);
        }
    }
    let mut new_dims = dims.to_vec();
    new_dims[axis] = keep.len() as i64;
    Some((out, new_dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_rows_and_columns() {
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let (d, dims) = remove_indices(&data, &[2, 3], 1, &BTreeSet::from([1])).unwrap();
        assert_eq!((d, dims), (vec![0.0, 2.0, 3.0, 5.0], vec![2, 2]));
        let (d, dims) = remove_indices(&data, &[2, 3], 0, &BTreeSet::from([0])).unwrap();
        assert_eq!((d, dims), (vec![3.0, 4.0, 5.0], vec![1, 3]));
        assert!(remove_indices(&data, &[2, 3], 0, &BTreeSet::from([0, 1])).is_none());
    }
}
