//! `report.json`: the record of a compression run, one object.
//!
//! Structure (stable; `profagent-report` renders it):
//! - `format`: "profagent-run/1"; `tool_version`; `planner` ("builtin", "openai:gpt-4o", ...)
//! - `model`: input path, sha256, bytes; `data`: how the data was split (calibration /
//!   feedback / holdout); `machine`: runtime, threads, CPU as the workbench describes them
//! - `budget`: max_acc_drop (points) and the optional latency / memory / speedup targets
//! - `baseline`: evaluation of the input model on the feedback slice
//! - `quant_probes[]`: every quantization mode tried on the baseline (latency, size, top-1)
//! - `sensitivity[]`: top-1 drop of each heavy prunable group pruned alone (`SENSITIVITY_RATIO`)
//! - `rounds[]`: per round the plan, its rationale, the validator's warnings, the answers it
//!   took, what the appliers reported, the feedback evaluation, `accepted` and `verdict` (why)
//! - `final`: the chosen model (`model.onnx` sha256), feedback evaluation, and baseline and
//!   final evaluations on the holdout slice measured in the same run, with drop, speedup and
//!   size reduction, `budget_met` and `stop_reason`
//! - `replay` (replays only): which run was replayed and whether the model came out identical
use serde::{Deserialize, Serialize};

use profagent_plan::{CompressionPlan, PlanIssue, ResolvedPrune};

use crate::compressor::StopReason;
use crate::facts::{Budget, Estimate, Evaluation, GroupSensitivity, QuantProbe, SpeedComparison};
use crate::judge::Decision;

pub const REPORT_FORMAT: &str = "profagent-run/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: usize,
    pub planner: String,
    /// Answers the planner needed (1 + repairs).
    pub attempts: usize,
    /// The validated plan (absent when no valid plan came out).
    pub plan: Option<CompressionPlan>,
    /// The plan's pruning resolved to groups and exact channel counts.
    #[serde(default)]
    pub resolved_pruning: Vec<ResolvedPrune>,
    /// Quantization mode per layer in effect for this round's candidate.
    #[serde(default)]
    pub quantization: std::collections::BTreeMap<String, String>,
    /// Validator warnings on the plan.
    #[serde(default)]
    pub warnings: Vec<PlanIssue>,
    /// Why no plan was applied, when none was.
    pub failure: Option<String>,
    /// What the pruning / quantization steps reported.
    #[serde(default)]
    pub apply: serde_json::Value,
    /// The candidate on the feedback slice (its `speed`: against the input model).
    pub evaluation: Option<Evaluation>,
    /// The candidate timed against the current best (interleaved), when that was not the
    /// input model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_vs_best: Option<SpeedComparison>,
    /// Top-1 drop against the baseline, points (paired, same images).
    pub acc_drop: Option<f64>,
    pub accepted: bool,
    /// The judge's decision (absent when nothing was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Why accepted or rejected.
    pub verdict: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalResult {
    pub model_path: String,
    pub sha256: String,
    /// The chosen model on the feedback slice (as in the round that produced it).
    pub feedback: Evaluation,
    /// Baseline and final on the holdout slice (never used for calibration or feedback).
    pub holdout_baseline: Option<Evaluation>,
    pub holdout_final: Option<Evaluation>,
    /// Holdout top-1 drop, points (paired with the input model on the same images).
    pub acc_drop: Option<f64>,
    /// 95 % interval of `acc_drop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_interval: Option<Estimate>,
    /// Median speedup of the final model against the input (`speed` has the interval).
    pub speedup: Option<f64>,
    /// The final model timed against the input, interleaved on holdout inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    /// 1 - final size / baseline size.
    pub size_reduction: Option<f64>,
    pub budget_met: bool,
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
    pub accepted_rounds: Vec<usize>,
}

/// Per-layer latency of the input and the final model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRow {
    pub layer: String,
    pub op_type: String,
    pub before_ms: Option<f64>,
    pub after_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayInfo {
    pub source: String,
    pub recorded_sha256: String,
    pub identical: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub format: String,
    pub tool_version: String,
    pub planner: String,
    pub model: ModelInfo,
    #[serde(default)]
    pub data: serde_json::Value,
    #[serde(default)]
    pub machine: serde_json::Value,
    pub budget: Budget,
    pub baseline: Evaluation,
    #[serde(default)]
    pub quant_probes: Vec<QuantProbe>,
    /// Per-group pruning sensitivity measured on the baseline (empty when not measured).
    #[serde(default)]
    pub sensitivity: Vec<GroupSensitivity>,
    pub rounds: Vec<RoundRecord>,
    #[serde(rename = "final")]
    pub final_result: Option<FinalResult>,
    #[serde(default)]
    pub replay: Option<ReplayInfo>,
    pub seconds: f64,
    /// Per-layer latency before and after (empty when not measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerRow>,
}

impl RunReport {
    pub fn read(path: &std::path::Path) -> Result<Self, crate::AgentError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| crate::AgentError::run_dir(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| crate::AgentError::run_dir(path, format!("not a ProfAgent report: {e}")))
    }
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
