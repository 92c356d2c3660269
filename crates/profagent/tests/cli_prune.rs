//! `profagent prune` end to end: listing groups, pruning with a JSON report whose predicted
//! cost matches `profagent profile` of the result, --round-to, and clear errors for bad input.
use std::path::{Path, PathBuf};
use std::process::Command;

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{ExternalData, Model};

fn profagent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_profagent"))
}

/// conv → relu → conv (+1x1 shortcut) → relu → GAP → flatten → gemm.
fn small_cnn(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new(5);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c0 = b.conv("/conv1", &x, 3, 16, 3, 1, 1);
    let r0 = b.unary("Relu", "/relu", &c0);
    let c1 = b.conv("/layer1/conv1", &r0, 16, 32, 3, 1, 1);
    let r1 = b.unary("Relu", "/layer1/relu", &c1);
    let c2 = b.conv("/layer1/conv2", &r1, 32, 32, 3, 1, 1);
    let sc = b.conv("/layer1/shortcut", &r0, 16, 32, 1, 1, 1);
    let add = b.binary("Add", "/layer1", &c2, &sc);
    let r2 = b.unary("Relu", "/layer1/relu_1", &add);
    let gap = b.node(
        "GlobalAveragePool",
        "/pool/GlobalAveragePool",
        &[&r2],
        1,
        vec![],
    );
    let flat = b.node(
        "Flatten",
        "/Flatten",
        &[&gap],
        1,
        vec![profagent_onnx::attr::int("axis", 1)],
    );
    b.gemm("/fc", &flat, 32, 10);
    b.graph.node.last_mut().unwrap().output[0] = "logits".into();
    b.output("logits", &[-1, 10]);
    let path = dir.join("cnn.onnx");
    b.finish().save(&path, ExternalData::Never).unwrap();
    path
}

#[test]
fn list_shows_groups_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_cnn(dir.path());
    let out = profagent()
        .arg("prune")
        .arg(&model)
        .arg("--list")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("layer1.conv1") && text.contains("prunable"),
        "{text}"
    );
    assert!(text.contains("graph output 'logits'"), "{text}");
}

#[test]
fn prune_writes_a_valid_model_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_cnn(dir.path());
    let pruned = dir.path().join("pruned.onnx");
    let report = dir.path().join("report.json");
    let out = profagent()
        .arg("prune")
        .arg(&model)
        .arg("-o")
        .arg(&pruned)
        .args([
            "--ratio",
            "0.3",
            "--round-to",
            "8",
            "--layers",
            "layer1\\.conv2=0.5",
            "--json",
        ])
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let groups = json["groups"].as_array().unwrap();
    let residual = groups.iter().find(|g| g["id"] == "layer1.conv2").unwrap();
    assert_eq!(residual["units_after"], 16);
    let conv1 = groups.iter().find(|g| g["id"] == "layer1.conv1").unwrap();
    assert_eq!(
        conv1["units_after"], 24,
        "32 * 0.7 = 22.4 → 22 → rounded up to a multiple of 8"
    );
    let stem = groups.iter().find(|g| g["id"] == "conv1").unwrap();
    assert_eq!(stem["action"], "protected");
    // The static profile of the result agrees with the prediction.
    let pruned_model = Model::load(&pruned).unwrap();
    let profile = profagent_profile::static_profile(&pruned_model, &Default::default()).unwrap();
    assert_eq!(json["params_after"].as_u64().unwrap(), profile.model.params);
    assert_eq!(json["macs_after"].as_u64().unwrap(), profile.model.macs);
    // The input model is untouched.
    assert_eq!(
        Model::load(&model).unwrap().to_bytes(),
        std::fs::read(&model).unwrap()
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_cnn(dir.path());
    let out_path = dir.path().join("o.onnx");
    let cases: &[(&[&str], &str)] = &[
        (&["--ratio", "1.5"], "[0, 1)"),
        (&["--ratio", "0.1", "--layers", "nope=0.2"], "matches no"),
        (&["--ratio", "0.1", "--layers", "broken"], "REGEX=RATIO"),
        (&["--ratio", "0.1", "--importance", "activation"], "calib"),
        (
            &["--ratio", "0.1", "--importance", "magic"],
            "unknown importance",
        ),
    ];
    for (extra, needle) in cases {
        let out = profagent()
            .arg("prune")
            .arg(&model)
            .arg("-o")
            .arg(&out_path)
            .args(*extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!out_path.exists(), "nothing is written on error");
    }
    let missing = profagent()
        .args(["prune", "/nonexistent/m.onnx", "-o"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/m.onnx"));
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn shared_resnet20_with_calibration() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let dir = tempfile::tempdir().unwrap();
    let pruned = dir.path().join("r20.onnx");
    let out = profagent()
        .arg("prune")
        .arg(shared.join("models/resnet20_cifar10.onnx"))
        .arg("-o")
        .arg(&pruned)
        .args(["--ratio", "0.1", "--calib"])
        .arg(shared.join("data/cifar10-test"))
        .args([
            "--preprocess",
            "cifar10",
            "--calib-samples",
            "64",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["biases_corrected"].as_u64().unwrap() > 0);
    // Reconstruction is on by default with --calib: the layers reading pruned channels.
    assert!(
        !json["reconstructed"].as_array().unwrap().is_empty(),
        "{json}"
    );
    assert!(Model::load(&pruned).is_ok());
}

/// `prune` on the bundled ResNet-20 with CIFAR-10 calibration images, in `dir`.
fn prune_resnet20(dir: &Path, extra: &[&str]) -> std::process::Output {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    profagent()
        .current_dir(dir)
        .arg("prune")
        .arg(examples.join("resnet20_cifar10.onnx"))
        .args(["-o", "pruned.onnx", "--calib"])
        .arg(examples.join("cifar10-sample"))
        .args(["--preprocess", "cifar10", "--calib-samples", "64"])
        .args(extra)
        .output()
        .unwrap()
}

/// Issue 22: half the channels of ResNet-20 without fine-tuning leave outputs that no longer
/// resemble the original's. Without --min-cosine the model is written, with a warning on
/// stderr and in --json; with --min-cosine it is refused (exit 3) and nothing is written.
#[test]
fn prune_warns_or_refuses_when_the_outputs_move_far() {
    let dir = tempfile::tempdir().unwrap();
    let out = prune_resnet20(dir.path(), &["--ratio", "0.5", "--json", "report.json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: the pruned model's outputs moved far from the original (cosine")
            && stderr.contains("fine-tune it or prune less"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let cosine = report["check"]["report"]["cosine"].as_f64().unwrap();
    assert!(cosine < 0.9, "{report}");
    assert!(
        report["fidelity_warning"]
            .as_str()
            .is_some_and(|w| w.contains("moved far")),
        "{report}"
    );
    // The library report's fields stay at the top level.
    assert!(report["params_after"].as_u64().is_some(), "{report}");

    std::fs::remove_file(dir.path().join("pruned.onnx")).unwrap();
    let out = prune_resnet20(dir.path(), &["--ratio", "0.5", "--min-cosine", "0.95"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "one error line: {stderr}"
    );
    assert!(
        stderr.contains("mean output cosine") && stderr.contains("--min-cosine"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("pruned.onnx").exists(),
        "nothing is written"
    );

    // A light prune stays close to the original: written, no warning, bound met.
    let out = prune_resnet20(
        dir.path(),
        &["--ratio", "0.05", "--min-cosine", "0.5", "--json", "-"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("moved far"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["fidelity_warning"].is_null(), "{report}");
    assert_eq!(report["check"]["min_cosine"], 0.5, "{report}");
    assert!(dir.path().join("pruned.onnx").is_file());
}

#[test]
fn prune_min_cosine_is_a_cosine_and_needs_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_cnn(dir.path());
    for (flags, needle) in [
        (&["--min-cosine", "1.5"][..], "(0, 1)"),
        (&["--min-cosine", "x"][..], "not a number"),
        (
            &["--min-cosine", "0.9", "--check-runtime", "none"][..],
            "--check-runtime none",
        ),
    ] {
        let out = profagent()
            .arg("prune")
            .arg(&model)
            .args(["-o"])
            .arg(dir.path().join("p.onnx"))
            .args(["--ratio", "0.1"])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
        assert!(!dir.path().join("p.onnx").exists());
    }
}

/// Issue 22: quantize writes a regular expression as `re:REGEX`; prune's --layers and
/// --protect accept the same spelling and prune exactly what the bare regex prunes.
#[test]
fn prune_patterns_accept_the_re_prefix_of_quantize() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_cnn(dir.path());
    let groups = |flags: &[&str]| {
        let out = profagent()
            .arg("prune")
            .arg(&model)
            .arg("-o")
            .arg(dir.path().join("p.onnx"))
            .args(["--json", "-"])
            .args(flags)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{flags:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["groups"].clone()
    };
    let with_prefix = groups(&["--layers", "re:layer1\\..*=0.5"]);
    assert!(
        with_prefix
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["action"] == "pruned"),
        "the rule matched nothing: {with_prefix}"
    );
    assert_eq!(with_prefix, groups(&["--layers", "layer1\\..*=0.5"]));
    assert_eq!(
        groups(&["--ratio", "0.5", "--protect", "re:layer1\\..*"]),
        groups(&["--ratio", "0.5", "--protect", "layer1\\..*"])
    );
}

/// Issue 19: `--reconstruct sequential` refits the same layers as the default (independent)
/// in several passes over the calibration data (one per wave of layers) and reports them;
/// an unknown target is bad input (exit 2, naming the choices).
#[test]
fn reconstruct_sequential_refits_in_waves_and_bad_targets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut layers = Vec::new();
    for target in ["independent", "sequential"] {
        let out = prune_resnet20(
            dir.path(),
            &["--ratio", "0.1", "--reconstruct", target, "--json", "-"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["spec"]["reconstruct_target"], target, "{json}");
        let passes = json["reconstruct_timing"]["passes"].as_u64().unwrap();
        if target == "independent" {
            assert_eq!(passes, 1, "{json}");
        } else {
            assert!(
                passes > 2,
                "sequential refits layer waves one pass each: {json}"
            );
        }
        let mut names: Vec<String> = json["reconstructed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        names.sort();
        layers.push(names);
    }
    assert_eq!(layers[0], layers[1]);
    assert!(!layers[0].is_empty());
    let out = prune_resnet20(dir.path(), &["--ratio", "0.1", "--reconstruct", "both"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("independent or sequential"), "{stderr}");
}

/// `--round-to runtime` keeps every pruned width a multiple of the channel block ONNX Runtime
/// pads float convolutions to on this machine (read from its optimised graph, and said in a
/// note); anything but a number or `runtime` is bad input.
#[test]
fn round_to_runtime_keeps_widths_the_runtime_does_not_pad() {
    let Ok(runtime) = profagent_runtime::open_runtime(profagent_runtime::RuntimeKind::Ort) else {
        eprintln!("skipping: ONNX Runtime not found");
        return;
    };
    let block = profagent_runtime::conv_channel_block(
        runtime.as_ref(),
        &profagent_runtime::SessionOptions::default(),
    )
    .unwrap()
    .unwrap_or(1) as u64;
    let dir = tempfile::tempdir().unwrap();
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let out = profagent()
        .current_dir(dir.path())
        .arg("prune")
        .arg(examples.join("resnet20_cifar10.onnx"))
        .args([
            "-o",
            "pruned.onnx",
            "--ratio",
            "0.3",
            "--round-to",
            "runtime",
        ])
        .args(["--check-runtime", "none", "--json", "report.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("note: --round-to runtime: {block}")),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let pruned: Vec<(String, u64)> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["action"] == "pruned")
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_string(),
                g["units_after"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(!pruned.is_empty(), "{json}");
    assert!(
        pruned.iter().all(|(_, kept)| kept % block == 0),
        "block {block}: {pruned:?}"
    );

    let bad = profagent()
        .current_dir(dir.path())
        .arg("prune")
        .arg(examples.join("resnet20_cifar10.onnx"))
        .args(["-o", "bad.onnx", "--ratio", "0.3", "--round-to", "fast"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("neither a whole number"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
