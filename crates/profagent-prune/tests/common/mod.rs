//! Shared test helpers: running models in ONNX Runtime, a small CIFAR-10 subset loader, and
//! an `ActivationSource` over a fixed calibration batch.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use profagent_onnx::Model;
use profagent_prune::{expose_values, ActivationSource, ValueVisitor};
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions, Tensor};

pub const CIFAR_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const CIFAR_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// ../shared (models and data). Tests that use it carry
/// `#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]` (the
/// crate's build script sets `shared_present`), so they show as ignored when it is absent.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Runs `model` on one input in ONNX Runtime (optimisations off, 1 thread: deterministic)
/// and returns all outputs.
pub fn run_all(model: &Model, input: &Tensor) -> Vec<(String, Tensor)> {
    let runtime = open_runtime(RuntimeKind::Ort).expect("ONNX Runtime is available");
    let options = SessionOptions {
        threads: 1,
        opt_level: profagent_runtime::OptLevel::Disabled,
        ..Default::default()
    };
    let mut session = runtime
        .load(&ModelSource::Bytes(model.to_bytes()), &options)
        .expect("the model loads in ONNX Runtime");
    let name = session.inputs()[0].name.clone();
    session
        .run(&[(name, input.clone())])
        .expect("the model runs")
}

/// The largest absolute difference between two outputs of the same shape.
#[allow(dead_code)] // not every test binary that includes `common` compares outputs
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// First output as f32.
pub fn run(model: &Model, input: &Tensor) -> Vec<f32> {
    run_all(model, input)[0]
        .1
        .as_f32()
        .expect("float output")
        .to_vec()
}

/// Every `step`-th image of the CIFAR-10 test set (ImageFolder order), normalised NCHW.
pub fn cifar_subset(shared: &Path, count: usize) -> (Vec<f32>, Vec<usize>) {
    let root = shared.join("data/cifar10-test");
    let mut classes: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    classes.sort();
    let mut all = Vec::new();
    for (label, dir) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        all.extend(files.into_iter().map(|f| (f, label)));
    }
    let step = (all.len() / count).max(1);
    let mut data = Vec::with_capacity(count * 3 * 32 * 32);
    let mut labels = Vec::new();
    for (path, label) in all.into_iter().step_by(step).take(count) {
        let img = image::open(&path).unwrap().to_rgb8();
        let mut chw = vec![0f32; 3 * 32 * 32];
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                chw[c * 1024 + (y as usize) * 32 + x as usize] =
                    (p[c] as f32 - CIFAR_MEAN[c] * 255.0) / (CIFAR_STD[c] * 255.0);
            }
        }
        data.extend(chw);
        labels.push(label);
    }
    (data, labels)
}

/// Top-1 accuracy of `model` on (images, labels), in batches.
pub fn accuracy(model: &Model, images: &[f32], labels: &[usize], sample: &[usize]) -> f64 {
    let per: usize = sample.iter().product();
    let runtime = open_runtime(RuntimeKind::Ort).unwrap();
    let mut session = runtime
        .load(
            &ModelSource::Bytes(model.to_bytes()),
            &SessionOptions::default(),
        )
        .expect("loads");
    let name = session.inputs()[0].name.clone();
    let mut correct = 0;
    for (chunk, labs) in images.chunks(per * 50).zip(labels.chunks(50)) {
        let mut shape = vec![labs.len()];
        shape.extend_from_slice(sample);
        let out = session
            .run(&[(name.clone(), Tensor::f32(shape, chunk.to_vec()))])
            .unwrap();
        let logits = out[0].1.as_f32().unwrap();
        let classes = logits.len() / labs.len();
        for (row, &l) in logits.chunks(classes).zip(labs) {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            correct += usize::from(best == l);
        }
    }
    correct as f64 / labels.len() as f64
}

/// Calibration over a fixed batch through ONNX Runtime.
pub struct OrtCalibration {
    pub batch: Tensor,
}

impl ActivationSource for OrtCalibration {
    fn visit_values(
        &mut self,
        model: &Model,
        values: &[String],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), String> {
        let exposed = expose_values(model, values);
        // Batches of 32 samples, as the CLI streams them.
        let per: usize = self.batch.shape[1..].iter().product();
        let all = self.batch.as_f32().ok_or("not float")?;
        for chunk in all.chunks(per * 32) {
            let mut shape = self.batch.shape.clone();
            shape[0] = chunk.len() / per;
            let outputs = run_all(&exposed, &Tensor::f32(shape, chunk.to_vec()));
            for (i, v) in values.iter().enumerate() {
                let (_, t) = outputs
                    .iter()
                    .find(|(n, _)| n == v)
                    .ok_or("missing output")?;
                visit(i, &t.shape, t.as_f32().ok_or("not float")?)?;
            }
        }
        Ok(())
    }
}

/// The name of input `slot` of node `node_name` (panics when there is no such node).
pub fn input_of(model: &Model, node_name: &str, slot: usize) -> String {
    model
        .graph()
        .node
        .iter()
        .find(|n| n.name() == node_name)
        .unwrap_or_else(|| panic!("no node {node_name}"))
        .input[slot]
        .clone()
}
