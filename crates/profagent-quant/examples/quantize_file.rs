//! Quantizes one model file with the library alone (no CLI crate), for quick measurements:
//!
//! `cargo run --release -p profagent-quant --example quantize_file -- MODEL OUT MODE [CALIB_DIR COUNT OFFSET]`
//!
//! MODE is dynamic, dynamic-pc (per-channel), dynamic-std (standard ops), static or int4.
//! CALIB_DIR is a CIFAR-style image folder (cifar10 preprocessing), run whole batches through
//! ONNX Runtime by the tests' calibration source (the CLI uses the workbench's).
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use common::Batch;
use profagent_data::{Dataset, Preprocess};
use profagent_onnx::{ExternalData, Model};
use profagent_quant::{quantize, Mode, QuantSpec, Target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: MODEL OUT MODE [CALIB_DIR COUNT OFFSET]".into());
    }
    let started = Instant::now();
    let model = Model::load(&args[1])?;
    let loaded = started.elapsed();
    let mut spec = QuantSpec::new(match args[3].as_str() {
        "static" => Mode::Static,
        "int4" => Mode::Int4,
        _ => Mode::Dynamic,
    });
    if args[3] == "dynamic-pc" {
        spec.per_channel = Some(true);
    }
    if args[3] == "dynamic-std" {
        spec.target = Target::Standard;
    }
    let batches: Option<Vec<Batch>> = match args.get(4) {
        Some(dir) => {
            let count: usize = args.get(5).map(|c| c.parse()).transpose()?.unwrap_or(500);
            let offset: usize = args.get(6).map(|c| c.parse()).transpose()?.unwrap_or(0);
            let data = Dataset::open(Path::new(dir), &Preprocess::preset("cifar10")?)?.subset(
                offset,
                Some(count),
                Some(0),
            )?;
            Some(
                data.batches(50)
                    .map(|b| b.map(|b| vec![("input".to_string(), b.input)]))
                    .collect::<Result<_, _>>()?,
            )
        }
        None => None,
    };
    let prepared = started.elapsed();
    let mut source = batches.as_deref().map(common::source);
    let calibration: Option<&mut dyn profagent_quant::ActivationSource> = match source.as_mut() {
        Some(s) => Some(s),
        None => None,
    };
    let (out, report) = quantize(&model, &spec, calibration)?;
    let quantized = started.elapsed();
    out.save(&args[2], ExternalData::Auto)?;
    eprintln!(
        "load {:.2}s, data {:.2}s, quantize {:.2}s, save {:.2}s; {} quantized, {} skipped, {} activations, {} relus folded",
        loaded.as_secs_f64(),
        (prepared - loaded).as_secs_f64(),
        (quantized - prepared).as_secs_f64(),
        (started.elapsed() - quantized).as_secs_f64(),
        report.quantized.len(),
        report.skipped.len(),
        report.quantized_activations,
        report.folded_relus
    );
    for s in report.skipped.iter().take(5) {
        eprintln!("  skipped {} ({}): {}", s.layer, s.op_type, s.reason);
    }
    Ok(())
}
