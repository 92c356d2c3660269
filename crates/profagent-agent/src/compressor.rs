//! The iterative compression loop: plan → apply → evaluate → feedback, round after round.
//!
//! Each round starts from the best feasible model so far (the float model with the pruning
//! accepted so far, plus its quantization choice). A candidate is kept when its top-1 on the
//! feedback slice is within the budget and it is measurably faster/smaller than the current
//! best; otherwise it is rolled back. The loop stops when the budget is met, the rounds run
//! out, the planner has nothing more to propose, or `patience` rounds in a row brought nothing.
//! At the end the baseline and the chosen model are evaluated on the holdout slice (never used
//! for calibration or feedback) in the same run.
//!
//! The real pruning, quantization, profiling and evaluation are behind the `Workbench` trait,
//! so the loop is tested with a scripted workbench and driven by the CLI with the real crates.
use std::collections::BTreeMap;
use std::time::Instant;

use profagent_onnx::Model;
use profagent_plan::{PlanContext, QuantMode, QuantSetting, ResolvedPrune, ValidatedPlan};

use crate::error::AgentError;
use crate::facts::{
    Budget, Evaluation, GroupFacts, GroupSensitivity, LayerFacts, PlanningInput, QuantProbe,
    RoundSummary,
};
use crate::planner::Planner;
use crate::report::{sha256_hex, FinalResult, ModelInfo, RoundRecord, RunReport, REPORT_FORMAT};
use crate::rundir::{RunDir, MODEL_FILE, REPORT_FILE};

/// A candidate must beat the current best by this much (log-scale objective, about 2 %) to
/// count as an improvement: smaller differences are within latency noise.
pub const MIN_RELATIVE_GAIN: f64 = 0.02;
/// With a MACs-only budget a candidate must cut MACs by this much (log scale, 0.5 %).
pub const MIN_MACS_GAIN: f64 = 0.005;
/// Weight of the secondary metric in the objective when the budget names only one kind.
const SECONDARY_WEIGHT: f64 = 0.1;

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
    fn evaluate(&mut self, model: &Model, split: Split) -> Result<Evaluation, AgentError>;
    /// Top-1 (and size) only, without timing: for the many small measurements of the
    /// sensitivity pass. `latency_ms` may be NaN.
    fn evaluate_accuracy(&mut self, model: &Model, split: Split) -> Result<Evaluation, AgentError> {
        self.evaluate(model, split)
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

/// Progress lines for the terminal.
pub trait Progress {
    fn line(&mut self, text: &str);
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
}

/// Recorded decisions that a replay follows instead of measuring again.
#[derive(Debug, Clone)]
pub struct ReplayScript {
    pub source: RunReport,
    pub source_dir: String,
}

#[derive(Debug, Clone)]
pub struct CompressOptions {
    pub budget: Budget,
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

/// The best feasible model so far.
#[derive(Clone)]
struct State {
    float: Model,
    quantization: BTreeMap<String, QuantSetting>,
    deployed: Model,
    evaluation: Evaluation,
    analysis: Analysis,
}

/// Runs the loop and writes everything into `run_dir`. Returns the report (also on disk).
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
    let analysis = bench.analyze(input)?;
    run_dir.write_json("input/context.json", &analysis.context)?;
    run_dir.write_json("input/layers.json", &analysis.layers)?;
    run_dir.write_json("input/groups.json", &analysis.groups)?;
    let baseline = match recorded {
        Some(r) => r.baseline.clone(),
        None => {
            progress.line("evaluating the baseline on the feedback slice");
            bench.evaluate(input, Split::Feedback)?
        }
    };
    progress.line(&format!(
        "baseline: top-1 {:.2} %, {:.2} ms, {:.2} MB",
        baseline.top1,
        baseline.latency_ms,
        baseline.model_bytes as f64 / 1e6
    ));
    let quant_probes = match recorded {
        Some(r) => r.quant_probes.clone(),
        None if options.probe_quantization => {
            probe_quantization(input, &analysis, &baseline, bench, progress)
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
        None if options.sensitivity_groups > 0 => measure_sensitivity(
            input,
            &analysis,
            &baseline,
            options.sensitivity_groups,
            bench,
            progress,
        ),
        None => Vec::new(),
    };
    let mut analysis = analysis;
    apply_sensitivity(&mut analysis.groups, &sensitivity);
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
        seconds: 0.0,
    };
    let mut state = State {
        float: input.clone(),
        quantization: BTreeMap::new(),
        deployed: input.clone(),
        evaluation: baseline.clone(),
        analysis,
    };
    let mut history: Vec<RoundSummary> = Vec::new();
    let mut idle_rounds = 0;
    let rounds = recorded.map(|r| r.rounds.len()).unwrap_or(options.rounds);
    let mut stop_reason = format!("all {rounds} rounds used");
    for round in 1..=rounds {
        if budget_met(&options.budget, &baseline, &state.evaluation) {
            stop_reason = format!("budget met after round {}", round - 1);
            break;
        }
        let round_started = Instant::now();
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
            acc_drop: None,
            accepted: false,
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
                stop_reason = format!("planner had nothing more to propose in round {round}");
                stop = true;
            }
            Some(plan) => {
                run_dir.write_json(&format!("rounds/round-{round:02}/plan.json"), plan)?;
                match try_candidate(&state, plan, bench, recorded_round) {
                    Err(e) => {
                        record.verdict = format!("applying the plan failed: {e}");
                        progress.line(&format!("round {round}: {}", record.verdict));
                    }
                    Ok((candidate, apply)) => {
                        record.apply = apply;
                        record.quantization = candidate
                            .quantization
                            .iter()
                            .map(|(k, v)| (k.clone(), v.mode.to_string()))
                            .collect();
                        let drop = baseline.top1 - candidate.evaluation.top1;
                        record.acc_drop = Some(drop);
                        record.evaluation = Some(candidate.evaluation.clone());
                        let (accepted, verdict) = match recorded_round {
                            Some(r) => (r.accepted, format!("replayed: {}", r.verdict)),
                            None => judge(
                                &options.budget,
                                &baseline,
                                &state.evaluation,
                                &candidate.evaluation,
                            ),
                        };
                        record.accepted = accepted;
                        record.verdict = verdict;
                        run_dir.write_json(
                            &format!("rounds/round-{round:02}/evaluation.json"),
                            &candidate.evaluation,
                        )?;
                        progress.line(&format!(
                            "round {round}: top-1 {:.2} % (drop {drop:.2}), {:.2} ms, {:.2} MB: {}",
                            candidate.evaluation.top1,
                            candidate.evaluation.latency_ms,
                            candidate.evaluation.model_bytes as f64 / 1e6,
                            record.verdict
                        ));
                        if accepted {
                            let pruned = !plan.pruning().is_empty();
                            state = candidate;
                            if pruned {
                                state.analysis = bench.analyze(&state.float)?;
                                apply_sensitivity(&mut state.analysis.groups, &report.sensitivity);
                            }
                        }
                    }
                }
            }
        }
        record.seconds = round_started.elapsed().as_secs_f64();
        history.push(RoundSummary {
            round,
            plan: summarize_plan(record.plan.as_ref(), &record.resolved_pruning),
            top1: record.evaluation.as_ref().map(|e| e.top1),
            latency_ms: record.evaluation.as_ref().map(|e| e.latency_ms),
            model_bytes: record.evaluation.as_ref().map(|e| e.model_bytes),
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
            stop_reason = format!("no improvement in {idle_rounds} round(s) in a row");
            break;
        }
    }
    if budget_met(&options.budget, &baseline, &state.evaluation)
        && !stop_reason.starts_with("budget met")
    {
        stop_reason = format!("budget met ({stop_reason})");
    }
    // The chosen model, and the holdout comparison measured now, in the same run.
    let final_bytes = state.deployed.to_bytes();
    let model_path = run_dir.path(MODEL_FILE);
    profagent_onnx::write_atomic(&model_path, &final_bytes)
        .map_err(|e| AgentError::run_dir(&model_path, e))?;
    let sha256 = sha256_hex(&final_bytes);
    let (holdout_baseline, holdout_final) = match recorded {
        Some(r) => (
            r.final_result
                .as_ref()
                .and_then(|f| f.holdout_baseline.clone()),
            r.final_result
                .as_ref()
                .and_then(|f| f.holdout_final.clone()),
        ),
        None => {
            progress.line("evaluating baseline and final model on the holdout slice");
            (
                Some(bench.evaluate(input, Split::Holdout)?),
                Some(bench.evaluate(&state.deployed, Split::Holdout)?),
            )
        }
    };
    let reference = holdout_baseline.as_ref().unwrap_or(&baseline);
    let chosen = holdout_final.as_ref().unwrap_or(&state.evaluation);
    report.final_result = Some(FinalResult {
        model_path: model_path.display().to_string(),
        sha256: sha256.clone(),
        feedback: state.evaluation.clone(),
        acc_drop: Some(reference.top1 - chosen.top1),
        speedup: Some(reference.latency_ms / chosen.latency_ms.max(f64::MIN_POSITIVE)),
        size_reduction: Some(1.0 - chosen.model_bytes as f64 / reference.model_bytes.max(1) as f64),
        budget_met: final_budget_met(&options.budget, reference, chosen),
        holdout_baseline,
        holdout_final,
        stop_reason,
        accepted_rounds: report
            .rounds
            .iter()
            .filter(|r| r.accepted)
            .map(|r| r.round)
            .collect(),
    });
    if let Some(replay) = &options.replay {
        let recorded_sha = replay
            .source
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

/// Applies a plan to the current state and evaluates the result (or reuses the recorded
/// evaluation in a replay).
fn try_candidate(
    state: &State,
    plan: &ValidatedPlan,
    bench: &mut dyn Workbench,
    recorded: Option<&RoundRecord>,
) -> Result<(State, serde_json::Value), AgentError> {
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
    let evaluation = match recorded.and_then(|r| r.evaluation.clone()) {
        Some(e) => e,
        None => bench.evaluate(&deployed, Split::Feedback)?,
    };
    Ok((
        State {
            float,
            quantization,
            deployed,
            evaluation,
            analysis: state.analysis.clone(),
        },
        serde_json::Value::Object(apply),
    ))
}

/// Quantizes the baseline with every available mode and measures it; failures are recorded,
/// not fatal (a mode the runtime cannot run is information for the planner).
fn probe_quantization(
    input: &Model,
    analysis: &Analysis,
    baseline: &Evaluation,
    bench: &mut dyn Workbench,
    progress: &mut dyn Progress,
) -> Vec<QuantProbe> {
    let mut probes = Vec::new();
    for mode in [QuantMode::Dynamic, QuantMode::Static, QuantMode::Int4] {
        if !analysis.context.quant_modes.contains(&mode) {
            continue;
        }
        let layers: BTreeMap<String, QuantSetting> = analysis
            .context
            .layers
            .iter()
            .filter(|(_, info)| info.quant_modes.contains(&mode))
            .map(|(name, _)| (name.clone(), QuantSetting::new(mode)))
            .collect();
        if layers.is_empty() {
            continue;
        }
        progress.line(&format!("probing {mode} quantization"));
        let outcome = bench
            .quantize(input, &layers)
            .and_then(|(model, _)| bench.evaluate(&model, Split::Feedback));
        probes.push(match outcome {
            Ok(e) => QuantProbe {
                mode,
                latency_ms: e.latency_ms,
                speedup: baseline.latency_ms / e.latency_ms.max(f64::MIN_POSITIVE),
                model_bytes: e.model_bytes,
                top1: Some(e.top1),
                cosine: e.cosine,
                error: None,
            },
            Err(e) => QuantProbe {
                mode,
                latency_ms: 0.0,
                speedup: 0.0,
                model_bytes: 0,
                top1: None,
                cosine: None,
                error: Some(e.to_string()),
            },
        });
        if let Some(p) = probes.last() {
            progress.line(&match &p.error {
                Some(e) => format!("  {mode}: failed: {e}"),
                None => format!(
                    "  {mode}: {:.2}x faster, {:.2} MB, top-1 {:.2} %",
                    p.speedup,
                    p.model_bytes as f64 / 1e6,
                    p.top1.unwrap_or(0.0)
                ),
            });
        }
    }
    probes
}

/// Fraction of a group's channels removed to measure its sensitivity (the built-in planner's
/// first step, so the number predicts what its first round costs).
pub const SENSITIVITY_RATIO: f64 = crate::builtin::INITIAL_STEP;
/// Groups needed to fit the points-per-nat slope of `fit_expected_drops`.
const MIN_SENSITIVITY_FIT: usize = 3;

/// Prunes each of the `max_groups` heaviest prunable groups alone by `SENSITIVITY_RATIO` and
/// measures top-1 on the feedback slice (no timing): what pruning that group costs, measured
/// rather than guessed from weight norms. Failures are recorded, not fatal.
fn measure_sensitivity(
    input: &Model,
    analysis: &Analysis,
    baseline: &Evaluation,
    max_groups: usize,
    bench: &mut dyn Workbench,
    progress: &mut dyn Progress,
) -> Vec<GroupSensitivity> {
    let mut candidates: Vec<&GroupFacts> = analysis
        .groups
        .iter()
        .filter(|g| g.prunable)
        .filter(|g| {
            analysis.context.groups.get(&g.id).is_some_and(|c| {
                c.not_prunable.is_none() && analysis.context.group_is_protected(c).is_none()
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        let cost = |g: &GroupFacts| g.latency_ms.unwrap_or(g.macs as f64 * 1e-9);
        cost(b).total_cmp(&cost(a)).then(a.id.cmp(&b.id))
    });
    candidates.truncate(max_groups);
    if candidates.is_empty() {
        return Vec::new();
    }
    progress.line(&format!(
        "measuring pruning sensitivity of {} groups ({:.0} % each, alone)",
        candidates.len(),
        SENSITIVITY_RATIO * 100.0
    ));
    let mut out = Vec::new();
    for group in candidates {
        // A measurement that could not be made, for the report.
        let failed = |current: usize, keep: usize, error: String| GroupSensitivity {
            group: group.id.clone(),
            ratio: SENSITIVITY_RATIO,
            current,
            keep,
            top1: None,
            drop: None,
            loss_increase: None,
            expected_drop: None,
            cosine_loss: None,
            error: Some(error),
        };
        let mut plan = profagent_plan::CompressionPlan::empty("sensitivity measurement");
        plan.pruning.push(crate::builtin::l1_decision(
            group,
            SENSITIVITY_RATIO,
            crate::builtin::round_to_for(group.channels),
            "sensitivity measurement".into(),
        ));
        let resolved = match profagent_plan::validate(&plan, &analysis.context) {
            Ok(v) => v.pruning().to_vec(),
            Err(e) => {
                out.push(failed(group.channels, group.channels, e.to_string()));
                continue;
            }
        };
        let Some(first) = resolved.first().cloned() else {
            continue;
        };
        if first.keep >= first.current {
            continue;
        }
        let outcome = bench
            .prune(input, &resolved)
            .and_then(|(model, _)| bench.evaluate_accuracy(&model, Split::Feedback));
        let entry = match outcome {
            Ok(e) => GroupSensitivity {
                group: group.id.clone(),
                ratio: SENSITIVITY_RATIO,
                current: first.current,
                keep: first.keep,
                top1: Some(e.top1),
                drop: Some(baseline.top1 - e.top1),
                loss_increase: e
                    .loss
                    .zip(baseline.loss)
                    .map(|(after, before)| after - before),
                expected_drop: None,
                cosine_loss: e.cosine.map(|c| 1.0 - c),
                error: None,
            },
            Err(e) => failed(first.current, first.keep, e.to_string()),
        };
        progress.line(&match (&entry.drop, &entry.error) {
            (Some(d), _) => format!(
                "  {} {}→{}: top-1 drop {d:.2}{}",
                entry.group,
                entry.current,
                entry.keep,
                entry
                    .loss_increase
                    .map(|l| format!(", loss {l:+.4} nats"))
                    .unwrap_or_default()
                    + &entry
                        .cosine_loss
                        .map(|l| format!(", output cosine {:.5}", 1.0 - l))
                        .unwrap_or_default()
            ),
            (_, Some(e)) => format!("  {}: failed: {e}", entry.group),
            _ => String::new(),
        });
        out.push(entry);
    }
    fit_expected_drops(&mut out);
    out
}

/// Fills `expected_drop`: one group's top-1 difference on a few hundred images moves by whole
/// images (±0.5 points is noise), while its loss increase is continuous. Fitting drop ≈ k × loss
/// increase over all measured groups (least squares through the origin, k ≥ 0) and reading each
/// group's expected drop off the fit pools every measurement's information.
fn fit_expected_drops(measured: &mut [GroupSensitivity]) {
    let pairs: Vec<(f64, f64)> = measured
        .iter()
        .filter_map(|m| Some((m.loss_increase?, m.drop?)))
        .filter(|(l, d)| l.is_finite() && d.is_finite())
        .collect();
    let sxx: f64 = pairs.iter().map(|(l, _)| l * l).sum();
    let sxy: f64 = pairs.iter().map(|(l, d)| l * d).sum();
    let slope = (pairs.len() >= MIN_SENSITIVITY_FIT && sxx > 0.0).then(|| (sxy / sxx).max(0.0));
    for m in measured {
        m.expected_drop = match (slope, m.loss_increase) {
            (Some(k), Some(l)) if l.is_finite() => Some(k * l),
            _ => m.drop,
        };
    }
}

/// Copies measured sensitivities onto the planner's group facts (by group id; groups that were
/// not measured keep `None`).
fn apply_sensitivity(groups: &mut [GroupFacts], measured: &[GroupSensitivity]) {
    for group in groups {
        if let Some(m) = measured.iter().find(|m| m.group == group.id) {
            group.sensitivity = m.expected_drop.or(m.drop);
            group.fidelity_loss = m.cosine_loss;
        }
    }
}

/// The log-scale objective a round tries to lower: latency when the budget names latency,
/// size when it names memory, both otherwise.
pub fn objective(budget: &Budget, evaluation: &Evaluation) -> f64 {
    let latency = evaluation.latency_ms.max(1e-6).ln();
    let size = (evaluation.model_bytes.max(1) as f64).ln();
    if budget.macs_only() {
        if let Some(macs) = evaluation.macs {
            return (macs.max(1) as f64).ln();
        }
    }
    let wants_latency = budget.target_latency_ms.is_some() || budget.target_speedup.is_some();
    let wants_memory = budget.target_memory_bytes.is_some();
    match (wants_latency, wants_memory) {
        (true, false) => latency + SECONDARY_WEIGHT * size,
        (false, true) => size + SECONDARY_WEIGHT * latency,
        _ => latency + size,
    }
}

/// Accept or reject a candidate against the current best.
pub fn judge(
    budget: &Budget,
    baseline: &Evaluation,
    best: &Evaluation,
    candidate: &Evaluation,
) -> (bool, String) {
    let drop = baseline.top1 - candidate.top1;
    if drop > budget.max_acc_drop {
        return (
            false,
            format!(
                "rejected, rolled back: top-1 drop {drop:.2} exceeds the budget of {:.2} points",
                budget.max_acc_drop
            ),
        );
    }
    if !budget.fidelity_kept(candidate) {
        return (
            false,
            format!(
                "rejected, rolled back: output cosine with the original {} is below the budget's {:.4}",
                candidate
                    .cosine
                    .map(|c| format!("{c:.5}"))
                    .unwrap_or_else(|| "(not measured)".into()),
                budget.min_cosine.unwrap_or_default()
            ),
        );
    }
    let gain = objective(budget, best) - objective(budget, candidate);
    // MACs are counted, not timed: no noise to stay above.
    let needed = if budget.macs_only() {
        MIN_MACS_GAIN
    } else {
        MIN_RELATIVE_GAIN
    };
    if gain < needed {
        return (
            false,
            format!(
                "rejected: no measurable gain over the current best (objective {:+.1} %)",
                gain * 100.0
            ),
        );
    }
    let within = match (budget.min_cosine, candidate.cosine) {
        (Some(_), Some(c)) => {
            format!("within the accuracy and fidelity budgets (output cosine {c:.5})")
        }
        _ => "within the accuracy budget".to_string(),
    };
    (
        true,
        format!("accepted: {within} and {:.1} % better", gain * 100.0),
    )
}

/// The verdict on the final model: with targets, `budget_met`; without any latency, memory or
/// speedup target the budget is the accuracy bound alone (the loop itself keeps compressing
/// in that case, which is why `budget_met` needs a target to stop it).
pub fn final_budget_met(budget: &Budget, baseline: &Evaluation, current: &Evaluation) -> bool {
    if budget.any_target() {
        budget_met(budget, baseline, current)
    } else {
        baseline.top1 - current.top1 <= budget.max_acc_drop && budget.fidelity_kept(current)
    }
}

/// True when accuracy is within budget and every named target is reached.
pub fn budget_met(budget: &Budget, baseline: &Evaluation, current: &Evaluation) -> bool {
    budget.any_target()
        && baseline.top1 - current.top1 <= budget.max_acc_drop
        && budget.fidelity_kept(current)
        && budget
            .target_latency_ms
            .is_none_or(|t| current.latency_ms <= t)
        && budget
            .target_memory_bytes
            .is_none_or(|t| current.model_bytes <= t)
        && budget
            .target_speedup
            .is_none_or(|t| baseline.latency_ms / current.latency_ms.max(f64::MIN_POSITIVE) >= t)
        && budget
            .target_macs_fraction
            .is_none_or(|f| match (current.macs, baseline.macs) {
                (Some(now), Some(base)) => now as f64 <= f * base as f64,
                _ => false,
            })
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
