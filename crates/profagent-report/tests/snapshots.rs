//! Snapshot of report.md for a fixed report.json written by profagent 0.1.0 before every
//! rendered number had a typed field (`fixtures/report-0.1.0-main.json`, a real `compress` run
//! on the bundled CIFAR-10 sample); the example report built in code has its snapshot in
//! `render.rs`. A change to the Markdown shows up as a snapshot diff to
//! review (`cargo insta review`, or `INSTA_UPDATE=always` and read the .snap diff).
//!
//! What depends on the machine that made the run (its CPU description, wall times) is
//! filtered, so the snapshots pin the renderer, not the run's hardware.
use profagent_report::{render_markdown, RunReport};

/// The report.json of a run made by profagent 0.1.0 (main at f0ecfe2), and the report.md that
/// version rendered from it.
const LEGACY_JSON: &str = include_str!("fixtures/report-0.1.0-main.json");
const LEGACY_MARKDOWN: &str = include_str!("fixtures/report-0.1.0-main.md");

fn machine_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        // "- **Machine CPU model**: Intel(R) Xeon(R) ..." and the other machine lines.
        (r"(?m)^(- \*\*Machine [^*]+\*\*): .*$", "$1: [machine]"),
        // Wall times: "161.4 s", "2 min 41 s", "1 h 02 min".
        (r"\b\d+(\.\d+)? s\b", "[duration]"),
        (r"\b\d+ min \d{2} s\b", "[duration]"),
        (r"\b\d+ h \d{2} min\b", "[duration]"),
    ]
}

#[test]
fn legacy_report_json_markdown() {
    let report = RunReport::from_json(LEGACY_JSON).expect("a 0.1.0 report.json reads");
    let markdown = render_markdown(&report);
    insta::with_settings!({filters => machine_filters()}, {
        insta::assert_snapshot!("legacy_report_md", markdown);
    });
}

/// A report.json written before the record had typed top-5 and params renders exactly as the
/// version that wrote it rendered it (those numbers are lifted from `details` on read), apart
/// from the overview's Result row added since (the headline's words, repeated in the overview)
/// and the budget's confidence named since (a report without one was judged at the default 90 %).
#[test]
fn legacy_report_json_renders_as_its_own_version_did() {
    let report = RunReport::from_json(LEGACY_JSON).expect("a 0.1.0 report.json reads");
    let rendered = render_markdown(&report);
    let result_row = rendered
        .lines()
        .find(|l| l.starts_with("- **Result**: "))
        .expect("the overview's Result row");
    assert!(rendered.contains(&format!(
        "**Result: {}.**",
        result_row.trim_start_matches("- **Result**: ")
    )));
    let without_row: String = rendered
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("- **Result**: "))
        .collect::<String>()
        .replacen(" (90 % one-sided confidence)", "", 1);
    assert!(rendered.contains("top-1 drop ≤ 1.00 pp (90 % one-sided confidence)"));
    assert_eq!(without_row, LEGACY_MARKDOWN);
    // Top-5 was only in `details` there (a fraction); the record reads it in percent.
    let top5 = report.baseline.top5.expect("top-5 lifted from details");
    assert!((top5 - 99.166_666_666).abs() < 1e-6, "{top5}");
}
