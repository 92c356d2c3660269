//! `profagent profile`: per-layer parameters, MACs and bytes of a model, measured latency and
//! memory on a runtime, as a table of the heaviest layers and, with `--json`, a full
//! machine-readable profile.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use profagent_onnx::{Model, OutputGuard};
use profagent_profile::{
    merge_fusion, merge_measured, render_fusion, render_measurement, static_profile, table,
    ProfileOptions,
};
use profagent_runtime::{
    fusion_coverage, open_runtime_with_fallback, profile_model, synthetic_inputs, ModelSource,
    ProfileSettings, RuntimeError, RuntimeKind, SessionOptions,
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
    profagent profile model.onnx --runtime ort --runs 10 --json profile.json\n  \
    profagent profile bert.onnx --input-shape input_ids=1x128 --input-shape attention_mask=1x128")]
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

    /// Size of an input's dynamic dimensions, e.g. `input_ids=1x128` or `1x3x224x224` for a
    /// one-input model (repeatable). MACs, bytes and the measured run use this shape; a batch
    /// given here wins over --batch.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<profagent_data::InputShape>,

    #[command(flatten)]
    pub text: crate::commands::inputs::TextArgs,

    /// Profile on real samples instead of synthetic inputs: the first --batch samples of an
    /// image folder, a labels file, a .npy, or an .npz with one array per input name (text
    /// encoders). Their shapes size the model's dynamic dimensions.
    #[arg(long, value_name = "DATA")]
    pub data: Option<PathBuf>,

    /// Preprocessing for --data: a preset (cifar10, imagenet, ...) or a JSON file (--preset is
    /// the same flag); default: the file beside the model, else a guess from the input shape.
    #[arg(long, value_name = "PRESET|FILE", alias = "preset", requires = "data")]
    pub preprocess: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    OutputGuard::of_model(&args.model)
        .input(args.data.as_deref())
        .input(args.preprocess.as_deref().map(std::path::Path::new))
        .output_file(args.json.as_deref())?;
    let loaded = Model::load(&args.model).map_err(one_line)?;
    // Real samples, when given, bring their shapes; --seq-len sizes token inputs.
    let mut given = args.input_shape.clone();
    let (declared, _) = profagent_runtime::onnx_io::graph_io(loaded.graph());
    given.extend(crate::commands::inputs::seq_len_shapes(
        &declared,
        &given,
        args.text.seq_len,
        usize::try_from(args.batch.max(1)).unwrap_or(1),
    ));
    let data_feeds = match &args.data {
        Some(path) => {
            let feeds = data_feeds(&args, &loaded, path)?;
            given.extend(
                feeds
                    .iter()
                    .map(|(name, tensor)| profagent_data::InputShape {
                        name: Some(name.clone()),
                        dims: tensor.shape.clone(),
                    }),
            );
            Some(feeds)
        }
        None => None,
    };
    // The shapes asked for become the model's declared input dims (a copy): shape inference
    // then sizes every activation, and the measured run feeds that shape.
    let inputs = crate::commands::inputs::model_inputs(&loaded, &given)?;
    let named = crate::commands::inputs::named_dims(&inputs, &given);
    let model = if named.is_empty() {
        loaded
    } else {
        profagent_onnx::fix_input_dims(&loaded, &named).map_err(one_line)?
    };
    let batch = match given.first() {
        Some(shape) => shape.dims.first().map_or(args.batch, |&b| b as i64),
        None => args.batch,
    };
    if args.runs > 0 {
        profagent_data::inputs::require_known_shapes(&inputs).map_err(one_line)?;
    }
    let profile = static_profile(&model, &ProfileOptions { batch })
        .map_err(one_line)
        .with_context(|| format!("cannot profile {}", args.model.display()))?;
    let mut profile = profile;
    let runs = args.runs;
    if runs > 0 {
        let feeds = match data_feeds {
            Some(feeds) => feeds,
            None => {
                let batch = usize::try_from(batch).context("--batch is too large")?;
                synthetic_inputs(&inputs, batch).map_err(one_line)?
            }
        };
        measure(&args, runs, &model, &feeds, &mut profile)?;
    }

    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            println!("{}", profile.to_json().map_err(one_line)?);
        }
        Some(path) => {
            print_table(&profile, args.top);
            profile.write_json(path).map_err(one_line)?;
            super::info(format_args!("wrote {}", path.display()));
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
    print!("{}", render_fusion(profile));
}

/// Runs the model on the chosen runtime and merges the measured columns into `profile`.
fn measure(
    args: &Args,
    runs: usize,
    model: &Model,
    inputs: &[(String, profagent_runtime::Tensor)],
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
    let settings = ProfileSettings {
        warmup: args.warmup,
        runs,
    };
    let measured = profile_model(runtime.as_ref(), &source, model, &options, inputs, settings)
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
    // Which quantized layers the runtime fused into int8 kernels: a session build that writes
    // the optimised graph, cheap next to the timed runs. Not fatal: the timings stand alone.
    let graph = model.proto.graph.as_ref();
    match graph.map(|graph| fusion_coverage(runtime.as_ref(), &source, graph, &options)) {
        Some(Ok(Some(report))) => merge_fusion(profile, &report),
        Some(Err(error)) => eprintln!(
            "warning: cannot read {}'s optimised graph, no int8 kernel coverage: {}",
            args.runtime,
            one_line(error)
        ),
        _ => {}
    }
    Ok(())
}

/// The first samples of `--data` as the model's feeds, at the model's fixed batch or --batch
/// (repeating the last sample when the data holds fewer).
fn data_feeds(
    args: &Args,
    model: &Model,
    path: &std::path::Path,
) -> anyhow::Result<Vec<(String, profagent_runtime::Tensor)>> {
    let inputs = crate::commands::inputs::model_inputs(model, &args.input_shape)?;
    let preprocess = crate::commands::inputs::preprocess(
        args.preprocess.as_deref(),
        &args.model,
        &inputs,
        Some(path),
    )?
    .preprocess;
    let dataset =
        crate::commands::inputs::open_dataset(path, &preprocess, &args.model, &inputs, &args.text)
            .map_err(one_line)?;
    let requested = usize::try_from(args.batch).context("--batch is too large")?;
    let batch = profagent_data::inputs::model_batch(&inputs, requested);
    let loaded = dataset.load_batch(0..batch).map_err(one_line)?;
    if loaded.items.is_empty() {
        anyhow::bail!("--data {} holds no samples", path.display());
    }
    Ok(loaded
        .feeds_for(dataset.origin(), &inputs)
        .map_err(one_line)?
        .into_iter()
        .map(|(name, tensor)| (name, profagent_data::inputs::pad_rows(tensor, Some(batch))))
        .collect())
}

/// Library errors as one line: `exit::report_error` prints the chain on one line, and a
/// message from a decoder may itself contain line breaks.
fn one_line(err: impl std::fmt::Display) -> anyhow::Error {
    let text = err.to_string();
    anyhow::anyhow!(text.split_whitespace().collect::<Vec<_>>().join(" "))
}
