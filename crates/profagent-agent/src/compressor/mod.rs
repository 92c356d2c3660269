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
//! Modules: `workbench` (the `Workbench` seam: rewrites and raw measurements, plus what the
//! loop learns and decides, measured live by default), `measure` (baseline, quantization
//! probes, pruning sensitivity, a candidate's evaluation), `finish` (holdout check, fallback,
//! the final result), `replay` (a recorded run as a workbench and a planner),
//! `crate::judge` (verdicts). The loop is tested with a scripted workbench and driven by the
//! CLI with the real one; it has no replay branches: `replay::replay` runs it with a
//! `RecordedBench` and the recorded planner.
use std::collections::BTreeMap;
use std::time::Instant;

use profagent_onnx::Model;
use profagent_plan::{QuantSetting, ResolvedPrune, ValidatedPlan};

use crate::error::AgentError;
use crate::facts::{Evaluation, PlanningInput, RoundSummary, SpeedComparison};
use crate::judge::{budget_met, describe_accuracy};
use crate::planner::{Planner, Proposal};
use crate::report::{sha256_hex, ModelInfo, RoundRecord, RunReport, REPORT_FORMAT};
use crate::rundir::{RunDir, REPORT_FILE};

mod calibration;
mod finish;
mod measure;
mod replay;
mod sensitivity;
mod workbench;

pub use profagent_record::StopReason;
pub use replay::{replay, RecordedBench, ReplayScript};
pub use sensitivity::SENSITIVITY_RATIO;
pub use workbench::{Analysis, FinalCheck, Kept, Split, Verdict, Workbench};

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

/// What `compress` hands its caller: the run record (as written to report.json, redacted) and
/// the chosen model (as written to model.onnx), so nobody reads either back from disk.
#[derive(Debug, Clone)]
pub struct Compressed {
    pub report: RunReport,
    pub model: Model,
}

/// Runs the loop and writes everything into `run_dir`: the run record (report.json, rewritten
/// after every round and once more at the end, by this function only) and the chosen model.
/// Returns both.
pub fn compress(
    input: &Model,
    options: &CompressOptions,
    planner: &mut dyn Planner,
    bench: &mut dyn Workbench,
    run_dir: &RunDir,
    progress: &mut dyn Progress,
) -> Result<Compressed, AgentError> {
    let mut redacting = RedactingProgress {
        inner: progress,
        run_dir,
    };
    let progress: &mut dyn Progress = &mut redacting;
    let started = Instant::now();
    let (mut report, initial, input_latency) =
        prepare(input, options, planner, bench, run_dir, progress)?;
    let baseline = report.baseline.clone();
    let mut state = initial.clone();
    // Every accepted state, oldest first: the final check falls back along it.
    let mut accepted: Vec<State> = vec![initial];
    let mut history: Vec<RoundSummary> = Vec::new();
    let mut idle_rounds = 0;
    // Every sensitivity measurement, oldest first: (round whose model was probed, results).
    let mut measurements = vec![(0, report.sensitivity.clone())];
    let (rounds, patience) = bench.schedule(options.rounds, options.patience);
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
        let mut planning = planning_input(options, &state, &baseline, &report, &history);
        (planning.rounds_left, planning.patience) = (rounds - round, patience.min(rounds));
        run_dir.write_json(&format!("rounds/round-{round:02}/input.json"), &planning)?;
        progress.line(&format!(
            "round {round}/{rounds}: planning with {}",
            planner.describe()
        ));
        let proposal = ask(planner, round, &planning, &state, bench, run_dir, progress)?;
        let used = proposal.used.clone().unwrap_or_else(|| planner.describe());
        let mut record = round_record(round, used, &proposal);
        let outcome = match &proposal.plan {
            None => {
                record.verdict = "no valid plan: nothing applied".into();
                progress.line(&format!(
                    "round {round}: {}",
                    proposal.failure.as_deref().unwrap_or("no plan")
                ));
                RoundOutcome::Continue
            }
            Some(plan) if plan.plan().is_noop() => {
                record.verdict = "the planner proposes no further change".into();
                RoundOutcome::PlannerDone
            }
            Some(plan) => {
                run_dir.write_json(&format!("rounds/round-{round:02}/plan.json"), plan)?;
                let context = RoundContext {
                    input,
                    baseline: &baseline,
                    options,
                    run_dir,
                };
                if let Some(next) = try_round(&context, &state, plan, &mut record, bench, progress)?
                {
                    state = next;
                    if !plan.pruning().is_empty() {
                        // No round plans from a re-measurement after the last one, or after
                        // one that met the budget (the loop stops before planning again): on
                        // resnet18 it costs about as long as a round.
                        let last = round == rounds
                            || budget_met(&options.budget, &baseline, &state.evaluation);
                        let refresh = Refresh {
                            round,
                            originals: &accepted[0].analysis.groups,
                            input_latency: &input_latency,
                            max_groups: if last { 0 } else { options.sensitivity_groups },
                            budget: &options.budget,
                        };
                        record.sensitivity =
                            refresh.apply(&mut state, &mut measurements, bench, progress)?;
                    }
                    accepted.push(state.clone());
                }
                RoundOutcome::Continue
            }
        };
        record.seconds = round_started.elapsed().as_secs_f64();
        history.push(summarize_round(&record));
        idle_rounds = if record.accepted { 0 } else { idle_rounds + 1 };
        report.rounds.push(record);
        report.seconds = started.elapsed().as_secs_f64();
        run_dir.write_json(REPORT_FILE, &report)?;
        if outcome == RoundOutcome::PlannerDone {
            stop_reason = StopReason::PlannerDone { round };
            break;
        }
        if idle_rounds >= patience {
            stop_reason = StopReason::NoImprovement {
                rounds: idle_rounds,
            };
            break;
        }
    }
    let mut stop_reason = bench.stop_reason(stop_reason);
    // A Ctrl-C during the last round, or after the loop, still ends the run as interrupted.
    if progress.stop_requested() {
        stop_reason = StopReason::Interrupted {
            after_round: report.rounds.len(),
        };
    }
    let loop_met = budget_met(&options.budget, &baseline, &state.evaluation);
    let (final_result, layers, model) = finish::finish(
        input,
        &baseline,
        accepted,
        &options.budget,
        stop_reason,
        loop_met,
        bench,
        run_dir,
        progress,
    )?;
    report.replay = bench.replay_info(&final_result.sha256);
    report.final_result = Some(final_result);
    report.layers = layers;
    report.seconds = started.elapsed().as_secs_f64();
    run_dir.write_json(REPORT_FILE, &report)?;
    // The caller prints it and may write it elsewhere (--json): the same redacted text.
    Ok(Compressed {
        report: run_dir.redacted(report)?,
        model,
    })
}

/// What planners get for a round from `state` (rounds left and patience filled by the caller).
fn planning_input(
    options: &CompressOptions,
    state: &State,
    baseline: &Evaluation,
    report: &RunReport,
    history: &[RoundSummary],
) -> PlanningInput {
    PlanningInput {
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
        history: history.to_vec(),
        rounds_left: 0,
        patience: 0,
    }
}

/// The analysis sensitivity measurements pick their groups from (the heaviest first): with a
/// MACs-only budget, heaviest by MACs, not by measured latency, so that the groups probed, and
/// the plans built on them, do not change with timing noise between two runs of the same seed.
fn ranked_for<'a>(
    budget: &crate::facts::Budget,
    analysis: &'a Analysis,
) -> std::borrow::Cow<'a, Analysis> {
    if !budget.macs_only() {
        return std::borrow::Cow::Borrowed(analysis);
    }
    let mut ranked = analysis.clone();
    for group in &mut ranked.groups {
        group.latency_ms = None;
    }
    std::borrow::Cow::Owned(ranked)
}

/// What is refreshed after an accepted pruning round: the analysis of the pruned float model
/// (per-layer latency carried from the input's measurement) and the pruning sensitivity
/// re-measured on it, so planners extend cost curves from the model they prune next.
struct Refresh<'a> {
    round: usize,
    /// The input's groups (their units in the input model).
    originals: &'a [crate::facts::GroupFacts],
    input_latency: &'a measure::InputLatency,
    max_groups: usize,
    budget: &'a crate::facts::Budget,
}

impl Refresh<'_> {
    /// Refreshes `state.analysis`; returns the re-measured sensitivities (for the round's
    /// record), also appended to `measurements`.
    fn apply(
        &self,
        state: &mut State,
        measurements: &mut Vec<(usize, Vec<crate::facts::GroupSensitivity>)>,
        bench: &mut dyn Workbench,
        progress: &mut dyn Progress,
    ) -> Result<Vec<crate::facts::GroupSensitivity>, AgentError> {
        state.analysis = bench.analyze(&state.float)?;
        self.input_latency.apply(&mut state.analysis);
        // The earlier measurements order the re-measurement (`sensitivity::probe_order`: half
        // of the places to the groups cheapest per MAC before); they are replaced below.
        sensitivity::apply_measurements(&mut state.analysis.groups, measurements);
        let sensitivity = bench.remeasure_sensitivity(
            self.round,
            &state.float,
            &ranked_for(self.budget, &state.analysis),
            state.quantization.is_empty().then_some(&state.evaluation),
            self.max_groups,
            progress,
        );
        measurements.push((self.round, sensitivity.clone()));
        sensitivity::apply_measurements(&mut state.analysis.groups, measurements);
        sensitivity::set_original_channels(&mut state.analysis.groups, self.originals);
        Ok(sensitivity)
    }
}

/// How a round ended for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundOutcome {
    Continue,
    PlannerDone,
}

/// Before the first round: the input's analysis with its measured per-layer latency, the
/// baseline, the quantization probes and the pruning sensitivity (skipped when one
/// quantization mode alone meets the budget), and the report they open.
fn prepare(
    input: &Model,
    options: &CompressOptions,
    planner: &dyn Planner,
    bench: &mut dyn Workbench,
    run_dir: &RunDir,
    progress: &mut dyn Progress,
) -> Result<(RunReport, State, measure::InputLatency), AgentError> {
    let input_bytes = input.to_bytes();
    progress.line(&format!("analyzing {}", options.model_name));
    let mut analysis = bench.analyze(input)?;
    // Per-layer latency of the input on the target runtime, measured once: planners rank
    // groups by it, and every later analysis reuses it (scaled by MACs where pruning shrank
    // a layer).
    let measured_layers = bench.input_layer_latencies(input, progress);
    let input_latency = measure::InputLatency::new(&measured_layers, &analysis);
    input_latency.apply(&mut analysis);
    run_dir.write_json("input/context.json", &analysis.context)?;
    run_dir.write_json("input/layers.json", &analysis.layers)?;
    run_dir.write_json("input/groups.json", &analysis.groups)?;
    let baseline = bench.baseline(input, progress)?;
    // Quantization keeps MACs: with a MACs-only budget its probes would only cost time.
    let quant_probes = if options.probe_quantization && !options.budget.macs_only() {
        bench.quant_probes(input, &analysis, &baseline, progress)
    } else {
        if options.budget.macs_only() {
            progress.line("MACs-only budget: quantization (which keeps MACs) is not probed");
        }
        Vec::new()
    };
    // When one measured quantization mode alone already meets the budget, the built-in
    // planner takes it and the loop ends: measuring pruning sensitivity first would only cost
    // time.
    let quant_alone_meets = quant_probes.iter().any(|p| {
        p.error.is_none() && budget_met(&options.budget, &baseline, &p.as_evaluation(&baseline))
    });
    let sensitivity_groups = if quant_alone_meets {
        progress
            .line("a quantization mode alone meets the budget: pruning sensitivity not measured");
        0
    } else {
        options.sensitivity_groups
    };
    let sensitivity = bench.sensitivity(
        input,
        &ranked_for(&options.budget, &analysis),
        &baseline,
        sensitivity_groups,
        progress,
    );
    sensitivity::apply_sensitivity(&mut analysis.groups, &sensitivity);
    for group in &mut analysis.groups {
        group.original_channels = Some(group.channels);
    }
    let report = RunReport {
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
        evaluation: baseline,
        analysis,
    };
    Ok((report, initial, input_latency))
}

/// A round's record as the planner left it (nothing applied or judged yet).
/// The planner's proposal for `round`, its exchanges recorded in `run_dir`; it may ask for a
/// group's sensitivity on the current model before it answers (`sensitivity::LoopMeasure`).
fn ask(
    planner: &mut dyn Planner,
    round: usize,
    planning: &PlanningInput,
    state: &State,
    bench: &mut dyn Workbench,
    run_dir: &RunDir,
    progress: &mut dyn Progress,
) -> Result<Proposal, AgentError> {
    let mut measure = sensitivity::LoopMeasure {
        bench,
        model: &state.float,
        analysis: &state.analysis,
        reference: state
            .quantization
            .is_empty()
            .then(|| state.evaluation.clone()),
        progress,
    };
    let proposal = planner.propose(
        round,
        planning,
        &state.analysis.context,
        &mut |e| run_dir.record(e),
        &mut measure,
    );
    match proposal {
        // A failed LLM call (after the provider's retries; recorded in the transcript as
        // `provider_error`, and failed again on replay) is a round without a plan: the
        // measurements already paid for are not thrown away. Setup errors end the run.
        Err(e) if e.is_llm_call_failure() => Ok(Proposal::failed_call(&e)),
        other => other,
    }
}

fn round_record(round: usize, planner: String, proposal: &Proposal) -> RoundRecord {
    let plan = proposal.plan.as_ref();
    RoundRecord {
        round,
        planner,
        attempts: proposal.attempts,
        plan: plan.map(|p| p.plan().clone()),
        resolved_pruning: plan.map(|p| p.pruning().to_vec()).unwrap_or_default(),
        quantization: BTreeMap::new(),
        warnings: plan.map(|p| p.warnings().to_vec()).unwrap_or_default(),
        rejected_issues: proposal.rejected_issues.clone(),
        failure: proposal.failure.clone(),
        apply: serde_json::Value::Null,
        evaluation: None,
        speed_vs_best: None,
        acc_drop: None,
        accepted: false,
        decision: None,
        verdict: String::new(),
        sensitivity: Vec::new(),
        seconds: 0.0,
    }
}

/// What every round shares.
struct RoundContext<'a> {
    input: &'a Model,
    baseline: &'a Evaluation,
    options: &'a CompressOptions,
    run_dir: &'a RunDir,
}

/// Applies `plan` to the current best, evaluates the candidate and asks for the verdict,
/// filling `record`. Returns the candidate when it is accepted.
fn try_round(
    context: &RoundContext<'_>,
    state: &State,
    plan: &ValidatedPlan,
    record: &mut RoundRecord,
    bench: &mut dyn Workbench,
    progress: &mut dyn Progress,
) -> Result<Option<State>, AgentError> {
    let round = record.round;
    let (candidate, apply, vs_best) =
        match try_candidate(state, plan, round, context.input, context.baseline, bench) {
            Ok(found) => found,
            Err(e) => {
                record.verdict = format!("applying the plan failed: {e}");
                progress.line(&format!("round {round}: {}", record.verdict));
                return Ok(None);
            }
        };
    record.apply = apply;
    record.quantization = candidate
        .quantization
        .iter()
        .map(|(k, v)| (k.clone(), v.mode.to_string()))
        .collect();
    record.acc_drop = candidate.evaluation.drop_points();
    record.evaluation = Some(candidate.evaluation.clone());
    record.speed_vs_best = vs_best.clone();
    let verdict = bench.verdict(
        round,
        &context.options.budget,
        &state.evaluation,
        &candidate.evaluation,
        vs_best.as_ref(),
    );
    record.accepted = verdict.accepted;
    record.decision = verdict.decision;
    record.verdict = verdict.reason;
    context.run_dir.write_json(
        &format!("rounds/round-{round:02}/evaluation.json"),
        &candidate.evaluation,
    )?;
    progress.line(&format!(
        "round {round}: {}, {}, {:.2} MB: {}",
        describe_accuracy(&candidate.evaluation, context.options.budget.acc_confidence),
        candidate
            .evaluation
            .speed
            .as_ref()
            .map(|s| format!("against the input {}", s.describe()))
            .unwrap_or_else(|| "speed not measured".into()),
        candidate.evaluation.model_bytes as f64 / 1e6,
        record.verdict
    ));
    Ok(record.accepted.then_some(candidate))
}

/// Applies a plan to the current state and evaluates the result
/// (`Workbench::evaluate_candidate`).
fn try_candidate(
    state: &State,
    plan: &ValidatedPlan,
    round: usize,
    input: &Model,
    baseline: &Evaluation,
    bench: &mut dyn Workbench,
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
    let best = Kept {
        round: state.round,
        model: &state.deployed,
    };
    let (evaluation, vs_best) =
        bench.evaluate_candidate(round, input, baseline, best, &deployed)?;
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

/// One round for the planners' history table.
fn summarize_round(record: &RoundRecord) -> RoundSummary {
    let evaluation = record.evaluation.as_ref();
    RoundSummary {
        round: record.round,
        plan: summarize_plan(record.plan.as_ref(), &record.resolved_pruning),
        top1: evaluation.and_then(|e| e.top1),
        latency_ms: evaluation.map(|e| e.latency_ms),
        model_bytes: evaluation.map(|e| e.model_bytes),
        accuracy_change: evaluation.and_then(|e| e.accuracy_change),
        speed: evaluation.and_then(|e| e.speed.clone()),
        macs: evaluation.and_then(|e| e.macs),
        accepted: record.accepted,
        note: record.verdict.clone(),
    }
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
        .map(|p| format!("prune {} {}", p.group, p.counts()))
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
