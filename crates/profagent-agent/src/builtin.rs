//! The built-in planner (`--llm none`): deterministic, profile-guided, the baseline every LLM
//! planner is compared with.
//!
//! Round by round:
//! 1. If no quantization is in effect, take the quantization mode measured best: faster with
//!    the interleaved interval above 1 (or, not measurably slower, at least `MIN_QUANT_SHRINK` times smaller) on
//!    this model and runtime (the probes): one that meets the whole budget alone if any, else
//!    the best within half of the accuracy (and fidelity) budget, leaving room for pruning,
//!    else the best within the budget at all; never one outside it.
//!    Measured, not assumed: on ONNX Runtime dynamic int8 speeds transformers up but slows
//!    convolutions down, while static QDQ speeds convolutions up.
//! 2. Then prune: groups ranked by cost (measured latency, else MACs) per measured
//!    sensitivity (top-1 drop of the group pruned alone, scaled from the ratio it was probed
//!    at to the step), as many per round as keep the round's expected drop within
//!    `ROUND_BUDGET_SHARE` of the budget left, at a step ratio rounded to aligned channel
//!    counts (`round_to_for`); a group that does not fit whole is taken at the smaller step
//!    that fits (down to `MIN_STEP`); where the runtime pads a group's channels to a block
//!    (`GroupFacts::runtime_block`), kept counts are multiples of the block (`round_to_of`).
//!    With a MACs target the MACs still missing, and with a
//!    speed or latency target the share of the latency still missing (in the per-layer
//!    profile's ms), are allocated where they cost least (`builtin/allocation.rs`), under the
//!    same cap: never a round whose own expected drop exceeds its share of the budget left
//!    (issue 20: one removed 40 % of resnet18's MACs at an expected 11.14 of the 1.00 points
//!    left), except that a full step the share leaves within `FINISH_SHARE` of the target
//!    finishes it from the budget left (never beyond it).
//! 3. Learn and back off: every later estimate is multiplied by what the pruning rounds so far
//!    measured over what their sensitivities expected, pooled (`calibration`, the ratio of the
//!    sums, at least 1: single-group sensitivities miss how pruned groups interact; on resnet18
//!    a round expected at 0.59 points lost 7), so one noisy round does not rule the rest of the
//!    run and rounds that cost less than expected bring it back down. After a rejected round
//!    the step halves and fewer groups are taken (groups found guilty are avoided from then
//!    on); after an accepted one it doubles back, up to `INITIAL_STEP`. Below `MIN_STEP`, or
//!    when the accuracy budget is nearly spent, it proposes nothing and the loop stops.
//!
//! With a fidelity bound (`Budget::min_cosine`) the measured output-cosine losses are spent
//! like top-1 points: both budgets are put on one scale (`points_per_cosine`), a group costs
//! the larger of its two measured losses, and the budget left is the smaller of the two.
//! A quantization mode is chosen within the fidelity bound as within the accuracy one (step 1).
use std::collections::{BTreeMap, BTreeSet};

use profagent_plan::{
    validate, CompressionPlan, ImportanceCriterion, PlanContext, PruneDecision, PruneUnit,
    QuantMode, QuantizationPlan,
};

use crate::error::AgentError;
use crate::facts::{GroupFacts, PlanningInput, QuantProbe, SpeedVerdict};
use crate::planner::{Planner, Proposal, Recorder};
use crate::rundir::TranscriptEntry;

mod allocation;
pub use allocation::FINISH_SHARE;

/// First pruning step (fraction of a group's channels).
pub const INITIAL_STEP: f64 = 0.25;
/// Below this step the planner stops pruning.
pub const MIN_STEP: f64 = 0.06;
/// Groups pruned per round at first.
pub const INITIAL_GROUPS: usize = 4;
/// A quantization probe may use at most this fraction of the accuracy budget.
pub const QUANT_BUDGET_SHARE: f64 = 0.5;
/// A probe must be at least this much faster (or this much smaller) to be worth it.
pub const MIN_QUANT_GAIN: f64 = 1.05;
/// A probe that is not measurably slower is still worth it when it shrinks the model this much.
pub const MIN_QUANT_SHRINK: f64 = 2.0;
/// A probe whose model is at least this large relative to the baseline changed nothing.
pub const NO_OP_SIZE_RATIO: f64 = 0.99;
/// Stop pruning when less than this many points of accuracy budget remain.
pub const MIN_BUDGET_LEFT: f64 = 0.15;
/// Kept channels are rounded to a multiple of this (SIMD-friendly widths) in wide groups.
pub const ROUND_TO: u32 = 8;
/// A round's expected drop (sum of its groups' scaled sensitivities) may use at most this
/// share of the accuracy budget left.
pub const ROUND_BUDGET_SHARE: f64 = 0.6;
pub use crate::estimate::MARGIN_FLOOR;
/// Pooled expected drops below this (points) are too small to calibrate against: one image of
/// a few hundred is more.
pub const MIN_CALIBRATION_EXPECTED: f64 = 0.05;
/// Upper bound of the learnt factor on expected drops.
pub const MAX_CALIBRATION: f64 = 50.0;
/// Sensitivity floor (points): a group's expected drop at its probed ratio is at least this
/// (measured drops near zero are noise, not free channels), in the cost-per-sensitivity ranking
/// and in the allocation's cost curves, which it makes grow at least linearly with depth.
/// Measured (resnet18_cifar10, `--target-macs 0.6 --max-acc-drop 1`, 5,000 unseen images): at
/// 0.05 the floors of the 11 groups made up most of round 1's expected 0.59 points, so the
/// round stopped at 0.631 of the MACs, whose plan re-applied with 512 calibration images lost
/// 0.38 points; at 0.02 round 1 reached 0.596 of the MACs: 0.44 re-applied, 0.72 for compress's
/// own model (docs/benchmarks-planner-confidence.md; the loop's feedback slice measured 0.80
/// and 0.76).
pub const SENSITIVITY_FLOOR: f64 = 0.02;

/// Accuracy points one unit of output-cosine loss is worth when the budget bounds both (the
/// whole fidelity budget `1 - min_cosine` is worth the whole accuracy budget), so that one
/// planner spends both; `None` without a fidelity bound.
pub fn points_per_cosine(budget: &crate::facts::Budget) -> Option<f64> {
    let span = 1.0 - budget.min_cosine?;
    // A zero accuracy budget still needs a scale for the fidelity one.
    let points = if budget.max_acc_drop > 0.0 {
        budget.max_acc_drop
    } else {
        1.0
    };
    (span > 0.0).then_some(points / span)
}

/// The budget a pruning round may spend, points, what it is ("accuracy budget left ..."), and
/// the budget left itself: the accuracy budget left less the confidence margin the loop's
/// paired bound needs (`estimate::confidence_margin`: a round measured to cost the whole budget
/// left is rejected), at least `MARGIN_FLOOR` of it; with a fidelity bound the smaller of that
/// and the fidelity budget left (on the same scale).
fn budget_left(input: &PlanningInput) -> (f64, String, f64) {
    let accuracy = crate::estimate::round_budget(input);
    match (
        points_per_cosine(&input.budget),
        input.budget.min_cosine,
        input.current.cosine,
    ) {
        (Some(scale), Some(min), Some(now)) if (now - min) * scale < accuracy.points => {
            let fidelity = (now - min) * scale;
            (fidelity, "output-fidelity budget left".into(), fidelity)
        }
        _ => (accuracy.points, accuracy.describe(), accuracy.left),
    }
}

/// `input` with each group's sensitivity replaced by the larger of its measured top-1 drop and
/// its measured cosine loss in points (`points_per_cosine`).
fn fidelity_as_points(input: &PlanningInput, scale: f64) -> PlanningInput {
    let mut adjusted = input.clone();
    for g in &mut adjusted.groups {
        let fidelity = g.fidelity_loss.map(|l| l * scale);
        g.sensitivity = larger(g.sensitivity, fidelity);
        for deeper in [&mut g.deeper, &mut g.deepest].into_iter().flatten() {
            deeper.sensitivity =
                larger(deeper.sensitivity, deeper.fidelity_loss.map(|l| l * scale));
        }
    }
    adjusted
}

/// The larger of two optional drops (either alone when the other is missing).
fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Channel multiple for a group: 8 (SIMD-friendly) from 64 channels up, 4 for narrower
/// groups (CIFAR ResNets have 16-32 channel groups, where multiples of 8 would only allow
/// 50 % cuts), 1 below 16 channels.
pub fn round_to_for(channels: usize) -> u32 {
    if channels >= 8 * ROUND_TO as usize {
        ROUND_TO
    } else if channels >= 16 {
        4
    } else {
        1
    }
}

/// The multiple a group's kept count is rounded to: the runtime's channel block where the
/// runtime pads the group to it (`GroupFacts::runtime_block`: a count between two multiples
/// runs as slowly as the next one up), else `round_to_for(original)`.
pub fn round_to_of(group: &GroupFacts, original: usize) -> u32 {
    let own = round_to_for(original);
    match group.runtime_block {
        Some(block) if block > own => block,
        _ => own,
    }
}

/// True when the group has fewer than two of its `round_to_of` multiples left: the planner
/// does not prune it and the sensitivity probes do not measure it (with a runtime block, what
/// a cut would remove on paper the runtime would mostly spend on padding).
pub fn too_narrow(group: &GroupFacts, original: usize) -> bool {
    group.channels < 2 * round_to_of(group, original) as usize
}

/// The importance criterion of the built-in planner's decisions and of the sensitivity
/// probes (so a group is measured the way plans prune it): `obs`, data-aware (greedy
/// structured Optimal Brain Surgeon on the calibration statistics reconstruction gathers
/// anyway; the workbench applies l1 when there is no calibration data). Measured end to end
/// (`bench/planner_vs_uniform.py`, resnet18_cifar10 `--target-macs 0.6 --max-acc-drop 1`,
/// scored on 5,000 unseen images, builds identical but for the criterion): obs reached 0.631
/// of the MACs at -0.42 points where l1 reached 0.706 at -0.30; uniform pruning at 0.630 loses
/// 1.54 points or more. With the three-depth probes (docs/benchmarks-planner.md): vit_tiny
/// 0.628 at -0.36 (l1 before them: 0.685 at -0.96); resnet18 0.710 at -0.32, its first round
/// rejected by the loop's bound (one run: rounds are coin flips near the bound).
pub const BUILTIN_CRITERION: ImportanceCriterion = ImportanceCriterion::Obs;

/// A pruning decision for `group` with `BUILTIN_CRITERION`: heads for attention-head groups,
/// channels otherwise.
pub(crate) fn prune_decision(
    group: &GroupFacts,
    ratio: f64,
    round_to: u32,
    rationale: String,
) -> PruneDecision {
    PruneDecision {
        target: group.id.clone(),
        ratio,
        keep: None,
        unit: if group.heads.is_some() {
            PruneUnit::Heads
        } else {
            PruneUnit::Channels
        },
        criterion: BUILTIN_CRITERION,
        round_to,
        rationale,
    }
}

/// Fraction of the group's units its sensitivity was measured at (the probed ratio after
/// rounding to whole units, else the nominal `SENSITIVITY_RATIO`).
fn probed(group: &GroupFacts) -> f64 {
    group
        .probed_ratio
        .filter(|r| *r > 0.0 && r.is_finite())
        .unwrap_or(crate::compressor::SENSITIVITY_RATIO)
}

/// True when `decision` alone passes validation and removes at least one unit (rounding can
/// leave a small step with nothing to remove).
fn shrinks(decision: &PruneDecision, context: &PlanContext) -> bool {
    let mut single = CompressionPlan::empty("");
    single.pruning.push(decision.clone());
    validate(&single, context).is_ok_and(|v| v.pruning().iter().all(|p| p.keep < p.current))
}

#[derive(Debug, Clone)]
pub struct BuiltinPlanner {
    step: f64,
    groups_per_round: usize,
    /// Groups not to prune again.
    avoided: BTreeSet<String>,
    /// How many rejected rounds each group was part of.
    rejections: BTreeMap<String, usize>,
    /// The groups of the last proposed plan, to learn from its outcome.
    last_groups: Vec<String>,
    last_round_judged: usize,
    /// Quantization modes already proposed: a rejected mode is not proposed again.
    tried_quant: BTreeSet<QuantMode>,
    /// The quantization mode the last plan proposed (`discard_last` un-tries it).
    last_quant: Option<QuantMode>,
    /// Channels of each group when the planner first saw it (the baseline).
    original_channels: BTreeMap<String, usize>,
    /// Factor on every expected pruning drop, learnt from measured rounds: the measured drops
    /// of every judged pruning round over their uncalibrated expected drops, summed
    /// (`observed_total / expected_total`), at least 1 and at most `MAX_CALIBRATION` (pruned
    /// groups interact; single-group sensitivities underestimate a many-group round).
    calibration: f64,
    /// Measured drops of the judged pruning rounds, each against the model it started from
    /// (points; negative when a round gained), summed.
    observed_total: f64,
    /// The same rounds' expected drops before calibration, summed.
    expected_total: f64,
    /// How many rounds are in the sums.
    pruning_rounds: usize,
    /// Expected drop of the last proposed pruning round (calibrated) and the drop the model
    /// had when it was proposed, to compare with the measured outcome.
    last_expected: f64,
    last_start_drop: f64,
    /// Why `calibration` is what it is, for the rationale.
    calibration_note: Option<String>,
}

impl Default for BuiltinPlanner {
    fn default() -> Self {
        BuiltinPlanner {
            step: INITIAL_STEP,
            groups_per_round: INITIAL_GROUPS,
            avoided: BTreeSet::new(),
            rejections: BTreeMap::new(),
            last_groups: Vec::new(),
            last_round_judged: 0,
            tried_quant: BTreeSet::new(),
            last_quant: None,
            original_channels: BTreeMap::new(),
            calibration: 1.0,
            observed_total: 0.0,
            expected_total: 0.0,
            pruning_rounds: 0,
            last_expected: 0.0,
            last_start_drop: 0.0,
            calibration_note: None,
        }
    }
}

impl BuiltinPlanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Learns from the last round's outcome in the history.
    fn learn(&mut self, input: &PlanningInput) {
        let Some(last) = input.history.last() else {
            return;
        };
        if last.round == self.last_round_judged {
            return;
        }
        self.last_round_judged = last.round;
        // Measured against expected, pooled over every judged pruning round (the paired drop
        // on the same images as the expectation): the ratio of the sums calibrates every later
        // estimate, so a round that cost more raises it and rounds that cost less lower it.
        if let (false, Some(change)) = (self.last_groups.is_empty(), last.accuracy_change) {
            self.observed_total += change.drop_points() - self.last_start_drop;
            // `last_expected` was calibrated by the factor in effect when it was proposed.
            self.expected_total += self.last_expected / self.calibration;
            self.pruning_rounds += 1;
            if self.expected_total >= MIN_CALIBRATION_EXPECTED {
                let factor =
                    (self.observed_total / self.expected_total).clamp(1.0, MAX_CALIBRATION);
                self.calibration_note = (factor > 1.0).then(|| {
                    format!(
                        "own estimates x {factor:.1}: {} lost {:.2} points where {:.2} were expected",
                        match self.pruning_rounds {
                            1 => format!("round {}", last.round),
                            n => format!("the {n} pruning rounds so far"),
                        },
                        self.observed_total,
                        self.expected_total
                    )
                });
                self.calibration = factor;
            }
        }
        if last.accepted && !self.last_groups.is_empty() {
            // The measured round held: grow back towards the full step.
            self.step = (self.step * 2.0).min(INITIAL_STEP);
            self.groups_per_round = (self.groups_per_round * 2).min(INITIAL_GROUPS);
        }
        if !last.accepted && !self.last_groups.is_empty() {
            self.step /= 2.0;
            self.groups_per_round = (self.groups_per_round / 2).max(1);
            // A group alone in a rejected round is the culprit; in a larger round it is
            // only a suspect until it shows up in a second rejected round.
            let alone = self.last_groups.len() == 1;
            for group in &self.last_groups {
                let count = self.rejections.entry(group.clone()).or_default();
                *count += 1;
                if alone || *count >= 2 {
                    self.avoided.insert(group.clone());
                }
            }
        }
    }

    /// The group's channels when the planner first saw it (else now).
    fn original(&self, group: &GroupFacts) -> usize {
        self.original_channels
            .get(&group.id)
            .copied()
            .unwrap_or(group.channels)
    }

    /// Forgets the last proposal: another planner's plan was applied instead, so its outcome
    /// says nothing about this planner's estimates or groups.
    pub fn discard_last(&mut self) {
        self.last_groups.clear();
        self.last_expected = 0.0;
        if let Some(mode) = self.last_quant.take() {
            self.tried_quant.remove(&mode);
        }
    }

    /// The plan for this round (pure given the planner's state).
    pub fn plan(&mut self, input: &PlanningInput, context: &PlanContext) -> CompressionPlan {
        self.learn(input);
        self.last_quant = None;
        self.last_groups.clear();
        self.last_expected = 0.0;
        self.last_start_drop = input.drop_of(input.current.top1);
        let mut plan = self.plan_round(input, context);
        if let (false, Some(note)) = (plan.pruning.is_empty(), &self.calibration_note) {
            plan.rationale = format!("{} ({note})", plan.rationale);
        }
        plan
    }

    fn plan_round(&mut self, input: &PlanningInput, context: &PlanContext) -> CompressionPlan {
        let adjusted;
        let input = match points_per_cosine(&input.budget) {
            Some(scale) => {
                adjusted = fidelity_as_points(input, scale);
                &adjusted
            }
            None => input,
        };
        let (budget_left, binding, nominal) = budget_left(input);
        // Quantization keeps MACs: with a MACs-only budget it cannot help.
        if input.current_quantization == "none" && !input.budget.macs_only() {
            if let Some(plan) = self.quantization_plan(input) {
                return plan;
            }
        }
        if nominal < MIN_BUDGET_LEFT {
            return CompressionPlan::empty(format!(
                "only {:.2} points of budget left: stop",
                nominal.max(0.0)
            ));
        }
        if self.step < MIN_STEP {
            return CompressionPlan::empty(
                "pruning steps were rejected down to the minimum step: stop",
            );
        }
        for g in &input.groups {
            self.original_channels
                .entry(g.id.clone())
                .or_insert(g.channels);
        }
        if let Some(plan) = self.allocation(input, context, budget_left, &binding) {
            return plan;
        }
        let mut candidates: Vec<&GroupFacts> = input
            .groups
            .iter()
            .filter(|g| g.prunable && !self.avoided.contains(&g.id))
            .filter(|g| context.may_prune(&g.id))
            .filter(|g| !too_narrow(g, self.original(g)))
            .collect();
        // Sensitivities (top-1 drop at the ratio each group was probed at) scaled linearly to
        // this step; a group that was not measured counts as the median measured one.
        let mut measured: Vec<f64> = candidates.iter().filter_map(|g| g.sensitivity).collect();
        measured.sort_by(f64::total_cmp);
        let typical = measured.get(measured.len() / 2).copied().unwrap_or(0.0);
        let calibration = self.calibration;
        let per_ratio =
            |g: &GroupFacts| calibration * g.sensitivity.unwrap_or(typical).max(0.0) / probed(g);
        let expected = |g: &GroupFacts| per_ratio(g) * self.step;
        let weight = |g: &GroupFacts| {
            g.latency_ms.unwrap_or(g.macs as f64 * 1e-9) / (SENSITIVITY_FLOOR + expected(g))
        };
        candidates.sort_by(|a, b| weight(b).total_cmp(&weight(a)).then(a.id.cmp(&b.id)));
        // The round's expected drop (measured costs add up, roughly) may use at most
        // ROUND_BUDGET_SHARE of what is left: a group that does not fit whole at this step is
        // taken at the smaller step that fits, down to MIN_STEP.
        let allowed = ROUND_BUDGET_SHARE * budget_left;
        let mut pruning = Vec::new();
        let mut spent = 0.0;
        for group in candidates {
            if pruning.len() >= self.groups_per_round {
                break;
            }
            let room = allowed - spent;
            let ratio = if expected(group) <= room {
                self.step
            } else {
                room / per_ratio(group)
            };
            if ratio < MIN_STEP {
                continue;
            }
            let decision = prune_decision(
                group,
                ratio,
                round_to_of(group, self.original(group)),
                format!(
                    "{} is among the heaviest prunable groups for its cost ({:.1} MMACs{}{})",
                    group.id,
                    group.macs as f64 / 1e6,
                    group
                        .latency_ms
                        .map(|ms| format!(", {ms:.2} ms"))
                        .unwrap_or_default(),
                    group
                        .sensitivity
                        .map(|s| format!(
                            ", expected top-1 drop {s:.2} points at {:.0} %",
                            probed(group) * 100.0
                        ))
                        .unwrap_or_default()
                ),
            );
            // Skip decisions the validator would reject (e.g. nothing left after rounding).
            if shrinks(&decision, context) {
                spent += per_ratio(group) * ratio;
                self.last_groups.push(group.id.clone());
                pruning.push(decision);
            }
        }
        self.last_expected = spent;
        if pruning.is_empty() {
            return CompressionPlan::empty(format!(
                "no prunable group fits {:.0} % of the {budget_left:.2} points of {binding}, even at the smallest step: stop",
                ROUND_BUDGET_SHARE * 100.0
            ));
        }
        CompressionPlan {
            rationale: format!(
                "prune {} groups by up to {:.0} % ({}, aligned channel counts), chosen by cost per measured sensitivity; expected drop {spent:.2}, within {:.0} % of the {budget_left:.2} points of {binding}",
                pruning.len(),
                self.step * 100.0,
                format!("{BUILTIN_CRITERION:?}").to_lowercase(),
                ROUND_BUDGET_SHARE * 100.0
            ),
            pruning,
            ..CompressionPlan::empty("")
        }
    }

    fn quantization_plan(&mut self, input: &PlanningInput) -> Option<CompressionPlan> {
        let wants_memory = input.budget.target_memory_bytes.is_some();
        let baseline_bytes = input.baseline.model_bytes as f64;
        let candidates: Vec<&QuantProbe> = input
            .quant_probes
            .iter()
            .filter(|p| p.error.is_none() && !self.tried_quant.contains(&p.mode))
            // A mode that left every weight in float (nothing it applies to) is a no-op.
            .filter(|p| (p.model_bytes as f64) < NO_OP_SIZE_RATIO * baseline_bytes)
            .filter(|p| {
                let shrink = baseline_bytes / p.model_bytes.max(1) as f64;
                // Measurably faster (the interleaved interval above 1) is worth it; so is much
                // smaller when not measurably slower, or smaller at all when the user set a
                // memory target (the report then says plainly if it got slower).
                match p.verdict() {
                    Some(SpeedVerdict::Faster) => true,
                    Some(SpeedVerdict::NotDistinguishable) => {
                        shrink >= MIN_QUANT_SHRINK || (wants_memory && shrink >= MIN_QUANT_GAIN)
                    }
                    Some(SpeedVerdict::Slower) => wants_memory && shrink >= MIN_QUANT_GAIN,
                    None => false,
                }
            })
            .collect();
        // Within `share` of the accuracy budget (its paired upper bound, the same test the
        // loop accepts with) and of the fidelity budget.
        let within = |p: &QuantProbe, share: f64| {
            let accuracy = match (p.accuracy_change, p.top1) {
                (Some(change), _) => {
                    change.drop_upper_bound(input.budget.acc_confidence)
                        <= input.budget.max_acc_drop * share
                }
                (None, None) => input.baseline.top1.is_none(),
                (None, Some(_)) => false,
            };
            accuracy
                && input
                    .budget
                    .min_cosine
                    .is_none_or(|m| p.cosine.is_some_and(|c| c >= 1.0 - share * (1.0 - m)))
        };
        // With a memory target size matters most; otherwise speed, then size.
        let score = |p: &QuantProbe| {
            let shrink = baseline_bytes / p.model_bytes.max(1) as f64;
            if wants_memory {
                shrink * p.speedup.sqrt()
            } else {
                p.speedup * shrink.sqrt()
            }
        };
        let best_of = |keep: &dyn Fn(&QuantProbe) -> bool| {
            candidates
                .iter()
                .copied()
                .filter(|p| keep(p))
                .max_by(|a, b| score(a).total_cmp(&score(b)))
        };
        // A mode that meets the whole budget alone ends the search (the loop stops after it);
        // else the best within QUANT_BUDGET_SHARE of the bounds, leaving room for pruning; else
        // the best within the bounds at all (pruning gets what is left).
        let (best, why) = match best_of(&|p| {
            within(p, 1.0)
                && crate::judge::budget_met(
                    &input.budget,
                    &input.baseline,
                    &p.as_evaluation(&input.baseline),
                )
        }) {
            Some(p) => (p, "it meets the whole budget alone"),
            None => match best_of(&|p| within(p, QUANT_BUDGET_SHARE)) {
                Some(p) => (p, "take it first, then prune"),
                None => (
                    best_of(&|p| within(p, 1.0))?,
                    "it uses more than half of the accuracy or fidelity budget, so pruning gets only the rest",
                ),
            },
        };
        self.tried_quant.insert(best.mode);
        self.last_quant = Some(best.mode);
        Some(CompressionPlan {
            rationale: format!(
                "{} quantization measured {} against the input, {:.1} % smaller, {}{}; {why}",
                best.label(),
                best.speed
                    .as_ref()
                    .map(|s| s.describe())
                    .unwrap_or_else(|| "speed not measured".into()),
                100.0 * (1.0 - best.model_bytes as f64 / baseline_bytes.max(1.0)),
                match (best.accuracy_change, best.top1) {
                    (Some(change), Some(top1)) => format!(
                        "top-1 {top1:.2} % (drop {:.2} on {} images)",
                        change.drop_points(),
                        change.samples
                    ),
                    _ => "no labels".into(),
                },
                best.cosine
                    .map(|c| format!(", output cosine {c:.5}"))
                    .unwrap_or_default()
            ),
            quantization: Some(QuantizationPlan {
                default: best.setting(),
                // A mixed probe's per-layer modes: the plan applies what was measured.
                layers: best.layers.clone(),
                rationale: format!(
                    "{} : the best measured mode by {}",
                    best.label(),
                    if wants_memory {
                        "size, then speed"
                    } else {
                        "speed, then size"
                    }
                ),
            }),
            ..CompressionPlan::empty("")
        })
    }
}

impl Planner for BuiltinPlanner {
    fn describe(&self) -> String {
        "builtin".into()
    }

    fn propose(
        &mut self,
        round: usize,
        input: &PlanningInput,
        context: &PlanContext,
        record: &mut Recorder<'_>,
        _measure: &mut dyn crate::planner::Measure,
    ) -> Result<Proposal, AgentError> {
        let plan = self.plan(input, context);
        let answer = serde_json::to_string_pretty(&plan).map_err(|e| AgentError::Step {
            step: "builtin plan".into(),
            reason: e.to_string(),
        })?;
        let outcome = validate(&plan, context);
        // Recorded like an LLM answer, so `--replay` treats every planner the same way.
        record(&TranscriptEntry {
            round,
            attempt: 1,
            planner: self.describe(),
            messages: Vec::new(),
            answer: Some(answer),
            error: outcome.as_ref().err().map(|e| e.to_string()),
            verdict: if outcome.is_ok() {
                "valid".into()
            } else {
                "rejected".into()
            },
            issues: outcome
                .as_ref()
                .map(|v| v.warnings().to_vec())
                .unwrap_or_else(|e| e.issues().to_vec()),
            structured: true,
            seconds: 0.0,
            tool_calls: Vec::new(),
        })?;
        Ok(match outcome {
            Ok(plan) => Proposal {
                plan: Some(plan),
                failure: None,
                attempts: 1,
                rejected_issues: Vec::new(),
                used: None,
            },
            Err(e) => Proposal {
                plan: None,
                failure: Some(e.to_string()),
                attempts: 1,
                rejected_issues: Vec::new(),
                used: None,
            },
        })
    }
}
