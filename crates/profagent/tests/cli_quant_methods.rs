//! `profagent quantize` with each calibration method, `--calibration auto`, and per-layer modes
//! (`--layer-mode`) on the bundled example (resnet20_cifar10 and 300 CIFAR-10 images).
use std::path::PathBuf;
use std::process::{Command, Output};

/// resnet20 static int8 (uint8 activations, per-channel weights), 100 calibration images,
/// checked on 100 others: measured mean output cosine 0.9996-0.9997 with min-max, entropy and
/// MSE on 200 images (docs/benchmarks-quant-methods.md); 0.998 leaves room for this smaller
/// slice, and is far above what a broken range gives (0.95 before entropy's zero spike was
/// flattened).
const RESNET20_STATIC_MIN_COSINE: f64 = 0.998;

fn example() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    (
        root.join("resnet20_cifar10.onnx"),
        root.join("cifar10-sample"),
    )
}

/// `profagent quantize` of the example with `--json -`, more arguments added.
fn quantize(out: &std::path::Path, extra: &[&str]) -> Output {
    let (model, data) = example();
    Command::new(env!("CARGO_BIN_EXE_profagent"))
        .env("NO_COLOR", "1")
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(out)
        .args(["--calib", data.to_str().unwrap()])
        .args(["--preprocess", "cifar10", "--calib-samples", "100"])
        .args(["--check-samples", "100", "--json", "-"])
        .args(extra)
        .output()
        .unwrap()
}

fn summary(run: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    serde_json::from_slice(&run.stdout).unwrap()
}

#[test]
fn every_calibration_method_keeps_resnet20_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    for method in ["minmax", "entropy", "mse"] {
        let out = dir.path().join(format!("{method}.onnx"));
        let json = summary(&quantize(
            &out,
            &["--mode", "static", "--calibration", method],
        ));
        let cosine = json["check"]["report"]["cosine"].as_f64().unwrap();
        assert!(cosine >= RESNET20_STATIC_MIN_COSINE, "{method}: {cosine}");
        assert_eq!(json["report"]["quantized"].as_array().unwrap().len(), 22);
    }
}

#[test]
fn calibration_auto_keeps_the_most_faithful_method() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("auto.onnx");
    let json = summary(&quantize(
        &out,
        &["--mode", "static", "--calibration", "auto"],
    ));
    let choice = &json["calibration_choice"];
    let cosines: Vec<(String, f64)> = choice["cosines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_string(),
                pair[1].as_f64().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = cosines.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["minmax", "percentile", "entropy", "mse"]);
    let chosen = choice["chosen"].as_str().unwrap();
    let best = cosines.iter().map(|(_, c)| *c).fold(f64::MIN, f64::max);
    let chosen_cosine = cosines.iter().find(|(m, _)| m == chosen).unwrap().1;
    // The kept method is the best or within the tie margin of it.
    assert!(chosen_cosine >= best - 1e-5, "{chosen}: {cosines:?}");
    // The written model is the chosen one: the check (same samples) reads its cosine.
    let checked = json["check"]["report"]["cosine"].as_f64().unwrap();
    assert!(
        (checked - chosen_cosine).abs() < 1e-9,
        "{checked} vs {cosines:?}"
    );
}

#[test]
fn layer_modes_keep_the_named_layers_in_float() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mixed.onnx");
    let json = summary(&quantize(
        &out,
        &[
            "--mode",
            "static",
            "--layer-mode",
            "layer1.0.conv1=none",
            "--layer-mode",
            "fc=dynamic",
        ],
    ));
    let report = &json["report"];
    assert_eq!(report["mode"], "mixed");
    let schemes: Vec<(String, String)> = report["quantized"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["layer"].as_str().unwrap().to_string(),
                l["scheme"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(schemes.len(), 21);
    assert!(!schemes.iter().any(|(l, _)| l == "layer1.0.conv1"));
    let fc = schemes.iter().find(|(l, _)| l == "fc").unwrap();
    assert!(fc.1.starts_with("DynamicQuantizeMatMul"), "{fc:?}");
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["layer1.0.conv1"]);
    let cosine = json["check"]["report"]["cosine"].as_f64().unwrap();
    assert!(cosine >= RESNET20_STATIC_MIN_COSINE, "{cosine}");
}

#[test]
fn a_bad_layer_mode_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad.onnx");
    for (flag, needle) in [
        ("fc=fast", "unknown mode 'fast'"),
        ("layer9.conv=none", "layer9.conv"),
    ] {
        let run = quantize(&out, &["--mode", "static", "--layer-mode", flag]);
        assert_eq!(run.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(needle), "{flag}: {stderr}");
        assert!(!out.exists());
    }
}
