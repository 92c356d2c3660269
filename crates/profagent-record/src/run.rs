//! `report.json`: the record of a compression run, one object.
//!
//! Structure (format `profagent-run/1`):
//! - `format`, `tool_version`, `planner` ("builtin", "openai:gpt-4o", ...)
//! - `model`: input path, sha256, bytes; `data`: how the data was split (calibration /
//!   feedback / holdout); `machine`: runtime, threads, CPU as the workbench describes them
//! - `budget`: max_acc_drop (points) and the optional latency / memory / speedup / MACs /
//!   fidelity targets
//! - `baseline`: evaluation of the input model on the feedback slice
//! - `quant_probes[]`: every quantization mode tried on the baseline (latency, size, top-1)
//! - `sensitivity[]`: top-1 drop of each heavy prunable group pruned alone
//! - `rounds[]`: per round the plan, its rationale, the validator's warnings and the issues of
//!   answers it rejected, what the appliers reported, the feedback evaluation, `accepted`,
//!   `decision` and `verdict` (why)
//! - `final`: the chosen model (`model.onnx` sha256), feedback evaluation, and baseline and
//!   final evaluations on the holdout slice measured in the same run, with drop, speedup and
//!   size reduction, `budget_met` and `stop_reason`
//! - `layers[]`: per-layer latency of the input and the final model
//! - `replay` (replays only): which run was replayed and whether the model came out identical
//!
//! Every field a report written by an earlier 0.1 version may lack has a default, so such a
//! report still reads (and `crate::read` lifts what it kept only in `details`).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use profagent_plan::{CompressionPlan, PlanIssue, ResolvedPrune};
use profagent_stats::SpeedComparison;

use crate::evaluation::{Budget, Estimate, Evaluation, GroupSensitivity, QuantProbe};

/// The format this crate writes and reads.
pub const REPORT_FORMAT: &str = "profagent-run/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub path: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub bytes: u64,
}

/// What became of a candidate (the judge's decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    /// The paired top-1 comparison leaves a drop beyond the budget too likely.
    AccuracyAtRisk,
    /// Mean output cosine below `--min-cosine`.
    FidelityBroken,
    /// Measurably slower than the current best under a speed objective.
    Slower,
    /// Not measurably better on the objective.
    NoGain,
}

impl Decision {
    pub fn accepted(self) -> bool {
        self == Decision::Accepted
    }

    /// The name report.json uses ("accepted", "accuracy_at_risk", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::AccuracyAtRisk => "accuracy_at_risk",
            Decision::FidelityBroken => "fidelity_broken",
            Decision::Slower => "slower",
            Decision::NoGain => "no_gain",
        }
    }
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StopReason {
    BudgetMet {
        after_round: usize,
    },
    RoundsUsed {
        rounds: usize,
    },
    PlannerDone {
        round: usize,
    },
    NoImprovement {
        rounds: usize,
    },
    /// The user stopped the run (Ctrl-C) after this many rounds; the final check was not run.
    Interrupted {
        after_round: usize,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::BudgetMet { after_round } => {
                write!(f, "budget met after round {after_round}")
            }
            StopReason::RoundsUsed { rounds } => write!(f, "all {rounds} rounds used"),
            StopReason::PlannerDone { round } => {
                write!(f, "planner had nothing more to propose in round {round}")
            }
            StopReason::NoImprovement { rounds } => {
                write!(f, "no improvement in {rounds} round(s) in a row")
            }
            StopReason::Interrupted { after_round } => {
                write!(f, "interrupted (Ctrl-C) after round {after_round}")
            }
        }
    }
}

/// One round: plan, validation, candidate evaluation, verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: usize,
    #[serde(default)]
    pub planner: String,
    /// Answers the planner needed (1 + repairs).
    #[serde(default)]
    pub attempts: usize,
    /// The validated plan (absent when no valid plan came out).
    #[serde(default)]
    pub plan: Option<CompressionPlan>,
    /// The plan's pruning resolved to groups and exact channel counts.
    #[serde(default)]
    pub resolved_pruning: Vec<ResolvedPrune>,
    /// Quantization mode per layer in effect for this round's candidate.
    #[serde(default)]
    pub quantization: BTreeMap<String, String>,
    /// Validator warnings on the plan.
    #[serde(default)]
    pub warnings: Vec<PlanIssue>,
    /// Validator errors on earlier answers of this round, which the planner then repaired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_issues: Vec<PlanIssue>,
    /// Why no plan was applied, when none was.
    #[serde(default)]
    pub failure: Option<String>,
    /// What the pruning / quantization steps reported.
    #[serde(default)]
    pub apply: serde_json::Value,
    /// The candidate on the feedback slice (its `speed`: against the input model).
    #[serde(default)]
    pub evaluation: Option<Evaluation>,
    /// The candidate timed against the current best (interleaved), when that was not the
    /// input model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_vs_best: Option<SpeedComparison>,
    /// Top-1 drop against the baseline, points (paired, same images).
    #[serde(default)]
    pub acc_drop: Option<f64>,
    pub accepted: bool,
    /// The judge's decision (absent when nothing was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Why accepted or rejected.
    #[serde(default)]
    pub verdict: String,
    /// Pruning sensitivity re-measured on this round's model after it was accepted (the
    /// groups planners are likely to touch next, each pruned alone from the accepted model and
    /// compared with it on the feedback slice); empty when nothing was re-measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitivity: Vec<crate::GroupSensitivity>,
    #[serde(default)]
    pub seconds: f64,
}

/// The model the run kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalResult {
    pub model_path: String,
    #[serde(default)]
    pub sha256: String,
    /// The chosen model on the feedback slice (as in the round that produced it).
    pub feedback: Evaluation,
    /// Baseline and final on the holdout slice (never used for calibration or feedback).
    #[serde(default)]
    pub holdout_baseline: Option<Evaluation>,
    #[serde(default)]
    pub holdout_final: Option<Evaluation>,
    /// Holdout top-1 drop, points (paired with the input model on the same images).
    #[serde(default)]
    pub acc_drop: Option<f64>,
    /// 95 % interval of `acc_drop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_interval: Option<Estimate>,
    /// Median speedup of the final model against the input (`speed` has the interval).
    #[serde(default)]
    pub speedup: Option<f64>,
    /// The final model timed against the input, interleaved on holdout inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    /// 1 - final size / baseline size.
    #[serde(default)]
    pub size_reduction: Option<f64>,
    pub budget_met: bool,
    #[serde(default)]
    pub stop_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopReason>,
    /// The round whose model was kept (0: the input model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_round: Option<usize>,
    /// Why later models were passed over at the final check, and other plain warnings
    /// (e.g. "the final model is slower than the input").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    #[serde(default)]
    pub accepted_rounds: Vec<usize>,
}

/// Median latency of one layer (module scope) in the input and in the final model, ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRow {
    pub layer: String,
    #[serde(default)]
    pub op_type: String,
    #[serde(default)]
    pub before_ms: Option<f64>,
    /// `None` when the layer is gone from the final model or was not measured.
    #[serde(default)]
    pub after_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayInfo {
    pub source: String,
    pub recorded_sha256: String,
    pub identical: bool,
}

/// The record of one compression run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub tool_version: String,
    #[serde(default)]
    pub planner: String,
    pub model: ModelInfo,
    /// How the data was split (calibration / feedback / holdout).
    #[serde(default)]
    pub data: serde_json::Value,
    /// Runtime, threads and CPU, as the workbench describes them.
    #[serde(default)]
    pub machine: serde_json::Value,
    pub budget: Budget,
    /// The input model on the feedback slice.
    pub baseline: Evaluation,
    #[serde(default)]
    pub quant_probes: Vec<QuantProbe>,
    /// Per-group pruning sensitivity measured on the baseline (empty when not measured).
    #[serde(default)]
    pub sensitivity: Vec<GroupSensitivity>,
    #[serde(default)]
    pub rounds: Vec<RoundRecord>,
    #[serde(rename = "final", default)]
    pub final_result: Option<FinalResult>,
    #[serde(default)]
    pub replay: Option<ReplayInfo>,
    /// Wall time of the whole run, seconds.
    #[serde(default)]
    pub seconds: f64,
    /// Per-layer latency before and after (empty when not measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerRow>,
}
