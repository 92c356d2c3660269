//! `profagent compress` end to end on the bundled example with a fidelity bound: every
//! evaluation carries the output cosine with the input model (measured from the input's logits,
//! computed once per slice), the sensitivity pass records each group's cosine loss, and no
//! accepted round falls below `--min-cosine`.
use std::path::PathBuf;
use std::process::Command;

#[test]
fn compress_keeps_the_fidelity_bound_and_reports_the_cosine_of_every_candidate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .env("NO_COLOR", "1")
        .arg("compress")
        .arg(root.join("resnet20_cifar10.onnx"))
        .arg("--data")
        .arg(root.join("cifar10-sample"))
        .arg("--out")
        .arg(&out)
        .args([
            "--preset",
            "cifar10",
            "--max-acc-drop",
            "5",
            "--min-cosine",
            "0.99",
        ])
        .args([
            "--target-memory",
            "0.3",
            "--rounds",
            "3",
            "--sensitivity-groups",
            "3",
        ])
        .args(["--calibration-images", "64", "--feedback-images", "128"])
        .args(["--compare-seconds", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    // 0: budget met, 1: not met (the best model is still written).
    assert!(matches!(run.status.code(), Some(0 | 1)), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["budget"]["min_cosine"], 0.99);
    // The input against its own cached logits: exactly faithful.
    assert_eq!(report["baseline"]["cosine"], 1.0);
    assert_eq!(report["baseline"]["agreement"], 100.0);
    for probe in report["quant_probes"].as_array().unwrap() {
        if probe["error"].is_null() {
            let cosine = probe["cosine"].as_f64().unwrap();
            assert!(cosine > 0.9 && cosine <= 1.0 + 1e-9, "{probe}");
        }
    }
    let sensitivity = report["sensitivity"].as_array().unwrap();
    assert!(!sensitivity.is_empty(), "{stderr}");
    for s in sensitivity.iter().filter(|s| s["error"].is_null()) {
        let loss = s["cosine_loss"].as_f64().unwrap();
        assert!(loss > 0.0 && loss < 1.0, "pruning moves the outputs: {s}");
    }
    let rounds = report["rounds"].as_array().unwrap();
    assert!(!rounds.is_empty());
    for round in rounds {
        let Some(cosine) = round["evaluation"]["cosine"].as_f64() else {
            continue;
        };
        if round["accepted"].as_bool().unwrap() {
            assert!(cosine >= 0.99, "accepted below the bound: {round}");
        } else if cosine < 0.99 {
            assert!(
                round["verdict"].as_str().unwrap().contains("cosine"),
                "{round}"
            );
        }
    }
    let holdout = &report["final"]["holdout_final"];
    assert!(holdout["cosine"].as_f64().is_some(), "{holdout}");
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        markdown.contains("Output cosine with the input model"),
        "{markdown}"
    );
}
