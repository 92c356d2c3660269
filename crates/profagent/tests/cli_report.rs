//! `profagent report RUN_DIR`: regenerates report.html and report.md from report.json, reads
//! the report.json the agent crate writes, and fails with exit code 2 and a message naming the
//! file for a missing directory, a missing report.json or a malformed one.
use std::path::Path;
use std::process::{Command, Output};

use profagent_report::fixture::example_report;

fn profagent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run profagent")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn run_report(dir: &Path) -> Output {
    profagent(&["report", dir.to_str().unwrap()])
}

#[test]
fn regenerates_both_reports_from_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = serde_json::to_string_pretty(&example_report()).unwrap();
    std::fs::write(dir.path().join("report.json"), json).unwrap();

    let output = profagent(&["report", dir.path().to_str().unwrap(), "--json", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["rounds"], 3);
    assert_eq!(summary["chosen_round"], 3);
    assert_eq!(summary["budget_met"], true);

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let markdown = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert_eq!(html, profagent_report::render_html(&example_report()));
    assert_eq!(
        markdown,
        profagent_report::render_markdown(&example_report())
    );
}

#[test]
fn missing_run_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-run");
    let output = run_report(&missing);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("no-such-run") && message.contains("does not exist"),
        "{message}"
    );
}

#[test]
fn missing_report_json_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_report(dir.path());
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("report.json") && message.contains("missing"),
        "{message}"
    );
    assert!(
        !dir.path().join("report.html").exists(),
        "nothing may be written without a report.json"
    );
}

#[test]
fn malformed_report_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        ("{ not json", "not a ProfAgent run report"),
        (
            r#"{"format": "profagent-run/1", "rounds": []}"#,
            "missing field",
        ),
        (
            r#"{"format": "someone-else/9", "model": {"path": "m.onnx"}, "budget": {"max_acc_drop": 1.0},
             "baseline": {"top1": 1.0, "latency_ms": 1.0, "model_bytes": 1}}"#,
            "someone-else/9",
        ),
    ] {
        std::fs::write(dir.path().join("report.json"), text).unwrap();
        let output = run_report(dir.path());
        assert_eq!(output.status.code(), Some(2), "{text}");
        let message = stderr(&output);
        assert!(
            message.contains("report.json") && message.contains(expected),
            "{text}: {message}"
        );
    }
}

/// The report.json the agent crate writes (its own types, serialised) renders.
#[test]
fn reads_the_agent_report_json() {
    use profagent_agent::report as agent;
    use profagent_agent::{Budget, Evaluation};

    let evaluation = |top1: f64, latency_ms: f64, model_bytes: u64| Evaluation {
        top5: None,
        latency_batch: None,
        peak_memory_bytes: None,
        params: None,
        top1: Some(top1),
        top1_interval: None,
        latency_ms,
        speed: Some(profagent_agent::facts::SpeedComparison::known(
            0.9, latency_ms, 0.02,
        )),
        accuracy_change: None,
        correct: None,
        worst_cosine: Some(0.998),
        model_bytes,
        images: 500,
        loss: None,
        macs: None,
        cosine: Some(0.9995),
        agreement: Some(98.0),
        details: serde_json::json!({"top5": 0.99, "params": 272474, "macs": 40810000,
            "latency": [{"batch": 1, "median_ms": latency_ms, "p90_ms": latency_ms, "runs": 5},
                        {"batch": 8, "median_ms": latency_ms * 6.0, "p90_ms": latency_ms * 6.0, "runs": 5}]}),
    };
    let plan = profagent_plan::CompressionPlan::empty("quantize only");
    let report = agent::RunReport {
        format: agent::REPORT_FORMAT.into(),
        tool_version: "0.1.0".into(),
        planner: "builtin".into(),
        model: agent::ModelInfo {
            path: "resnet20_cifar10.onnx".into(),
            sha256: "ab".into(),
            bytes: 1_096_544,
        },
        data: serde_json::json!({"feedback": "500 images"}),
        machine: serde_json::json!({"runtime": "onnxruntime 1.32.0", "threads": 1}),
        budget: Budget {
            max_acc_drop: 1.0,
            target_latency_ms: None,
            target_memory_bytes: None,
            target_speedup: None,
            target_macs_fraction: None,
            min_cosine: Some(0.999),
            acc_confidence: 0.9,
        },
        baseline: evaluation(88.0, 0.9, 1_096_544),
        quant_probes: vec![],
        sensitivity: Vec::new(),
        rounds: vec![agent::RoundRecord {
            round: 1,
            planner: "builtin".into(),
            attempts: 1,
            plan: Some(plan),
            resolved_pruning: vec![],
            quantization: [("layer1.0.conv1".to_string(), "static".to_string())]
                .into_iter()
                .collect(),
            warnings: vec![],
            rejected_issues: vec![],
            failure: None,
            apply: serde_json::Value::Null,
            evaluation: Some(evaluation(87.8, 0.5, 300_000)),
            speed_vs_best: None,
            acc_drop: Some(0.2),
            accepted: true,
            decision: Some(profagent_agent::judge::Decision::Accepted),
            verdict: "accepted".into(),
            sensitivity: Vec::new(),
            seconds: 3.0,
        }],
        final_result: Some(agent::FinalResult {
            model_path: "model.onnx".into(),
            sha256: "cd".into(),
            feedback: evaluation(87.8, 0.5, 300_000),
            holdout_baseline: None,
            holdout_final: None,
            acc_drop: Some(0.2),
            drop_interval: None,
            speedup: Some(1.8),
            speed: Some(profagent_agent::facts::SpeedComparison::known(
                0.9, 0.5, 0.02,
            )),
            size_reduction: Some(0.72),
            budget_met: true,
            stop_reason: "budget met".into(),
            stop: None,
            chosen_round: Some(1),
            fallback: Vec::new(),
            accepted_rounds: vec![1],
        }),
        replay: None,
        seconds: 12.0,
        layers: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("report.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    let output = run_report(dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let markdown = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    // Lifted from the evaluator details: top-5 in percent and the batch-8 latency.
    assert!(markdown.contains("| Top-5 accuracy"), "{markdown}");
    assert!(markdown.contains("Latency, batch 8"), "{markdown}");
    // The fidelity bound and the output cosine with the input model.
    assert!(
        markdown.contains("output cosine with the input ≥ 0.999"),
        "{markdown}"
    );
    let row = markdown
        .lines()
        .find(|l| l.starts_with("| Output cosine with the input model"))
        .unwrap_or_else(|| panic!("no cosine row: {markdown}"));
    assert!(row.contains("0.99950") && row.contains("+0.00000"), "{row}");
    assert!(
        markdown.contains("### Round 1: accepted, chosen"),
        "{markdown}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("id=\"chart-trajectory\""));
}
