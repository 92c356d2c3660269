//! Run reports: what a `profagent compress` run did, for people.
//!
//! The agent writes `RUN_DIR/report.json` from a `profagent_record::RunReport`; this crate reads
//! the same type (exactly what gets rendered) and renders two files next to it:
//! - `report.html`: one self-contained page (inline CSS, inline SVG charts drawn with
//!   `plotters`, no scripts, no network): headline numbers, before/after table, the
//!   accuracy–latency–size trajectory across rounds, per-layer latency bars, the final model's
//!   pruning and quantization, every round's plan with its rationales and the validator's
//!   verdicts, quantization probes, machine and runtime;
//! - `report.md`: the same content as Markdown that renders on GitHub and reads as plain text.
//!
//! Modules: `model` (the run record's types from `profagent-record`, read directly: no second
//! model of the same JSON), `tables` (the content
//! both renderers share), `charts` (plotters SVG), `html`, `markdown`, `format` (units),
//! `fixture` (an example report shaped like a real run, for tests and docs).
pub mod charts;
pub mod error;
pub mod fixture;
pub mod format;
pub mod html;
pub mod markdown;
pub mod model;
pub mod tables;

use std::path::{Path, PathBuf};

pub use error::ReportError;
pub use html::render_html;
pub use markdown::render_markdown;
pub use model::{
    Budget, Evaluation, FinalResult, LatencyAt, LayerRow, ModelInfo, QuantProbe, ReplayInfo,
    RoundRecord, RunReport, REPORT_FORMAT,
};

/// The report files of a run directory.
pub const REPORT_JSON: &str = "report.json";
pub const REPORT_HTML: &str = "report.html";
pub const REPORT_MD: &str = "report.md";

/// The files `write_reports` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReports {
    pub html: PathBuf,
    pub markdown: PathBuf,
}

/// Renders `report` and writes `report.html` and `report.md` into `run_dir` (atomically: a
/// reader never sees a half-written file).
pub fn write_reports(run_dir: &Path, report: &RunReport) -> Result<WrittenReports, ReportError> {
    check_run_dir(run_dir)?;
    let html = run_dir.join(REPORT_HTML);
    let markdown = run_dir.join(REPORT_MD);
    write(&html, render_html(report).as_bytes())?;
    write(&markdown, render_markdown(report).as_bytes())?;
    Ok(WrittenReports { html, markdown })
}

/// Reads `run_dir/report.json` and (re)writes `report.html` and `report.md` from it.
pub fn regenerate(run_dir: &Path) -> Result<(RunReport, WrittenReports), ReportError> {
    check_run_dir(run_dir)?;
    let report = model::read(&run_dir.join(REPORT_JSON))?;
    let written = write_reports(run_dir, &report)?;
    Ok((report, written))
}

fn check_run_dir(run_dir: &Path) -> Result<(), ReportError> {
    match std::fs::metadata(run_dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(ReportError::NotADirectory {
            path: run_dir.to_path_buf(),
        }),
        Err(_) => Err(ReportError::MissingRunDir {
            path: run_dir.to_path_buf(),
        }),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    profagent_onnx::write_atomic(path, bytes).map_err(|e| ReportError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
