//! Benchmark: images/second for decode + preprocess alone, and for end-to-end evaluation
//! (decode + preprocess + ONNX Runtime inference, overlapped), on a whole dataset.
//!
//! Guards against regressions in the data path (e.g. losing rayon parallelism or the
//! decode/inference overlap). Prints the ratio of the two so runs on busy machines compare.
//!
//! usage: cargo run -p profagent-data --release --example eval_throughput -- \
//!          [DATA=../shared/data/cifar10-test] [MODEL=../shared/models/resnet20_cifar10.onnx] [PRESET=cifar10]
use std::path::PathBuf;
use std::time::Instant;

use profagent_data::{evaluate, Dataset, EvalOptions, Preprocess};
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions};

const BATCH: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let mut args = std::env::args().skip(1);
    let data = args
        .next()
        .map_or(shared.join("data/cifar10-test"), PathBuf::from);
    let model = args
        .next()
        .map_or(shared.join("models/resnet20_cifar10.onnx"), PathBuf::from);
    let preset = args.next().unwrap_or_else(|| "cifar10".into());
    let dataset = Dataset::open(&data, &Preprocess::preset(&preset)?)?;
    let threads = rayon::current_num_threads();

    let start = Instant::now();
    let mut decoded = 0;
    for batch in dataset.batches(BATCH) {
        decoded += batch?.items.len();
    }
    let decode_rate = decoded as f64 / start.elapsed().as_secs_f64();
    println!(
        "decode+preprocess: {decoded} images, {decode_rate:.0} images/s ({threads} rayon threads)"
    );

    let runtime = open_runtime(RuntimeKind::Ort)?;
    let mut session = runtime.load(
        &ModelSource::Path(model.clone()),
        &SessionOptions::default(),
    )?;
    let options = EvalOptions {
        batch_size: BATCH,
        latency_batches: vec![],
        ..EvalOptions::default()
    };
    let record = evaluate(session.as_mut(), None, &dataset, &options)?;
    println!(
        "end-to-end eval ({}): {} images, {:.0} images/s, top-1 {:.2} %",
        model.display(),
        record.samples,
        record.eval_images_per_s,
        record.top1.unwrap_or(0.0) * 100.0
    );
    println!(
        "end-to-end / decode-only: {:.2}",
        record.eval_images_per_s / decode_rate
    );
    Ok(())
}
