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
use profagent_agent::compressor::{compress, CompressOptions, ReplayScript};
use profagent_agent::config::LlmSettings;
use profagent_agent::facts::Budget;
use profagent_agent::planner::{replay_planner, AnalysisAgent, Planner};
use profagent_agent::report::RunReport;
use profagent_agent::rundir::{RunDir, REPORT_FILE};

use crate::exit::{RuntimeFailure, BUDGET_NOT_MET, OK};

mod bench;

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
    #[arg(long, value_name = "POINTS")]
    pub max_acc_drop: f64,
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
    #[arg(long, value_name = "COSINE")]
    pub min_cosine: Option<f64>,
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
    /// Preprocessing preset (cifar10, imagenet, ...); auto picks from the model input size.
    #[arg(
        long,
        default_value = "auto",
        alias = "preset",
        value_name = "PRESET|FILE"
    )]
    pub preprocess: String,
    /// Images used to calibrate static quantization.
    #[arg(long, default_value_t = 500)]
    pub calibration_images: usize,
    /// Images the loop and the planner see.
    #[arg(long, default_value_t = 1000)]
    pub feedback_images: usize,
    /// Images for the final comparison (default: all the rest).
    #[arg(long)]
    pub holdout_images: Option<usize>,
    /// Seed of the shuffle that splits the data.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Skip measuring each quantization mode before planning.
    #[arg(long)]
    pub no_probe: bool,
    /// Before planning, prune each of this many of the heaviest groups alone (25 %) and
    /// measure its top-1 cost on the feedback slice; planners rank groups by it (0: skip).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub sensitivity_groups: usize,
    /// Re-run a recorded run from its recorded answers and decisions (no network).
    #[arg(long, value_name = "RUN_DIR")]
    pub replay: Option<PathBuf>,
    /// Also write the report JSON to this path.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    profagent_onnx::OutputGuard::of_model(&args.model)
        .input(Some(args.data.as_path()))
        .input(args.replay.as_deref())
        .input(args.llm_config.as_deref())
        .output_dir(args.out.as_path())?
        .output_file(args.json.as_deref())?;
    if !(args.max_acc_drop >= 0.0 && args.max_acc_drop.is_finite()) {
        anyhow::bail!(
            "--max-acc-drop must be a number of points ≥ 0, got {}",
            args.max_acc_drop
        );
    }
    if args.runtime != "ort" {
        anyhow::bail!(
            "--runtime '{}' is not supported by compress yet; use --runtime ort",
            args.runtime
        );
    }
    let model = profagent_onnx::Model::load(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let budget = Budget {
        max_acc_drop: args.max_acc_drop,
        target_latency_ms: args.target_latency,
        target_memory_bytes: args.target_memory.map(|mb| (mb * 1e6) as u64),
        target_speedup: args.target_speedup,
        target_macs_fraction: args.target_macs,
        min_cosine: args.min_cosine,
    };
    if let Some(c) = args.min_cosine {
        if !(c > 0.0 && c < 1.0) {
            anyhow::bail!("--min-cosine is a cosine in (0, 1), e.g. 0.999; got {c}");
        }
    }
    if let Some(f) = args.target_macs {
        if !(f > 0.0 && f <= 1.0) {
            anyhow::bail!(
                "--target-macs is a fraction of the input model's MACs in (0, 1], got {f}"
            );
        }
    }

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
    let (mut planner, replay): (Box<dyn Planner>, Option<ReplayScript>) = match &args.replay {
        Some(dir) => {
            let source = RunReport::read(&dir.join(REPORT_FILE))?;
            (
                Box::new(replay_planner(dir)?),
                Some(ReplayScript {
                    source,
                    source_dir: dir.display().to_string(),
                }),
            )
        }
        None => match settings.build()? {
            Some(provider) => (Box::new(AnalysisAgent::new(provider)), None),
            None => (Box::new(BuiltinPlanner::new()), None),
        },
    };

    // Data: calibration / feedback / holdout, disjoint.
    let preset = match args.preprocess.as_str() {
        "auto" => auto_preset(&model),
        other => other.to_string(),
    };
    let preprocess = if std::path::Path::new(&preset).is_file() {
        profagent_data::Preprocess::from_file(std::path::Path::new(&preset))?
    } else {
        profagent_data::Preprocess::preset(&preset)?
    };
    let dataset = profagent_data::Dataset::open(&args.data, &preprocess)?;
    let seed = Some(args.split_seed);
    let (calibration_images, feedback_images) =
        split_sizes(dataset.len(), args.calibration_images, args.feedback_images);
    if (calibration_images, feedback_images) != (args.calibration_images, args.feedback_images) {
        eprintln!(
            "note: {} holds {} samples, too few for {} calibration + {} feedback images and a holdout; using {calibration_images} + {feedback_images} and the rest ({}) as holdout",
            args.data.display(),
            dataset.len(),
            args.calibration_images,
            args.feedback_images,
            dataset.len() - calibration_images - feedback_images
        );
    }
    let calibration_set = dataset.subset(0, Some(calibration_images), seed)?;
    let feedback = dataset.subset(calibration_images, Some(feedback_images), seed)?;
    let holdout = dataset.subset(
        calibration_images + feedback_images,
        args.holdout_images,
        seed,
    )?;
    let input_name = model
        .graph()
        .input
        .iter()
        .map(|i| i.name().to_string())
        .find(|n| !model.graph().initializer.iter().any(|t| t.name() == n))
        .context("the model has no graph input")?;
    let mut calibration = Vec::new();
    for batch in calibration_set.batches(50) {
        calibration.push(vec![(input_name.clone(), batch?.input)]);
    }

    let runtime = profagent_runtime::open_runtime(profagent_runtime::RuntimeKind::Ort)
        .map_err(|e| RuntimeFailure(e.into()))?;
    let mut bench = bench::OrtBench {
        runtime,
        session: profagent_runtime::SessionOptions {
            threads: args.threads,
            ..Default::default()
        },
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
    };
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
            "path": args.data.display().to_string(), "preprocess": preset, "split_seed": args.split_seed,
            "calibration_images": calibration_images, "feedback_images": feedback_images,
            "holdout_images": args.holdout_images, "samples": dataset.len(),
        }),
        replay,
    };
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |line: &str| {
        if terminal {
            eprintln!("» {line}");
        } else {
            eprintln!("{line}");
        }
    };
    let report = compress(
        &model,
        &options,
        planner.as_mut(),
        &mut bench,
        &run_dir,
        &mut progress,
    )
    .map_err(|e| RuntimeFailure(e.into()))?;
    if options.replay.is_none() {
        progress("profiling per-layer latency of the baseline and final models for the report");
        if let Err(e) = add_layer_latencies(&args, bench.runtime.as_ref(), &model, &run_dir) {
            eprintln!("warning: per-layer latency for the report not measured: {e:#}");
        }
    }
    match profagent_report::regenerate(run_dir.root()) {
        Ok((_, written)) => eprintln!(
            "wrote {} and {}",
            written.html.display(),
            written.markdown.display()
        ),
        Err(e) => eprintln!("warning: report.html/report.md not written: {e}"),
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        profagent_onnx::write_atomic(path, text.as_bytes())?;
    }
    let met = report.final_result.as_ref().is_some_and(|f| f.budget_met);
    print_summary(&report, met);
    Ok(ExitCode::from(if met { OK } else { BUDGET_NOT_MET }))
}

/// Median per-layer latency (ms) of `model` from the runtime's profiler, by layer name.
fn layer_latencies(
    runtime: &dyn profagent_runtime::Runtime,
    model: &profagent_onnx::Model,
    threads: usize,
) -> anyhow::Result<Vec<(String, String, f64)>> {
    use profagent_runtime::{profile_model, synthetic_inputs, ModelSource, ProfileSettings};
    let mut profile =
        profagent_profile::static_profile(model, &profagent_profile::ProfileOptions::default())?;
    let (declared, _) = profagent_runtime::onnx_io::graph_io(model.graph());
    let inputs = synthetic_inputs(&declared, 1)?;
    let options = profagent_runtime::SessionOptions {
        threads,
        ..Default::default()
    };
    let measured = profile_model(
        runtime,
        &ModelSource::Bytes(model.to_bytes()),
        model,
        &options,
        &inputs,
        ProfileSettings {
            warmup: LAYER_PROFILE_WARMUP,
            runs: LAYER_PROFILE_RUNS,
        },
    )?;
    profagent_profile::merge_measured(&mut profile, &measured);
    Ok(profile
        .layers
        .iter()
        .filter_map(|l| {
            let op = l.op_types.first().cloned().unwrap_or_default();
            l.latency_ms.map(|ms| (l.name.clone(), op, ms))
        })
        .collect())
}

/// Timed runs per model for the report's per-layer latency chart.
const LAYER_PROFILE_RUNS: usize = 10;
const LAYER_PROFILE_WARMUP: usize = 3;

/// Adds `layers[]` (per-layer latency before/after) to the run's report.json.
fn add_layer_latencies(
    args: &Args,
    runtime: &dyn profagent_runtime::Runtime,
    baseline: &profagent_onnx::Model,
    run_dir: &RunDir,
) -> anyhow::Result<()> {
    let final_model = profagent_onnx::Model::load(run_dir.path("model.onnx"))?;
    let before = layer_latencies(runtime, baseline, args.threads)?;
    let after = layer_latencies(runtime, &final_model, args.threads)?;
    let after_by_name: std::collections::HashMap<&str, f64> =
        after.iter().map(|(n, _, ms)| (n.as_str(), *ms)).collect();
    let mut rows: Vec<serde_json::Value> = before
        .iter()
        .map(|(name, op, ms)| {
            serde_json::json!({"layer": name, "op_type": op, "before_ms": ms,
                "after_ms": after_by_name.get(name.as_str())})
        })
        .collect();
    let known: std::collections::HashSet<&str> =
        before.iter().map(|(n, _, _)| n.as_str()).collect();
    for (name, op, ms) in after.iter().filter(|(n, _, _)| !known.contains(n.as_str())) {
        rows.push(
            serde_json::json!({"layer": name, "op_type": op, "before_ms": null, "after_ms": ms}),
        );
    }
    let path = run_dir.path(profagent_agent::rundir::REPORT_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut report: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    if let Some(object) = report.as_object_mut() {
        object.insert("layers".into(), serde_json::Value::Array(rows));
    }
    profagent_onnx::write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(())
}

/// Calibration and feedback slice sizes: as asked when the data has room for them plus a
/// holdout at least as large as the feedback slice, else 20 % / 40 % / 40 % of the data.
fn split_sizes(samples: usize, calibration: usize, feedback: usize) -> (usize, usize) {
    if calibration + 2 * feedback <= samples {
        (calibration, feedback)
    } else {
        (samples / 5, samples * 2 / 5)
    }
}

/// cifar10 for 32x32 inputs, imagenet otherwise.
fn auto_preset(model: &profagent_onnx::Model) -> String {
    use profagent_onnx::proto::{tensor_shape_proto::dimension::Value, type_proto};
    let height =
        model
            .graph()
            .input
            .first()
            .and_then(|i| match i.r#type.as_ref()?.value.as_ref()? {
                type_proto::Value::TensorType(t) => {
                    match t.shape.as_ref()?.dim.get(2)?.value.as_ref()? {
                        Value::DimValue(v) => Some(*v),
                        _ => None,
                    }
                }
                _ => None,
            });
    if height == Some(32) {
        "cifar10".into()
    } else {
        "imagenet".into()
    }
}

fn print_summary(report: &RunReport, budget_met: bool) {
    println!("\nround  accepted  top-1 (feedback)  latency ms  size MB  plan");
    for r in &report.rounds {
        let e = r.evaluation.as_ref();
        println!(
            "{:>5}  {:>8}  {:>16}  {:>10}  {:>7}  {}",
            r.round,
            if r.accepted { "yes" } else { "no" },
            e.map(|e| format!("{:.2}", e.top1))
                .unwrap_or_else(|| "-".into()),
            e.map(|e| format!("{:.2}", e.latency_ms))
                .unwrap_or_else(|| "-".into()),
            e.map(|e| format!("{:.2}", e.model_bytes as f64 / 1e6))
                .unwrap_or_else(|| "-".into()),
            profagent_agent::compressor::summarize_plan(r.plan.as_ref(), &r.resolved_pruning),
        );
    }
    let Some(f) = &report.final_result else {
        return;
    };
    println!();
    if let (Some(b), Some(c)) = (&f.holdout_baseline, &f.holdout_final) {
        println!("holdout ({} images)   baseline    final", c.images);
        println!("top-1 %              {:>8.2}  {:>7.2}", b.top1, c.top1);
        println!(
            "latency ms (batch 1) {:>8.2}  {:>7.2}",
            b.latency_ms, c.latency_ms
        );
        println!(
            "size MB              {:>8.2}  {:>7.2}",
            b.model_bytes as f64 / 1e6,
            c.model_bytes as f64 / 1e6
        );
    }
    println!(
        "drop {:.2} points, {:.2}x faster, {:.1} % smaller; budget {}; stopped: {}",
        f.acc_drop.unwrap_or(f64::NAN),
        f.speedup.unwrap_or(f64::NAN),
        100.0 * f.size_reduction.unwrap_or(f64::NAN),
        if budget_met { "met" } else { "not met" },
        f.stop_reason
    );
    if let Some(replay) = &report.replay {
        println!(
            "replay of {}: final model {}",
            replay.source,
            if replay.identical {
                "byte-identical"
            } else {
                "DIFFERS"
            }
        );
    }
    println!("model: {}  sha256 {}", f.model_path, f.sha256);
}
