//! Issue 18, fusion coverage: `profile` of a quantized model says which quantized layers ONNX
//! Runtime runs as int8 kernels after its own graph optimisation and which stay float between
//! dequantize and quantize (islands); `quantize` warns about islands. With uint8 activations
//! ONNX Runtime 1.32's CPU kernels fuse every convolution of a ResNet into QLinearConv; with
//! int8 activations it leaves some in float (resnet18_cifar10: 12 of 20 on AVX-512 VNNI Xeons).
use std::path::{Path, PathBuf};
use std::process::Command;

fn profagent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_profagent"));
    command.env("NO_COLOR", "1");
    command
}

/// ../shared (models and data): tests that use it carry `cfg_attr(not(shared_present), ignore)`.
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Quantizes `model` statically with `activations`, returning the `--json` summary and stderr.
fn quantize_static(
    model: &Path,
    data: &Path,
    out: &Path,
    activations: &str,
) -> (serde_json::Value, String) {
    let run = profagent()
        .arg("quantize")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(["--mode", "static", "--activations", activations])
        .arg("--calib")
        .arg(data)
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
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "{stderr}");
    (serde_json::from_slice(&run.stdout).unwrap(), stderr)
}

/// `profile MODEL` with one measured run: the JSON profile and the table.
fn profile(model: &Path) -> (serde_json::Value, String) {
    let args = [
        "--runs",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--top",
        "100",
    ];
    let json = profagent()
        .arg("profile")
        .arg(model)
        .args(args)
        .args(["--json", "-"])
        .output()
        .unwrap();
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let table = profagent()
        .arg("profile")
        .arg(model)
        .args(args)
        .output()
        .unwrap();
    assert!(table.status.success());
    (
        serde_json::from_slice(&json.stdout).unwrap(),
        String::from_utf8_lossy(&table.stdout).to_string(),
    )
}

/// Convolutions of the float model, from its static profile.
fn conv_count(model: &Path) -> usize {
    let run = profagent()
        .arg("profile")
        .arg(model)
        .args(["--runs", "0", "--json", "-"])
        .output()
        .unwrap();
    assert!(run.status.success());
    let profile: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    profile["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["op_type"] == "Conv")
        .count()
}

/// Fusion entries of the profile's quantized convolutions, as (layer, runs_as, kernel).
fn conv_kernels(profile: &serde_json::Value) -> Vec<(String, String, String)> {
    profile["fusion"]["nodes"]
        .as_array()
        .expect("the profile of a quantized model has fusion.nodes")
        .iter()
        .filter(|n| n["op_type"] == "Conv")
        .map(|n| {
            (
                n["layer"].as_str().unwrap().to_string(),
                n["runs_as"].as_str().unwrap().to_string(),
                n["kernel"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Every convolution of a uint8 model is a QLinearConv, and `profile` says so per layer.
fn assert_every_conv_is_int8(model: &Path, data: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("u8.onnx");
    let (summary, stderr) = quantize_static(model, data, &out, "uint8");
    assert!(!stderr.contains("float islands"), "{stderr}");
    assert!(!summary["fusion"]["nodes"].as_array().unwrap().is_empty());
    let (profile, table) = profile(&out);
    let convs = conv_kernels(&profile);
    assert_eq!(convs.len(), conv_count(model), "{convs:?}");
    for (layer, runs_as, kernel) in &convs {
        assert_eq!(
            (runs_as.as_str(), kernel.as_str()),
            ("int8", "QLinearConv"),
            "{layer}"
        );
        let layer_row = profile["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == layer.as_str())
            .unwrap();
        assert_eq!(layer_row["kernels"]["float"], 0, "{layer}");
    }
    assert!(table.contains("kernels"), "{table}");
    assert!(table.contains(" 0 float island(s)"), "{table}");
    assert!(
        table.contains(&format!("QLinearConv: {}", convs[0].0)),
        "{table}"
    );
}

/// With int8 activations some convolutions stay float islands: `profile` names them, and
/// `quantize` warned about them with the same count.
fn assert_int8_leaves_islands(model: &Path, data: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s8.onnx");
    let (summary, stderr) = quantize_static(model, data, &out, "int8");
    let (profile, table) = profile(&out);
    let islands: Vec<_> = conv_kernels(&profile)
        .into_iter()
        .filter(|(_, runs_as, _)| runs_as == "float")
        .collect();
    assert!(!islands.is_empty(), "{table}");
    let from_quantize = summary["fusion"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["runs_as"] == "float")
        .count();
    assert!(
        stderr.contains(&format!("warning: ONNX Runtime runs {from_quantize} of "))
            && stderr.contains("--activations uint8"),
        "{stderr}"
    );
    assert!(table.contains("float islands ("), "{table}");
    assert!(table.contains(&islands[0].0), "{table}");
    assert!(table.contains("float"), "{table}");
}

#[test]
fn profile_lists_every_conv_of_a_uint8_resnet20_as_an_int8_kernel() {
    let root = examples();
    assert_every_conv_is_int8(
        &root.join("resnet20_cifar10.onnx"),
        &root.join("cifar10-sample"),
    );
}

#[test]
fn profile_shows_the_float_islands_of_an_int8_activation_resnet20() {
    let root = examples();
    assert_int8_leaves_islands(
        &root.join("resnet20_cifar10.onnx"),
        &root.join("cifar10-sample"),
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn profile_lists_every_conv_of_a_uint8_resnet18_as_an_int8_kernel() {
    let shared = shared();
    assert_every_conv_is_int8(
        &shared.join("models/resnet18_cifar10.onnx"),
        &shared.join("data/cifar10-test"),
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn profile_shows_the_float_islands_of_an_int8_activation_resnet18() {
    let shared = shared();
    assert_int8_leaves_islands(
        &shared.join("models/resnet18_cifar10.onnx"),
        &shared.join("data/cifar10-test"),
    );
}

/// The float model has no quantized nodes: no fusion line, no kernels column.
#[test]
fn a_float_model_has_no_kernels_column() {
    let (profile, table) = profile(&examples().join("resnet20_cifar10.onnx"));
    assert!(profile["fusion"]["nodes"].as_array().unwrap().is_empty());
    assert!(!table.contains("int8 kernels after"), "{table}");
    assert!(!table.contains("float island"), "{table}");
}

/// `--activations auto` quantizes with both types, times int8 against uint8 interleaved and
/// writes int8 only when its speedup interval is above 1; the choice, the comparison and the
/// written model agree.
#[test]
fn activations_auto_keeps_the_measured_faster_type_and_records_the_comparison() {
    let root = examples();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("auto.onnx");
    let run = profagent()
        .arg("quantize")
        .arg(root.join("resnet20_cifar10.onnx"))
        .arg("-o")
        .arg(&out)
        .args([
            "--mode",
            "static",
            "--activations",
            "auto",
            "--compare-seconds",
            "3",
        ])
        .arg("--calib")
        .arg(root.join("cifar10-sample"))
        .args([
            "--preprocess",
            "cifar10",
            "--calib-count",
            "32",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let choice = &summary["activations_choice"];
    let chosen = choice["chosen"].as_str().unwrap();
    let low = choice["int8_vs_uint8"]["speedup"]["low"].as_f64().unwrap();
    assert!(
        choice["int8_vs_uint8"]["pairs"].as_u64().unwrap() >= 2,
        "{choice}"
    );
    assert_eq!(chosen, if low > 1.0 { "int8" } else { "uint8" }, "{choice}");
    for layer in summary["report"]["quantized"].as_array().unwrap() {
        let scheme = layer["scheme"].as_str().unwrap();
        assert!(
            scheme.ends_with(&format!(", {chosen} activations)")),
            "{scheme}"
        );
    }
    assert!(out.is_file());
}
