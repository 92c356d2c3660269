//! Pruning sensitivity, measured before planning and after every accepted pruning round: each
//! chosen group pruned alone (with reconstruction, as plans are applied) and evaluated on the
//! feedback slice, the cheapest per MAC again deeper; the planners' group facts are filled from
//! the latest measurements. Failures are recorded, not fatal.
use profagent_onnx::Model;

use super::{Analysis, Progress, Split, Workbench};
use crate::facts::{DeeperProbe, Evaluation, GroupFacts, GroupSensitivity};

/// Fraction of a group's channels removed to measure its sensitivity (the built-in planner's
/// first step, so the number predicts what its first round costs).
pub const SENSITIVITY_RATIO: f64 = crate::builtin::INITIAL_STEP;
/// Groups needed to fit the points-per-nat slope of `fit_expected_drops`.
const MIN_SENSITIVITY_FIT: usize = 3;

/// The deeper probe's ratio: twice the first (the built-in planner cuts the cheapest groups
/// to this depth over two rounds).
pub const DEEPER_RATIO: f64 = 2.0 * SENSITIVITY_RATIO;
/// The third probe's ratio, for the groups whose deeper probe stayed as cheap per MAC as the
/// cheapest third at the first ratio (resnet18_cifar10's last-stage groups lose 75 % of their
/// channels at about 0.1 point with reconstruction).
pub const DEEPEST_RATIO: f64 = 3.0 * SENSITIVITY_RATIO;

/// Prunes each of `max_groups` prunable groups alone by `SENSITIVITY_RATIO` and measures top-1
/// on the feedback slice (no timing): what pruning that group costs, measured rather than
/// guessed from weight norms. The groups: `probe_order`. Then the third of them that cost
/// least per MAC (the ones planners cut deepest) are measured again at `DEEPER_RATIO`, so
/// their cost curve is measured between the two ratios instead of extrapolated (a second entry
/// for the group in the result, with its own ratio), and those of them no dearer per MAC there
/// than that third was at the first ratio once more at `DEEPEST_RATIO`. Failures are recorded,
/// not fatal.
pub(super) fn measure_sensitivity<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    analysis: &Analysis,
    baseline: &Evaluation,
    max_groups: usize,
    progress: &mut dyn Progress,
) -> Vec<GroupSensitivity> {
    let candidates: Vec<&GroupFacts> = analysis
        .groups
        .iter()
        .filter(|g| g.prunable)
        .filter(|g| analysis.context.may_prune(&g.id))
        .collect();
    let candidates = probe_order(candidates, max_groups);
    if candidates.is_empty() || progress.stop_requested() {
        return Vec::new();
    }
    let deeper_count = candidates.len().div_ceil(3);
    progress.line(&format!(
        "measuring pruning sensitivity of {} groups ({:.0} % each, alone), then the {deeper_count} cheapest per MAC at {:.0} %, and those still as cheap at {:.0} %",
        candidates.len(),
        SENSITIVITY_RATIO * 100.0,
        DEEPER_RATIO * 100.0,
        DEEPEST_RATIO * 100.0
    ));
    let mut out = Vec::new();
    let step = profagent_onnx::progress::step(
        "pruning sensitivity",
        // At most: every deeper probe is followed by a deepest one.
        Some((candidates.len() + 2 * deeper_count) as u64),
        "probes",
    );
    let probe = Probe {
        input,
        analysis,
        baseline,
    };
    for (done, group) in candidates.iter().enumerate() {
        step.set(done as u64);
        if progress.stop_requested() {
            break;
        }
        if let Some(entry) = probe.run(bench, group, SENSITIVITY_RATIO, progress) {
            out.push(entry);
        }
    }
    // The cheapest per MAC removed at the first ratio (a drop near zero is noise: floored).
    let mut cheap: Vec<(&GroupFacts, f64, usize)> = candidates
        .iter()
        .filter_map(|g| {
            let first = out.iter().find(|m| m.group == g.id && m.error.is_none())?;
            Some((*g, price_per_mac(g, first)?, first.keep))
        })
        .collect();
    cheap.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
    cheap.truncate(deeper_count);
    // The dearest per MAC of the groups probed deeper, at the first ratio: a group whose
    // deeper probe is no dearer is probed deeper still (planners may cut it that far).
    let cutoff = cheap.last().map_or(0.0, |c| c.1);
    let mut deepest = Vec::new();
    for (done, (group, _, first_keep)) in cheap.into_iter().enumerate() {
        step.set((candidates.len() + done) as u64);
        if progress.stop_requested() {
            break;
        }
        if let Some(entry) = probe
            .run(bench, group, DEEPER_RATIO, progress)
            .filter(|e| e.error.is_some() || e.keep < first_keep)
        {
            if price_per_mac(group, &entry).is_some_and(|p| p <= cutoff) {
                deepest.push((group, entry.keep));
            }
            out.push(entry);
        }
    }
    for (done, (group, deeper_keep)) in deepest.into_iter().enumerate() {
        step.set((candidates.len() + deeper_count + done) as u64);
        if progress.stop_requested() {
            break;
        }
        if let Some(entry) = probe
            .run(bench, group, DEEPEST_RATIO, progress)
            .filter(|e| e.error.is_some() || e.keep < deeper_keep)
        {
            out.push(entry);
        }
    }
    fit_expected_drops(&mut out);
    out
}

/// Loss increases below this (nats) are noise to `price_per_mac`: 0.03-0.05 points at the
/// 30-50 points per nat fitted on the CIFAR models (the built-in planner's `SENSITIVITY_FLOOR`
/// is 0.02 points).
/// With obs importance and reconstruction many first probes measure zero or less; floored, the
/// cheap groups are ranked by the MACs they remove, not by noise.
const LOSS_FLOOR: f64 = 1e-3;

/// A successful probe's cost per MAC removed (its loss increase, else its top-1 drop, each
/// floored: a cost near zero is noise); `None` for a failed probe or one that removed nothing.
fn price_per_mac(group: &GroupFacts, probe: &GroupSensitivity) -> Option<f64> {
    if probe.error.is_some() {
        return None;
    }
    let drop = match (probe.loss_increase, probe.drop) {
        (Some(loss), _) => loss.max(LOSS_FLOOR),
        (None, Some(drop)) => drop.max(crate::builtin::SENSITIVITY_FLOOR),
        (None, None) => return None,
    };
    let macs = group.macs as f64 * (probe.current - probe.keep) as f64 / probe.current as f64;
    (macs > 0.0).then_some(drop / macs)
}

/// The groups a sensitivity measurement probes, at most `max_groups`: the heaviest by latency
/// (MACs without). On a re-measurement after an accepted round (groups carrying an earlier
/// measurement), half of the places go first to the groups cheapest per MAC at their earlier
/// probe: the ones planners cut next, which drop out of "the heaviest" once a round has
/// thinned them.
fn probe_order(mut candidates: Vec<&GroupFacts>, max_groups: usize) -> Vec<&GroupFacts> {
    let weight = |g: &GroupFacts| g.latency_ms.unwrap_or(g.macs as f64 * 1e-9);
    candidates.sort_by(|a, b| weight(b).total_cmp(&weight(a)).then(a.id.cmp(&b.id)));
    let earlier_price = |g: &GroupFacts| {
        let ratio = g.probed_ratio.filter(|r| *r > 0.0)?;
        let drop = g.sensitivity?.max(crate::builtin::SENSITIVITY_FLOOR);
        (g.macs > 0).then(|| drop / (g.macs as f64 * ratio))
    };
    let mut cheapest: Vec<(&GroupFacts, f64)> = candidates
        .iter()
        .filter_map(|g| Some((*g, earlier_price(g)?)))
        .collect();
    cheapest.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
    cheapest.truncate(max_groups.div_ceil(2));
    let first: Vec<&GroupFacts> = cheapest.into_iter().map(|(g, _)| g).collect();
    candidates.retain(|g| !first.iter().any(|f| f.id == g.id));
    candidates.splice(0..0, first);
    candidates.truncate(max_groups);
    candidates
}

/// The loop's measurements for planners (`planner::Measure`, the `probe_group` tool): a group
/// pruned alone on the current float model, against that model's own float evaluation
/// (`reference`; evaluated on the first probe when the deployed model is quantized).
pub(super) struct LoopMeasure<'a> {
    pub bench: &'a mut dyn Workbench,
    pub model: &'a Model,
    pub analysis: &'a Analysis,
    pub reference: Option<Evaluation>,
    pub progress: &'a mut dyn Progress,
}

impl crate::planner::Measure for LoopMeasure<'_> {
    fn probe(&mut self, group: &str, ratio: f64) -> Result<GroupSensitivity, String> {
        if self.progress.stop_requested() {
            return Err("the run is stopping: no more measurements".into());
        }
        let context = &self.analysis.context;
        let facts = self
            .analysis
            .groups
            .iter()
            .find(|g| g.id == group && g.prunable)
            .filter(|g| context.may_prune(&g.id))
            .ok_or_else(|| {
                format!("'{group}' is not a prunable group: use an id from the group table")
            })?;
        let reference = match &self.reference {
            Some(r) => r.clone(),
            None => {
                let evaluated = self
                    .bench
                    .evaluate(self.model, Split::Feedback)
                    .map_err(|e| format!("evaluating the current float model: {e}"))?;
                self.reference = Some(evaluated.clone());
                evaluated
            }
        };
        self.progress.line(&format!(
            "  the planner asked for a measurement: {group} pruned alone by {:.0} %",
            ratio * 100.0
        ));
        let probe = Probe {
            input: self.model,
            analysis: self.analysis,
            baseline: &reference,
        };
        let measured = probe
            .run(&mut *self.bench, facts, ratio, &mut *self.progress)
            .ok_or_else(|| {
                format!("at {ratio} rounding leaves nothing to remove from '{group}': ask for more")
            })?;
        match measured.error {
            Some(e) => Err(e),
            None => Ok(measured),
        }
    }
}

/// What a sensitivity probe measures against.
struct Probe<'a> {
    input: &'a Model,
    analysis: &'a Analysis,
    baseline: &'a Evaluation,
}

impl Probe<'_> {
    /// Prunes `group` alone by `ratio` (`BUILTIN_CRITERION`, aligned counts, as the built-in
    /// planner would) and evaluates on the feedback slice; `None` when rounding leaves nothing to remove.
    fn run<B: Workbench + ?Sized>(
        &self,
        bench: &mut B,
        group: &GroupFacts,
        ratio: f64,
        progress: &mut dyn Progress,
    ) -> Option<GroupSensitivity> {
        let baseline = self.baseline;
        // A measurement that could not be made, for the report.
        let failed = |current: usize, keep: usize, error: String| GroupSensitivity {
            group: group.id.clone(),
            ratio,
            current,
            keep,
            top1: None,
            drop: None,
            loss_increase: None,
            expected_drop: None,
            cosine_loss: None,
            images: None,
            points_per_nat: None,
            error: Some(error),
        };
        // Aligned as the planner aligns this group (a group it does not prune is not
        // measured); where the runtime pads it to a block, at least one block (less would
        // remove nothing once rounded).
        let original = group.original_channels.unwrap_or(group.channels);
        if crate::builtin::too_narrow(group, original) {
            return None;
        }
        let round_to = crate::builtin::round_to_of(group, original);
        let ratio = match group.runtime_block {
            Some(block) if round_to == block => {
                ratio.max(f64::from(block) / group.channels.max(1) as f64)
            }
            _ => ratio,
        };
        let mut plan = profagent_plan::CompressionPlan::empty("sensitivity measurement");
        plan.pruning.push(crate::builtin::prune_decision(
            group,
            ratio,
            round_to,
            "sensitivity measurement".into(),
        ));
        let resolved = match profagent_plan::validate(&plan, &self.analysis.context) {
            Ok(v) => v.pruning().to_vec(),
            Err(e) => return Some(failed(group.channels, group.channels, e.to_string())),
        };
        let first = resolved.first().cloned()?;
        if first.keep >= first.current {
            return None;
        }
        let outcome = bench
            .prune(self.input, &resolved)
            .and_then(|(model, _)| bench.evaluate(&model, Split::Feedback));
        let entry = match outcome {
            Ok(e) => GroupSensitivity {
                group: group.id.clone(),
                ratio,
                current: first.current,
                keep: first.keep,
                top1: e.top1,
                drop: e
                    .top1
                    .zip(baseline.top1)
                    .map(|(after, before)| before - after),
                loss_increase: e
                    .loss
                    .zip(baseline.loss)
                    .map(|(after, before)| after - before),
                expected_drop: None,
                // Against the model probed (the input's cosine is 1): what this group adds.
                cosine_loss: e
                    .cosine
                    .map(|c| (baseline.cosine.unwrap_or(1.0) - c).max(0.0)),
                images: Some(e.images),
                points_per_nat: None,
                error: None,
            },
            Err(e) => failed(first.current, first.keep, e.to_string()),
        };
        progress.line(&match (&entry.drop, &entry.error) {
            (Some(d), _) => format!(
                "  {} {}: top-1 drop {d:.2}{}",
                entry.group,
                first.counts(),
                entry
                    .loss_increase
                    .map(|l| format!(", loss {l:+.4} nats"))
                    .unwrap_or_default()
                    + &entry
                        .cosine_loss
                        .map(|l| format!(", output cosine {:.5}", 1.0 - l))
                        .unwrap_or_default()
            ),
            (_, Some(e)) => format!("  {}: failed: {e}", entry.group),
            _ => String::new(),
        });
        Some(entry)
    }
}

/// `measure_sensitivity` on an accepted round's float model, against that model's own float
/// evaluation (evaluated here when `reference` is `None`, i.e. the round's deployed model is
/// quantized): what pruning each group further costs now, not on the input model. A failed
/// reference evaluation is a warning and nothing is re-measured.
pub(super) fn remeasure<B: Workbench + ?Sized>(
    bench: &mut B,
    model: &Model,
    analysis: &Analysis,
    reference: Option<&Evaluation>,
    max_groups: usize,
    progress: &mut dyn Progress,
) -> Vec<GroupSensitivity> {
    if max_groups == 0 || progress.stop_requested() {
        return Vec::new();
    }
    let evaluated;
    let reference = match reference {
        Some(r) => r,
        None => match bench.evaluate(model, Split::Feedback) {
            Ok(e) => {
                evaluated = e;
                &evaluated
            }
            Err(e) => {
                progress.line(&format!(
                    "warning: pruning sensitivity not re-measured ({e}): planners keep the earlier measurements"
                ));
                return Vec::new();
            }
        },
    };
    progress.line("re-measuring pruning sensitivity on the accepted model");
    measure_sensitivity(bench, model, analysis, reference, max_groups, progress)
}

/// Fills `expected_drop`: one group's top-1 difference on a few hundred images moves by whole
/// images (±0.5 points is noise), while its loss increase is continuous. Fitting drop ≈ k × loss
/// increase over all measured groups (least squares through the origin, k ≥ 0) and reading each
/// group's expected drop off the fit pools every measurement's information.
fn fit_expected_drops(measured: &mut [GroupSensitivity]) {
    let pairs: Vec<(f64, f64)> = measured
        .iter()
        .filter_map(|m| Some((m.loss_increase?, m.drop?)))
        .filter(|(l, d)| l.is_finite() && d.is_finite())
        .collect();
    let sxx: f64 = pairs.iter().map(|(l, _)| l * l).sum();
    let sxy: f64 = pairs.iter().map(|(l, d)| l * d).sum();
    let slope = (pairs.len() >= MIN_SENSITIVITY_FIT && sxx > 0.0).then(|| (sxy / sxx).max(0.0));
    for m in measured {
        (m.expected_drop, m.points_per_nat) = match (slope, m.loss_increase) {
            (Some(k), Some(l)) if l.is_finite() => (Some(k * l), Some(k)),
            _ => (m.drop, None),
        };
    }
}

/// Copies measured sensitivities onto the planner's group facts (by group id; groups that were
/// not measured keep `None`).
pub(super) fn apply_sensitivity(groups: &mut [GroupFacts], measured: &[GroupSensitivity]) {
    apply_measurements(groups, &[(0, measured.to_vec())]);
}

/// Copies each group's latest successful sensitivity measurement onto the planner's facts:
/// `measurements` are `(round whose model was probed, results)`, oldest first, so a
/// re-measurement after an accepted round replaces the input model's.
pub(super) fn apply_measurements(
    groups: &mut [GroupFacts],
    measurements: &[(usize, Vec<GroupSensitivity>)],
) {
    for group in groups {
        // The latest measurement of the group: its shallowest successful probe, and a deeper
        // one on the same model when there is one.
        let latest = measurements.iter().rev().find_map(|(round, measured)| {
            let mut probes: Vec<&GroupSensitivity> = measured
                .iter()
                .filter(|m| m.group == group.id && m.error.is_none())
                .collect();
            probes.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
            Some((
                *round,
                *probes.first()?,
                probes.get(1).copied(),
                probes.get(2).copied(),
            ))
        });
        let removed = |m: &GroupSensitivity| {
            (m.keep < m.current).then(|| (m.current - m.keep) as f64 / m.current as f64)
        };
        if let Some((round, m, deeper, deepest)) = latest {
            group.measured_round = Some(round);
            group.probed_from = Some(m.current);
            group.sensitivity = m.expected_drop.or(m.drop);
            group.measured_drop = m.drop;
            group.probed_images = m.images;
            group.probed_ratio = removed(m);
            group.fitted_drop = m.points_per_nat.and(m.expected_drop);
            group.fidelity_loss = m.cosine_loss;
            let deeper_probe = |d: Option<&GroupSensitivity>| {
                let d = d.filter(|d| d.current == m.current)?;
                Some(DeeperProbe {
                    ratio: removed(d)?,
                    sensitivity: d.expected_drop.or(d.drop),
                    measured_drop: d.drop,
                    fitted_drop: d.points_per_nat.and(d.expected_drop),
                    fidelity_loss: d.cosine_loss,
                })
            };
            group.deeper = deeper_probe(deeper);
            group.deepest = group.deeper.as_ref().and_then(|_| deeper_probe(deepest));
        }
    }
}

/// Each group's units in the input model, from the input's analysis (`original`).
pub(super) fn set_original_channels(groups: &mut [GroupFacts], original: &[GroupFacts]) {
    for group in groups {
        group.original_channels = original
            .iter()
            .find(|o| o.id == group.id)
            .map(|o| o.channels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, macs: u64, earlier: Option<f64>) -> GroupFacts {
        GroupFacts {
            id: id.into(),
            macs,
            sensitivity: earlier,
            probed_ratio: earlier.map(|_| SENSITIVITY_RATIO),
            prunable: true,
            ..GroupFacts::default()
        }
    }

    fn ids(groups: Vec<&GroupFacts>) -> Vec<&str> {
        groups.into_iter().map(|g| g.id.as_str()).collect()
    }

    /// Before round 1 the heaviest are probed. After a round that thinned the cheap group
    /// (now the lightest), half of the places go to the groups cheapest per MAC before, so it
    /// is measured again and planners can cut it further; the rest go to the heaviest.
    #[test]
    fn a_remeasurement_keeps_the_cheapest_groups_even_when_thinned() {
        let input = [
            group("cheap", 900, None),
            group("a", 800, None),
            group("b", 700, None),
            group("c", 600, None),
            group("d", 500, None),
        ];
        assert_eq!(
            ids(probe_order(input.iter().collect(), 3)),
            ["cheap", "a", "b"]
        );
        let after = [
            group("cheap", 100, Some(0.01)), // thinned by round 1: now the lightest
            group("a", 800, Some(2.0)),
            group("b", 700, Some(0.1)),
            group("c", 600, None),
            group("d", 500, None),
        ];
        assert_eq!(
            ids(probe_order(after.iter().collect(), 3)),
            ["b", "cheap", "a"]
        );
        assert_eq!(ids(probe_order(after.iter().collect(), 1)), ["b"]);
        assert_eq!(
            ids(probe_order(after.iter().collect(), 5)),
            ["b", "cheap", "a", "c", "d"]
        );
    }
}
