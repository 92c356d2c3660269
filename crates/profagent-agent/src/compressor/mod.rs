//! The iterative compression loop: plan → apply → evaluate → feedback, round after round.
//!
//! Each round starts from the best feasible model so far (the float model with the pruning
//! accepted so far, plus its quantization choice). A candidate is kept when the paired
//! comparison with the baseline on the feedback slice keeps the accuracy bound with
//! confidence, its fidelity bound holds, and it is measurably better than the current best on
//! the objective (`judge`); otherwise it is rolled back. The loop stops when the budget is
//! met, the rounds run out, the planner has nothing more to propose, or `patience` rounds in a
//! row brought nothing. The final check (`finish`) re-measures on the holdout slice.
//!
//! Modules: `measure` (quantization probes and pruning sensitivity, before planning),
//! `finish` (holdout check, fallback, final speed), `crate::judge` (verdicts). The real
//! pruning, quantization and evaluation are behind the `Workbench` trait, so the loop is
//! tested with a scripted workbench and driven by the CLI with the real crates. A replay
//! (`ReplayScript`) follows the recorded evaluations and verdicts instead of measuring.
use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use profagent_onnx::Model;
use profagent_plan::{PlanContext, QuantSetting, ResolvedPrune, ValidatedPlan};

use crate::error::AgentError;
use crate::facts::{
    Evaluation, GroupFacts, LayerFacts, PlanningInput, RoundSummary, SpeedComparison,
};
use crate::judge::{budget_met, describe_accuracy, judge, Decision};
use crate::planner::Planner;
use crate::report::{sha256_hex, ModelInfo, RoundRecord, RunReport, REPORT_FORMAT};
use crate::rundir::{RunDir, REPORT_FILE};

mod finish;
mod measure;

pub use measure::SENSITIVITY_RATIO;

/// Which data slice an evaluation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Guides the loop (acceptance, planner feedback).
    Feedback,
    /// Judges the final result only.
    Holdout,
}

/// What the loop needs from the rest of ProfAgent.
pub trait Workbench {
    /// Runtime, threads, machine: recorded in the report.
    fn describe(&self) -> serde_json::Value;
    /// The plan context and planner facts of a float model.
    fn analyze(&mut self, model: &Model) -> Result<Analysis, AgentError>;
    /// Structured pruning; returns the model and the pruner's report.
    fn prune(
        &mut self,
        model: &Model,
        decisions: &[ResolvedPrune],
    ) -> Result<(Model, serde_json::Value), AgentError>;
    /// Quantization of the named layers (calibration data is the workbench's business).
    fn quantize(
        &mut self,
        model: &Model,
        layers: &BTreeMap<String, QuantSetting>,
    ) -> Result<(Model, serde_json::Value), AgentError>;
    /// Accuracy (with per-image correctness), fidelity to the input model and size on a
    /// slice; no timing (`latency_ms` is filled by the loop from `compare_speed`).
    fn evaluate(&mut self, model: &Model, split: Split) -> Result<Evaluation, AgentError>;
    /// Times `candidate` against `reference` interleaved in one process on the target
    /// runtime (batch 1, a real sample of `split`).
    fn compare_speed(
        &mut self,
        reference: &Model,
        candidate: &Model,
        split: Split,
    ) -> Result<SpeedComparison, AgentError>;
    /// Per-layer latency `(layer, op type, ms)` of `model` from the runtime's profiler, for
    /// the report (default: not measured).
    fn layer_latencies(&mut self, model: &Model) -> Result<Vec<(String, String, f64)>, AgentError> {
        let _ = model;
        Ok(Vec::new())
    }
}

/// A model's plan context plus what planners see of it.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub context: PlanContext,
    pub layers: Vec<LayerFacts>,
    pub groups: Vec<GroupFacts>,
    pub family: String,
}

/// Progress lines for the terminal, and whether the user asked the loop to stop (Ctrl-C).
pub trait Progress {
    fn line(&mut self, text: &str);
    /// Polled between measurements and rounds: `true` ends the loop early with
    /// `StopReason::Interrupted`, skipping the final check, and the report says so.
    fn stop_requested(&mut self) -> bool {
        false
    }
}

impl<F: FnMut(&str)> Progress for F {
    fn line(&mut self, text: &str) {
        self(text)
    }
}

/// Passes every progress line through the run's redaction filter before it reaches stderr.
struct RedactingProgress<'a> {
    inner: &'a mut dyn Progress,
    run_dir: &'a RunDir,
}

impl Progress for RedactingProgress<'_> {
    fn line(&mut self, text: &str) {
        self.inner.line(&self.run_dir.redact(text));
    }
    fn stop_requested(&mut self) -> bool {
        self.inner.stop_requested()
    }
}

/// Recorded decisions that a replay follows instead of measuring again.
#[derive(Debug, Clone)]
pub struct ReplayScript {
    pub source: RunReport,
    pub source_dir: String,
}

#[derive(Debug, Clone)]
pub struct CompressOptions {
    pub budget: crate::facts::Budget,
    pub rounds: usize,
    /// Rounds in a row without an accepted improvement before stopping.
    pub patience: usize,
    /// Measure every quantization mode on the baseline before planning.
    pub probe_quantization: bool,
    /// Measure the top-1 cost of pruning each of this many of the heaviest prunable groups
    /// alone before planning (0: do not measure).
    pub sensitivity_groups: usize,
    pub model_name: String,
    pub model_path: String,
    pub runtime: String,
    pub data: serde_json::Value,
    pub replay: Option<ReplayScript>,
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StopReason {
    BudgetMet {
        after_round: usize,
    },
    RoundsUsed {
        rounds: usize,
    },
    PlannerDone {
        round: usize,
    },
    NoImprovement {
        rounds: usize,
    },
    /// The user stopped the run (Ctrl-C) after this many rounds; the final check was not run.
    Interrupted {
        after_round: usize,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::BudgetMet { after_round } => {
                write!(f, "budget met after round {after_round}")
            }
            StopReason::RoundsUsed { rounds } => write!(f, "all {rounds} rounds used"),
            StopReason::PlannerDone { round } => {
                write!(f, "planner had nothing more to propose in round {round}")
            }
            StopReason::NoImprovement { rounds } => {
                write!(f, "no improvement in {rounds} round(s) in a row")
            }
            StopReason::Interrupted { after_round } => {
                write!(f, "interrupted (Ctrl-C) after round {after_round}")
            }
        }
    }
}

/// A feasible model: the float model, its quantization, the deployed model and its
/// feedback evaluation.
#[derive(Clone)]
pub(crate) struct State {
    /// Round that produced it (0: the input model).
    pub round: usize,
    pub float: Model,
    pub quantization: BTreeMap<String, QuantSetting>,
    pub deployed: Model,
    pub evaluation: Evaluation,
    pub analysis: Analysis,
}

/// Runs the loop and writes everything into `run_dir`. Returns the report (also on disk) and
/// the chosen model.
pub fn compress(
    input: &Model,
    options: &CompressOptions,
    planner: &mut dyn Planner,
    bench: &mut dyn Workbench,
    run_dir: &RunDir,
    progress: &mut dyn Progress,
) -> Result<RunReport, AgentError> {
    let mut redacting = RedactingProgress {
        inner: progress,
        run_dir,
    };
    let progress: &mut dyn Progress = &mut redacting;
    let started = Instant::now();
    let input_bytes = input.to_bytes();
    let recorded = options.replay.as_ref().map(|r| &r.source);
    progress.line(&format!("analyzing {}", options.model_name));
    let mut analysis = bench.analyze(input)?;
    // Per-layer latency of the input on the target runtime, measured once: planners rank
    // groups by it, and every later analysis reuses it (scaled by MACs where pruning shrank
    // a layer). A replay takes the input's column of the recorded per-layer table.
    let measured_layers = match recorded {
        Some(r) => r
            .layers
            .iter()
            .filter_map(|l| Some((l.layer.clone(), l.op_type.clone(), l.before_ms?)))
            .collect(),
        None => {
            progress.line("profiling per-layer latency of the input model on the target runtime");
            bench.layer_latencies(input).unwrap_or_else(|e| {
                progress.line(&format!(
                    "warning: per-layer latency not measured ({e}): planners rank by MACs"
                ));
                Vec::new()
            })
        }
    };
    let input_latency = measure::InputLatency::new(&measured_layers, &analysis);
    input_latency.apply(&mut analysis);
    run_dir.write_json("input/context.json", &analysis.context)?;
    run_dir.write_json("input/layers.json", &analysis.layers)?;
    run_dir.write_json("input/groups.json", &analysis.groups)?;
    let baseline = match recorded {
        Some(r) => r.baseline.clone(),
        None => measure_baseline(input, bench, progress)?,
    };
    let quant_probes = match recorded {
        Some(r) => r.quant_probes.clone(),
        None if options.probe_quantization => {
            measure::probe_quantization(input, &analysis, &baseline, bench, progress)
        }
        None => Vec::new(),
    };
    // When one measured quantization mode alone already meets the budget, the built-in
    // planner takes it and the loop ends: measuring pruning sensitivity first would only cost
    // time.
    let quant_alone_meets = quant_probes.iter().any(|p| {
        p.error.is_none() && budget_met(&options.budget, &baseline, &p.as_evaluation(&baseline))
    });
    let sensitivity = match recorded {
        Some(r) => r.sensitivity.clone(),
        None if quant_alone_meets => {
            progress.line(
                "a quantization mode alone meets the budget: pruning sensitivity not measured",
            );
            Vec::new()
        }
        None if options.sensitivity_groups > 0 => measure::measure_sensitivity(
            input,
            &analysis,
            &baseline,
            options.sensitivity_groups,
            bench,
            progress,
        ),
        None => Vec::new(),
    };
    measure::apply_sensitivity(&mut analysis.groups, &sensitivity);
    let mut report = RunReport {
        format: REPORT_FORMAT.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        planner: planner.describe(),
        model: ModelInfo {
            path: options.model_path.clone(),
            sha256: sha256_hex(&input_bytes),
            bytes: input_bytes.len() as u64,
        },
        data: options.data.clone(),
        machine: bench.describe(),
        budget: options.budget.clone(),
        baseline: baseline.clone(),
        quant_probes,
        sensitivity,
        rounds: Vec::new(),
        final_result: None,
        replay: None,
        layers: Vec::new(),
        seconds: 0.0,
    };
    let initial = State {
        round: 0,
        float: input.clone(),
        quantization: BTreeMap::new(),
        deployed: input.clone(),
        evaluation: baseline.clone(),
        analysis,
    };
    let mut state = initial.clone();
    // Every accepted state, oldest first: the final check falls back along it.
    let mut accepted: Vec<State> = vec![initial];
    let mut history: Vec<RoundSummary> = Vec::new();
    let mut idle_rounds = 0;
    let rounds = recorded.map(|r| r.rounds.len()).unwrap_or(options.rounds);
    let mut stop_reason = StopReason::RoundsUsed { rounds };
    for round in 1..=rounds {
        if progress.stop_requested() {
            stop_reason = StopReason::Interrupted {
                after_round: round - 1,
            };
            break;
        }
        if budget_met(&options.budget, &baseline, &state.evaluation) {
            stop_reason = StopReason::BudgetMet {
                after_round: round - 1,
            };
            break;
        }
        let round_started = Instant::now();
        let _round_step =
            profagent_onnx::progress::step(format!("round {round}/{rounds}"), None, "");
        let planning = PlanningInput {
            model_name: options.model_name.clone(),
            family: state.analysis.family.clone(),
            runtime: options.runtime.clone(),
            baseline: baseline.clone(),
            current: state.evaluation.clone(),
            current_quantization: describe_quantization(&state.quantization),
            layers: state.analysis.layers.clone(),
            groups: state.analysis.groups.clone(),
            quant_probes: report.quant_probes.clone(),
            budget: options.budget.clone(),
            history: history.clone(),
            rounds_left: rounds - round,
        };
        run_dir.write_json(&format!("rounds/round-{round:02}/input.json"), &planning)?;
        progress.line(&format!(
            "round {round}/{rounds}: planning with {}",
            planner.describe()
        ));
        let proposal = planner.propose(round, &planning, &state.analysis.context, &mut |e| {
            run_dir.record(e)
        })?;
        let mut record = RoundRecord {
            round,
            planner: planner.describe(),
            attempts: proposal.attempts,
            plan: proposal.plan.as_ref().map(|p| p.plan().clone()),
            resolved_pruning: proposal
                .plan
                .as_ref()
                .map(|p| p.pruning().to_vec())
                .unwrap_or_default(),
            quantization: BTreeMap::new(),
            warnings: proposal
                .plan
                .as_ref()
                .map(|p| p.warnings().to_vec())
                .unwrap_or_default(),
            failure: proposal.failure.clone(),
            apply: serde_json::Value::Null,
            evaluation: None,
            speed_vs_best: None,
            acc_drop: None,
            accepted: false,
            decision: None,
            verdict: String::new(),
            seconds: 0.0,
        };
        let recorded_round = recorded.and_then(|r| r.rounds.get(round - 1));
        let mut stop = false;
        match &proposal.plan {
            None => {
                record.verdict = "no valid plan: nothing applied".into();
                progress.line(&format!(
                    "round {round}: {}",
                    proposal.failure.as_deref().unwrap_or("no plan")
                ));
            }
            Some(plan) if plan.plan().is_noop() => {
                record.verdict = "the planner proposes no further change".into();
                stop_reason = StopReason::PlannerDone { round };
                stop = true;
            }
            Some(plan) => {
                run_dir.write_json(&format!("rounds/round-{round:02}/plan.json"), plan)?;
                match try_candidate(&state, plan, round, input, &baseline, bench, recorded_round) {
                    Err(e) => {
                        record.verdict = format!("applying the plan failed: {e}");
                        progress.line(&format!("round {round}: {}", record.verdict));
                    }
                    Ok((candidate, apply, vs_best)) => {
                        record.apply = apply;
                        record.quantization = candidate
                            .quantization
                            .iter()
                            .map(|(k, v)| (k.clone(), v.mode.to_string()))
                            .collect();
                        record.acc_drop = candidate.evaluation.drop_points();
                        record.evaluation = Some(candidate.evaluation.clone());
                        record.speed_vs_best = vs_best.clone();
                        let (decision, verdict) = match recorded_round {
                            Some(r) => (r.decision, format!("replayed: {}", r.verdict)),
                            None => {
                                let j = judge(
                                    &options.budget,
                                    &state.evaluation,
                                    &candidate.evaluation,
                                    vs_best.as_ref(),
                                );
                                (Some(j.decision), j.reason)
                            }
                        };
                        let is_accepted = match recorded_round {
                            Some(r) => r.accepted,
                            None => decision.is_some_and(Decision::accepted),
                        };
                        record.accepted = is_accepted;
                        record.decision = decision;
                        record.verdict = verdict;
                        run_dir.write_json(
                            &format!("rounds/round-{round:02}/evaluation.json"),
                            &candidate.evaluation,
                        )?;
                        progress.line(&format!(
                            "round {round}: {}, {}, {:.2} MB: {}",
                            describe_accuracy(&candidate.evaluation),
                            candidate
                                .evaluation
                                .speed
                                .as_ref()
                                .map(|s| format!("against the input {}", s.describe()))
                                .unwrap_or_else(|| "speed not measured".into()),
                            candidate.evaluation.model_bytes as f64 / 1e6,
                            record.verdict
                        ));
                        if is_accepted {
                            let pruned = !plan.pruning().is_empty();
                            state = candidate;
                            if pruned {
                                state.analysis = bench.analyze(&state.float)?;
                                input_latency.apply(&mut state.analysis);
                                measure::apply_sensitivity(
                                    &mut state.analysis.groups,
                                    &report.sensitivity,
                                );
                            }
                            accepted.push(state.clone());
                        }
                    }
                }
            }
        }
        record.seconds = round_started.elapsed().as_secs_f64();
        history.push(RoundSummary {
            round,
            plan: summarize_plan(record.plan.as_ref(), &record.resolved_pruning),
            top1: record.evaluation.as_ref().and_then(|e| e.top1),
            latency_ms: record.evaluation.as_ref().map(|e| e.latency_ms),
            model_bytes: record.evaluation.as_ref().map(|e| e.model_bytes),
            accuracy_change: record.evaluation.as_ref().and_then(|e| e.accuracy_change),
            speed: record.evaluation.as_ref().and_then(|e| e.speed.clone()),
            macs: record.evaluation.as_ref().and_then(|e| e.macs),
            accepted: record.accepted,
            note: record.verdict.clone(),
        });
        idle_rounds = if record.accepted { 0 } else { idle_rounds + 1 };
        report.rounds.push(record);
        report.seconds = started.elapsed().as_secs_f64();
        run_dir.write_json(REPORT_FILE, &report)?;
        if stop {
            break;
        }
        if recorded.is_none() && idle_rounds >= options.patience.max(1) {
            stop_reason = StopReason::NoImprovement {
                rounds: idle_rounds,
            };
            break;
        }
    }
    // A replay ends where the recorded run ended, for the recorded reason.
    if let Some(stop) = recorded
        .and_then(|r| r.final_result.as_ref())
        .and_then(|f| f.stop)
    {
        stop_reason = stop;
    }
    // A Ctrl-C during the last round, or after the loop, still ends the run as interrupted.
    if progress.stop_requested() && recorded.is_none() {
        stop_reason = StopReason::Interrupted {
            after_round: report.rounds.len(),
        };
    }
    let loop_met = budget_met(&options.budget, &baseline, &state.evaluation);
    let (final_result, layers) = finish::finish(
        input,
        &baseline,
        accepted,
        options,
        stop_reason,
        loop_met,
        bench,
        run_dir,
        progress,
    )?;
    report.final_result = Some(final_result);
    report.layers = layers;
    if let Some(replay) = &options.replay {
        let recorded_sha = replay
            .source
            .final_result
            .as_ref()
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        let sha256 = report
            .final_result
            .as_ref()
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        report.replay = Some(crate::report::ReplayInfo {
            source: replay.source_dir.clone(),
            identical: recorded_sha == sha256,
            recorded_sha256: recorded_sha,
        });
    }
    report.seconds = started.elapsed().as_secs_f64();
    run_dir.write_json(REPORT_FILE, &report)?;
    // The caller prints it and may write it elsewhere (--json): the same redacted text.
    run_dir.redacted(report)
}

/// The input model on the feedback slice: accuracy, and its latency from timing it against
/// itself (an A/A comparison: its interval shows how noisy the machine is right now).
fn measure_baseline(
    input: &Model,
    bench: &mut dyn Workbench,
    progress: &mut dyn Progress,
) -> Result<Evaluation, AgentError> {
    let _step = profagent_onnx::progress::step("baseline", None, "");
    progress.line("evaluating the baseline on the feedback slice");
    let mut baseline = bench.evaluate(input, Split::Feedback)?;
    baseline.pair_with_itself();
    progress.line("timing the baseline against itself (how noisy is this machine now?)");
    let noise = bench.compare_speed(input, input, Split::Feedback)?;
    baseline.latency_ms = noise.reference_ms;
    progress.line(&format!(
        "baseline: {}, {:.2} ms; against itself {}; {:.2} MB",
        match (baseline.top1, baseline.top1_interval) {
            (Some(t), Some(i)) => format!(
                "top-1 {t:.2} % (95 % interval {:.2}–{:.2}, {} images)",
                i.low, i.high, baseline.images
            ),
            (Some(t), None) => format!("top-1 {t:.2} % ({} images)", baseline.images),
            (None, _) => format!("no labels ({} images): fidelity only", baseline.images),
        },
        baseline.latency_ms,
        noise.describe(),
        baseline.model_bytes as f64 / 1e6
    ));
    baseline.speed = Some(noise);
    Ok(baseline)
}

/// Applies a plan to the current state and evaluates the result: accuracy paired with the
/// baseline, speed against the input model and, when the current best is not the input,
/// against the current best (both interleaved). A replay reuses the recorded evaluation.
fn try_candidate(
    state: &State,
    plan: &ValidatedPlan,
    round: usize,
    input: &Model,
    baseline: &Evaluation,
    bench: &mut dyn Workbench,
    recorded: Option<&RoundRecord>,
) -> Result<(State, serde_json::Value, Option<SpeedComparison>), AgentError> {
    let mut apply = serde_json::Map::new();
    let float = if plan.pruning().is_empty() {
        state.float.clone()
    } else {
        let (model, prune_report) = bench.prune(&state.float, plan.pruning())?;
        apply.insert("prune".into(), prune_report);
        model
    };
    let quantization = match plan.quantization() {
        Some(q) => q.clone(),
        None => state.quantization.clone(),
    };
    let deployed = if quantization.is_empty() {
        float.clone()
    } else {
        let (model, quant_report) = bench.quantize(&float, &quantization)?;
        apply.insert("quantize".into(), quant_report);
        model
    };
    let (evaluation, vs_best) = match recorded.and_then(|r| r.evaluation.clone()) {
        Some(e) => (e, recorded.and_then(|r| r.speed_vs_best.clone())),
        None => {
            let mut e = bench.evaluate(&deployed, Split::Feedback)?;
            e.pair_with(baseline);
            let speed = bench.compare_speed(input, &deployed, Split::Feedback)?;
            e.latency_ms = speed.candidate_ms.value;
            e.speed = Some(speed);
            let vs_best = if state.round == 0 {
                None
            } else {
                Some(bench.compare_speed(&state.deployed, &deployed, Split::Feedback)?)
            };
            (e, vs_best)
        }
    };
    Ok((
        State {
            round,
            float,
            quantization,
            deployed,
            evaluation,
            analysis: state.analysis.clone(),
        },
        serde_json::Value::Object(apply),
        vs_best,
    ))
}

fn describe_quantization(layers: &BTreeMap<String, QuantSetting>) -> String {
    let modes: std::collections::BTreeSet<&str> =
        layers.values().map(|s| s.mode.as_str()).collect();
    if modes.is_empty() {
        "none".into()
    } else {
        format!(
            "{} ({} layers)",
            modes.into_iter().collect::<Vec<_>>().join("+"),
            layers.len()
        )
    }
}

/// One line for the history table.
pub fn summarize_plan(
    plan: Option<&profagent_plan::CompressionPlan>,
    pruning: &[ResolvedPrune],
) -> String {
    let Some(plan) = plan else {
        return "no valid plan".into();
    };
    let mut parts: Vec<String> = pruning
        .iter()
        .map(|p| format!("prune {} {}→{}", p.group, p.current, p.keep))
        .collect();
    if let Some(q) = &plan.quantization {
        parts.push(format!("quantize {}", q.default.mode));
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join(", ")
    }
}
