//! `profagent prune`: structured pruning of channels, MLP width and whole attention heads.
//! The dependency analysis, importance and graph rewrite live in `profagent-prune`; this file
//! parses the options, wires calibration data (profagent-data + ONNX Runtime) into the
//! library's `ActivationSource`, and prints the report.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use profagent_onnx::{ExternalData, Model, OutputGuard};
use profagent_prune::{
    analyze, prune, ActivationSource, GroupStatus, Importance, PruneReport, PruneSpec, RatioRule,
    ReconstructTarget,
};
use profagent_runtime::{open_runtime, RuntimeKind, SessionOptions};

use crate::exit::RuntimeFailure;
use profagent_workbench::{Batch, BatchActivations};

/// Prune channels, MLP width and attention heads of an ONNX model.
///
/// The pruner finds dependency groups (convolutions coupled by residual Adds, Concat offsets,
/// depthwise convolutions, BatchNorm, Flatten into Gemm, transformer MLPs, fused-qkv attention
/// heads), scores each unit over its whole group and removes the least important ones. Groups
/// it does not understand are reported with the reason and left untouched. The first Conv and
/// the classifier are protected by default. The input model is never modified.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    profagent prune model.onnx --list\n  \
    profagent prune model.onnx -o pruned.onnx --ratio 0.1\n  \
    profagent prune model.onnx -o pruned.onnx --ratio 0.2 --round-to 8 --layers 'layer3\\..*=0.4'\n  \
    profagent prune vit.onnx -o vit_pruned.onnx --ratio 0.1 --heads 0.34\n  \
    profagent prune model.onnx -o pruned.onnx --ratio 0.1 --calib data/ --preprocess cifar10")]
pub struct Args {
    /// The ONNX model to prune (read only).
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,

    /// Where to write the pruned model (written atomically).
    #[arg(short, long, value_name = "OUT.onnx", required_unless_present = "list")]
    pub output: Option<PathBuf>,

    /// Fraction of units removed from every prunable group no --layers rule matches (0 ≤ R < 1).
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    pub ratio: f64,

    /// Ratio for the groups whose id or producer layer fully matches REGEX (repeatable; the
    /// first matching rule wins). Group ids are printed by --list. REGEX may start with `re:`,
    /// as quantize's layer patterns do.
    #[arg(long = "layers", value_name = "REGEX=R")]
    pub layers: Vec<String>,

    /// Ratio for attention-head groups (whole heads are removed), overriding --ratio for them.
    #[arg(long, value_name = "R")]
    pub heads: Option<f64>,

    /// How units are scored: l1, l2, random, bn (BatchNorm |gamma|), activation (mean
    /// |activation| over --calib data), weighted (activation-weighted consumer norm) or obs
    /// (greedy Optimal Brain Surgeon: the least added reconstruction error; needs --calib).
    #[arg(long, default_value = "l1", value_name = "KIND")]
    pub importance: Importance,

    /// Keep channel counts a multiple of N, rounding the kept count up (the same rule as plan
    /// validation: 64 channels at --ratio 0.35 --round-to 8 keep 48). Heads are kept whole.
    /// `runtime`: the channel block ONNX Runtime pads float convolutions to on this machine
    /// (read from the graph it optimises: 8 with AVX2, 16 with AVX-512; a count between two
    /// multiples runs as slowly as the next one up), 1 where it pads nothing.
    #[arg(long, default_value = "1", value_name = "N|runtime")]
    pub round_to: RoundTo,

    /// Never prune layers whose name fully matches REGEX (repeatable; `re:` prefix optional).
    #[arg(long, value_name = "REGEX")]
    pub protect: Vec<String>,

    /// Allow pruning the first Conv and the classifier.
    #[arg(long)]
    pub no_default_protect: bool,

    /// Calibration data (ImageFolder, labels file, .npy/.npz): enables activation importance
    /// and bias correction of the layers after removed channels.
    #[arg(long, value_name = "DATA")]
    pub calib: Option<PathBuf>,

    /// Preprocessing for --calib: a preset (cifar10, imagenet, ...) or a JSON file (--preset
    /// is the same flag); default: the preprocessing file beside the model, else a guess from
    /// the model's input shape.
    #[arg(long, value_name = "PRESET|FILE", alias = "preset")]
    pub preprocess: Option<String>,

    /// Calibration samples drawn (seeded) from --calib (labels are not needed).
    #[arg(long, default_value_t = 256, value_name = "N", alias = "calib-count")]
    pub calib_samples: usize,

    /// Samples per calibration batch (a model exported with a fixed batch runs at that batch).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub calib_batch: usize,

    /// Size of the model input's dynamic dimensions, e.g. `input_ids=1x128` or `1x3x224x224`
    /// for a one-input model (repeatable): used by the check when there is no --calib data.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<profagent_data::InputShape>,

    #[command(flatten)]
    pub text: crate::commands::inputs::TextArgs,

    /// Skip the bias correction (done by default when --calib is given).
    #[arg(long)]
    pub no_bias_correction: bool,

    /// Skip the layer-wise reconstruction (done by default when --calib is given): the layers
    /// reading removed channels are refitted by ridge least squares to their dense outputs.
    #[arg(long)]
    pub no_reconstruct: bool,

    /// What the reconstruction fits: `independent` (each layer on the dense model's inputs,
    /// one pass over --calib) or `sequential` (layer after layer on the pruned model's own
    /// inputs to the dense outputs, which also corrects upstream error; one pass per layer
    /// wave). docs/benchmarks-reconstruct.md compares them: independent is as accurate at a
    /// fraction of the cost, so it is the default.
    #[arg(
        long,
        default_value = "independent",
        value_name = "independent|sequential"
    )]
    pub reconstruct: ReconstructTarget,

    /// Re-estimate BatchNorm running statistics on --calib data after pruning (off by default:
    /// small calibration sets can shift statistics learned on augmented training data).
    #[arg(long)]
    pub recalibrate_bn: bool,

    /// Seed for random importance and the shuffle that picks the calibration subset.
    #[arg(long, default_value_t = 0, value_name = "SEED", alias = "calib-seed")]
    pub seed: u64,

    /// List the dependency groups (id, kind, units, prunable or why not) and exit.
    #[arg(long)]
    pub list: bool,

    /// Write the report (or, with --list, the groups) as JSON to PATH; `-` prints to stdout.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Run the pruned model on this runtime before writing it (finite outputs of the original's
    /// shapes; the output cosine to the original is reported); `none` skips the check.
    #[arg(long, value_enum, default_value = "ort", value_name = "ort|tract|none")]
    pub check_runtime: crate::commands::check::CheckRuntime,

    /// Real samples the check runs (from --calib); fewer than 32 are reported as too few.
    #[arg(long, default_value_t = crate::commands::check::CHECK_SAMPLES, value_name = "N")]
    pub check_samples: usize,

    /// Refuse (exit 3, nothing written) a pruned model whose mean output cosine to the original
    /// on the check's samples is below C, e.g. 0.95. Without it a model below 0.9 is written
    /// with a warning. Measured on real samples with --calib, else on synthetic inputs.
    #[arg(long, value_name = "C", value_parser = super::parse_min_cosine)]
    pub min_cosine: Option<f64>,
}

/// What `prune --json` writes: the library report (its fields at the top level, as before)
/// with the pre-write check and the fidelity warning, if any.
#[derive(serde::Serialize)]
struct Summary<'a> {
    #[serde(flatten)]
    report: &'a PruneReport,
    /// The output check on the target runtime (absent with --check-runtime none).
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<&'a crate::commands::check::CheckOutcome>,
    /// Set when the outputs moved far from the original's (cosine below
    /// `profagent_workbench::check::PRUNE_WARN_COSINE`).
    fidelity_warning: Option<String>,
}

fn parse_rule(text: &str) -> anyhow::Result<RatioRule> {
    let Some((pattern, ratio)) = text.rsplit_once('=') else {
        bail!("--layers '{text}' must look like REGEX=RATIO, e.g. 'layer3\\..*=0.3'");
    };
    let ratio: f64 = ratio
        .trim()
        .parse()
        .with_context(|| format!("--layers '{text}': '{ratio}' is not a number"))?;
    Ok(RatioRule {
        pattern: regex_pattern(pattern).to_string(),
        ratio,
    })
}

/// A `--layers`/`--protect` pattern without the optional `re:` prefix (the prefix quantize's
/// layer patterns use for a regular expression), so one spelling works in both commands.
fn regex_pattern(pattern: &str) -> &str {
    pattern.strip_prefix("re:").unwrap_or(pattern)
}

/// `--round-to`: a fixed multiple, or the runtime's convolution channel block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundTo {
    Fixed(usize),
    Runtime,
}

impl std::str::FromStr for RoundTo {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "runtime" {
            return Ok(RoundTo::Runtime);
        }
        match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(RoundTo::Fixed(n)),
            _ => Err(format!(
                "'{text}' is neither a whole number of at least 1 nor 'runtime'"
            )),
        }
    }
}

/// The multiple kept counts are rounded to: `--round-to N`, or with `runtime` the channel
/// block ONNX Runtime pads float convolutions to here (a note says which).
fn resolve_round_to(round_to: RoundTo) -> anyhow::Result<usize> {
    let RoundTo::Fixed(n) = round_to else {
        let runtime = open_runtime(RuntimeKind::Ort).map_err(|e| RuntimeFailure(e.into()))?;
        let block =
            profagent_runtime::conv_channel_block(runtime.as_ref(), &SessionOptions::default())
                .map_err(|e| RuntimeFailure(e.into()))?;
        return Ok(match block {
            Some(b) => {
                eprintln!("note: --round-to runtime: {b}, the channel block ONNX Runtime pads float convolutions to on this machine");
                b as usize
            }
            None => {
                eprintln!("note: --round-to runtime: 1, ONNX Runtime pads no convolution channels on this machine");
                1
            }
        });
    };
    Ok(n)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    OutputGuard::of_model(&args.model)
        .input(args.calib.as_deref())
        .input(args.preprocess.as_deref().map(std::path::Path::new))
        .output_model(args.output.as_deref())?
        .output_file(args.json.as_deref())?;
    let model = Model::load(&args.model)?;
    let json_to_stdout = super::json_to_stdout(args.json.as_deref());
    if args.list {
        let groups =
            analyze(&model).with_context(|| format!("cannot analyze {}", args.model.display()))?;
        if !json_to_stdout {
            for g in &groups {
                let status = match &g.status {
                    GroupStatus::Prunable => "prunable".to_string(),
                    GroupStatus::Unprunable { reason } => format!("not prunable: {reason}"),
                };
                // Channel groups read by a grouped Conv go a whole conv group at a time.
                let width = g
                    .kind
                    .conv_group_width(g.unit_width)
                    .map(|w| format!(" of {w} channels"))
                    .unwrap_or_default();
                println!(
                    "{:<36} {:<8} {:>5} units{width}  {}",
                    g.id,
                    format!("{:?}", g.kind).to_lowercase(),
                    g.units,
                    status
                );
            }
        }
        if let Some(path) = &args.json {
            super::write_json(path, &serde_json::to_string_pretty(&groups)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(output) = args.output.clone() else {
        bail!("give the output file with -o OUT.onnx");
    };
    if args.min_cosine.is_some() && args.check_runtime == crate::commands::check::CheckRuntime::None
    {
        bail!("--min-cosine needs the output check: drop --check-runtime none");
    }
    let mut rules = Vec::new();
    if let Some(r) = args.heads {
        rules.push(RatioRule {
            pattern: ".*#heads".into(),
            ratio: r,
        });
    }
    for text in &args.layers {
        rules.push(parse_rule(text)?);
    }
    let spec = PruneSpec {
        keep: Vec::new(),
        global_ratio: args.ratio,
        rules,
        importance: args.importance,
        round_to: resolve_round_to(args.round_to)?,
        protected: args
            .protect
            .iter()
            .map(|p| regex_pattern(p).to_string())
            .collect(),
        protect_first_and_last: !args.no_default_protect,
        seed: args.seed,
        bias_correction: !args.no_bias_correction,
        recalibrate_bn: args.recalibrate_bn,
        reconstruct: !args.no_reconstruct,
        reconstruct_target: args.reconstruct,
    };
    let calibration = match &args.calib {
        Some(path) => Some(Calibration::open(&args, &model, path)?),
        None => None,
    };
    let runtime = match &calibration {
        Some(_) => Some(open_runtime(RuntimeKind::Ort).map_err(|e| RuntimeFailure(e.into()))?),
        None => None,
    };
    let session = SessionOptions::default();
    let mut source = calibration
        .as_ref()
        .zip(runtime.as_deref())
        .map(|(c, runtime)| {
            BatchActivations::new(runtime, &session, &c.batches)
                .labelled("gathering calibration activations")
        });
    let (pruned, report) = match source.as_mut() {
        Some(s) => prune(&model, &spec, Some(s as &mut dyn ActivationSource)),
        None => prune(&model, &spec, None),
    }
    .with_context(|| format!("cannot prune {}", args.model.display()))?;
    // Pruning changes outputs by design: the check requires a model that runs and gives finite
    // outputs on the target runtime, and reports how far it moved from the original.
    let check = crate::commands::check::check_rewrite(
        args.check_runtime,
        &model,
        &pruned,
        calibration
            .as_ref()
            .map(|c| crate::commands::check::CheckInputs {
                batches: &c.batches,
                origin: "real calibration",
                samples: args.check_samples,
            }),
        &args.input_shape,
        crate::commands::check::Floor {
            min_cosine: args.min_cosine.unwrap_or(f64::NEG_INFINITY),
            what: "pruned",
            remedy:
                "Prune less (a lower --ratio, --protect the layers involved) or lower --min-cosine",
        },
    )?;
    let mut report = report;
    if report.macs_before == 0 {
        if let Some((before, after)) = macs_at_run_shapes(&args, &model, &pruned, &calibration) {
            report.macs_before = before;
            report.macs_after = after;
        }
    }
    pruned.save(&output, ExternalData::Auto)?;
    let fidelity_warning = check.as_ref().and_then(|c| c.prune_warning());
    if !json_to_stdout {
        print_report(&report);
        if let Some(check) = &check {
            println!("{}", check.line());
        }
        println!("wrote {}", output.display());
    }
    if let Some(warning) = &fidelity_warning {
        eprintln!("warning: {warning}");
    }
    if let Some(path) = &args.json {
        let summary = Summary {
            report: &report,
            check: check.as_ref(),
            fidelity_warning,
        };
        super::write_json(path, &serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &PruneReport) {
    let pct = |a: u64, b: u64| {
        if a == 0 {
            0.0
        } else {
            100.0 * (a as f64 - b as f64) / a as f64
        }
    };
    for g in report.pruned_groups() {
        let width = g
            .kind
            .conv_group_width(g.unit_width)
            .map(|w| format!(" (units of {w} channels)"))
            .unwrap_or_default();
        println!(
            "pruned    {:<36} {:>5} -> {:<5} {:?}{width}",
            g.id, g.units_before, g.units_after, g.kind
        );
    }
    for g in report.groups.iter().filter(|g| g.action != "pruned") {
        if let Some(reason) = &g.reason {
            println!("{:<9} {:<36} {reason}", g.action, g.id);
        }
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    println!(
        "params {} -> {} (-{:.1} %), MACs {} -> {} (-{:.1} %), {} groups pruned, {} biases corrected, {} layers reconstructed",
        report.params_before,
        report.params_after,
        pct(report.params_before, report.params_after),
        report.macs_before,
        report.macs_after,
        pct(report.macs_before, report.macs_after),
        report.pruned_groups().count(),
        report.biases_corrected,
        report.reconstructed.len()
    );
    if let Some(t) = &report.reconstruct_timing {
        println!(
            "reconstruction: {} passes over the calibration data, {:.1} s running the model, {:.1} s sampling rows and Gram updates, {:.1} s solving",
            t.passes, t.runtime_s, t.gram_s, t.solve_s
        );
    }
    if let Some(t) = &report.obs_timing {
        println!(
            "obs importance: {:.1} s gathering Gram matrices (reused by independent reconstruction), {:.1} s ranking units",
            t.statistics_s, t.ranking_s
        );
    }
}

/// MACs at batch 1 of the original and the pruned model at the input shapes this run used
/// (the calibration data's, else --input-shape and --seq-len), for a model whose declared
/// shapes leave them unknown (a dynamic sequence length); `None` when no shape is known.
fn macs_at_run_shapes(
    args: &Args,
    model: &Model,
    pruned: &Model,
    calibration: &Option<Calibration>,
) -> Option<(u64, u64)> {
    let shapes: Vec<(String, Vec<i64>)> = match calibration.as_ref().and_then(|c| c.batches.first())
    {
        Some(batch) => batch
            .iter()
            .map(|(name, tensor)| {
                let mut dims: Vec<i64> = tensor.shape.iter().map(|&d| d as i64).collect();
                dims[0] = 1;
                (name.clone(), dims)
            })
            .collect(),
        None => {
            let (declared, _) = profagent_runtime::onnx_io::graph_io(model.graph());
            let mut given = args.input_shape.clone();
            given.extend(super::inputs::seq_len_shapes(
                &declared,
                &given,
                args.text.seq_len,
                1,
            ));
            super::inputs::named_dims(&declared, &given)
        }
    };
    if shapes.is_empty() {
        return None;
    }
    let macs = |m: &Model| {
        let fixed = profagent_onnx::fix_input_dims(m, &shapes).ok()?;
        let profile = profagent_profile::static_profile(&fixed, &Default::default()).ok()?;
        Some(profile.model.macs)
    };
    Some((macs(model)?, macs(pruned)?))
}

/// Calibration samples loaded from `--calib`, run through ONNX Runtime on demand.
struct Calibration {
    batches: Vec<Batch>,
}

impl Calibration {
    fn open(args: &Args, model: &Model, path: &std::path::Path) -> anyhow::Result<Self> {
        let inputs = super::inputs::model_inputs(model, &args.input_shape)?;
        let preprocess = super::inputs::preprocess(
            args.preprocess.as_deref(),
            &args.model,
            &inputs,
            Some(path),
        )?
        .preprocess;
        let dataset = crate::commands::inputs::open_dataset(
            path,
            &preprocess,
            &args.model,
            &inputs,
            &args.text,
        )?
        .subset(0, Some(args.calib_samples), Some(args.seed))?;
        let batches = profagent_data::calibration_batches(&dataset, &inputs, args.calib_batch)?;
        Ok(Calibration { batches })
    }
}
