//! Issue 17, the BERT Must-show: a BERT-style encoder (4 layers, hidden 256, 4 heads, MLP 1024,
//! dynamic batch and sequence, three int64 inputs) exported as an optimum folder with a
//! WordPiece tokenizer.json, built from seeded random weights by `tests/support/bert.rs`, goes
//! through `profile` (exact MACs at a chosen sequence length), dynamic and static quantization
//! calibrated on a text file, head and MLP pruning, and `compress --min-cosine 0.99` on the
//! text file, each exiting 0 with a fidelity figure. The model is named by its folder, and
//! once as `hf:ORG/NAME` from a fake local Hugging Face cache.
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::bert::{write_fixture, BertConfig, BertFixture};

/// Sentences written beside the model; calibration and checks use slices of them.
const SENTENCES: usize = 48;
/// Tokens per sentence in the runs below (the sentences have 6 to 22 tokens: some are padded,
/// some truncated).
const SEQ_LEN: usize = 16;

fn profagent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_profagent"));
    command.env("NO_COLOR", "1");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        )
    })
}

fn fixture(dir: &Path) -> BertFixture {
    write_fixture(&dir.join("bert"), &BertConfig::default(), SENTENCES)
}

/// MatMul MACs of the encoder at batch 1 and `seq` tokens: per layer four `H×H` projections,
/// the two MLP matrices, `q·kᵀ` and `·v` (`seq² · H` each); then pooler and classifier.
fn expected_macs(c: &BertConfig, seq: u64) -> u64 {
    let (h, m, classes) = (c.hidden as u64, c.mlp as u64, c.classes as u64);
    let layer = 4 * seq * h * h + 2 * seq * h * m + 2 * seq * seq * h;
    c.layers as u64 * layer + h * h + h * classes
}

#[test]
fn profile_counts_exact_macs_at_the_given_sequence_length() {
    let dir = tempfile::tempdir().unwrap();
    let bert = fixture(dir.path());
    let config = BertConfig::default();
    for seq in [16u64, 64] {
        let run = profagent()
            .arg("profile")
            .arg(&bert.folder)
            .args([
                "--seq-len",
                &seq.to_string(),
                "--runs",
                "1",
                "--warmup",
                "0",
            ])
            .args(["--json", "-"])
            .output()
            .unwrap();
        let profile = json(&run);
        assert_eq!(
            profile["model"]["macs"],
            expected_macs(&config, seq),
            "{}",
            stderr(&run)
        );
        assert!(profile["measurement"].is_object());
    }
    // The same count from --input-shape.
    let mut command = profagent();
    command
        .arg("profile")
        .arg(&bert.model)
        .args(["--runs", "0"]);
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        command.args(["--input-shape", &format!("{name}=1x32")]);
    }
    let profile = json(&command.args(["--json", "-"]).output().unwrap());
    assert_eq!(profile["model"]["macs"], expected_macs(&config, 32));
}

#[test]
fn quantize_dynamic_and_static_with_text_calibration_keep_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let bert = fixture(dir.path());
    for mode in ["dynamic", "static"] {
        let out = dir.path().join(format!("{mode}.onnx"));
        let run = profagent()
            .arg("quantize")
            .arg(&bert.folder)
            .arg("-o")
            .arg(&out)
            .args(["--mode", mode, "--seq-len", &SEQ_LEN.to_string()])
            .arg("--calib")
            .arg(&bert.sentences)
            .args(["--calib-samples", "16", "--calib-batch", "8"])
            .args(["--check-samples", "32", "--json", "-"])
            .output()
            .unwrap();
        let summary = json(&run);
        let log = stderr(&run);
        assert!(log.contains("tokenized by"), "{log}");
        assert!(out.is_file());
        let check = &summary["check"];
        let cosine = check["report"]["cosine"].as_f64().unwrap();
        assert!(cosine >= check["min_cosine"].as_f64().unwrap(), "{summary}");
        assert_eq!(check["report"]["samples"], 32, "{summary}");
        assert!(
            summary["report"]["quantized"].as_array().unwrap().len() >= 24,
            "{mode}: every encoder MatMul quantized: {summary}"
        );
        eprintln!("{mode}: output cosine {cosine:.5}");
    }
}

#[test]
fn prune_removes_heads_and_mlp_units_of_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let bert = fixture(dir.path());
    let list = json(
        &profagent()
            .arg("prune")
            .arg(&bert.folder)
            .arg("-o")
            .arg(dir.path().join("unused.onnx"))
            .args(["--list", "--json", "-"])
            .output()
            .unwrap(),
    );
    let groups = list.as_array().unwrap();
    let prunable = |kind: &str| {
        groups
            .iter()
            .filter(|g| g["kind"] == kind && g["status"] == "prunable")
            .count()
    };
    assert_eq!(prunable("heads"), 4, "{list}");
    assert!(prunable("mlp") >= 4, "{list}");

    let out = dir.path().join("pruned.onnx");
    let run = profagent()
        .arg("prune")
        .arg(&bert.folder)
        .arg("-o")
        .arg(&out)
        .args(["--ratio", "0.25", "--heads", "0.25"])
        .arg("--calib")
        .arg(&bert.sentences)
        .args(["--seq-len", &SEQ_LEN.to_string(), "--calib-samples", "32"])
        .args(["--json", "-"])
        .output()
        .unwrap();
    let report = json(&run);
    let pruned: Vec<&serde_json::Value> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["action"] == "pruned")
        .collect();
    let heads: Vec<_> = pruned.iter().filter(|g| g["kind"] == "heads").collect();
    assert_eq!(heads.len(), 4, "{report}");
    for group in &heads {
        assert_eq!(
            (group["units_before"].clone(), group["units_after"].clone()),
            (4.into(), 3.into())
        );
    }
    let mlp = pruned
        .iter()
        .filter(|g| g["kind"] == "mlp" && g["units_before"] == 1024)
        .count();
    assert_eq!(mlp, 4, "{report}");
    // MACs at the calibration's shape (1 x SEQ_LEN): every projection into or out of the
    // heads at 192 of 256, the MLP at 768 of 1024, the pooler at 192.
    let seq = SEQ_LEN as u64;
    let config = BertConfig::default();
    assert_eq!(
        report["macs_before"],
        expected_macs(&config, seq),
        "{report}"
    );
    let layer = 4 * seq * 256 * 192 + 2 * seq * seq * 192 + 2 * seq * 256 * 768;
    let after = 4 * layer + 256 * 192 + 192 * 3;
    assert_eq!(report["macs_after"], after, "{report}");
    let cosine = report["check"]["report"]["cosine"].as_f64().unwrap();
    assert!(cosine > 0.5 && cosine <= 1.0 + 1e-9, "{report}");
    eprintln!("pruned 25 % of heads and MLP: output cosine {cosine:.4}");

    // The pruned model runs on the text and reports its fidelity to the original.
    let eval = json(
        &profagent()
            .arg("eval")
            .arg(&out)
            .arg("--data")
            .arg(&bert.labelled)
            .arg("--tokenizer")
            .arg(&bert.tokenizer)
            .arg("--reference")
            .arg(&bert.model)
            .args([
                "--seq-len",
                &SEQ_LEN.to_string(),
                "--latency-runs",
                "1",
                "--json",
                "-",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(eval["samples"], SENTENCES, "{eval}");
    assert!(
        eval["top1"].as_f64().is_some(),
        "labels from the jsonl: {eval}"
    );
    let eval_cosine = eval["fidelity"]["mean_cosine"].as_f64().unwrap();
    assert!(eval_cosine > 0.5, "{eval}");
}

#[test]
fn compress_meets_a_cosine_bound_on_a_text_file() {
    let dir = tempfile::tempdir().unwrap();
    let bert = fixture(dir.path());
    let out = dir.path().join("run");
    let run = profagent()
        .arg("compress")
        .arg(&bert.folder)
        .arg("--data")
        .arg(&bert.sentences)
        .arg("--out")
        .arg(&out)
        .args(["--min-cosine", "0.99", "--seq-len", &SEQ_LEN.to_string()])
        .args(["--rounds", "1", "--sensitivity-groups", "2"])
        .args(["--calib-samples", "8", "--feedback-samples", "16"])
        .args(["--compare-seconds", "1"])
        .output()
        .unwrap();
    let log = stderr(&run);
    assert_eq!(run.status.code(), Some(0), "{log}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let probes = report["quant_probes"].as_array().unwrap();
    // dynamic, static with uint8 and with int8 activations, int4 weight-only.
    assert_eq!(probes.len(), 4, "{report}");
    for probe in probes {
        assert!(probe["error"].is_null(), "{probe}");
    }
    let final_eval = &report["final"]["holdout_final"];
    let cosine = final_eval["cosine"].as_f64().unwrap();
    assert!(cosine >= 0.99, "{report}");
    eprintln!("compress: holdout cosine {cosine:.5}");
}

#[test]
fn hf_ids_are_read_from_the_local_cache_only() {
    let dir = tempfile::tempdir().unwrap();
    let bert = fixture(dir.path());
    let home = dir.path().join("hf-home");
    let missing = profagent()
        .env("HF_HOME", &home)
        .env_remove("HF_HUB_CACHE")
        .args(["profile", "hf:acme/tiny-bert", "--runs", "0"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("not in the local Hugging Face cache"),
        "{}",
        stderr(&missing)
    );
    // The cache layout: blobs under snapshots/<revision>/, refs/main naming the revision.
    let repo = home.join("hub").join("models--acme--tiny-bert");
    let snapshot = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(snapshot.join("onnx")).unwrap();
    std::fs::rename(&bert.model, snapshot.join("onnx").join("model.onnx")).unwrap();
    std::fs::rename(&bert.tokenizer, snapshot.join("tokenizer.json")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123abcd").unwrap();
    let run = profagent()
        .env("HF_HOME", &home)
        .env_remove("HF_HUB_CACHE")
        .args(["eval", "hf:acme/tiny-bert", "--data"])
        .arg(&bert.sentences)
        .args(["--reference", "hf:acme/tiny-bert", "--seq-len", "12"])
        .args(["--samples", "8", "--latency-runs", "1", "--json", "-"])
        .output()
        .unwrap();
    let eval = json(&run);
    assert_eq!(eval["samples"], 8, "{eval}");
    let cosine = eval["fidelity"]["mean_cosine"].as_f64().unwrap();
    assert!((cosine - 1.0).abs() < 1e-6, "{eval}");
    assert!(
        stderr(&run).contains("from hf:acme/tiny-bert"),
        "{}",
        stderr(&run)
    );
}
