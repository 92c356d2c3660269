//! The data model the renderers read: the run record's own types (`profagent-record`),
//! exactly what the loop writes to report.json. There is no second model of the same JSON:
//! reading a report is `RunReport::read` (which also upgrades reports written before every
//! rendered number had a typed field).
pub use profagent_record::*;

use crate::error::ReportError;

/// Reads `path` (a report.json), naming the file in every error.
pub fn read(path: &std::path::Path) -> Result<RunReport, ReportError> {
    RunReport::read(path).map_err(|e| match e {
        RecordError::Missing { path } => ReportError::MissingReportJson { path },
        RecordError::Read { path, reason } => ReportError::Read { path, reason },
        RecordError::Malformed { path, reason } => ReportError::Malformed { path, reason },
    })
}

/// Top-1 of an evaluation as the renderers show it: NaN (shown as "not measured (no
/// labels)") when the data had no labels.
pub fn top1(evaluation: &Evaluation) -> f64 {
    evaluation.top1.unwrap_or(f64::NAN)
}
