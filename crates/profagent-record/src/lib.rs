//! The run record: one set of types for `report.json` (format `profagent-run/1`).
//!
//! The compression loop in `profagent-agent` fills a `RunReport` and writes it; the
//! renderers in `profagent-report` read the same types; `--replay` reads it back to follow a
//! recorded run. It sits below both (it depends only on `profagent-plan` for the plan types
//! and `profagent-stats` for intervals), so neither the renderer needs the agent's network
//! code nor the agent the renderer's charts.
//!
//! Modules: `evaluation` (budget, evaluation of one model, probes, sensitivity), `run` (the
//! report, its rounds, final result, per-layer latencies, decisions and stop reasons),
//! `views` (plain readings: chosen round, final pruning), `read` (the file, its format, and
//! the upgrade of reports written before every field was typed).
pub mod evaluation;
mod read;
pub mod run;
pub mod views;

use std::path::PathBuf;

pub use evaluation::{
    Budget, CalibrationTrial, Estimate, Evaluation, GroupSensitivity, LatencyAt, Objective,
    QuantProbe, ACCURACY_CONFIDENCE,
};
pub use profagent_stats::{PairedAccuracy, SpeedComparison, SpeedVerdict};
pub use run::{
    Decision, FinalResult, LayerRow, ModelInfo, ReplayInfo, RoundRecord, RunReport, StopReason,
    REPORT_FORMAT,
};
pub use views::GroupPruning;

/// Reading a report.json failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: missing; this directory holds no run report (was it written by 'profagent compress', and did the run finish its first round?)")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: not a ProfAgent run report: {reason}")]
    Malformed { path: PathBuf, reason: String },
}
