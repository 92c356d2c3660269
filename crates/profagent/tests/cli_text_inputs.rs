//! A text encoder with three int64 inputs (`input_ids`, `attention_mask`, `token_type_ids`,
//! dynamic batch and sequence), built in code, fed from an `.npz` with one array per input
//! name: `eval` scores it and compares it with a reference, static quantization calibrates on
//! it, `compress` probes and prunes it, and `profile` sizes it with `--input-shape` or from
//! the npz (exact MACs), or says which flag to pass.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use profagent_data::npy::{encode_npy_i64, encode_npz};
use profagent_onnx::attr;
use profagent_onnx::builder::{value_info, value_info_typed, GraphBuilder};
use profagent_onnx::proto::{tensor_proto::DataType, tensor_shape_proto::dimension::Value};
use profagent_onnx::proto::{type_proto, ValueInfoProto};
use profagent_onnx::ExternalData;

const VOCAB: i64 = 50;
const HIDDEN: i64 = 16;
const MLP: i64 = 32;
const CLASSES: i64 = 4;
const SEQUENCE: usize = 12;
const SAMPLES: usize = 20;

fn profagent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_profagent"));
    command.env("NO_COLOR", "1");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `[batch, sequence]` with both dims symbolic and distinct.
fn token_input(name: &str) -> ValueInfoProto {
    let mut info = value_info_typed(name, &[-1, -1], DataType::Int64);
    if let Some(type_proto::Value::TensorType(t)) = info.r#type.as_mut().unwrap().value.as_mut() {
        let dims = &mut t.shape.as_mut().unwrap().dim;
        dims[0].value = Some(Value::DimParam("batch".into()));
        dims[1].value = Some(Value::DimParam("sequence".into()));
    }
    info
}

/// Embeddings (word + token type), a ReLU MLP, masked sum over the sequence, a classifier.
fn text_encoder(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new(7);
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        b.graph.input.push(token_input(name));
    }
    let words = b.weight("embeddings.word", &[VOCAB, HIDDEN]);
    let types = b.weight("embeddings.type", &[2, HIDDEN]);
    let w = b.node(
        "Gather",
        "/embeddings/word/Gather",
        &[&words, "input_ids"],
        1,
        vec![],
    );
    let t = b.node(
        "Gather",
        "/embeddings/type/Gather",
        &[&types, "token_type_ids"],
        1,
        vec![],
    );
    let x = b.binary("Add", "/embeddings", &w, &t);
    let h = b.linear("/mlp/fc1", &x, HIDDEN, MLP);
    let h = b.unary("Relu", "/mlp/act", &h);
    let h = b.linear("/mlp/fc2", &h, MLP, HIDDEN);
    let mask = b.node(
        "Cast",
        "/pool/Cast",
        &["attention_mask"],
        1,
        vec![attr::int("to", DataType::Float as i64)],
    );
    let last = b.const_i64("/pool/axes_last", &[1], &[-1]);
    let mask = b.node("Unsqueeze", "/pool/Unsqueeze", &[&mask, &last], 1, vec![]);
    let masked = b.binary("Mul", "/pool", &h, &mask);
    let sequence_axis = b.const_i64("/pool/axes_sequence", &[1], &[1]);
    let pooled = b.node(
        "ReduceSum",
        "/pool/ReduceSum",
        &[&masked, &sequence_axis],
        1,
        vec![attr::int("keepdims", 0)],
    );
    let logits = b.linear("/classifier", &pooled, HIDDEN, CLASSES);
    let logits = b.node("Identity", "/logits", &[&logits], 1, vec![]);
    b.graph.output.push(value_info(&logits, &[-1, CLASSES]));
    let path = dir.join("encoder.onnx");
    b.finish().save(&path, ExternalData::Auto).unwrap();
    path
}

/// `SAMPLES` sentences of `SEQUENCE` tokens (the last few padded out by the mask), labelled.
fn text_npz(dir: &Path) -> PathBuf {
    let count = SAMPLES * SEQUENCE;
    let ids: Vec<i64> = (0..count as i64).map(|i| (i * 7 + 3) % VOCAB).collect();
    let mask: Vec<i64> = (0..count).map(|i| i64::from(i % SEQUENCE < 9)).collect();
    let types: Vec<i64> = (0..count).map(|i| i64::from(i % SEQUENCE >= 5)).collect();
    let labels: Vec<i64> = (0..SAMPLES as i64).map(|i| i % CLASSES).collect();
    let shape = [SAMPLES, SEQUENCE];
    let bytes = encode_npz(&[
        ("input_ids", encode_npy_i64(&shape, &ids)),
        ("attention_mask", encode_npy_i64(&shape, &mask)),
        ("token_type_ids", encode_npy_i64(&shape, &types)),
        ("labels", encode_npy_i64(&[SAMPLES], &labels)),
    ])
    .unwrap();
    let path = dir.join("text.npz");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn eval_feeds_every_named_input_from_the_npz_and_compares_with_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let model = text_encoder(dir.path());
    let data = text_npz(dir.path());
    let run = profagent()
        .arg("eval")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--reference")
        .arg(&model)
        .args(["--batch-size", "8", "--latency-runs", "2", "--json", "-"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let record: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(record["samples"], SAMPLES);
    assert!(record["top1"].as_f64().is_some(), "{record}");
    let cosine = record["fidelity"]["mean_cosine"].as_f64().unwrap();
    assert!((cosine - 1.0).abs() < 1e-6, "{record}");
    assert!(record["latency_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn static_quantization_calibrates_on_the_named_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let model = text_encoder(dir.path());
    let data = text_npz(dir.path());
    let out = dir.path().join("q.onnx");
    let run = profagent()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--mode", "static", "--calib-batch", "8", "--json", "-"])
        .arg("--calib")
        .arg(&data)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["report"]["calibration_batches"], 3, "{summary}");
    // Every sample calibrated: the check says it ran on calibration samples.
    assert_eq!(
        summary["check"]["inputs"],
        "real calibration (no others in the data)"
    );
    assert!(out.is_file());
}

#[test]
fn profile_needs_the_sequence_length_and_then_counts_exact_macs() {
    let dir = tempfile::tempdir().unwrap();
    let model = text_encoder(dir.path());
    let refused = profagent()
        .arg("profile")
        .arg(&model)
        .args(["--runs", "1", "--warmup", "0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--input-shape input_ids=1xN"),
        "{}",
        stderr(&refused)
    );
    let mut command = profagent();
    command
        .arg("profile")
        .arg(&model)
        .args(["--runs", "1", "--warmup", "0", "--json", "-"]);
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        command.args(["--input-shape", &format!("{name}=2x{SEQUENCE}")]);
    }
    let run = command.output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let profile: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let tokens = 2 * SEQUENCE as u64;
    let (hidden, mlp, classes) = (HIDDEN as u64, MLP as u64, CLASSES as u64);
    let expected = tokens * hidden * mlp * 2 + 2 * hidden * classes;
    assert_eq!(profile["model"]["macs"], expected, "{profile}");
    assert!(profile["measurement"].is_object(), "{profile}");

    // The npz's own shapes (2 samples of SEQUENCE tokens) size it just the same.
    let data = text_npz(dir.path());
    let run = profagent()
        .arg("profile")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .args([
            "--batch", "2", "--runs", "1", "--warmup", "0", "--json", "-",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let profile: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(profile["model"]["macs"], expected, "{profile}");
    assert!(profile["measurement"].is_object(), "{profile}");
}

/// compress on the named arrays: calibration, every quantization probe and the MLP
/// sensitivity run on the three inputs, and every evaluation carries the output cosine.
#[test]
fn compress_runs_every_probe_on_the_text_encoder_from_the_npz() {
    let dir = tempfile::tempdir().unwrap();
    let model = text_encoder(dir.path());
    let data = text_npz(dir.path());
    let out = dir.path().join("run");
    let run = profagent()
        .arg("compress")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args([
            "--max-acc-drop",
            "50",
            "--min-cosine",
            "0.9",
            "--rounds",
            "1",
        ])
        .args(["--sensitivity-groups", "2"])
        .args(["--calibration-images", "4", "--feedback-images", "8"])
        .output()
        .unwrap();
    let log = stderr(&run);
    assert!(matches!(run.status.code(), Some(0 | 1)), "{log}");
    assert!(
        log.contains("preprocessing: none (the data holds tensors"),
        "{log}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let probes = report["quant_probes"].as_array().unwrap();
    // dynamic, static with uint8 and with int8 activations, int4 weight-only.
    assert_eq!(probes.len(), 4, "{report}");
    for probe in probes {
        assert!(probe["error"].is_null(), "{probe}");
        assert!(probe["cosine"].as_f64().unwrap() > 0.9, "{probe}");
    }
    let sensitivity = report["sensitivity"].as_array().unwrap();
    assert!(!sensitivity.is_empty(), "{log}");
    for group in sensitivity {
        assert!(group["error"].is_null(), "{group}");
    }
}

#[test]
fn prune_checks_the_encoder_on_the_npz_or_on_synthetic_inputs_of_the_given_shape() {
    let dir = tempfile::tempdir().unwrap();
    let model = text_encoder(dir.path());
    let data = text_npz(dir.path());
    let prune = |extra: &[&str]| {
        profagent()
            .arg("prune")
            .arg(&model)
            .arg("-o")
            .arg(dir.path().join("p.onnx"))
            .args(["--ratio", "0.25", "--json", "-"])
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = prune(&[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--input-shape input_ids=1xN"));
    let shapes: Vec<String> = ["input_ids", "attention_mask", "token_type_ids"]
        .iter()
        .flat_map(|name| ["--input-shape".to_string(), format!("{name}=1x{SEQUENCE}")])
        .collect();
    let shapes: Vec<&str> = shapes.iter().map(String::as_str).collect();
    let synthetic = prune(&shapes);
    assert!(synthetic.status.success(), "{}", stderr(&synthetic));
    let calibrated = prune(&["--calib", data.to_str().unwrap(), "--calib-samples", "16"]);
    assert!(calibrated.status.success(), "{}", stderr(&calibrated));
    let report: serde_json::Value = serde_json::from_slice(&calibrated.stdout).unwrap();
    assert!(
        report["params_after"].as_u64() < report["params_before"].as_u64(),
        "{report}"
    );
}
