//! `profagent quantize` end to end on the bundled example: the guardrail runs the original and
//! the quantized model on the target runtime before anything is written, reports the output
//! cosine, and refuses (exit 3, nothing written) when it cannot check or the check fails.
use std::path::PathBuf;
use std::process::Command;

fn profagent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_profagent"));
    command.env("NO_COLOR", "1");
    command
}

/// `profagent quantize MODEL -o OUT --mode MODE`, more arguments to add.
fn quantize(model: &std::path::Path, out: &std::path::Path, mode: &str) -> Command {
    let mut command = profagent();
    command
        .arg("quantize")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(["--mode", mode]);
    command
}

fn example() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    (
        root.join("resnet20_cifar10.onnx"),
        root.join("cifar10-sample"),
    )
}

#[test]
fn static_quantization_is_checked_on_real_samples_before_it_is_written() {
    let (model, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.onnx");
    let run = quantize(&model, &out, "static")
        .args(["--calib", data.to_str().unwrap()])
        .args([
            "--preprocess",
            "cifar10",
            "--calib-count",
            "64",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let check = &summary["check"];
    assert!(check["runtime"]
        .as_str()
        .unwrap()
        .starts_with("onnxruntime"));
    // 64 of the 300 images calibrate; the check runs on 50 of the others.
    assert_eq!(check["inputs"], "real held-out (not used for calibration)");
    assert_eq!(check["samples"], 50);
    assert!(
        check["report"]["worst_cosine"].as_f64().unwrap()
            <= check["report"]["cosine"].as_f64().unwrap()
    );
    let cosine = check["report"]["cosine"].as_f64().unwrap();
    assert!((0.98..=1.0 + 1e-9).contains(&cosine), "{cosine}");
    assert!(out.is_file());
}

/// Issue 15: a model whose mean cosine over 50 real images is below its mode's budget is
/// refused by the default check. Calibration that keeps only the median of each activation's
/// range (percentile 90) clips the largest activations of every layer: a deliberately bad calibration.
#[test]
fn a_badly_calibrated_static_model_is_refused_on_fifty_held_out_images() {
    let (model, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad.onnx");
    let run = quantize(&model, &out, "static")
        .args(["--calib", data.to_str().unwrap()])
        .args(["--preprocess", "cifar10", "--calib-count", "64"])
        .args(["--calibration", "percentile", "--percentile", "90"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("on 50 real held-out (not used for calibration) samples"),
        "{stderr}"
    );
    assert!(stderr.contains("worst sample"), "{stderr}");
    assert!(!out.exists(), "a refused model must not be written");
}

#[test]
fn an_unavailable_check_runtime_writes_nothing() {
    let (model, _) = example();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.onnx");
    let mut command = quantize(&model, &out, "dynamic");
    if cfg!(feature = "tract") {
        // With tract compiled in, make ONNX Runtime the missing one.
        command
            .args(["--check-runtime", "ort"])
            .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
            .env("PROFAGENT_ORT_NO_DISCOVERY", "1");
    } else {
        command.args(["--check-runtime", "tract"]);
    }
    let run = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--check-runtime none"), "{stderr}");
    assert!(!out.exists());
    // Skipping the check is explicit and still writes the model.
    let skipped = quantize(&model, &out, "dynamic")
        .args(["--check-runtime", "none"])
        .output()
        .unwrap();
    assert!(
        skipped.status.success(),
        "{}",
        String::from_utf8_lossy(&skipped.stderr)
    );
    assert!(out.is_file());
}

/// `profile --json` of a model: (params, MACs).
fn params_and_macs(model: &std::path::Path) -> (u64, u64) {
    let run = profagent()
        .args([
            "profile",
            model.to_str().unwrap(),
            "--runs",
            "0",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let profile: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    (
        profile["model"]["params"].as_u64().unwrap(),
        profile["model"]["macs"].as_u64().unwrap(),
    )
}

/// Quantization changes the width of the weights, not their number nor the work: the profile
/// of a quantized model reports the float model's MACs exactly and its parameters up to the
/// added scales (it used to count only float initializers, and had no shape rule for ONNX
/// Runtime's DynamicQuantizeMatMul, so a quantized model looked 99 % smaller in both).
#[test]
fn a_quantized_model_keeps_its_params_and_macs_in_the_profile() {
    let (model, data) = example();
    let (params, macs) = params_and_macs(&model);
    let dir = tempfile::tempdir().unwrap();
    for mode in ["static", "dynamic"] {
        let out = dir.path().join(format!("{mode}.onnx"));
        let mut command = quantize(&model, &out, mode);
        command.args(["--check-runtime", "none"]);
        if mode == "static" {
            command.args(["--calib", data.to_str().unwrap(), "--preprocess", "cifar10"]);
        } else {
            // Convolutions stay float in dynamic mode: quantize the classifier only.
            command.args(["--include", "fc"]);
        }
        let run = command.output().unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (q_params, q_macs) = params_and_macs(&out);
        assert_eq!(q_macs, macs, "{mode}: MACs of the quantized model");
        let extra = q_params as f64 / params as f64 - 1.0;
        assert!(
            (0.0..0.01).contains(&extra),
            "{mode}: {q_params} params vs {params} in the float model"
        );
    }
}

/// Issue 18: static mode writes uint8 activations by default (what ONNX Runtime fuses into
/// QLinearConv everywhere) and int8 ones on request; both pass the output check.
#[test]
fn static_activations_default_to_uint8_and_int8_is_a_flag() {
    let (model, data) = example();
    let dir = tempfile::tempdir().unwrap();
    for (flag, expected) in [
        (None, "uint8 activations"),
        (Some("int8"), "int8 activations"),
    ] {
        let out = dir.path().join("q.onnx");
        let mut command = quantize(&model, &out, "static");
        command.args(["--calib", data.to_str().unwrap()]).args([
            "--preprocess",
            "cifar10",
            "--calib-count",
            "32",
            "--json",
            "-",
        ]);
        if let Some(flag) = flag {
            command.args(["--activations", flag]);
        }
        let run = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        let layers = summary["report"]["quantized"].as_array().unwrap();
        assert!(!layers.is_empty());
        for layer in layers {
            let scheme = layer["scheme"].as_str().unwrap();
            assert!(scheme.ends_with(&format!(", {expected})")), "{scheme}");
        }
    }
}

/// The int8 weight codes `quantize` wrote into `path` (every INT8 initializer).
fn int8_weight_codes(path: &std::path::Path) -> Vec<i8> {
    let model = profagent_onnx::Model::load(path).unwrap();
    model
        .graph()
        .initializer
        .iter()
        .filter(|t| t.data_type == Some(3))
        .flat_map(|t| {
            let raw = t.raw_data.clone().unwrap_or_default();
            raw.into_iter()
                .map(|b| b as i8)
                .chain(t.int32_data.iter().map(|&v| v as i8))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn weight_range_reduced_writes_seven_bit_weights_and_says_so() {
    let (model, data) = example();
    let dir = tempfile::tempdir().unwrap();
    let written = |range: &str| {
        let out = dir.path().join(format!("static-{range}.onnx"));
        let run = quantize(&model, &out, "static")
            .args(["--calib", data.to_str().unwrap()])
            .args(["--preprocess", "cifar10", "--calib-count", "64"])
            .args([
                "--weight-range",
                range,
                "--check-runtime",
                "none",
                "--json",
                "-",
            ])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        (int8_weight_codes(&out), summary)
    };
    let (reduced, summary) = written("reduced");
    assert!(reduced.len() > 200_000, "{} codes", reduced.len());
    assert!(reduced.iter().all(|c| (-64..=64).contains(c)));
    // Each output channel's largest weight takes the largest code.
    assert!(reduced.contains(&64) || reduced.contains(&-64));
    let notes = summary["report"]["notes"].to_string();
    assert!(
        notes.contains("int8 weights in 7 bits (-64..64) (--weight-range reduced)"),
        "{notes}"
    );
    let scheme = summary["report"]["quantized"][0]["scheme"]
        .as_str()
        .unwrap();
    assert!(scheme.contains("per-channel weights in 7 bits"), "{scheme}");
    let (full, _) = written("full");
    assert!(full.iter().any(|c| c.unsigned_abs() > 64));
    assert!(full.iter().all(|&c| c >= -127));
    // auto decides by this CPU's kernels and says why.
    let (_, auto) = written("auto");
    let notes = auto["report"]["notes"].to_string();
    if profagent_runtime::machine_info().int8_pair_sums_saturate() {
        assert!(notes.contains("has no VNNI"), "{notes}");
    } else {
        assert!(
            notes.contains("int8 weights over the full range"),
            "{notes}"
        );
    }
}
