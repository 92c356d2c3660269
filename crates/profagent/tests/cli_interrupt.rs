//! Ctrl-C (issue 22 item 5): the first SIGINT stops `compress` between steps; the run
//! directory then holds an `interrupted` marker and a report of what was done whose stop
//! reason says "interrupted", and the process exits with 130. Other commands exit with 130
//! once the file being written is whole.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the run to start and for it to end after the signal.
const WAIT: Duration = Duration::from_secs(300);

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn sigint(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -INT {pid} failed");
}

fn wait_for(path: &Path, child: &mut std::process::Child) {
    let started = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "profagent ended ({status}) before {} appeared",
                path.display()
            );
        }
        assert!(
            started.elapsed() < WAIT,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut std::process::Child) -> (Option<i32>, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
            }
            return (status.code(), stderr);
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            panic!("profagent did not end after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_stops_compress_with_a_report_of_what_was_done() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .current_dir(dir.path())
        .args([
            "compress",
            &example("resnet20_cifar10.onnx"),
            "--data",
            &example("cifar10-sample"),
            "--preprocess",
            "cifar10",
            "--out",
            "run",
            "--max-acc-drop",
            "1",
            "--compare-seconds",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run has started once the planner's input is on disk.
    wait_for(&run.join("input"), &mut child);
    sigint(child.id());
    let (code, stderr) = wait_exit(&mut child);
    assert_eq!(code, Some(130), "{stderr}");

    let marker = std::fs::read_to_string(run.join("interrupted")).unwrap();
    assert!(marker.contains("interrupted by Ctrl-C"), "{marker}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let result = &report["final"];
    let stop = result["stop_reason"].as_str().unwrap();
    assert!(
        stop.starts_with("interrupted (Ctrl-C) after round"),
        "{stop}"
    );
    assert_eq!(result["stop"]["kind"], "interrupted", "{result}");
    assert_eq!(result["budget_met"], false);
    // Nothing was confirmed on the holdout, and the report says why.
    assert!(result["holdout_final"].is_null(), "{result}");
    let notes = result["fallback"].to_string();
    assert!(notes.contains("the holdout check was not run"), "{notes}");
    // The rounds done are in the report, the model it names exists, and the lock is gone.
    let rounds = report["rounds"].as_array().unwrap().len();
    assert_eq!(
        stop,
        format!("interrupted (Ctrl-C) after round {rounds}"),
        "the stop reason counts the rounds recorded"
    );
    assert!(run.join("model.onnx").is_file());
    assert!(!run.join(".profagent.lock").exists());
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(markdown.contains("interrupted"), "{markdown}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .current_dir(dir.path())
        .args([
            "compress",
            &example("resnet20_cifar10.onnx"),
            "--data",
            &example("cifar10-sample"),
            "--preprocess",
            "cifar10",
            "--out",
            "run",
            "--max-acc-drop",
            "1",
            "--compare-seconds",
            "5",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&run.join("input"), &mut child);
    // The first press waits for the baseline (seconds of timing); the second does not.
    sigint(child.id());
    std::thread::sleep(Duration::from_millis(200));
    sigint(child.id());
    let (code, stderr) = wait_exit(&mut child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.ends_with("interrupted\n"), "{stderr}");
    assert!(
        !run.join("interrupted").exists() && !run.join("report.json").exists(),
        "the second Ctrl-C did not wait for the report"
    );
}

#[test]
fn ctrl_c_ends_eval_with_130() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .current_dir(dir.path())
        .args([
            "eval",
            &example("resnet20_cifar10.onnx"),
            "--data",
            &example("cifar10-sample"),
            "--preprocess",
            "cifar10",
            "--latency-runs",
            "100000",
            "--json",
            "eval.json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // "preprocessing: ..." is printed before the model runs; give the runtime time to start.
    std::thread::sleep(Duration::from_secs(3));
    sigint(child.id());
    let (code, stderr) = wait_exit(&mut child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.ends_with("interrupted\n"), "{stderr}");
    // Stopped before its result: no JSON, and no temp file left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
