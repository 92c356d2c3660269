//! The `Workbench` seam: everything the loop needs from the rest of ProfAgent.
//!
//! Two layers of methods:
//! - required: the rewrites and raw measurements (`analyze`, `prune`, `quantize`, `evaluate`,
//!   `compare_speed`, `layer_latencies`), implemented by the real workbench
//!   (`profagent_workbench::OrtBench`) and the scripted ones of the tests;
//! - provided: what the loop learns from them and decides on them (the baseline, the
//!   quantization probes, the pruning sensitivity, a candidate's evaluation, the verdict, the
//!   final check on the holdout slice, the per-layer table). Their defaults measure live
//!   (`measure`, `crate::judge`, `finish`); `replay::RecordedBench` overrides them to answer
//!   from a recorded run while still rewriting through the real workbench, so a replay is
//!   just another workbench and the loop has no replay branches.
use std::collections::BTreeMap;

use profagent_onnx::Model;
use profagent_plan::{PlanContext, QuantSetting, ResolvedPrune};

use super::{finish, measure, sensitivity, Progress, StopReason};
use crate::error::AgentError;
use crate::facts::{
    Budget, Evaluation, GroupFacts, GroupSensitivity, LayerFacts, QuantProbe, SpeedComparison,
};
use crate::judge::{judge, Decision};
use crate::report::{LayerRow, ReplayInfo};

/// Which data slice an evaluation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Guides the loop (acceptance, planner feedback).
    Feedback,
    /// Judges the final result only.
    Holdout,
}

/// A model's plan context plus what planners see of it.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub context: PlanContext,
    pub layers: Vec<LayerFacts>,
    pub groups: Vec<GroupFacts>,
    pub family: String,
}

/// What became of one round's candidate: the judge's decision (absent when a recording has
/// none), the sentence that explains it, and whether the candidate is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub decision: Option<Decision>,
    pub reason: String,
    pub accepted: bool,
}

/// An accepted model the final check may keep: the round that produced it (0: the input) and
/// the deployed model.
#[derive(Debug, Clone, Copy)]
pub struct Kept<'a> {
    pub round: usize,
    pub model: &'a Model,
}

/// The outcome of the final check: which accepted round's model is kept, the input and that
/// model on the holdout slice, and the notes on models passed over (and other warnings).
#[derive(Debug, Clone, PartialEq)]
pub struct FinalCheck {
    pub round: usize,
    pub holdout_baseline: Option<Evaluation>,
    pub holdout_final: Option<Evaluation>,
    pub notes: Vec<String>,
}

/// What the loop needs from the rest of ProfAgent (see the module doc).
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

    /// Per-layer latency of the input model, measured once before planning (planners rank
    /// groups by it); a failure is a warning and planners rank by MACs.
    fn input_layer_latencies(
        &mut self,
        input: &Model,
        progress: &mut dyn Progress,
    ) -> Vec<(String, String, f64)> {
        progress.line("profiling per-layer latency of the input model on the target runtime");
        self.layer_latencies(input).unwrap_or_else(|e| {
            progress.line(&format!(
                "warning: per-layer latency not measured ({e}): planners rank by MACs"
            ));
            Vec::new()
        })
    }

    /// The input model on the feedback slice, timed against itself (`measure::baseline`).
    fn baseline(
        &mut self,
        input: &Model,
        progress: &mut dyn Progress,
    ) -> Result<Evaluation, AgentError> {
        measure::baseline(self, input, progress)
    }

    /// Every quantization mode applied to the input and measured (`measure::probe_quantization`).
    fn quant_probes(
        &mut self,
        input: &Model,
        analysis: &Analysis,
        baseline: &Evaluation,
        progress: &mut dyn Progress,
    ) -> Vec<QuantProbe> {
        measure::probe_quantization(self, input, analysis, baseline, progress)
    }

    /// Each of `max_groups` prunable groups (the heaviest) pruned alone and measured
    /// (`sensitivity::measure_sensitivity`).
    fn sensitivity(
        &mut self,
        input: &Model,
        analysis: &Analysis,
        baseline: &Evaluation,
        max_groups: usize,
        progress: &mut dyn Progress,
    ) -> Vec<GroupSensitivity> {
        sensitivity::measure_sensitivity(self, input, analysis, baseline, max_groups, progress)
    }

    /// After accepted round `round`: `max_groups` prunable groups of `model` (the round's float
    /// model; half of them the groups cheapest per MAC in `analysis`'s earlier measurements,
    /// the rest the heaviest) each pruned alone and measured against `reference`, the model's
    /// own float evaluation on the feedback slice (`None`: the round's model is quantized, so
    /// its float model is evaluated first). `sensitivity::remeasure`.
    fn remeasure_sensitivity(
        &mut self,
        round: usize,
        model: &Model,
        analysis: &Analysis,
        reference: Option<&Evaluation>,
        max_groups: usize,
        progress: &mut dyn Progress,
    ) -> Vec<GroupSensitivity> {
        let _ = round;
        sensitivity::remeasure(self, model, analysis, reference, max_groups, progress)
    }

    /// Rounds the loop may run and rounds without an accepted candidate before it stops.
    fn schedule(&self, rounds: usize, patience: usize) -> (usize, usize) {
        (rounds, patience.max(1))
    }

    /// A candidate on the feedback slice: accuracy paired with the baseline, speed against
    /// the input and, when `best` is not the input, against `best` (`measure::candidate`).
    fn evaluate_candidate(
        &mut self,
        round: usize,
        input: &Model,
        baseline: &Evaluation,
        best: Kept<'_>,
        candidate: &Model,
    ) -> Result<(Evaluation, Option<SpeedComparison>), AgentError> {
        let _ = round;
        measure::candidate(self, input, baseline, best, candidate)
    }

    /// Whether round `round`'s candidate replaces the current best (`crate::judge::judge`).
    fn verdict(
        &mut self,
        round: usize,
        budget: &Budget,
        best: &Evaluation,
        candidate: &Evaluation,
        vs_best: Option<&SpeedComparison>,
    ) -> Verdict {
        let _ = round;
        let judgement = judge(budget, best, candidate, vs_best);
        Verdict {
            decision: Some(judgement.decision),
            accepted: judgement.decision.accepted(),
            reason: judgement.reason,
        }
    }

    /// Why the loop stopped, given the reason it found itself.
    fn stop_reason(&self, found: StopReason) -> StopReason {
        found
    }

    /// The final check on the holdout slice (`finish::final_check`): `accepted` oldest (the
    /// input, round 0) first.
    fn final_check(
        &mut self,
        input: &Model,
        baseline: &Evaluation,
        accepted: &[Kept<'_>],
        budget: &Budget,
        progress: &mut dyn Progress,
    ) -> Result<FinalCheck, AgentError> {
        finish::final_check(self, input, baseline, accepted, budget, progress)
    }

    /// Per-layer latency of the input and the final model, for the report.
    fn layer_rows(
        &mut self,
        input: &Model,
        chosen: &Model,
        progress: &mut dyn Progress,
    ) -> Vec<LayerRow> {
        progress.line("profiling per-layer latency of the input and final models for the report");
        finish::layer_rows(self, input, chosen, progress)
    }

    /// What the report says about the run this one replays (`None`: not a replay).
    fn replay_info(&self, final_sha256: &str) -> Option<ReplayInfo> {
        let _ = final_sha256;
        None
    }
}
