//! `RunReport`: the data model of a run report, exactly what `report.html` and `report.md` show.
//!
//! Its JSON shape is the agent's `report.json` (format `profagent-run/1`, written by
//! `profagent-agent`), read directly: same field names, every field the renderers can live
//! without is optional, unknown fields are ignored. The renderers need a few facts the agent's
//! evaluation keeps only inside its `details` (the evaluator's full `EvalRecord`): top-5,
//! batch-N latency, peak memory, params and MACs. `RunReport::from_json` lifts them into typed
//! fields (`Evaluation::fill_from_details`), so a report.json written before the agent filled
//! those fields itself still renders everything it measured.
//!
//! Extensions the agent may write (all optional, rendered when present):
//! - `layers[]`: per-layer latency of the baseline and final model (`LayerRow`);
//! - `final.chosen_round`: the round whose model was kept (default: last accepted round);
//! - `rounds[].rejected_issues[]`: validator errors on earlier answers of the round.
use std::collections::BTreeMap;

use profagent_plan::{CompressionPlan, PlanIssue, ResolvedPrune};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ReportError;
pub use profagent_stats::{Estimate, PairedAccuracy, SpeedComparison, SpeedVerdict};

/// Reads a number that may be null (unlabelled data has no top-1) as NaN.
fn nan_when_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// The report format this crate reads (the agent's `REPORT_FORMAT`).
pub const REPORT_FORMAT: &str = "profagent-run/1";

/// The record of one compression run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub tool_version: String,
    /// "builtin", "openai:gpt-4o", ...
    #[serde(default)]
    pub planner: String,
    pub model: ModelInfo,
    /// How the data was split (calibration / feedback / holdout), as the agent describes it.
    #[serde(default)]
    pub data: Value,
    /// Runtime, threads and CPU, as the agent describes them.
    #[serde(default)]
    pub machine: Value,
    pub budget: Budget,
    /// The input model on the feedback slice.
    pub baseline: Evaluation,
    /// Every quantization mode tried on the baseline.
    #[serde(default)]
    pub quant_probes: Vec<QuantProbe>,
    /// Top-1 cost of each heavy prunable group pruned alone, measured before planning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitivity: Vec<GroupSensitivity>,
    #[serde(default)]
    pub rounds: Vec<Round>,
    #[serde(rename = "final", default)]
    pub final_result: Option<FinalResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayInfo>,
    /// Wall time of the whole run, seconds.
    #[serde(default)]
    pub seconds: f64,
    /// Per-layer latency before and after (extension; empty when not measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub path: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub bytes: u64,
}

/// The user's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Largest allowed top-1 drop against the baseline, percentage points.
    pub max_acc_drop: f64,
    /// Batch-1 latency to reach, ms.
    #[serde(default)]
    pub target_latency_ms: Option<f64>,
    /// Model size to reach, bytes.
    #[serde(default)]
    pub target_memory_bytes: Option<u64>,
    /// Baseline latency / final latency to reach.
    #[serde(default)]
    pub target_speedup: Option<f64>,
    /// MACs to reach as a fraction of the baseline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_macs_fraction: Option<f64>,
    /// Smallest allowed mean output cosine with the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cosine: Option<f64>,
}

/// Median latency at one batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyAt {
    pub batch: usize,
    pub median_ms: f64,
}

/// Accuracy, speed and size of one model on one data slice. Accuracies in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Top-1 accuracy, percent; NaN when the data had no labels (written as null).
    #[serde(deserialize_with = "nan_when_null")]
    pub top1: f64,
    /// Wilson interval of `top1`, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_interval: Option<Estimate>,
    /// Against the input model, timed interleaved (for the input itself: against itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    /// Top-1 against the input model on the same images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_change: Option<PairedAccuracy>,
    /// Lowest per-image output cosine with the input model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_cosine: Option<f64>,
    /// Median batch-1 latency, ms.
    pub latency_ms: f64,
    /// Serialised model size, bytes.
    pub model_bytes: u64,
    /// Images evaluated.
    #[serde(default)]
    pub images: usize,
    /// Top-5 accuracy, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
    /// Median latency at the largest batch size measured above 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_batch: Option<LatencyAt>,
    /// Peak resident memory of the evaluating process, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<u64>,
    /// Multiply-accumulates at batch 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<u64>,
    /// Mean output cosine with the input model on the same images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f64>,
    /// Top-1 agreement with the input model, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// The evaluator's full record (kept as written).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// One quantization mode measured on the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantProbe {
    pub mode: String,
    pub latency_ms: f64,
    pub speedup: f64,
    /// The interleaved comparison with the input model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_change: Option<PairedAccuracy>,
    pub model_bytes: u64,
    #[serde(default)]
    pub top1: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One group pruned alone on the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSensitivity {
    pub group: String,
    pub ratio: f64,
    pub current: usize,
    pub keep: usize,
    #[serde(default)]
    pub top1: Option<f64>,
    #[serde(default)]
    pub drop: Option<f64>,
    #[serde(default)]
    pub loss_increase: Option<f64>,
    #[serde(default)]
    pub expected_drop: Option<f64>,
    /// 1 - mean output cosine with the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine_loss: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One round: plan, validation, candidate evaluation, verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
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
    /// Quantization mode per layer of this round's candidate.
    #[serde(default)]
    pub quantization: BTreeMap<String, String>,
    /// Validator warnings on the accepted plan.
    #[serde(default)]
    pub warnings: Vec<PlanIssue>,
    /// Validator errors on earlier answers of this round, which the planner then repaired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_issues: Vec<PlanIssue>,
    /// Why no plan was applied, when none was.
    #[serde(default)]
    pub failure: Option<String>,
    /// What the pruning / quantization steps reported.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub apply: Value,
    /// The candidate on the feedback slice.
    #[serde(default)]
    pub evaluation: Option<Evaluation>,
    /// The candidate timed against the current best, when that was not the input model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_vs_best: Option<SpeedComparison>,
    /// Top-1 drop against the baseline, points.
    #[serde(default)]
    pub acc_drop: Option<f64>,
    pub accepted: bool,
    /// The judge's decision ("accepted", "accuracy_at_risk", "slower", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Why accepted or rolled back.
    #[serde(default)]
    pub verdict: String,
    #[serde(default)]
    pub seconds: f64,
}

/// The model the run kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalResult {
    pub model_path: String,
    #[serde(default)]
    pub sha256: String,
    /// The chosen model on the feedback slice.
    pub feedback: Evaluation,
    /// Baseline and final on the holdout slice (never used for calibration or feedback).
    #[serde(default)]
    pub holdout_baseline: Option<Evaluation>,
    #[serde(default)]
    pub holdout_final: Option<Evaluation>,
    #[serde(default)]
    pub acc_drop: Option<f64>,
    /// 95 % interval of `acc_drop` (paired, holdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_interval: Option<Estimate>,
    #[serde(default)]
    pub speedup: Option<f64>,
    /// The final model timed against the input, interleaved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    /// Why later models were passed over at the final check, and plain warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// 1 - final size / baseline size.
    #[serde(default)]
    pub size_reduction: Option<f64>,
    pub budget_met: bool,
    #[serde(default)]
    pub stop_reason: String,
    #[serde(default)]
    pub accepted_rounds: Vec<usize>,
    /// The round whose candidate is the final model (default: the last accepted round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_round: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayInfo {
    pub source: String,
    pub recorded_sha256: String,
    pub identical: bool,
}

/// Median latency of one layer (module scope) in the baseline and in the final model, ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRow {
    pub layer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_type: Option<String>,
    #[serde(default)]
    pub before_ms: Option<f64>,
    /// None when the layer is gone from the final model or was not measured.
    #[serde(default)]
    pub after_ms: Option<f64>,
}

/// The channels of one prunable group in the input and in the final model.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPruning {
    pub group: String,
    pub original: usize,
    pub kept: usize,
    /// Round(s) that pruned it.
    pub rounds: Vec<usize>,
}

impl GroupPruning {
    /// Fraction of the original channels removed.
    pub fn removed_fraction(&self) -> f64 {
        if self.original == 0 {
            0.0
        } else {
            1.0 - self.kept as f64 / self.original as f64
        }
    }
}

impl RunReport {
    /// Parses a report.json text and lifts the evaluator details into typed fields.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let mut report: RunReport = serde_json::from_str(text)?;
        report.fill_from_details();
        Ok(report)
    }

    /// Reads and parses `path` (a report.json), naming the file in every error.
    pub fn read(path: &std::path::Path) -> Result<Self, ReportError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ReportError::MissingReportJson {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => {
                return Err(ReportError::Read {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
        let report = Self::from_json(&text).map_err(|e| ReportError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if !report.format.is_empty() && report.format != REPORT_FORMAT {
            return Err(ReportError::Malformed {
                path: path.to_path_buf(),
                reason: format!(
                    "format '{}' is not '{REPORT_FORMAT}'; regenerate it with this version of profagent",
                    report.format
                ),
            });
        }
        Ok(report)
    }

    /// Fills every evaluation's typed fields that are still empty from its `details`.
    pub fn fill_from_details(&mut self) {
        self.baseline.fill_from_details();
        for round in &mut self.rounds {
            if let Some(evaluation) = &mut round.evaluation {
                evaluation.fill_from_details();
            }
        }
        if let Some(result) = &mut self.final_result {
            for evaluation in [
                Some(&mut result.feedback),
                result.holdout_baseline.as_mut(),
                result.holdout_final.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                evaluation.fill_from_details();
            }
        }
    }

    /// A short model name: the input file's stem.
    pub fn model_name(&self) -> String {
        std::path::Path::new(&self.model.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.model.path.clone())
    }

    /// The round whose candidate became the final model, if any round was accepted.
    pub fn chosen_round(&self) -> Option<usize> {
        let result = self.final_result.as_ref()?;
        result
            .chosen_round
            .or_else(|| result.accepted_rounds.last().copied())
            .or_else(|| {
                self.rounds
                    .iter()
                    .filter(|r| r.accepted)
                    .map(|r| r.round)
                    .next_back()
            })
    }

    /// Baseline and final evaluations for the before/after table, with the slice they were
    /// measured on: the holdout slice when the run measured both there, else the feedback slice.
    pub fn before_after(&self) -> (&Evaluation, Option<&Evaluation>, &'static str) {
        match &self.final_result {
            Some(FinalResult {
                holdout_baseline: Some(before),
                holdout_final: Some(after),
                ..
            }) => (before, Some(after), "holdout"),
            Some(result) => (&self.baseline, Some(&result.feedback), "feedback"),
            None => (&self.baseline, None, "feedback"),
        }
    }

    /// Channels per group in the final model: the accepted rounds' pruning, composed.
    pub fn final_pruning(&self) -> Vec<GroupPruning> {
        let mut groups: Vec<GroupPruning> = Vec::new();
        for round in self.rounds.iter().filter(|r| r.accepted) {
            for resolved in &round.resolved_pruning {
                match groups.iter_mut().find(|g| g.group == resolved.group) {
                    Some(group) => {
                        group.kept = resolved.keep;
                        group.rounds.push(round.round);
                    }
                    None => groups.push(GroupPruning {
                        group: resolved.group.clone(),
                        original: resolved.current,
                        kept: resolved.keep,
                        rounds: vec![round.round],
                    }),
                }
            }
        }
        groups
    }

    /// Quantization mode per layer of the final model (the chosen round's candidate).
    pub fn final_quantization(&self) -> BTreeMap<String, String> {
        let chosen = self.chosen_round();
        self.rounds
            .iter()
            .find(|r| Some(r.round) == chosen)
            .map(|r| r.quantization.clone())
            .unwrap_or_default()
    }
}

impl Evaluation {
    /// Fills `top5`, `latency_batch`, `peak_memory_bytes`, `params` and `macs`, when still
    /// empty, from `details` read as an `EvalRecord` (accuracies there are fractions).
    pub fn fill_from_details(&mut self) {
        let details = &self.details;
        let number = |key: &str| details.get(key).and_then(Value::as_f64);
        let count = |key: &str| details.get(key).and_then(Value::as_u64);
        if self.top5.is_none() {
            self.top5 = number("top5").map(|fraction| fraction * 100.0);
        }
        if self.params.is_none() {
            self.params = count("params");
        }
        if self.macs.is_none() {
            self.macs = count("macs");
        }
        if self.peak_memory_bytes.is_none() {
            self.peak_memory_bytes = count("peak_rss_bytes");
        }
        if self.latency_batch.is_none() {
            self.latency_batch = details
                .get("latency")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|point| {
                    let batch = point.get("batch")?.as_u64()? as usize;
                    let median_ms = point.get("median_ms")?.as_f64()?;
                    (batch > 1).then_some(LatencyAt { batch, median_ms })
                })
                .max_by_key(|point| point.batch);
        }
    }
}
