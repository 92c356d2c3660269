//! What a validated plan is expected to do before it is applied, from the planner's own facts:
//! MACs and params removed, latency saved (the measured per-layer ms), each layer counted once
//! even when it sits between two pruned groups (`coupling`), and the top-1 drop predicted from
//! the measured sensitivities: a first-order estimate (interactions between groups' accuracy
//! losses are ignored), labelled as such wherever it is shown. The LLM planner hears them
//! before a plan is applied (a plan whose predicted drop exceeds the budget left goes back),
//! and the guardrail compares proposals by them.
use serde::{Deserialize, Serialize};

use profagent_plan::{PlanContext, ValidatedPlan};

use crate::coupling::Coupling;
use crate::facts::{GroupFacts, PlanningInput};

/// A plan's predicted effect on the current model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanEstimate {
    /// MACs removed: every layer the plan's groups touch loses the share of its MACs the cuts
    /// of the groups it writes and reads take together (`coupling::Coupling`).
    pub macs_removed: u64,
    /// MACs of the current model after the plan, when the current MACs are known.
    pub macs_after: Option<u64>,
    /// `macs_after` as a fraction of the input model's MACs.
    pub macs_fraction_after: Option<f64>,
    pub params_removed: u64,
    /// Latency saved, ms (each touched layer's measured ms times the share of its MACs removed;
    /// `None` when nothing the plan touches has a measured latency).
    pub latency_saved_ms: Option<f64>,
    /// Top-1 points the plan is expected to cost on top of the current model: each measured
    /// group's drop on its measured curve (`GroupFacts::expected_drop_at`: quadratic up to the
    /// probed ratio, measured between it and a deeper probe where there is one), summed; plus a quantization probe's
    /// measured drop when the plan adds quantization the current model lacks.
    pub expected_drop: f64,
    /// Groups in the plan without a sensitivity measurement (their cost is unknown, not 0).
    pub unmeasured: Vec<String>,
}

impl PlanEstimate {
    /// "removes 31.2 MMACs (to 64.0 % of the input's), saves about 0.84 ms, expected top-1 drop
    /// 0.42 points (estimate; unmeasured: a, b)".
    pub fn describe(&self) -> String {
        let mut parts = vec![format!(
            "removes {:.1} MMACs",
            self.macs_removed as f64 / 1e6
        )];
        if let Some(f) = self.macs_fraction_after {
            parts[0].push_str(&format!(" (to {:.1} % of the input's)", f * 100.0));
        }
        if let Some(ms) = self.latency_saved_ms {
            parts.push(format!("saves about {ms:.2} ms"));
        }
        parts.push(format!(
            "expected top-1 drop {:.2} points",
            self.expected_drop
        ));
        let mut text = parts.join(", ");
        text.push_str(" (an estimate from the measured sensitivities");
        if !self.unmeasured.is_empty() {
            text.push_str(&format!(
                "; not measured, so not counted: {}",
                self.unmeasured.join(", ")
            ));
        }
        text.push(')');
        text
    }
}

/// Expected top-1 drop of removing `extra` more units (channels, or heads of a heads group)
/// of `group` beyond what it has lost since it was probed, on its measured curve
/// (`GroupFacts::expected_drop_at`, over the fraction of the units it had when probed); `None`
/// without a measurement.
pub fn expected_group_drop(group: &GroupFacts, extra: usize) -> Option<f64> {
    let now = group.units();
    let from = group.probed_from.unwrap_or(now).max(1) as f64;
    let before = (from - now as f64).max(0.0);
    let curve = |removed: f64| group.expected_drop_at(removed / from, 0.0);
    Some(curve(before + extra as f64)? - curve(before)?)
}

/// The estimate of `plan` applied to the model `input` describes (`context`: the groups'
/// layers, so that a layer two cut groups share counts once).
pub fn estimate(
    plan: &ValidatedPlan,
    input: &PlanningInput,
    context: &PlanContext,
) -> PlanEstimate {
    let mut out = PlanEstimate::default();
    let mut groups = Vec::new();
    let mut fractions = Vec::new();
    for decision in plan.pruning() {
        let Some(group) = input.groups.iter().find(|g| g.id == decision.group) else {
            continue;
        };
        let removed = decision.current.saturating_sub(decision.keep);
        groups.push(group);
        fractions.push(removed as f64 / decision.current.max(1) as f64);
        match expected_group_drop(group, removed) {
            Some(drop) => out.expected_drop += drop,
            None => out.unmeasured.push(group.id.clone()),
        }
    }
    let removed = Coupling::new(&groups, input, context).removed(&fractions);
    out.macs_removed = removed.macs.round() as u64;
    out.params_removed = removed.params.round() as u64;
    out.latency_saved_ms = removed.ms;
    if let Some(now) = input.current.macs {
        let after = now.saturating_sub(out.macs_removed);
        out.macs_after = Some(after);
        out.macs_fraction_after = input
            .baseline
            .macs
            .filter(|b| *b > 0)
            .map(|b| after as f64 / b as f64);
    }
    // Quantization the current model lacks: the probe of that mode measured its drop.
    if input.current_quantization == "none" {
        if let Some(modes) = plan.quantization() {
            let probe_drop = modes
                .values()
                .filter(|s| s.mode != profagent_plan::QuantMode::None)
                .filter_map(|s| {
                    input
                        .quant_probes
                        .iter()
                        .find(|p| p.mode == s.mode && p.error.is_none())
                })
                .filter_map(|p| p.top1.zip(input.baseline.top1).map(|(q, b)| b - q))
                .fold(None, |acc: Option<f64>, d| {
                    Some(acc.map_or(d, |a| a.max(d)))
                });
            out.expected_drop += probe_drop.unwrap_or(0.0).max(0.0);
        }
    }
    out
}

/// The accuracy budget left on the current model, points.
pub fn accuracy_left(input: &PlanningInput) -> f64 {
    (input.budget.max_acc_drop - input.drop_of(input.current.top1)).max(0.0)
}

/// Share of the input model's top-1 error rate taken as the expected share of feedback images
/// a candidate and the input model disagree on (one right, the other wrong) before any round
/// has measured it. Measured in compress runs within a 1-point budget (bench/planner_vs_uniform.py
/// runs, 2,000-2,250 feedback images): resnet18_cifar10 (about 7 % error) 1.1-2.7 % of the
/// images, resnet20_cifar10 (about 12 %) 3.0-4.2 %, vit_tiny_cifar10 (about 19 %) 0.8-8.1 %:
/// 0.04-0.43 of the error rate. Half the error rate made resnet18's first round plan for 3.8 %
/// where it measured 1.1 %, and leave most of the budget unused.
pub const PRIOR_DISAGREEMENT_PER_ERROR: f64 = 0.3;

/// How far below the accuracy budget a candidate's measured drop has to stay for the loop's
/// paired bound to accept it: the loop accepts a candidate only when the `ACCURACY_CONFIDENCE`
/// upper bound of its drop is within the budget, and that bound sits `points` above the
/// measured drop on `images` feedback images where the two models disagree on `disagreement`
/// of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceMargin {
    pub points: f64,
    pub images: usize,
    /// Expected share of the feedback images the candidate and the input model disagree on.
    pub disagreement: f64,
    /// One-sided confidence of the bound (`Budget::acc_confidence`).
    pub confidence: f64,
    /// True when `disagreement` was measured in this run (the largest of the rounds so far),
    /// false when it is the prior (`PRIOR_DISAGREEMENT_PER_ERROR` times the input's error).
    pub measured: bool,
}

impl ConfidenceMargin {
    /// "0.43 points: the 90 % bound on 2250 feedback images where about 2.5 % of the answers
    /// change (the most measured in this run); more feedback images (--feedback-samples) narrow
    /// it".
    pub fn describe(&self) -> String {
        format!(
            "{:.2} points: the {:.0} % bound on {} feedback images where about {:.1} % of the answers change ({})",
            self.points,
            self.confidence * 100.0,
            self.images,
            self.disagreement * 100.0,
            if self.measured {
                "the most measured in this run"
            } else {
                "expected from the input's error rate; no round measured yet"
            }
        ) + "; more feedback images (--feedback-samples) narrow it"
    }
}

/// The margin the next candidate's measured drop has to leave below the accuracy budget
/// (`ConfidenceMargin`), from the largest disagreement a round of this run within the budget's
/// drop measured (candidates only grow more different from the input), else the prior from the
/// input's error rate. `None` without labels or feedback images.
pub fn confidence_margin(input: &PlanningInput) -> Option<ConfidenceMargin> {
    let top1 = input.baseline.top1?;
    // Each round's candidate against the input (the current model is the last accepted one;
    // before round 1 it is the input itself, which disagrees with nothing).
    let changes = input.history.iter().filter_map(|r| r.accuracy_change);
    // Rounds that lost more than the budget (a rejected deep cut) say nothing about the
    // candidates that matter here: the ones near the bound.
    let measured = changes
        .filter(|p| p.samples > 0 && p.drop_points() <= input.budget.max_acc_drop)
        .map(|p| (p.only_baseline + p.only_candidate) as f64 / p.samples as f64)
        .fold(None, |acc: Option<f64>, d| {
            Some(acc.map_or(d, |a| a.max(d)))
        });
    let images = input
        .current
        .accuracy_change
        .map(|p| p.samples)
        .unwrap_or(input.baseline.images);
    if images == 0 {
        return None;
    }
    let prior = PRIOR_DISAGREEMENT_PER_ERROR * (1.0 - top1 / 100.0).clamp(0.0, 1.0);
    let disagreement = measured.unwrap_or(prior);
    let confidence = input.budget.acc_confidence;
    let z = profagent_stats::one_sided_z(confidence);
    Some(ConfidenceMargin {
        points: z * 100.0 * (disagreement / images as f64).sqrt(),
        images,
        disagreement,
        confidence,
        measured: measured.is_some(),
    })
}

/// A plan may always spend at least this share of the accuracy budget left, however large the
/// confidence margin (`confidence_margin`): measured drops move both ways, so a small round
/// near the bound can still pass, and each outcome measures the margin again. The margin sizes
/// rounds; only the budget left itself stops pruning.
pub const MARGIN_FLOOR: f64 = 0.25;

/// The accuracy a plan may spend this round: the budget left less the confidence margin the
/// loop's paired bound needs (a round measured to cost the whole budget left is rejected), at
/// least `MARGIN_FLOOR` of the budget left. The built-in planner sizes its rounds from it, and
/// the estimate guard holds LLM plans to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundBudget {
    /// Points a plan's expected top-1 drop may use.
    pub points: f64,
    /// The accuracy budget left itself (`accuracy_left`).
    pub left: f64,
    pub margin: Option<ConfidenceMargin>,
}

impl RoundBudget {
    /// What `points` is, after "the 0.53 points of ": "accuracy budget left beyond the
    /// confidence margin of 0.70 points: ...", or the floor and what the margin would leave.
    pub fn describe(&self) -> String {
        let left = self.left;
        match self.margin {
            Some(m) if left - m.points < MARGIN_FLOOR * left => format!(
                "accuracy budget left for this round ({:.0} % of the {left:.2} left: the confidence margin of {} would leave {:.2})",
                MARGIN_FLOOR * 100.0,
                m.describe(),
                (left - m.points).max(0.0)
            ),
            Some(m) => format!(
                "accuracy budget left beyond the confidence margin of {}",
                m.describe()
            ),
            None => "accuracy budget left".into(),
        }
    }
}

/// This round's accuracy budget (`RoundBudget`).
pub fn round_budget(input: &PlanningInput) -> RoundBudget {
    let left = accuracy_left(input);
    let margin = confidence_margin(input);
    RoundBudget {
        points: margin.map_or(left, |m| (left - m.points).max(MARGIN_FLOOR * left)),
        left,
        margin,
    }
}

/// Why `estimate` cannot fit the budget (its expected drop exceeds this round's accuracy
/// budget, `round_budget`), or `None`.
pub fn over_budget(estimate: &PlanEstimate, input: &PlanningInput) -> Option<String> {
    // Without labels there is no accuracy budget to exceed.
    input.baseline.top1?;
    let budget = round_budget(input);
    (estimate.expected_drop > budget.points).then(|| {
        format!(
            "before it is applied, the plan {}: that is more than the {:.2} points of {}, so it would most likely be rejected. Remove fewer units from the most sensitive groups, or spread the cut over cheaper groups.",
            estimate.describe(),
            budget.points,
            budget.describe()
        )
    })
}

/// Name of the estimate tool offered to LLM planners that can call tools.
pub const ESTIMATE_TOOL: &str = "estimate_plan";

/// The estimate as a tool: its arguments are a candidate plan (the plan schema).
pub fn estimate_tool_spec(plan_schema: &serde_json::Value) -> crate::provider::ToolSpec {
    crate::provider::ToolSpec {
        name: ESTIMATE_TOOL,
        description: "Estimate a candidate compression plan before answering: it is validated \
            against the model and, if valid, you get the MACs and parameters it removes, the \
            model's MACs after it as a fraction of the input's, the latency it saves (from the \
            measured per-group milliseconds), its expected top-1 drop (first-order estimate from \
            the measured sensitivities) and whether that exceeds this round's accuracy budget (the \
            budget left less the confidence margin the loop's bound needs). Call \
            it with candidate plans (a few per round), then answer with the final plan as JSON.",
        parameters: plan_schema.clone(),
    }
}

/// What the estimate tool answers for `arguments` (a plan as JSON text): the plan's estimate
/// and budget verdict, or why it is not a valid plan; always a JSON object as text.
pub fn estimate_tool(
    arguments: &str,
    input: &PlanningInput,
    context: &profagent_plan::PlanContext,
) -> String {
    let outcome =
        profagent_plan::parse_plan(arguments).and_then(|p| profagent_plan::validate(&p, context));
    let answer = match outcome {
        Ok(plan) => {
            let estimate = estimate(&plan, input, context);
            let over = over_budget(&estimate, input);
            serde_json::json!({
                "valid": true,
                "summary": estimate.describe(),
                "estimate": estimate,
                "accuracy_budget_left_points": input.baseline.top1.map(|_| accuracy_left(input)),
                "round_budget_points": input.baseline.top1.map(|_| round_budget(input).points),
                "within_budget": over.is_none(),
                "over_budget": over,
                "warnings": plan.warnings().iter().map(|w| w.message.clone()).collect::<Vec<_>>(),
            })
        }
        Err(error) => serde_json::json!({"valid": false, "error": error.to_string()}),
    };
    answer.to_string()
}
