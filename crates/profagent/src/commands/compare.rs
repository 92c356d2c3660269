//! `profagent compare`: is one model faster than another on this machine, and how sure is that?
//! The same interleaved comparator `compress` decides with (`profagent_runtime::compare_latency`),
//! for a user who wants to check a speedup claim (ours or another tool's) on their hardware.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use profagent_onnx::{Model, OutputGuard};
use profagent_runtime::{
    compare_latency, open_runtime, synthetic_inputs, CompareSettings, ModelSource, RuntimeKind,
    SessionOptions,
};

use crate::exit::RuntimeFailure;

/// Time CANDIDATE against REFERENCE in alternating blocks (A B, B A, ...) in one process and
/// print the median speedup with its 95 % interval: "faster" only when the whole interval is
/// above 1, "slower" only when below, otherwise "not distinguishable".
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  profagent compare model.onnx model_int8.onnx --seconds 60")]
pub struct Args {
    /// The model to compare against (A).
    pub reference: PathBuf,
    /// The model timed against it (B).
    pub candidate: PathBuf,
    /// Batch size of the timed (synthetic) inputs.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=super::MAX_BATCH))]
    pub batch: usize,
    /// Shapes for inputs with dynamic dimensions: NAME=1x3x224x224 (repeatable).
    #[arg(long, value_name = "NAME=DIMS")]
    pub input_shape: Vec<profagent_data::InputShape>,
    /// Intra-op threads; 0 lets the runtime choose.
    #[arg(long, default_value_t = 0, value_parser = super::threads_parser())]
    pub threads: usize,
    /// Stop after this many seconds even if the interval is still wider than ±3 %.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Write the comparison as JSON to PATH (`-` for stdout).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout_json = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    OutputGuard::of_model(&args.reference)
        .input_model(Some(args.candidate.as_path()))
        .output_file(args.json.as_deref().filter(|_| !stdout_json))?;
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        anyhow::bail!(
            "--seconds must be a positive number of seconds, got {}",
            args.seconds
        );
    }
    let reference = Model::load(&args.reference)
        .with_context(|| format!("cannot load {}", args.reference.display()))?;
    Model::load(&args.candidate)
        .with_context(|| format!("cannot load {}", args.candidate.display()))?;
    let declared = crate::commands::inputs::model_inputs(&reference, &args.input_shape)?;
    profagent_data::inputs::require_known_shapes(&declared)?;
    let inputs = synthetic_inputs(&declared, args.batch)?;
    let runtime = open_runtime(RuntimeKind::Ort).map_err(|e| RuntimeFailure(e.into()))?;
    let settings = CompareSettings {
        time_cap: std::time::Duration::from_secs_f64(args.seconds),
        ..Default::default()
    };
    let comparison = compare_latency(
        runtime.as_ref(),
        &ModelSource::Path(args.reference.clone()),
        &ModelSource::Path(args.candidate.clone()),
        &SessionOptions {
            threads: args.threads,
            ..Default::default()
        },
        &inputs,
        &settings,
    )
    .map_err(|e| RuntimeFailure(e.into()))
    .with_context(|| {
        format!(
            "cannot time {} against {}",
            args.candidate.display(),
            args.reference.display()
        )
    })?;
    let text = serde_json::to_string_pretty(&comparison)?;
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => println!("{text}"),
        Some(path) => {
            profagent_onnx::write_atomic(path, text.as_bytes())?;
            eprintln!("wrote {}", path.display());
        }
        None => {}
    }
    if !stdout_json {
        println!(
            "{} against {}: {}",
            args.candidate.display(),
            args.reference.display(),
            comparison.describe()
        );
        println!(
            "median latency {:.3} ms vs {:.3} ms at batch {}; {} runs per block, {:.1} s; stopped: {}",
            comparison.candidate_ms.value,
            comparison.reference_ms,
            comparison.batch,
            comparison.runs_per_block,
            comparison.seconds,
            comparison.stopped
        );
    }
    Ok(ExitCode::SUCCESS)
}
