//! With the `tract` feature: the output check catches a runtime that mis-executes a valid
//! rewrite. tract 0.23.9 folds `DequantizeLinear → Softmax → QuantizeLinear` of a static-QDQ ViT
//! into a wrong lookup table (output cosine ≈ 0.26 here), so `--check-runtime tract` must refuse
//! to write the model that ONNX Runtime runs correctly.
#![cfg(feature = "tract")]
use std::path::PathBuf;
use std::process::Command;

fn quantize(check: &str, out: &std::path::Path) -> std::process::Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("../../../shared/models/vit_tiny_cifar10.onnx");
    Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args([
            "quantize",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args([
            "--mode",
            "static",
            "--preprocess",
            "cifar10",
            "--calib-count",
            "64",
        ])
        .arg("--calib")
        .arg(root.join("../../examples/cifar10-sample"))
        .args(["--check-runtime", check])
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn tract_qdq_softmax_bug_is_caught_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vit_qdq.onnx");
    let refused = quantize("tract", &out);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("does not reproduce the original on tract"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused model was written");
    // The same rewrite on ONNX Runtime is fine and gets written.
    let accepted = quantize("ort", &out);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(out.is_file());
}
