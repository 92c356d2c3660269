//! Running a test model on ONNX Runtime and comparing outputs, shared by the tests that check
//! quantized outputs (not by the examples, which include `common` only).
use profagent_onnx::Model;
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions, Tensor};

/// Runs `model` on `x` (fed to its input "input"): the first output; None (and a printed
/// reason) when ONNX Runtime is not installed.
pub fn run(model: &Model, x: &Tensor) -> Option<Vec<f32>> {
    let runtime = match open_runtime(RuntimeKind::Ort) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipping: ONNX Runtime unavailable: {e}");
            return None;
        }
    };
    let mut session = runtime
        .load(
            &ModelSource::Bytes(model.to_bytes()),
            &SessionOptions::default(),
        )
        .expect("model loads in ONNX Runtime");
    let out = session
        .run(&[("input".to_string(), x.clone())])
        .expect("runs");
    Some(out[0].1.as_f32().expect("float output").to_vec())
}

/// Cosine similarity of two flattened outputs.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
