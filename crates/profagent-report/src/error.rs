//! The error type of the report crate: every variant names the file at fault and what to do.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: the run directory does not exist; pass the directory a 'profagent compress' run wrote (it holds report.json)")]
    MissingRunDir { path: PathBuf },
    #[error("{path}: not a directory; pass the run directory that holds report.json")]
    NotADirectory { path: PathBuf },
    #[error("{path}: missing; this directory holds no run report (was it written by 'profagent compress', and did the run finish its first round?)")]
    MissingReportJson { path: PathBuf },
    #[error("{path}: cannot read: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: not a ProfAgent run report: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot serialise the run report: {0}")]
    Serialise(String),
    #[error("cannot draw the chart '{chart}': {reason}")]
    Chart { chart: &'static str, reason: String },
    #[error("{path}: cannot write: {reason}")]
    Write { path: PathBuf, reason: String },
}
