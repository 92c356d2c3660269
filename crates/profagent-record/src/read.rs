//! Reading a report.json back: the file, its format, and the one upgrade older files need.
//!
//! Reports written before `Evaluation` had typed `top5`, `latency_batch`,
//! `peak_memory_bytes` and `params` kept those numbers only in `details` (the evaluator's
//! `EvalRecord`, accuracies as fractions). `upgrade` copies them into the typed fields once,
//! on read, so such a report renders everything it measured; files this version writes carry
//! the typed fields and are left as they are.
use std::path::Path;

use serde_json::Value;

use crate::evaluation::{Evaluation, LatencyAt};
use crate::run::{RunReport, REPORT_FORMAT};
use crate::RecordError;

impl RunReport {
    /// Parses a report.json text (and upgrades what an older writer left in `details`).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let mut report: RunReport = serde_json::from_str(text)?;
        report.upgrade();
        Ok(report)
    }

    /// Reads and parses `path` (a report.json), naming the file in every error; a format
    /// other than `REPORT_FORMAT` is refused.
    pub fn read(path: &Path) -> Result<Self, RecordError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RecordError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => {
                return Err(RecordError::Read {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
        let report = Self::from_json(&text).map_err(|e| RecordError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if !report.format.is_empty() && report.format != REPORT_FORMAT {
            return Err(RecordError::Malformed {
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
    fn upgrade(&mut self) {
        let result = self.final_result.as_mut();
        let finals = result.into_iter().flat_map(|r| {
            [
                Some(&mut r.feedback),
                r.holdout_baseline.as_mut(),
                r.holdout_final.as_mut(),
            ]
        });
        let rounds = self.rounds.iter_mut().map(|r| r.evaluation.as_mut());
        for evaluation in [Some(&mut self.baseline)]
            .into_iter()
            .chain(rounds)
            .chain(finals)
            .flatten()
        {
            upgrade_evaluation(evaluation);
        }
    }
}

/// Lifts `top5`, `params`, `macs`, `peak_memory_bytes` and `latency_batch`, when still empty,
/// out of `details` read as an `EvalRecord`.
fn upgrade_evaluation(evaluation: &mut Evaluation) {
    let details = &evaluation.details;
    let number = |key: &str| details.get(key).and_then(Value::as_f64);
    let count = |key: &str| details.get(key).and_then(Value::as_u64);
    let top5 = number("top5").map(|fraction| fraction * 100.0);
    let (params, macs, peak) = (count("params"), count("macs"), count("peak_rss_bytes"));
    let latency_batch = details
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
    evaluation.top5 = evaluation.top5.or(top5);
    evaluation.params = evaluation.params.or(params);
    evaluation.macs = evaluation.macs.or(macs);
    evaluation.peak_memory_bytes = evaluation.peak_memory_bytes.or(peak);
    evaluation.latency_batch = evaluation.latency_batch.or(latency_batch);
}
