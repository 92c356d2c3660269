//! `profagent compress`: profile → plan → apply → evaluate → feedback until the budget is met.
//!
//! The data folder is split once (seeded shuffle) into three disjoint slices: calibration
//! (static quantization ranges), feedback (what the loop and the planner see) and holdout
//! (only for the final baseline-vs-final comparison, measured in the same run).
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use profagent_agent::builtin::BuiltinPlanner;
use profagent_agent::compressor::{compress, replay, CompressOptions, ReplayScript};
use profagent_agent::config::LlmSettings;
use profagent_agent::facts::Budget;
use profagent_agent::guard::GuardedPlanner;
use profagent_agent::planner::{AnalysisAgent, Planner};
use profagent_agent::report::RunReport;
use profagent_agent::rundir::RunDir;

use crate::exit::{RuntimeFailure, BUDGET_NOT_MET, OK};

/// Compress MODEL to a budget: the planner (built-in, or an LLM with --llm) proposes
/// layerwise pruning and quantization, each round is applied and measured, and the best
/// model within the accuracy budget is kept. Everything lands in --out: every prompt and
/// answer, every plan and evaluation, the final model.onnx and report.json.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX model to compress (never modified).
    pub model: PathBuf,
    /// Labelled images (ImageFolder layout) for calibration, feedback and the final check.
    #[arg(long)]
    pub data: PathBuf,
    /// Run directory; an earlier run in it is moved to RUN_DIR/history/ first.
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Largest allowed top-1 drop against the input model, in percentage points.
    /// Optional with --min-cosine on unlabelled data (top-1 cannot be measured there).
    #[arg(long, value_name = "POINTS", required_unless_present = "min_cosine")]
    pub max_acc_drop: Option<f64>,
    /// Batch-1 latency to reach, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub target_latency: Option<f64>,
    /// Model size to reach, in megabytes (10^6 bytes).
    #[arg(long, value_name = "MB")]
    pub target_memory: Option<f64>,
    /// Speedup over the input model to reach (e.g. 2 for twice as fast).
    #[arg(long, value_name = "X")]
    pub target_speedup: Option<f64>,
    /// MACs to reach as a fraction of the input model's (e.g. 0.8): pruning only, measured by
    /// the static profile (the FLOPs budget of pruning papers).
    #[arg(long, value_name = "FRACTION")]
    pub target_macs: Option<f64>,
    /// Smallest allowed mean cosine between the compressed and the input model's outputs on the
    /// feedback images (e.g. 0.999): a fidelity bound on top of --max-acc-drop that needs no
    /// labels and moves continuously.
    #[arg(long, value_name = "COSINE", value_parser = super::parse_min_cosine)]
    pub min_cosine: Option<f64>,
    /// How sure the loop must be that the top-1 drop stays within --max-acc-drop: a round is
    /// accepted only when the one-sided upper confidence bound of its paired drop on the
    /// feedback images is within the budget (on the holdout, a final model whose drop is over
    /// the budget is replaced, and a note says when the bound cannot be confirmed there).
    /// 0.9 (default): a larger drop at most 10 % likely; 0.5: the measured drop alone, which
    /// prunes further and leaves the true drop as likely above the budget as below.
    #[arg(
        long,
        value_name = "P",
        default_value_t = profagent_agent::facts::ACCURACY_CONFIDENCE,
        value_parser = super::parse_confidence
    )]
    pub acc_confidence: f64,
    /// Planner: `none` (built-in, the default) or PROVIDER:MODEL, e.g. openai:gpt-4o,
    /// anthropic:claude-sonnet-4-5, ollama:qwen2.5:7b, vllm:NAME, llamacpp:NAME,
    /// lmstudio:NAME, openai-compatible:NAME (with --llm-base-url), local:FILE.gguf.
    /// Keys come from OPENAI_API_KEY / ANTHROPIC_API_KEY (or --llm-api-key-env).
    #[arg(long, value_name = "PROVIDER:MODEL")]
    pub llm: Option<String>,
    /// Base URL of the LLM server (e.g. http://127.0.0.1:8000/v1).
    #[arg(long)]
    pub llm_base_url: Option<String>,
    /// Sampling temperature of the LLM.
    #[arg(long)]
    pub llm_temperature: Option<f32>,
    /// Name of the environment variable holding the API key.
    #[arg(long, value_name = "VAR")]
    pub llm_api_key_env: Option<String>,
    /// Seconds to wait for one LLM answer.
    #[arg(long, value_name = "SECONDS")]
    pub llm_timeout: Option<u64>,
    /// TOML file with an [llm] table (llm, base_url, temperature, api_key_env, timeout_s,
    /// retries); flags override it. Keys are never read from it.
    #[arg(long, value_name = "FILE")]
    pub llm_config: Option<PathBuf>,
    /// Planning rounds at most.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// Stop after this many rounds in a row without an accepted improvement.
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Runtime that measures and runs the model (ort: ONNX Runtime).
    #[arg(long, default_value = "ort")]
    pub runtime: String,
    /// Intra-op threads for evaluation and latency (0: the runtime's default).
    #[arg(long, default_value_t = 0, value_parser = super::threads_parser())]
    pub threads: usize,
    /// Preprocessing: a preset (cifar10, imagenet, ...) or a JSON file; auto: the file beside
    /// the model, else a guess from the model's input shape (the same choice as eval,
    /// quantize and prune make).
    #[arg(
        long,
        default_value = "auto",
        alias = "preset",
        value_name = "PRESET|FILE"
    )]
    pub preprocess: String,
    /// Class names in the model's output order, one per line (see `profagent eval --help`):
    /// class folders are matched to it by name.
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,
    /// Size of the model input's dynamic dimensions, e.g. `1x3x224x224` (repeatable, as in
    /// every command): picks the preprocessing guess for a model with dynamic height/width.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<profagent_data::InputShape>,

    #[command(flatten)]
    pub text: crate::commands::inputs::TextArgs,
    /// Samples used to calibrate static quantization and the pruner's bias correction.
    #[arg(
        long,
        default_value_t = 500,
        value_name = "N",
        alias = "calibration-images"
    )]
    pub calib_samples: usize,
    /// Samples the loop and the planner see [default: half of what calibration leaves, at
    /// least 1000 and at most 2500: rounds are accepted on a confidence bound that tightens with
    /// more samples]
    #[arg(long, value_name = "N", alias = "feedback-images")]
    pub feedback_samples: Option<usize>,
    /// Samples for the final comparison (default: all the rest).
    #[arg(long, value_name = "N", alias = "holdout-images")]
    pub holdout_samples: Option<usize>,
    /// Seed of the shuffle that splits the data into calibration, feedback and holdout.
    #[arg(long, default_value_t = 0, value_name = "SEED", alias = "split-seed")]
    pub seed: u64,
    /// Skip measuring each quantization mode before planning.
    #[arg(long)]
    pub no_probe: bool,
    /// Apply an LLM's plans as proposed. By default each LLM plan is compared, by its estimate
    /// from the measured sensitivities, with the built-in planner's proposal for the same
    /// round, and the built-in one is applied instead when the LLM's is predicted to break the
    /// accuracy budget, does clearly less, or is missing (the round record says so).
    #[arg(long)]
    pub no_guardrail: bool,
    /// Before planning, prune each of this many of the heaviest groups alone (25 %) and
    /// measure its top-1 cost on the feedback slice; planners rank groups by it (0: skip).
    /// After each accepted pruning round as many are measured again on the new model, half of
    /// them the groups cheapest per MAC before.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub sensitivity_groups: usize,
    /// Re-run a recorded run from its recorded answers and decisions (no network).
    #[arg(long, value_name = "RUN_DIR")]
    pub replay: Option<PathBuf>,
    /// Seconds at most per interleaved latency comparison (candidate against the input or the
    /// current best); comparisons end sooner once the speedup interval is within ±3 %.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub compare_seconds: f64,
    /// Also write the report JSON to PATH; `-` prints it to stdout (the summary then goes to
    /// stderr).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// The accuracy budget when `--max-acc-drop` is left out (unlabelled data, `--min-cosine`
/// decides): every point of top-1, i.e. no bound.
const NO_ACCURACY_BOUND: f64 = 100.0;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    profagent_onnx::OutputGuard::of_model(&args.model)
        .input(Some(args.data.as_path()))
        .input(args.replay.as_deref())
        .input(args.llm_config.as_deref())
        .output_dir(args.out.as_path())?
        .output_file(args.json.as_deref())?;
    let budget = budget_of(&args)?;
    if args.runtime != "ort" {
        anyhow::bail!(
            "--runtime '{}' is not supported by compress yet; use --runtime ort",
            args.runtime
        );
    }
    let model = profagent_onnx::Model::load(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    // Planner: replay, the built-in one, or an LLM.
    let flags = LlmSettings {
        llm: args.llm.clone(),
        base_url: args.llm_base_url.clone(),
        temperature: args.llm_temperature,
        api_key_env: args.llm_api_key_env.clone(),
        timeout_s: args.llm_timeout,
        ..Default::default()
    };
    let settings = match &args.llm_config {
        Some(path) => flags.or(LlmSettings::from_file(path)?),
        None => flags,
    };
    let mut driver = driver_of(&args, &settings)?;

    // Data: calibration / feedback / holdout, disjoint.
    let (inputs, preset, dataset) = open_data(&args, &model)?;
    let seed = Some(args.seed);
    let (calibration_images, feedback_images) =
        profagent_workbench::split_sizes(dataset.len(), args.calib_samples, args.feedback_samples);
    let asked_feedback = args
        .feedback_samples
        .unwrap_or(profagent_workbench::MIN_DEFAULT_FEEDBACK);
    if calibration_images != args.calib_samples || feedback_images < asked_feedback {
        eprintln!(
            "note: {} holds {} samples, too few for {} calibration + {} feedback images and a holdout; using {calibration_images} + {feedback_images} and the rest ({}) as holdout",
            args.data.display(),
            dataset.len(),
            args.calib_samples,
            asked_feedback,
            dataset.len() - calibration_images - feedback_images
        );
    }
    let calibration_set = dataset.subset(0, Some(calibration_images), seed)?;
    let feedback = dataset.subset(calibration_images, Some(feedback_images), seed)?;
    let holdout = dataset.subset(
        calibration_images + feedback_images,
        args.holdout_samples,
        seed,
    )?;
    // One builder for every command's calibration batches: at the model's fixed batch when it
    // has one (a batch-1 export gets batches of 1 instead of failing every static probe).
    let calibration = profagent_data::calibration_batches(
        &calibration_set,
        &inputs,
        profagent_workbench::CALIBRATION_BATCH,
    )?;

    let mut bench = bench_of(
        &args,
        &model,
        [feedback, holdout],
        calibration,
        inputs.clone(),
    )?;
    // Ctrl-C while the data loaded: nothing measured yet, no run directory made.
    if profagent_onnx::progress::stop_requested() {
        eprintln!("interrupted before the run started: nothing written");
        return Ok(ExitCode::from(crate::exit::INTERRUPTED));
    }
    let run_dir = RunDir::create(&args.out, settings.secrets())?;
    let options = CompressOptions {
        budget,
        rounds: args.rounds,
        patience: args.patience,
        probe_quantization: !args.no_probe,
        sensitivity_groups: args.sensitivity_groups,
        model_name: args
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default(),
        model_path: args.model.display().to_string(),
        runtime: args.runtime.clone(),
        data: serde_json::json!({
            "path": args.data.display().to_string(), "preprocess": preset, "split_seed": args.seed,
            "calibration_images": calibration_images, "feedback_images": feedback_images,
            "holdout_images": args.holdout_samples, "samples": dataset.len(),
        }),
    };
    let mut progress = LoopProgress {
        quiet: super::quiet(),
        terminal: std::io::stderr().is_terminal(),
    };
    let compressed = match &mut driver {
        Driver::Plan(planner) => compress(
            &model,
            &options,
            planner.as_mut(),
            &mut bench,
            &run_dir,
            &mut progress,
        ),
        Driver::Replay(script) => replay(
            &model,
            &options,
            script,
            &mut bench,
            &run_dir,
            &mut progress,
        ),
    }
    .map_err(|e| match e {
        // Unusable data or model: bad input (exit 2), like `eval`; the rest is a failure of
        // the run (exit 3).
        profagent_agent::AgentError::BadInput { .. } => anyhow::Error::new(e),
        other => RuntimeFailure(other.into()).into(),
    })?;
    // The loop hands back the record it wrote; the reports are rendered from it, not from a
    // re-read of report.json.
    let report = compressed.report;
    match profagent_report::write_reports(run_dir.root(), &report) {
        Ok(written) => super::info(format_args!(
            "wrote {} and {}",
            written.html.display(),
            written.markdown.display()
        )),
        Err(e) => eprintln!("warning: report.html/report.md not written: {e}"),
    }
    let json_to_stdout = super::json_to_stdout(args.json.as_deref());
    let met = report.final_result.as_ref().is_some_and(|f| f.budget_met);
    // With `--json -` stdout carries the JSON alone; the summary goes to stderr.
    print_summary(&report, met, json_to_stdout);
    if let Some(path) = &args.json {
        super::write_json(path, &serde_json::to_string_pretty(&report)?)?;
    }
    if crate::progress::interrupted() {
        record_interruption(&run_dir, &report)?;
        return Ok(ExitCode::from(crate::exit::INTERRUPTED));
    }
    Ok(ExitCode::from(if met { OK } else { BUDGET_NOT_MET }))
}

/// The model's inputs, the preprocessing announced and the dataset with its classes matched,
/// checked against the budget (labels need `--max-acc-drop`, unlabelled data `--min-cosine`).
fn open_data(
    args: &Args,
    model: &profagent_onnx::Model,
) -> anyhow::Result<(
    Vec<profagent_runtime::IoInfo>,
    String,
    profagent_data::Dataset,
)> {
    let inputs = crate::commands::inputs::model_inputs(model, &args.input_shape)?;
    let resolved = crate::commands::inputs::preprocess(
        Some(args.preprocess.as_str()),
        &args.model,
        &inputs,
        Some(&args.data),
    )?;
    let (preprocess, preset) = (resolved.preprocess, resolved.origin);
    let mut dataset = crate::commands::inputs::open_dataset(
        &args.data,
        &preprocess,
        &args.model,
        &inputs,
        &args.text,
    )?;
    if let Some(classes) = &args.classes {
        dataset = dataset.with_classes(classes)?;
    }
    if !dataset.has_labels() && args.min_cosine.is_none() {
        anyhow::bail!(
            "{} has no labels, so top-1 cannot be measured: pass --min-cosine (e.g. 0.999) to bound how far the outputs may move from the input model's instead",
            args.data.display()
        );
    }
    if args.max_acc_drop.is_none() && dataset.has_labels() {
        anyhow::bail!(
            "{} has labels: pass --max-acc-drop POINTS (the largest top-1 drop allowed) along with --min-cosine",
            args.data.display()
        );
    }
    // Class folders that cannot be matched to the model's classes stop here, before any
    // measurement, rather than scoring near 0 % (the evaluation would refuse them too).
    let (_, outputs) = profagent_runtime::onnx_io::graph_io(model.graph());
    if let Some(classes) = outputs
        .first()
        .and_then(|o| o.shape.last().copied().flatten())
        .filter(|_| dataset.has_labels())
    {
        dataset.class_indices(classes)?;
    }
    Ok((inputs, preset, dataset))
}

/// What plans the rounds: a planner, or a recorded run followed again.
enum Driver {
    Plan(Box<dyn Planner>),
    Replay(Box<ReplayScript>),
}

/// After Ctrl-C: the `interrupted` marker beside the report of what was done, and a line.
fn record_interruption(run_dir: &RunDir, report: &RunReport) -> anyhow::Result<()> {
    let marker = run_dir.path(INTERRUPTED_FILE);
    let stop = report
        .final_result
        .as_ref()
        .map(|f| f.stop_reason.clone())
        .unwrap_or_default();
    profagent_onnx::write_atomic(
        &marker,
        format!("interrupted by Ctrl-C; stopped: {stop}; report.json holds what was done\n")
            .as_bytes(),
    )
    .with_context(|| format!("cannot write {}", marker.display()))?;
    eprintln!(
        "interrupted: {} rounds recorded in {}",
        report.rounds.len(),
        run_dir.root().display()
    );
    Ok(())
}

/// Marker file in the run directory of a run stopped by Ctrl-C.
pub const INTERRUPTED_FILE: &str = "interrupted";

/// The loop's progress lines on stderr (above the bars on a terminal, `» ` first; plain lines
/// otherwise; none with --quiet), and the Ctrl-C stop request.
struct LoopProgress {
    quiet: bool,
    terminal: bool,
}

impl profagent_agent::compressor::Progress for LoopProgress {
    fn line(&mut self, text: &str) {
        match (self.quiet, self.terminal) {
            (true, _) => {}
            (false, true) => crate::progress::line(&format!("» {text}")),
            (false, false) => eprintln!("{text}"),
        }
    }

    fn stop_requested(&mut self) -> bool {
        profagent_onnx::progress::stop_requested()
    }
}

/// The workbench of the run: ONNX Runtime with `--threads`, the three slices, the input model
/// as the reference of every evaluation, and the timing settings.
fn bench_of(
    args: &Args,
    model: &profagent_onnx::Model,
    [feedback, holdout]: [profagent_data::Dataset; 2],
    calibration: Vec<profagent_workbench::Batch>,
    inputs: Vec<profagent_runtime::IoInfo>,
) -> anyhow::Result<profagent_workbench::OrtBench> {
    let runtime = profagent_runtime::open_runtime(profagent_runtime::RuntimeKind::Ort)
        .map_err(|e| RuntimeFailure(e.into()))?;
    let session = profagent_runtime::SessionOptions {
        threads: args.threads,
        ..Default::default()
    };
    let channel_block = profagent_workbench::bench::channel_block(runtime.as_ref(), &session);
    Ok(profagent_workbench::OrtBench {
        runtime,
        session,
        feedback,
        holdout,
        calibration,
        eval: profagent_data::EvalOptions {
            batch_size: 64,
            latency_batches: vec![1],
            warmup_runs: 5,
            timed_runs: 30,
            ..Default::default()
        },
        runtime_name: args.runtime.clone(),
        reference: model.to_bytes(),
        reference_logits: [None, None],
        compare: profagent_runtime::CompareSettings {
            time_cap: std::time::Duration::from_secs_f64(args.compare_seconds.max(1.0)),
            ..Default::default()
        },
        inputs,
        channel_block,
    })
}

/// The budget from the flags, each checked (a bad value is bad input, named).
fn budget_of(args: &Args) -> anyhow::Result<Budget> {
    // Without labels no top-1 is measured: only --min-cosine decides, and the accuracy
    // budget is the whole scale (checked against the data's labels once it is open).
    let max_acc_drop = args.max_acc_drop.unwrap_or(NO_ACCURACY_BOUND);
    if !(max_acc_drop >= 0.0 && max_acc_drop.is_finite()) {
        anyhow::bail!("--max-acc-drop must be a number of points ≥ 0, got {max_acc_drop}");
    }
    let budget = Budget {
        max_acc_drop,
        target_latency_ms: args.target_latency,
        target_memory_bytes: args.target_memory.map(|mb| (mb * 1e6) as u64),
        target_speedup: args.target_speedup,
        target_macs_fraction: args.target_macs,
        min_cosine: args.min_cosine,
        acc_confidence: args.acc_confidence,
    };
    if let Some(f) = args.target_macs {
        if !(f > 0.0 && f <= 1.0) {
            anyhow::bail!(
                "--target-macs is a fraction of the input model's MACs in (0, 1], got {f}"
            );
        }
    }
    Ok(budget)
}

/// What plans the rounds: a recorded run followed again (`--replay`: the recorded answers are
/// its planner), an LLM, or the built-in planner.
fn driver_of(args: &Args, settings: &LlmSettings) -> anyhow::Result<Driver> {
    Ok(match args.replay.as_deref() {
        Some(dir) => Driver::Replay(Box::new(ReplayScript::read(dir)?)),
        None => Driver::Plan(match settings.build()? {
            Some(provider) if args.no_guardrail => Box::new(AnalysisAgent::new(provider)),
            Some(provider) => Box::new(GuardedPlanner::new(Box::new(AnalysisAgent::new(provider)))),
            None => Box::new(BuiltinPlanner::new()),
        }),
    })
}

/// The round table and the final comparison, on stdout (stderr when `to_stderr`).
fn print_summary(report: &RunReport, budget_met: bool, to_stderr: bool) {
    macro_rules! say {
        ($($arg:tt)*) => {
            if to_stderr {
                eprintln!($($arg)*)
            } else {
                println!($($arg)*)
            }
        };
    }
    say!("\nround  accepted  top-1 (feedback)  drop [95 % interval]   speedup vs input [95 %]  size MB  plan");
    for r in &report.rounds {
        let e = r.evaluation.as_ref();
        say!(
            "{:>5}  {:>8}  {:>16}  {:>21}  {:>23}  {:>7}  {}",
            r.round,
            if r.accepted { "yes" } else { "no" },
            e.and_then(|e| e.top1)
                .map(|t| format!("{t:.2}"))
                .unwrap_or_else(|| "-".into()),
            e.and_then(|e| e.accuracy_change)
                .map(|p| {
                    let i = p.drop_interval(profagent_stats::REPORT_CONFIDENCE);
                    format!("{:.2} [{:.2}, {:.2}]", i.value, i.low, i.high)
                })
                .unwrap_or_else(|| "-".into()),
            e.and_then(|e| e.speed.as_ref())
                .map(|s| format!(
                    "{:.2}x [{:.2}, {:.2}]",
                    s.speedup.value, s.speedup.low, s.speedup.high
                ))
                .unwrap_or_else(|| "-".into()),
            e.map(|e| format!("{:.2}", e.model_bytes as f64 / 1e6))
                .unwrap_or_else(|| "-".into()),
            profagent_agent::compressor::summarize_plan(r.plan.as_ref(), &r.resolved_pruning),
        );
    }
    let Some(f) = &report.final_result else {
        return;
    };
    say!();
    if let (Some(b), Some(c)) = (&f.holdout_baseline, &f.holdout_final) {
        let top1 = |e: &profagent_agent::Evaluation| match (e.top1, e.top1_interval) {
            (Some(t), Some(i)) => format!("{t:.2} [{:.2}, {:.2}]", i.low, i.high),
            (Some(t), None) => format!("{t:.2}"),
            (None, _) => "no labels".into(),
        };
        say!(
            "holdout ({} images)    baseline               final",
            c.images
        );
        say!("top-1 % [95 %]        {:<22} {}", top1(b), top1(c));
        say!(
            "latency ms (batch 1)  {:<22.3} {:.3}",
            b.latency_ms,
            c.latency_ms
        );
        say!(
            "size MB               {:<22.2} {:.2}",
            b.model_bytes as f64 / 1e6,
            c.model_bytes as f64 / 1e6
        );
        if let Some(cosine) = c.cosine {
            say!(
                "output cosine         {:<22} {cosine:.5} (worst image {})",
                "1",
                c.worst_cosine
                    .map(|w| format!("{w:.5}"))
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    let accuracy = match (f.acc_drop, f.drop_interval) {
        (Some(d), Some(i)) => format!(
            "top-1 drop {d:.2} points (95 % interval {:.2} to {:.2}, paired on {} holdout images)",
            i.low,
            i.high,
            f.holdout_final.as_ref().map(|e| e.images).unwrap_or(0)
        ),
        (Some(d), None) => format!("top-1 drop {d:.2} points"),
        (None, _) => "no labels: accuracy not measured".into(),
    };
    let speed = f
        .speed
        .as_ref()
        .map(|s| s.describe())
        .unwrap_or_else(|| "speed not compared (the input model is returned)".into());
    let size = f.size_reduction.unwrap_or(0.0) * 100.0;
    say!(
        "{accuracy}; {speed}; {}",
        if size >= 0.0 {
            format!("{size:.1} % smaller")
        } else {
            format!("{:.1} % larger", -size)
        }
    );
    for note in &f.fallback {
        say!("note: {note}");
    }
    say!(
        "budget {}; stopped: {}",
        if budget_met { "met" } else { "not met" },
        f.stop_reason
    );
    if let Some(replay) = &report.replay {
        say!(
            "replay of {}: final model {}",
            replay.source,
            if replay.identical {
                "byte-identical"
            } else {
                "DIFFERS"
            }
        );
    }
    say!("model: {}  sha256 {}", f.model_path, f.sha256);
}
