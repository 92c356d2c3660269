//! `profagent profile`: per-layer parameters, MACs and bytes of a model, measured latency and
//! memory on a runtime, as a table of the heaviest layers and, with `--json`, a full
//! machine-readable profile.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use profagent_onnx::{Model, OutputGuard};
use profagent_profile::{
    merge_measured, render_measurement, static_profile, table, ProfileOptions,
};
use profagent_runtime::{
    open_runtime_with_fallback, profile_model, synthetic_inputs, ModelSource, ProfileSettings,
    RuntimeError, RuntimeKind, SessionOptions,
};

use crate::exit::RuntimeFailure;

/// Profile an ONNX model layer by layer.
///
/// Layers are the exporter's module scopes (`/layer1/layer1.0/conv1/Conv` belongs to
/// `layer1.0.conv1`). For each layer: parameters (float weights), MACs (Conv, Gemm and
/// MatMul, attention's activation×activation MatMuls included), bytes of the weights it
/// reads and bytes of the activations it writes at the given batch size. The model is also
/// run on the chosen runtime (`--runs 0` skips this): per-layer latency (median over the
/// runs, from the runtime's own profiler, fused kernels mapped back to ONNX layers), its
/// share of the total, end-to-end latency, peak memory, and the machine it ran on.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    profagent profile model.onnx\n  \
    profagent profile model.onnx --runs 0 --batch 8 --top 10   (static only)\n  \
    profagent profile model.onnx --json profile.json\n  \
    profagent profile model.onnx --runtime tract --runs 20 --threads 1\n  \
    profagent profile model.onnx --runtime ort --runs 10 --json profile.json")]
pub struct Args {
    /// The ONNX model to profile (read only; external data next to it is read too).
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,

    /// Batch size for MACs and activation bytes (binds the model's symbolic batch dim).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=super::MAX_BATCH as i64))]
    pub batch: i64,

    /// Write the full profile (model totals, layers[], nodes[]) as JSON to PATH; `-` prints
    /// it to stdout instead of the table.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// How many of the heaviest layers the table shows.
    #[arg(long, default_value_t = 20, value_name = "K")]
    pub top: usize,

    /// Measure on this runtime: `ort` (ONNX Runtime) or `tract` (builds with the `tract`
    /// feature).
    #[arg(long, value_name = "ort|tract", default_value = "ort")]
    pub runtime: RuntimeKind,

    /// Timed runs for the measured columns (median and spread over them); 0 keeps the
    /// profile static (no runtime needed).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub runs: usize,

    /// Untimed warm-up runs before the timed ones.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub warmup: usize,

    /// Intra-op threads for the runtime; 0 lets it choose (usually all cores).
    #[arg(long, default_value_t = 0, value_name = "T", value_parser = super::threads_parser())]
    pub threads: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    OutputGuard::of_model(&args.model).output_file(args.json.as_deref())?;
    let model = Model::load(&args.model).map_err(one_line)?;
    let profile = static_profile(&model, &ProfileOptions { batch: args.batch })
        .map_err(one_line)
        .with_context(|| format!("cannot profile {}", args.model.display()))?;
    let mut profile = profile;
    let runs = args.runs;
    if runs > 0 {
        measure(&args, runs, &model, &mut profile)?;
    }

    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            println!("{}", profile.to_json().map_err(one_line)?);
        }
        Some(path) => {
            print_table(&profile, args.top);
            profile.write_json(path).map_err(one_line)?;
            eprintln!("wrote {}", path.display());
        }
        None => print_table(&profile, args.top),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(profile: &profagent_profile::Profile, top: usize) {
    print!("{}", table::render_table(profile, top));
    if let Some(measurement) = &profile.measurement {
        print!("{}", render_measurement(measurement));
    }
}

/// Runs the model on the chosen runtime and merges the measured columns into `profile`.
fn measure(
    args: &Args,
    runs: usize,
    model: &Model,
    profile: &mut profagent_profile::Profile,
) -> anyhow::Result<()> {
    let (runtime, notice) =
        open_runtime_with_fallback(args.runtime).map_err(|e| RuntimeFailure(one_line(e)))?;
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    let source = ModelSource::Path(args.model.clone());
    let options = SessionOptions {
        threads: args.threads,
        ..SessionOptions::default()
    };
    let batch = usize::try_from(args.batch).context("--batch is too large")?;
    let (declared, _) = profagent_runtime::onnx_io::graph_io(model.graph());
    let inputs = synthetic_inputs(&declared, batch).map_err(one_line)?;
    let settings = ProfileSettings {
        warmup: args.warmup,
        runs,
    };
    let measured = profile_model(
        runtime.as_ref(),
        &source,
        model,
        &options,
        &inputs,
        settings,
    )
    .map_err(|e| match e {
        // The model itself does not load or take these inputs: bad input, as in `eval`.
        RuntimeError::Load { .. } | RuntimeError::BadInput { .. } => one_line(e),
        other => RuntimeFailure(one_line(other)).into(),
    })
    .with_context(|| {
        format!(
            "cannot measure {} on {}",
            args.model.display(),
            args.runtime
        )
    })?;
    merge_measured(profile, &measured);
    Ok(())
}

/// Library errors as one line: `exit::report_error` prints the chain on one line, and a
/// message from a decoder may itself contain line breaks.
fn one_line(err: impl std::fmt::Display) -> anyhow::Error {
    let text = err.to_string();
    anyhow::anyhow!(text.split_whitespace().collect::<Vec<_>>().join(" "))
}
