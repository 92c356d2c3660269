//! `profagent quantize`: post-training quantization of one model file, with a per-layer
//! report of what was quantized and what was left in float (and why).
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use profagent_onnx::{ExternalData, Model, OutputGuard};
use profagent_quant::{
    quantize, ActivationType, Calibration, LayerMode, Mode, QuantReport, QuantSpec, Selection,
    Target,
};
use profagent_runtime::FusionReport;
use profagent_runtime::{open_runtime, RuntimeKind, SessionOptions};
use profagent_workbench::calibration::{quantize_auto_calibration, CalibrationChoice};
use profagent_workbench::signedness::{
    quantize_auto as quantize_auto_measured, ActivationChoice, SignednessError, Timing,
};
use profagent_workbench::{Batch, BatchActivations};

use crate::exit::RuntimeFailure;

/// Quantize an ONNX model (dynamic int8, static int8 QDQ, or int4 weight-only).
///
/// dynamic: MatMul/Gemm weights in int8, activations quantized at run time; best for
/// transformers. Convolutions stay float (ONNX Runtime's ConvInteger is slower than float).
///
/// static: int8 weights and uint8 activations (--activations int8 on request) with ranges
/// calibrated on --calib data, written as QuantizeLinear/DequantizeLinear pairs that ONNX
/// Runtime fuses into QLinearConv and friends; best for CNNs. Models below opset 13 are
/// upgraded when their ops allow it, else get per-tensor weight scales (opset 10 and up).
///
/// int4: 4-bit block-wise MatMul/Gemm weights (com.microsoft.MatMulNBits), float activations.
///
/// Layer patterns (--include / --exclude, repeatable): a layer name such as `layer1.0.conv1`
/// (also selects the layers under it) or an exact node name; `re:REGEX` matching a whole
/// layer or node name; `op:MatMul` for an op type.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    profagent quantize vit.onnx -o vit_int8.onnx --mode dynamic\n  \
    profagent quantize resnet.onnx -o resnet_qdq.onnx --mode static --calib data/ --calib-samples 500\n  \
    profagent quantize vit.onnx -o vit_int8.onnx --mode dynamic --exclude 're:blocks\\.0\\..*' --exclude head\n  \
    profagent quantize net.onnx -o net_q.onnx --mode static --calib data/ --layer-mode op:MatMul=dynamic --layer-mode fc=none\n  \
    profagent quantize llm.onnx -o llm_int4.onnx --mode int4 --block-size 64")]
pub struct Args {
    /// The float ONNX model (never modified).
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,

    /// Where to write the quantized model (written atomically).
    #[arg(short, long, value_name = "OUT.onnx")]
    pub output: PathBuf,

    /// dynamic | static | int4.
    #[arg(long, value_enum)]
    pub mode: ModeArg,

    /// Quantize only layers matching PATTERN (repeatable; default: every supported layer).
    /// PATTERN: a layer name (with the layers under it) or node name, `re:REGEX` over whole
    /// layer or node names, or `op:TYPE` (e.g. op:MatMul).
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,

    /// Leave layers matching PATTERN in float (repeatable; wins over --include; same PATTERN
    /// forms as --include).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// Give layers matching PATTERN their own mode (repeatable; MODE: none, dynamic, static or
    /// int4; the last matching one wins; layers no --layer-mode matches follow --mode and
    /// --include/--exclude). E.g. `--mode static --layer-mode op:MatMul=dynamic --layer-mode
    /// fc=none`: static convolutions, dynamic MatMuls, fc in float.
    #[arg(long = "layer-mode", value_name = "PATTERN=MODE", value_parser = LayerMode::parse)]
    pub layer_mode: Vec<LayerMode>,

    /// One weight scale per output channel (the default in dynamic and static mode).
    #[arg(long, conflicts_with = "per_tensor")]
    pub per_channel: bool,

    /// One weight scale per tensor (onnxruntime's tool's default for dynamic mode; at the same
    /// speed in ONNX Runtime it can lose much more fidelity).
    #[arg(long)]
    pub per_tensor: bool,

    /// Unsigned (uint8, asymmetric) weights in dynamic mode; signed int8 is the fast path in
    /// ONNX Runtime on x86.
    #[arg(long)]
    pub unsigned_weights: bool,

    /// Static mode: element type of quantized activations. uint8 (asymmetric, as
    /// onnxruntime.quantization's QUInt8) is what ONNX Runtime's CPU kernels fuse into
    /// QLinearConv/QLinearAdd everywhere; with int8 it leaves many convolutions in float.
    /// auto: quantize with both, time them against each other on ONNX Runtime (interleaved,
    /// at most --compare-seconds) and keep int8 only when it is measurably faster.
    #[arg(
        long,
        value_enum,
        default_value = "uint8",
        value_name = "uint8|int8|auto"
    )]
    pub activations: ActivationsArg,

    /// Integer range of int8 weights (dynamic and static modes). reduced: -64..64 (7 bits,
    /// onnxruntime's reduce_range), which x86 CPUs without VNNI need: ONNX Runtime's
    /// uint8 x int8 kernels there sum pairs of products in a saturating int16, and full-range
    /// weights overflow it (resnet18_cifar10 static: output cosine 0.988, worst image 0.66,
    /// against 0.9999 reduced, on an AVX2-only EPYC). auto: reduced on such a CPU (this one,
    /// where the model is quantized and checked), full elsewhere; quantize on the CPU you
    /// deploy to, or say which.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        value_name = "auto|full|reduced"
    )]
    pub weight_range: WeightRangeArg,

    /// Seconds at most for the interleaved timing of --activations auto; it ends sooner once
    /// the speedup interval is within ±3 %.
    #[arg(long, default_value_t = 20.0, value_name = "SECONDS")]
    pub compare_seconds: f64,

    /// ort: ONNX Runtime's fused kernels (DynamicQuantizeMatMul, MatMulNBits);
    /// standard: portable standard ops only (DynamicQuantizeLinear + MatMulInteger).
    #[arg(long, value_enum, default_value = "ort")]
    pub target: TargetArg,

    /// Calibration data for static mode: an image folder (ImageFolder or with dataset.txt),
    /// a labels file, or a .npy/.npz tensor file.
    #[arg(long, value_name = "DATA")]
    pub calib: Option<PathBuf>,

    /// How many calibration samples to use.
    #[arg(long, default_value_t = 500, value_name = "N", alias = "calib-count")]
    pub calib_samples: usize,

    /// Skip this many samples first (keep calibration apart from the samples you score).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub calib_offset: usize,

    /// Shuffle the data with this seed before taking the calibration slice (same seed = same
    /// order as `profagent eval --seed`).
    #[arg(long, value_name = "SEED", alias = "calib-seed")]
    pub seed: Option<u64>,

    /// Samples per calibration batch (a model exported with a fixed batch runs at that batch).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub calib_batch: usize,

    /// Image preprocessing: a preset name (cifar10, imagenet) or a JSON file (--preset is the
    /// same flag); default: the preprocessing file next to the model, else a guess from the
    /// model's input shape.
    #[arg(long, value_name = "PRESET|FILE", alias = "preset")]
    pub preprocess: Option<String>,

    /// Size of the model input's dynamic dimensions, e.g. `input_ids=1x128` or `1x3x224x224`
    /// for a one-input model (repeatable): used by the check when there is no --calib data.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<profagent_data::InputShape>,

    #[command(flatten)]
    pub text: crate::commands::inputs::TextArgs,

    /// Activation range from calibration: minmax; percentile (with --percentile); entropy (the
    /// range minimizing the KL divergence of the histogram and its 8-bit version, as TensorRT
    /// and onnxruntime do it); mse (the range minimizing the histogram's squared quantization
    /// error); auto: each of them, checked against the float model on --check-samples samples
    /// calibration did not see, the highest output cosine kept.
    #[arg(
        long,
        value_enum,
        default_value = "minmax",
        value_name = "minmax|percentile|entropy|mse|auto"
    )]
    pub calibration: CalibrationArg,

    /// Percentile for --calibration percentile.
    #[arg(long, default_value_t = 99.99, value_name = "P")]
    pub percentile: f64,

    /// Int4 block size along K (power of two, at least 16).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub block_size: usize,

    /// Write the quantization report as JSON to PATH (`-` for stdout).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Before writing, run the original and the quantized model on this runtime (on real
    /// samples from --calib, else synthetic inputs) and refuse to write a model whose mean
    /// output cosine falls below the mode's budget (0.99 dynamic, 0.98 static, 0.95 int4); `none`
    /// skips the check.
    #[arg(long, value_enum, default_value = "ort", value_name = "ort|tract|none")]
    pub check_runtime: crate::commands::check::CheckRuntime,

    /// Real samples the check runs (from --calib, after the calibration samples when the
    /// data has more); fewer than 32 are reported as too few to trust.
    #[arg(long, default_value_t = crate::commands::check::CHECK_SAMPLES, value_name = "N")]
    pub check_samples: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ModeArg {
    Dynamic,
    Static,
    Int4,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum WeightRangeArg {
    Auto,
    Full,
    Reduced,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ActivationsArg {
    Uint8,
    Int8,
    Auto,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TargetArg {
    Ort,
    Standard,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CalibrationArg {
    Minmax,
    Percentile,
    Entropy,
    Mse,
    Auto,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    OutputGuard::of_model(&args.model)
        .input(args.calib.as_deref())
        .input(args.preprocess.as_deref().map(Path::new))
        .output_model(args.output.as_path())?
        .output_file(args.json.as_deref())?;
    let model = Model::load(&args.model)?;
    let weights = weight_range(&args);
    let spec = spec_of(&args, weights.range);
    let is_static = spec.modes().contains(&Mode::Static);
    let batches = match (is_static, &args.calib) {
        (true, Some(data)) => Some(calibration_batches(&args, &model, data)?),
        (true, None) => anyhow::bail!("static mode needs calibration data: pass --calib DATA (an image folder or a .npy/.npz file)"),
        (false, Some(_)) => {
            eprintln!("note: --calib is only used by static quantization; ignoring it");
            None
        }
        _ => None,
    };
    // Checked on samples that calibration did not see when the data has them (calibrating
    // and checking on the same images would hide bad ranges), else on the calibration ones.
    let wants_held_out = args.check_runtime != crate::commands::check::CheckRuntime::None
        || matches!(args.calibration, CalibrationArg::Auto);
    let held_out = match &args.calib {
        Some(data) if wants_held_out => check_batches(&args, &model, data, is_static)?,
        _ => Vec::new(),
    };
    let check_inputs = crate::commands::check::CheckInputs::for_quantization(
        if is_static { Mode::Static } else { spec.mode },
        &held_out,
        batches.as_deref(),
        args.check_samples,
    );
    let chosen = quantize_chosen(
        &args,
        &model,
        spec,
        batches.as_deref(),
        check_inputs.as_ref(),
    )?;
    let Chosen {
        model: quantized,
        mut report,
        spec,
        activations: choice,
        calibration: calibration_choice,
    } = chosen;
    // Said wherever signed int8 weights were written (int4 has its own blocks; unsigned
    // dynamic weights run on u8 x u8 kernels, which do not saturate).
    if report
        .quantized
        .iter()
        .any(|l| !l.scheme.starts_with("MatMulNBits") && !l.scheme.contains("(uint8,"))
    {
        report.notes.push(weights.reason);
    }
    let min_cosine = spec
        .modes()
        .into_iter()
        .map(profagent_workbench::check::quant_min_cosine)
        .fold(f64::INFINITY, f64::min);
    let check = crate::commands::check::check_rewrite(
        args.check_runtime,
        &model,
        &quantized,
        check_inputs,
        &args.input_shape,
        crate::commands::check::Floor {
            min_cosine,
            what: "quantized",
            remedy: "The runtime may mis-execute this rewrite (on x86 without VNNI full-range int8 weights overflow: --weight-range reduced), or the rewrite is too aggressive: exclude the layers involved, try another mode, or pass --check-runtime none to write it anyway",
        },
    )?;
    let fusion = fusion_of(&args, &quantized);
    if let Some(warning) = fusion
        .as_ref()
        .and_then(|f| islands_warning(f, spec.activations))
    {
        eprintln!("{warning}");
    }
    quantized
        .save(&args.output, ExternalData::Auto)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut summary = Summary::new(&args, &report, seconds);
    summary.check = check;
    summary.fusion = fusion;
    summary.activations_choice = choice;
    summary.calibration_choice = calibration_choice;
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            println!("{}", serde_json::to_string_pretty(&summary)?)
        }
        Some(path) => {
            print_summary(&summary, &report);
            let text = serde_json::to_string_pretty(&summary)?;
            profagent_onnx::write_atomic(path, text.as_bytes())?;
            super::info(format_args!("wrote {}", path.display()));
        }
        None => print_summary(&summary, &report),
    }
    Ok(ExitCode::SUCCESS)
}

/// The quantized model with the spec it was written with and the measured choices.
struct Chosen {
    model: Model,
    report: QuantReport,
    spec: QuantSpec,
    activations: Option<ActivationChoice>,
    calibration: Option<CalibrationChoice>,
}

/// Quantizes as `spec` says, first choosing the calibration method (`--calibration auto`, on
/// the check samples) and then the activation type (`--activations auto`) when asked.
fn quantize_chosen(
    args: &Args,
    model: &Model,
    mut spec: QuantSpec,
    batches: Option<&[Batch]>,
    check: Option<&crate::commands::check::CheckInputs<'_>>,
) -> anyhow::Result<Chosen> {
    let context = || format!("cannot quantize {}", args.model.display());
    let runtime = match batches {
        Some(_) => Some(open_runtime(RuntimeKind::Ort).map_err(|e| RuntimeFailure(e.into()))?),
        None => None,
    };
    let mut chosen = Chosen {
        model: model.clone(),
        report: QuantReport::default(),
        spec: spec.clone(),
        activations: None,
        calibration: None,
    };
    if let (Some(calibration), Some(runtime), CalibrationArg::Auto) =
        (batches, runtime.as_deref(), args.calibration)
    {
        let check = check.ok_or_else(|| {
            anyhow::anyhow!("--calibration auto needs real samples to compare the methods on: pass --calib DATA")
        })?;
        super::info(format_args!(
            "quantizing with each calibration method, checking each on {} samples",
            check.samples
        ));
        let (quantized, report, choice) =
            quantize_auto_calibration(model, &spec, runtime, calibration, check)
                .with_context(context)?;
        spec.calibration = profagent_workbench::calibration::AUTO_METHODS
            .into_iter()
            .find(|m| m.name() == choice.chosen)
            .unwrap_or_default();
        (chosen.model, chosen.report) = (quantized, report);
        chosen.calibration = Some(choice);
    }
    match (batches, args.activations) {
        (Some(calibration), ActivationsArg::Auto) => {
            let (quantized, report, choice) = quantize_auto(args, model, &spec, calibration)?;
            spec.activations = choice.chosen;
            (chosen.model, chosen.report) = (quantized, report);
            chosen.activations = Some(choice);
        }
        _ if chosen.calibration.is_some() => {}
        _ => {
            // Static ranges come through the activation seam, run on ONNX Runtime within the
            // output budget.
            let session = SessionOptions::default();
            let mut source = batches
                .zip(runtime.as_deref())
                .map(|(b, runtime)| BatchActivations::for_quantization(runtime, &session, b));
            let calibration: Option<&mut dyn profagent_onnx::ActivationSource> =
                match source.as_mut() {
                    Some(s) => Some(s),
                    None => None,
                };
            (chosen.model, chosen.report) =
                quantize(model, &spec, calibration).with_context(context)?;
        }
    }
    chosen.spec = spec;
    Ok(chosen)
}

/// `--activations auto`: both static models, timed against each other on ONNX Runtime at
/// batch 1 (the calibration data's first sample), the faster kept (`profagent_workbench::
/// signedness`).
fn quantize_auto(
    args: &Args,
    model: &Model,
    spec: &QuantSpec,
    calibration: &[Batch],
) -> anyhow::Result<(Model, QuantReport, ActivationChoice)> {
    let runtime =
        profagent_runtime::open_runtime(profagent_runtime::RuntimeKind::Ort).map_err(|e| {
            crate::exit::RuntimeFailure(
                anyhow::Error::new(e).context("--activations auto times on ONNX Runtime"),
            )
        })?;
    let inputs: Vec<(String, profagent_runtime::Tensor)> = calibration
        .first()
        .map(|batch| {
            batch
                .iter()
                .map(|(name, tensor)| (name.clone(), first_row(tensor)))
                .collect()
        })
        .unwrap_or_default();
    let session = profagent_runtime::SessionOptions::default();
    let settings = profagent_runtime::CompareSettings {
        time_cap: std::time::Duration::from_secs_f64(args.compare_seconds.max(1.0)),
        ..Default::default()
    };
    let timing = Timing {
        runtime: runtime.as_ref(),
        session: &session,
        inputs: &inputs,
        settings: &settings,
    };
    super::info(format_args!(
        "quantizing with uint8 and int8 activations, timing them against each other"
    ));
    let result =
        quantize_auto_measured(model, spec, calibration, &timing).map_err(|e| match e {
            SignednessError::Compare(_) => crate::exit::RuntimeFailure(
                anyhow::Error::new(e).context(format!("cannot quantize {}", args.model.display())),
            )
            .into(),
            other => anyhow::Error::new(other)
                .context(format!("cannot quantize {}", args.model.display())),
        })?;
    Ok(result)
}

/// The first sample of a calibration batch (batch 1), or the batch itself for a model with a
/// fixed batch (the calibration batch is then that size).
fn first_row(tensor: &profagent_runtime::Tensor) -> profagent_runtime::Tensor {
    use profagent_runtime::{Tensor, TensorData};
    let rows = tensor.shape.first().copied().unwrap_or(1);
    if rows <= 1 || !tensor.len().is_multiple_of(rows) {
        return tensor.clone();
    }
    let per_row = tensor.len() / rows;
    let mut shape = tensor.shape.clone();
    shape[0] = 1;
    match &tensor.data {
        TensorData::F32(v) => Tensor::f32(shape, v[..per_row].to_vec()),
        TensorData::I64(v) => Tensor::i64(shape, v[..per_row].to_vec()),
    }
}

/// Which quantized nodes ONNX Runtime runs as int8 kernels (when the check runs on ONNX
/// Runtime). A failure to read the optimised graph is a note: the model itself passed the check.
fn fusion_of(args: &Args, quantized: &Model) -> Option<FusionReport> {
    if args.check_runtime != crate::commands::check::CheckRuntime::Ort {
        return None;
    }
    let runtime = profagent_runtime::open_runtime(profagent_runtime::RuntimeKind::Ort).ok()?;
    let options = profagent_runtime::SessionOptions {
        threads: 1,
        ..Default::default()
    };
    let source = profagent_runtime::ModelSource::Bytes(quantized.to_bytes());
    match profagent_runtime::fusion_coverage(runtime.as_ref(), &source, quantized.graph(), &options)
    {
        Ok(report) => report.filter(|r| r.quantized() > 0),
        Err(error) => {
            eprintln!("note: cannot read ONNX Runtime's optimised graph, int8 kernels not counted: {error}");
            None
        }
    }
}

/// The warning line for a quantized model that ONNX Runtime leaves partly in float.
fn islands_warning(fusion: &FusionReport, activations: ActivationType) -> Option<String> {
    const SHOWN: usize = 8;
    let islands = fusion.float_islands();
    if islands.is_empty() {
        return None;
    }
    let mut names: Vec<String> = islands
        .iter()
        .take(SHOWN)
        .map(|n| format!("{} ({})", n.layer, n.op_type))
        .collect();
    if islands.len() > SHOWN {
        names.push(format!("… ({} in all)", islands.len()));
    }
    let remedy = match activations {
        ActivationType::Int8 => "--activations uint8 lets ONNX Runtime's CPU kernels fuse them",
        ActivationType::Uint8 => {
            "keep them in float with --exclude LAYER to save their dequantize/quantize"
        }
    };
    Some(format!(
        "warning: ONNX Runtime runs {} of {} quantized nodes as float islands (dequantize -> op -> quantize in float, {} layout op(s) inserted): {}; {remedy}",
        islands.len(),
        fusion.quantized(),
        fusion.layout_op_count(),
        names.join(", ")
    ))
}

fn spec_of(args: &Args, weight_range: profagent_quant::WeightRange) -> QuantSpec {
    let mode = match args.mode {
        ModeArg::Dynamic => Mode::Dynamic,
        ModeArg::Static => Mode::Static,
        ModeArg::Int4 => Mode::Int4,
    };
    let mut spec = QuantSpec::new(mode);
    spec.layers = Selection {
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    spec.per_channel = match (args.per_channel, args.per_tensor) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    spec.signed_weights = !args.unsigned_weights;
    spec.target = match args.target {
        TargetArg::Ort => Target::Ort,
        TargetArg::Standard => Target::Standard,
    };
    spec.calibration = match args.calibration {
        CalibrationArg::Minmax => Calibration::MinMax,
        CalibrationArg::Percentile => Calibration::Percentile {
            percentile: args.percentile,
        },
        CalibrationArg::Entropy => Calibration::Entropy,
        CalibrationArg::Mse => Calibration::Mse,
        // Replaced by the measured choice (`quantize_chosen`).
        CalibrationArg::Auto => Calibration::MinMax,
    };
    spec.activations = match args.activations {
        ActivationsArg::Uint8 => ActivationType::Uint8,
        ActivationsArg::Int8 => ActivationType::Int8,
        // Replaced by the measured choice (`quantize_auto`).
        ActivationsArg::Auto => ActivationType::Uint8,
    };
    spec.weight_range = weight_range;
    spec.block_size = args.block_size;
    spec.layer_modes = args.layer_mode.clone();
    spec
}

/// `--weight-range`: as given, or for this CPU (`profagent_workbench::weights`).
fn weight_range(args: &Args) -> profagent_workbench::weights::WeightRangeChoice {
    use profagent_quant::WeightRange;
    use profagent_workbench::weights::WeightRangeChoice;
    let given = |range: WeightRange, bits: &str| WeightRangeChoice {
        range,
        reason: format!("int8 weights in {bits} (--weight-range {})", range.name()),
    };
    match args.weight_range {
        WeightRangeArg::Auto => {
            profagent_workbench::weights::weight_range_for(&profagent_runtime::machine_info())
        }
        WeightRangeArg::Full => given(WeightRange::Full, "the full range (-127..127)"),
        WeightRangeArg::Reduced => given(WeightRange::Reduced, "7 bits (-64..64)"),
    }
}

/// Up to `--check-samples` samples of `data` for the pre-write check: those after the
/// calibration samples when calibration used the data (static), else its first ones. Empty
/// when the data has none left.
fn check_batches(
    args: &Args,
    model: &Model,
    data: &Path,
    after_calibration: bool,
) -> anyhow::Result<Vec<Batch>> {
    let mut check = args.clone();
    if after_calibration {
        check.calib_offset = args.calib_offset + args.calib_samples;
    }
    check.calib_samples = args.check_samples;
    match calibration_batches(&check, model, data) {
        Ok(batches) => Ok(batches),
        // No samples left after calibration: the caller falls back to the calibration ones.
        Err(_) if after_calibration => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn calibration_batches(args: &Args, model: &Model, data: &Path) -> anyhow::Result<Vec<Batch>> {
    let inputs = crate::commands::inputs::model_inputs(model, &args.input_shape)?;
    let preprocess = crate::commands::inputs::preprocess(
        args.preprocess.as_deref(),
        &args.model,
        &inputs,
        Some(data),
    )?
    .preprocess;
    let dataset =
        crate::commands::inputs::open_dataset(data, &preprocess, &args.model, &inputs, &args.text)?
            .subset(args.calib_offset, Some(args.calib_samples), args.seed)?;
    if dataset.is_empty() {
        anyhow::bail!(
            "calibration data {} has no samples after --calib-offset {}",
            data.display(),
            args.calib_offset
        );
    }
    Ok(profagent_data::calibration_batches(
        &dataset,
        &inputs,
        args.calib_batch,
    )?)
}

/// What `--json` writes: the library report plus the files and sizes.
#[derive(serde::Serialize)]
struct Summary {
    model: String,
    output: String,
    input_bytes: u64,
    output_bytes: u64,
    size_reduction_percent: f64,
    seconds: f64,
    report: QuantReport,
    /// The output check on the target runtime (absent with --check-runtime none).
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<crate::commands::check::CheckOutcome>,
    /// Which quantized nodes ONNX Runtime runs as int8 kernels (with --check-runtime ort).
    #[serde(skip_serializing_if = "Option::is_none")]
    fusion: Option<FusionReport>,
    /// `--activations auto`: the type kept and the timing it was chosen on.
    #[serde(skip_serializing_if = "Option::is_none")]
    activations_choice: Option<ActivationChoice>,
    /// `--calibration auto`: the method kept and each method's output cosine.
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_choice: Option<CalibrationChoice>,
}

impl Summary {
    fn new(args: &Args, report: &QuantReport, seconds: f64) -> Self {
        let size = |p: &Path| {
            let data = p.with_file_name(format!(
                "{}.data",
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
                + std::fs::metadata(data).map(|m| m.len()).unwrap_or(0)
        };
        let input_bytes = size(&args.model);
        let output_bytes = size(&args.output);
        Summary {
            model: args.model.display().to_string(),
            output: args.output.display().to_string(),
            input_bytes,
            output_bytes,
            size_reduction_percent: if input_bytes == 0 {
                0.0
            } else {
                100.0 * (1.0 - output_bytes as f64 / input_bytes as f64)
            },
            seconds,
            report: report.clone(),
            check: None,
            fusion: None,
            activations_choice: None,
            calibration_choice: None,
        }
    }
}

fn print_summary(summary: &Summary, report: &QuantReport) {
    println!(
        "{} quantization: {} layers quantized, {} left in float; {} -> {} ({:.1} % smaller) in {:.2} s",
        report.mode,
        report.quantized.len(),
        report.skipped.len(),
        human_bytes(summary.input_bytes),
        human_bytes(summary.output_bytes),
        summary.size_reduction_percent,
        summary.seconds
    );
    if report.quantized_activations > 0 {
        println!(
            "  {} activation tensors quantized, {} Relu/Clip folded, {} calibration batches",
            report.quantized_activations, report.folded_relus, report.calibration_batches
        );
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
    // Group skip reasons so a 100-layer model does not print 100 lines.
    let mut reasons: Vec<(String, Vec<String>)> = Vec::new();
    for s in &report.skipped {
        match reasons.iter_mut().find(|(r, _)| *r == s.reason) {
            Some((_, layers)) => layers.push(s.layer.clone()),
            None => reasons.push((s.reason.clone(), vec![s.layer.clone()])),
        }
    }
    for (reason, layers) in reasons {
        let shown: Vec<&str> = layers.iter().take(4).map(String::as_str).collect();
        let more = if layers.len() > 4 {
            format!(", … ({} in all)", layers.len())
        } else {
            String::new()
        };
        println!("  kept float: {}{more}: {reason}", shown.join(", "));
    }
    if let Some(check) = &summary.check {
        println!("  {}", check.line());
    }
    if let Some(choice) = &summary.calibration_choice {
        println!("  {}", choice.line());
    }
    if let Some(choice) = &summary.activations_choice {
        println!("  {}", choice.line());
    }
    if let Some(fusion) = &summary.fusion {
        println!("  onnxruntime kernels: {}", fusion.summary_line());
    }
    println!("wrote {}", summary.output);
}

fn human_bytes(n: u64) -> String {
    profagent_onnx::units::bytes(n)
}
