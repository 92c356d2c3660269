//! Issue 15: decisions on measurements that hold. With CPU hogs running beside it, `compress`
//! must not call a rewrite that cannot change speed "faster": dynamic int8 of a CNN touches
//! only its classifier (one small Gemm), so its interleaved speedup interval must contain 1,
//! and an unreachable speedup target must not be reported as met. Tested, not timed: nothing
//! here asserts a latency.
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Busy threads that load the machine until dropped.
struct CpuHog {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuHog {
    fn start(threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = i as u64 + 1;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        CpuHog { stop, threads }
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One `compress` run under load; returns the report and the dynamic probe's speedup interval.
fn compress_under_load(out: &std::path::Path) -> (serde_json::Value, f64, f64) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let hog = CpuHog::start(1);
    let run = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .env("NO_COLOR", "1")
        .arg("compress")
        .arg(root.join("resnet20_cifar10.onnx"))
        .arg("--data")
        .arg(root.join("cifar10-sample"))
        .arg("--out")
        .arg(out)
        .args(["--preset", "cifar10", "--max-acc-drop", "1"])
        .args(["--target-speedup", "5", "--rounds", "1"])
        .args(["--sensitivity-groups", "0", "--compare-seconds", "15"])
        .args(["--calibration-images", "64", "--feedback-images", "96"])
        .output()
        .unwrap();
    drop(hog);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    // An unreachable target: exit 1 (budget not met), never "met".
    assert_eq!(run.status.code(), Some(1), "{stderr}\n{stdout}");
    assert!(stdout.contains("budget not met"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["final"]["budget_met"], false);
    // The baseline timed against itself: an interval around 1, with its pairs.
    let noise = &report["baseline"]["speed"];
    assert!(noise["pairs"].as_u64().unwrap() >= 6, "{noise}");
    // Every speed in the report carries its interval and the pairs behind it.
    for round in report["rounds"].as_array().unwrap() {
        if let Some(speed) = round["evaluation"]["speed"].as_object() {
            assert!(speed["pairs"].as_u64().unwrap() >= 6);
            assert!(
                speed["speedup"]["low"].as_f64().unwrap()
                    <= speed["speedup"]["high"].as_f64().unwrap()
            );
        }
    }
    let dynamic = report["quant_probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mode"] == "dynamic")
        .expect("the dynamic probe ran")
        .clone();
    let speed = &dynamic["speed"]["speedup"];
    let (low, high) = (
        speed["low"].as_f64().unwrap(),
        speed["high"].as_f64().unwrap(),
    );
    (report, low, high)
}

/// The interval is a 95 % one: in about one run of 20 it may miss the truth by chance. Two
/// independent runs both missing 1 would mean a biased comparator (the old code, timing the two
/// models minutes apart, called such pairs 0.67x-1.99x).
#[test]
fn under_load_a_rewrite_that_cannot_change_speed_is_not_called_faster() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for attempt in 0..2 {
        let (_, low, high) = compress_under_load(&dir.path().join(format!("run{attempt}")));
        seen.push((low, high));
        if low <= 1.0 && 1.0 <= high {
            return;
        }
    }
    panic!("dynamic int8 of the classifier only was not found equal to the input in two runs: {seen:?}");
}

#[test]
fn unlabelled_data_needs_a_fidelity_bound_and_never_reports_top1() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = tempfile::tempdir().unwrap();
    // Real images as a bare tensor file: a .npy without a labels file carries no labels.
    let flat = dir.path().join("images.npy");
    let preprocess = profagent_data::Preprocess::preset("cifar10").unwrap();
    let dataset = profagent_data::Dataset::open(&root.join("cifar10-sample"), &preprocess).unwrap();
    let batch = dataset.load_batch(0..200).unwrap();
    write_npy(&flat, &batch.input.shape, batch.input.as_f32().unwrap());
    let compress = |extra: &[&str], out: &str| {
        Command::new(env!("CARGO_BIN_EXE_profagent"))
            .env("NO_COLOR", "1")
            .arg("compress")
            .arg(root.join("resnet20_cifar10.onnx"))
            .arg("--data")
            .arg(&flat)
            .arg("--out")
            .arg(dir.path().join(out))
            .args(["--preset", "cifar10", "--max-acc-drop", "1"])
            .args([
                "--target-memory",
                "0.5",
                "--rounds",
                "1",
                "--sensitivity-groups",
                "0",
            ])
            .args(["--compare-seconds", "3"])
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = compress(&[], "refused");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has no labels") && stderr.contains("--min-cosine"),
        "{stderr}"
    );

    let run = compress(&["--min-cosine", "0.99"], "run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(matches!(run.status.code(), Some(0 | 1)), "{stderr}");
    assert!(
        !stdout.contains("0.00 %") && !stderr.contains("top-1 0.00"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("no labels"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run/report.json")).unwrap())
            .unwrap();
    assert!(report["baseline"]["top1"].is_null());
    assert!(report["final"]["acc_drop"].is_null());
    let markdown = std::fs::read_to_string(dir.path().join("run/report.md")).unwrap();
    assert!(markdown.contains("no labels"), "{markdown}");
}

/// A float32 C-order `.npy` (format 1.0).
fn write_npy(path: &std::path::Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// `profagent compare`: the comparator `compress` decides with, for users checking a speedup
/// claim on their machine. Its JSON carries the interval and the pairs behind it.
#[test]
fn compare_prints_a_speedup_with_its_interval() {
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/resnet20_cifar10.onnx");
    let run = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .arg("compare")
        .arg(&model)
        .arg(&model)
        .args(["--seconds", "3", "--json", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let comparison: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let speedup = &comparison["speedup"];
    let (low, value, high) = (
        speedup["low"].as_f64().unwrap(),
        speedup["value"].as_f64().unwrap(),
        speedup["high"].as_f64().unwrap(),
    );
    assert!(low <= value && value <= high, "{comparison}");
    assert!(comparison["pairs"].as_u64().unwrap() >= 6, "{comparison}");
    assert!(comparison["speedup"]["confidence"].as_f64().unwrap() >= 0.95);

    let missing = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .arg("compare")
        .arg(&model)
        .arg("/no/such/model.onnx")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/model.onnx"));
}
