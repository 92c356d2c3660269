//! `--json -` means stdout in every command (issue 22): the JSON document alone on stdout (it
//! parses), no file named `-` left behind, the human summary on stderr or not at all.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Runs `profagent ARGS` in `dir` and returns its output after checking that stdout is one
/// JSON document and that no file named `-` was created.
fn run_json_to_stdout(dir: &Path, args: &[&str], codes: &[i32]) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        codes.contains(&out.status.code().unwrap_or(-1)),
        "{args:?}: exit {:?}\n{stderr}",
        out.status.code()
    );
    assert!(
        !dir.join("-").exists(),
        "{args:?} wrote a file named '-'\n{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out, json)
}

#[test]
fn compress_json_dash_prints_the_report_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let model = examples().join("resnet20_cifar10.onnx");
    let data = examples().join("cifar10-sample");
    let (out, report) = run_json_to_stdout(
        dir.path(),
        &[
            "compress",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            "run",
            "--preprocess",
            "cifar10",
            "--max-acc-drop",
            "60",
            "--target-macs",
            "0.8",
            "--no-probe",
            "--sensitivity-groups",
            "0",
            "--rounds",
            "1",
            "--calib-samples",
            "16",
            "--feedback-samples",
            "32",
            "--holdout-samples",
            "16",
            "--compare-seconds",
            "1",
            "--json",
            "-",
        ],
        // 0: budget met, 1: not met; either way the report is written.
        &[0, 1],
    );
    assert_eq!(report["format"], "profagent-run/1", "{report}");
    assert!(report["final"].is_object(), "{report}");
    // The summary still reaches the user, on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("budget "), "{stderr}");
    assert!(dir.path().join("run/report.json").is_file());
}

#[test]
fn prune_quantize_and_eval_json_dash_print_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let model = examples().join("resnet20_cifar10.onnx");
    let model = model.to_str().unwrap();
    let data = examples().join("cifar10-sample");
    let data = data.to_str().unwrap();
    let (_, pruned) = run_json_to_stdout(
        dir.path(),
        &[
            "prune", model, "-o", "p.onnx", "--ratio", "0.1", "--json", "-",
        ],
        &[0],
    );
    assert!(pruned["params_after"].as_u64().is_some(), "{pruned}");
    let (_, quantized) = run_json_to_stdout(
        dir.path(),
        &[
            "quantize", model, "-o", "q.onnx", "--mode", "dynamic", "--json", "-",
        ],
        &[0],
    );
    assert!(quantized["output_bytes"].as_u64().is_some(), "{quantized}");
    let (_, record) = run_json_to_stdout(
        dir.path(),
        &[
            "eval",
            model,
            "--data",
            data,
            "--preprocess",
            "cifar10",
            "--samples",
            "32",
            "--latency-runs",
            "0",
            "--json",
            "-",
        ],
        &[0],
    );
    assert_eq!(record["samples"], 32, "{record}");
}

/// Only `--json -` means stdout: a model or a run folder named `-` is refused (exit 2, one
/// line) instead of becoming a file or folder called `-`.
#[test]
fn a_model_or_run_folder_named_dash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = examples().join("resnet20_cifar10.onnx");
    let model = model.to_str().unwrap();
    let data = examples().join("cifar10-sample");
    let cases: [&[&str]; 3] = [
        &["quantize", model, "-o", "-", "--mode", "dynamic"],
        &["prune", model, "-o", "-", "--ratio", "0.1"],
        &[
            "compress",
            model,
            "--data",
            data.to_str().unwrap(),
            "--out",
            "-",
            "--max-acc-drop",
            "1",
        ],
    ];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_profagent"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("to stdout ('-')"), "{args:?}: {stderr}");
        assert!(!dir.path().join("-").exists(), "{args:?}");
    }
}
