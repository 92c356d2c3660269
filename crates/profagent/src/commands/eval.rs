//! `profagent eval`: accuracy (or fidelity to a reference model), latency, throughput and memory
//! of a model on a dataset, as a short summary and, with `--json`, an `EvalRecord`.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use profagent_data::{evaluate, EvalOptions, EvalRecord};
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions};

use crate::exit::RuntimeFailure;

/// Evaluate a model on a dataset: top-1/top-5 accuracy, latency, throughput, memory.
///
/// DATA is an ImageFolder tree (class = sorted sub-folder index), a labels file of
/// `path, label` lines (paths relative to the file), or a `.npy`/`.npz` tensor file (used as is).
/// Images are decoded and preprocessed exactly as PIL + torchvision do, in parallel on all
/// cores. Preprocessing comes from --preprocess (or --preset), or a `preprocessor_config.json` /
/// `preprocess.json` / `MODEL.preprocess.json` next to the model, else a guess from the model's
/// input shape (printed at start). Class folders named by class index or ImageNet synset id
/// are matched to the model's classes by name (--classes FILE for other names); a folder set
/// that cannot be matched is an error, never a silent wrong score. Without labels (a flat
/// folder of images), pass --reference to measure fidelity (top-1 agreement, KL divergence,
/// logit cosine).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    profagent eval resnet18.onnx --data cifar10-test --preprocess cifar10\n  \
    profagent eval mobilenet.onnx --data val/dataset.txt --preprocess imagenet --json eval.json\n  \
    profagent eval small.onnx --data calib.npy --reference big.onnx --samples 500 --offset 500 --seed 0")]
pub struct Args {
    /// The ONNX model to evaluate (read only).
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,

    /// Dataset: ImageFolder directory, labels file, or .npy/.npz.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,

    /// Preprocessing: a preset (cifar10: 32x32, CIFAR mean/std; imagenet: resize 256, crop
    /// 224) or a config file (this tool's JSON or a Hugging Face preprocessor_config.json);
    /// --preset is the same flag. Default: the file beside the model, else a guess from the
    /// model's input shape.
    #[arg(long, value_name = "PRESET|FILE", alias = "preset")]
    pub preprocess: Option<String>,

    /// Class names in the model's output order, one per line (the first word of a line is
    /// the name: ImageNet's synset_words.txt works as is): class folders are matched to it by
    /// name. Without it, folders named by class index or ImageNet synset id are matched by
    /// name, and other folders by sorted position only when there are as many as the model
    /// has classes.
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,

    /// Size of the model input's dynamic dimensions, e.g. `1x3x224x224` (repeatable, as in
    /// every command): picks the preprocessing guess for a model with dynamic height/width
    /// (the data's own shape is what is fed).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<profagent_data::InputShape>,

    #[command(flatten)]
    pub text: crate::commands::inputs::TextArgs,

    /// Reference model (e.g. the uncompressed original) for fidelity metrics.
    #[arg(long, value_name = "MODEL.onnx")]
    pub reference: Option<PathBuf>,

    /// Inference runtime.
    #[arg(long, default_value = "ort", value_name = "ort|tract")]
    pub runtime: RuntimeKind,

    /// Intra-op threads (0 = the runtime's default: all cores).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = super::threads_parser())]
    pub threads: usize,

    /// Samples per inference call during evaluation; also the second batch size timed.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=super::MAX_BATCH))]
    pub batch_size: u64,

    /// Evaluate at most N samples (after --offset).
    #[arg(long, value_name = "N", alias = "limit")]
    pub samples: Option<usize>,

    /// Skip the first N samples (of the shuffled order with --seed): use disjoint
    /// --offset/--samples ranges for calibration and evaluation.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub offset: usize,

    /// Shuffle samples deterministically with this seed before --offset/--samples.
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,

    /// Timed runs per batch size for latency (after 3 warm-up runs); 0 skips latency.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub latency_runs: usize,

    /// Skip unreadable images with a warning (counted in the record) instead of failing.
    #[arg(long)]
    pub skip_bad: bool,

    /// Write the evaluation record as JSON to PATH (`-` prints it to stdout instead of the
    /// summary). Accuracies are fractions in [0, 1].
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    profagent_onnx::OutputGuard::of_model(&args.model)
        .input_model(args.reference.as_deref())
        .input(Some(args.data.as_path()))
        .input(args.preprocess.as_deref().map(std::path::Path::new))
        .output_file(args.json.as_deref())?;
    for model in std::iter::once(&args.model).chain(args.reference.as_ref()) {
        profagent_onnx::output::check_external_data_files(model)?;
    }
    if !args.model.is_file() {
        anyhow::bail!("model '{}' does not exist", args.model.display());
    }
    let model = profagent_onnx::Model::load(&args.model).map_err(one_line)?;
    let inputs = crate::commands::inputs::model_inputs(&model, &args.input_shape)?;
    let preprocess = crate::commands::inputs::preprocess(
        args.preprocess.as_deref(),
        &args.model,
        &inputs,
        Some(&args.data),
    )
    .map_err(one_line)?
    .preprocess;
    drop(model);
    let mut dataset = crate::commands::inputs::open_dataset(
        &args.data,
        &preprocess,
        &args.model,
        &inputs,
        &args.text,
    )
    .map_err(one_line)?;
    if let Some(classes) = &args.classes {
        dataset = dataset.with_classes(classes).map_err(one_line)?;
    }
    let dataset = dataset
        .with_skip_bad(args.skip_bad)
        .subset(args.offset, args.samples, args.seed)
        .map_err(one_line)?;

    let runtime =
        open_runtime(args.runtime).map_err(|e| RuntimeFailure(anyhow::anyhow!(one_line(e))))?;
    let options = SessionOptions {
        threads: args.threads,
        ..SessionOptions::default()
    };
    let mut session = runtime
        .load(&ModelSource::Path(args.model.clone()), &options)
        .map_err(one_line)
        .with_context(|| format!("cannot load model '{}'", args.model.display()))?;
    let mut reference = match &args.reference {
        Some(path) => Some(
            runtime
                .load(&ModelSource::Path(path.clone()), &options)
                .map_err(one_line)
                .with_context(|| format!("cannot load reference model '{}'", path.display()))?,
        ),
        None => None,
    };

    let batch = args.batch_size as usize;
    let eval_options = EvalOptions {
        batch_size: batch,
        latency_batches: if args.latency_runs == 0 {
            vec![]
        } else {
            vec![1, batch]
        },
        timed_runs: args.latency_runs,
        ..EvalOptions::default()
    };
    // Shorten the boxed trait object's lifetime here (a coercion site); inside an Option it
    // would have to stay 'static.
    let reference_session: Option<&mut dyn profagent_runtime::Session> = match reference.as_mut() {
        Some(boxed) => Some(boxed.as_mut()),
        None => None,
    };
    // The evaluation and latency runs draw their own progress (crate::progress).
    let mut record = evaluate(session.as_mut(), reference_session, &dataset, &eval_options)
        .map_err(one_line)
        .with_context(|| {
            format!(
                "evaluating '{}' on '{}'",
                args.model.display(),
                args.data.display()
            )
        })?;
    fill_model_facts(&mut record, &args.model, &runtime.version());

    for skipped in &record.skipped_items {
        eprintln!("warning: skipped {}: {}", skipped.item, skipped.reason);
    }
    let text = serde_json::to_string_pretty(&record)?;
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => println!("{text}"),
        Some(path) => {
            print_summary(&record);
            profagent_onnx::write_atomic(path, text.as_bytes())
                .map_err(one_line)
                .with_context(|| format!("cannot write '{}'", path.display()))?;
            super::info(format_args!("wrote {}", path.display()));
        }
        None => print_summary(&record),
    }
    Ok(ExitCode::SUCCESS)
}

/// File size, params and MACs (static profile at batch 1), runtime version.
fn fill_model_facts(record: &mut EvalRecord, model: &Path, runtime_version: &str) {
    record.model = model.display().to_string();
    record.model_bytes = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
    record.runtime = runtime_version.to_string();
    let profile = profagent_onnx::Model::load(model).ok().and_then(|loaded| {
        profagent_profile::static_profile(&loaded, &profagent_profile::ProfileOptions { batch: 1 })
            .ok()
    });
    if let Some(profile) = profile {
        record.params = Some(profile.model.params);
        record.macs = Some(profile.model.macs);
    }
}

fn print_summary(record: &EvalRecord) {
    println!(
        "model      {} ({})",
        record.model,
        profagent_onnx::units::bytes(record.model_bytes)
    );
    println!(
        "dataset    {} ({} samples, {} skipped)",
        record.dataset, record.samples, record.skipped
    );
    let interval = |i: Option<profagent_stats::Estimate>| {
        i.map(|i| {
            format!(
                " (95 % interval {:.2}–{:.2} %, Wilson, {} samples)",
                i.low * 100.0,
                i.high * 100.0,
                record.samples
            )
        })
        .unwrap_or_default()
    };
    match (record.top1, record.top5) {
        (Some(top1), Some(top5)) => {
            println!(
                "top-1      {:.2} %{}",
                top1 * 100.0,
                interval(record.top1_interval)
            );
            println!(
                "top-5      {:.2} %{}",
                top5 * 100.0,
                interval(record.top5_interval)
            );
        }
        _ => println!("top-1      not measured: the data has no labels"),
    }
    if record.top1.is_none() && record.fidelity.is_none() {
        println!("top-1      - (the data has no labels; pass --reference MODEL for fidelity)");
    }
    if let Some(f) = &record.fidelity {
        println!(
            "fidelity   top-1 agreement {:.2} %, mean KL {:.5}, logit cosine {:.5}",
            f.top1_agreement * 100.0,
            f.mean_kl,
            f.mean_cosine
        );
    }
    for point in &record.latency {
        println!(
            "latency    batch {:<4} median {:.3} ms, p90 {:.3} ms",
            point.batch, point.median_ms, point.p90_ms
        );
    }
    if let Some(throughput) = record.throughput_images_per_s {
        println!("throughput {throughput:.1} images/s (inference)");
    }
    println!(
        "eval speed {:.1} images/s (decode + preprocess + inference)",
        record.eval_images_per_s
    );
    if let Some(peak) = record.peak_rss_bytes {
        println!("peak RSS   {}", profagent_onnx::units::bytes(peak));
    }
    println!("runtime    {}", record.runtime);
}

/// Library errors as one line (decoder messages may hold line breaks).
fn one_line(err: impl std::fmt::Display) -> anyhow::Error {
    let text = err.to_string();
    anyhow::anyhow!(text.split_whitespace().collect::<Vec<_>>().join(" "))
}
