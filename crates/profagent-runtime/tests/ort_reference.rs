//! ONNX Runtime through our backend must reproduce python-onnxruntime's outputs (recorded in
//! fixtures/reference_outputs.json by fixtures/generate_reference.py) on every shared model.
mod common;

use profagent_runtime::{ModelSource, SessionOptions};

/// Outputs must match python-onnxruntime within this relative error (issue 3).
const REFERENCE_MAX_RELATIVE_ERROR: f32 = 1e-4;

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    digest.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn ort_matches_python_onnxruntime_on_shared_models() {
    let models = common::shared_models();
    let Some(runtime) = common::ort_runtime() else {
        return;
    };
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/reference_outputs.json")).unwrap();
    let entries = fixture["models"].as_object().unwrap();
    assert!(!entries.is_empty());
    let options = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    for (file_name, entry) in entries {
        let path = models.join(file_name);
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("skipping {file_name}: not in {}", models.display());
            continue;
        };
        if sha256_hex(&bytes) != entry["sha256"].as_str().unwrap() {
            eprintln!("skipping {file_name}: the model changed since the fixture was generated");
            continue;
        }
        let mut session = runtime.load(&ModelSource::Bytes(bytes), &options).unwrap();
        let input_name = entry["input"]["name"].as_str().unwrap().to_string();
        let shape: Vec<usize> = entry["input"]["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let outputs = session
            .run(&[(input_name, common::deterministic_input(&shape))])
            .unwrap();
        let expected = entry["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), expected.len(), "{file_name}: output count");
        for ((name, tensor), want) in outputs.iter().zip(expected) {
            assert_eq!(
                name,
                want["name"].as_str().unwrap(),
                "{file_name}: output order"
            );
            let want_shape: Vec<usize> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(tensor.shape, want_shape, "{file_name}/{name}: shape");
            let want_data: Vec<f32> = want["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let got = tensor.as_f32().unwrap();
            let scale = want_data
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()))
                .max(f32::MIN_POSITIVE);
            let worst = got
                .iter()
                .zip(&want_data)
                .map(|(g, w)| (g - w).abs() / scale)
                .fold(0f32, f32::max);
            assert!(
                worst <= REFERENCE_MAX_RELATIVE_ERROR,
                "{file_name}/{name}: relative error {worst} > {REFERENCE_MAX_RELATIVE_ERROR}"
            );
            eprintln!("{file_name}/{name}: max relative error {worst:e}");
        }
    }
}
