//! `profagent profile` end to end: the built binary on models written to a temp folder (and
//! the shared models when present): table, JSON contract, and one-line errors with exit 2.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::proto::{tensor_proto::DataLocation, StringStringEntryProto, TensorProto};
use profagent_onnx::{attr, ExternalData, Model};

const BAD_INPUT_EXIT: i32 = 2;

fn profagent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the profagent binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn small_model() -> Model {
    let mut b = GraphBuilder::new(1);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c = b.conv("/layer1/layer1.0/conv1", &x, 3, 4, 3, 1, 1);
    let r = b.unary("Relu", "/layer1/layer1.0/relu", &c);
    let g = b.node(
        "GlobalAveragePool",
        "/pool/GlobalAveragePool",
        &[&r],
        1,
        vec![],
    );
    let f = b.node("Flatten", "/Flatten", &[&g], 1, vec![attr::int("axis", 1)]);
    let y = b.gemm("/fc", &f, 4, 2);
    b.output(&y, &[-1, 2]);
    b.finish()
}

fn write_model(dir: &Path, name: &str, model: &Model) -> PathBuf {
    let path = dir.join(name);
    model.save(&path, ExternalData::Never).expect("model saves");
    path
}

#[test]
fn help_reads_well() {
    let top = profagent(&["--help"]);
    assert!(top.status.success());
    let top = text(&top.stdout);
    assert!(top.contains("profile"), "{top}");
    assert!(top.contains("Exit codes"), "{top}");
    let help = profagent(&["profile", "--help"]);
    assert!(help.status.success());
    let help = text(&help.stdout);
    for needle in [
        "--batch <N>",
        "--json <PATH>",
        "--top <K>",
        "MODEL.onnx",
        "Examples:",
    ] {
        assert!(help.contains(needle), "'{needle}' missing from:\n{help}");
    }
}

#[test]
fn table_and_json_for_a_built_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "small.onnx", &small_model());
    let json = dir.path().join("profile.json");
    let out = profagent(&[
        "profile",
        model.to_str().unwrap(),
        "--batch",
        "2",
        "--top",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("layer1.0.conv1"), "{table}");
    assert!(table.contains("total"), "{table}");
    assert!(table.contains("top 2 by"), "{table}");

    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let params = (4 * 3 * 9 + 4) + (2 * 4 + 2);
    let macs = 2 * (8 * 8 * 4 * 3 * 9 + 4 * 2);
    assert_eq!(profile["model"]["params"], params);
    assert_eq!(profile["model"]["macs"], macs);
    assert_eq!(profile["model"]["batch"], 2);
    let layers = profile["layers"].as_array().unwrap();
    let conv = layers
        .iter()
        .find(|l| l["name"] == "layer1.0.conv1")
        .expect("conv layer in JSON");
    for field in [
        "op_types",
        "params",
        "macs",
        "weight_bytes",
        "activation_bytes",
    ] {
        assert!(!conv[field].is_null(), "layers[].{field} missing: {conv}");
    }
    assert_eq!(conv["op_types"][0], "Conv");
    assert_eq!(conv["activation_bytes"], 2 * 4 * 8 * 8 * 4);
    assert!(profile["nodes"].as_array().unwrap().len() >= 5);
}

#[test]
fn json_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "small.onnx", &small_model());
    let out = profagent(&["profile", model.to_str().unwrap(), "--json", "-"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let profile: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(profile["model"]["batch"], 1);
}

/// Runs `profile` on `path` and checks: exit 2, one `error:` line mentioning `needle`.
fn assert_one_line_error(path: &Path, needle: &str) {
    let out = profagent(&["profile", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(BAD_INPUT_EXIT),
        "{}: {stderr}",
        path.display()
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "'{needle}' not in: {stderr}");
}

#[test]
fn bad_files_give_one_line_errors_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_model().to_bytes();

    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    assert_one_line_error(&truncated, "truncated.onnx");

    let not_onnx = dir.path().join("notes.onnx");
    std::fs::write(&not_onnx, "these are notes, not a model\n".repeat(5)).unwrap();
    assert_one_line_error(&not_onnx, "notes.onnx");

    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    assert_one_line_error(&empty, "is empty");

    assert_one_line_error(&dir.path().join("missing.onnx"), "missing.onnx");

    let mut b = GraphBuilder::new(1);
    let x = b.input("x", &[1, 4]);
    b.graph.node.push(attr::node(
        "Add",
        "/a/Add",
        &[&x, "loop_b"],
        &["loop_a"],
        vec![],
    ));
    b.graph.node.push(attr::node(
        "Relu",
        "/b/Relu",
        &["loop_a"],
        &["loop_b"],
        vec![],
    ));
    b.output("loop_b", &[1, 4]);
    let cycle = write_model(dir.path(), "cycle.onnx", &b.finish());
    assert_one_line_error(&cycle, "cycle");

    let mut escaping = small_model();
    let weight: &mut TensorProto = escaping
        .graph_mut()
        .initializer
        .iter_mut()
        .find(|t| t.name().ends_with("conv1.weight"))
        .unwrap();
    weight.raw_data = None;
    weight.data_location = Some(DataLocation::External as i32);
    weight.external_data = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some("../../etc/passwd".into()),
    }];
    let escape = write_model(dir.path(), "escape.onnx", &escaping);
    assert_one_line_error(&escape, "escapes");
}

#[test]
fn zero_batch_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "small.onnx", &small_model());
    let out = profagent(&["profile", model.to_str().unwrap(), "--batch", "0"]);
    assert_eq!(out.status.code(), Some(BAD_INPUT_EXIT));
    assert!(
        text(&out.stderr).contains("--batch"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn shared_resnet18_params_in_json() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/models/resnet18_cifar10.onnx");
    let out = profagent(&["profile", model.to_str().unwrap(), "--json", "-"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let profile: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(profile["model"]["params"], 11_169_162);
    let macs = profile["model"]["macs"].as_u64().unwrap() as f64;
    assert!((macs / 0.556e9 - 1.0).abs() < 0.03, "{macs}");
}

/// Two consecutive `profagent profile --json` runs of a shared model: every layer ranked, and
/// the profile tells the truth about its own coverage: when the per-layer latencies do not add up
/// to the end-to-end latency within 15 % (on some machines the time between kernels is half the
/// run), `measurement.warnings` says so, and it says nothing when they do (issue 3). The ratio
/// and the top-5 layers of both runs are reported, not asserted: tests never assert timings
/// (a CI machine with layers at 52.7 % of end-to-end, CV 4.5 %, failed the earlier timing check).
fn check_measured_profile(file: &str) {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/models")
        .join(file);
    let mut tops = Vec::new();
    for _ in 0..2 {
        let out = profagent(&["profile", model.to_str().unwrap(), "--json", "-"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let profile: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let layers = profile["layers"].as_array().unwrap();
        let sum: f64 = layers
            .iter()
            .map(|l| l["latency_ms"].as_f64().unwrap())
            .sum();
        let e2e = profile["model"]["latency_ms"].as_f64().unwrap();
        let measurement = &profile["measurement"];
        let wait = measurement["cpu_wait_fraction"].as_f64().unwrap_or(0.0);
        let cv = measurement["end_to_end"]["cv"].as_f64().unwrap();
        let ratio = sum / e2e;
        eprintln!("{file}: layers {sum:.3} ms / end-to-end {e2e:.3} ms = {ratio:.3} (cv {cv:.3}, cpu wait {wait:.3})");
        // Every layer is ranked, ranks are 1..=n.
        let mut ranks: Vec<u64> = layers
            .iter()
            .map(|l| l["latency_rank"].as_u64().unwrap())
            .collect();
        ranks.sort_unstable();
        assert_eq!(ranks, (1..=layers.len() as u64).collect::<Vec<_>>());
        let mut by_rank: Vec<&serde_json::Value> = layers.iter().collect();
        by_rank.sort_by_key(|l| l["latency_rank"].as_u64().unwrap());
        let mut top: Vec<String> = by_rank[..5]
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect();
        top.sort();
        tops.push(top);
        let warned = measurement["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str())
            .any(|w| w.contains("add up to"));
        let recorded = measurement["layer_sum_ratio"].as_f64().unwrap();
        assert!(
            (recorded - ratio).abs() < 0.01,
            "{file}: layer_sum_ratio {recorded} but the layers add up to {ratio}"
        );
        assert_eq!(
            warned,
            (recorded - 1.0).abs() > 0.15,
            "{file}: layers add up to {:.1} % of end-to-end; warnings {}",
            recorded * 100.0,
            measurement["warnings"]
        );
    }
    eprintln!(
        "{file}: top-5 by latency_rank stable across two profiles: {} ({:?} vs {:?})",
        tops[0] == tops[1],
        tops[0],
        tops[1]
    );
}

/// One test for both models, so that their timed runs never overlap each other.
#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn measured_profiles_add_up_and_rank_stably() {
    check_measured_profile("resnet18_cifar10.onnx");
    check_measured_profile("vit_tiny_cifar10.onnx");
}
