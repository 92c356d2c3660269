//! Replay: a recorded run followed again, as a workbench and a planner.
//!
//! `RecordedBench` wraps the real workbench: rewrites (analysis, pruning, quantization) still
//! run, so the model is rebuilt byte for byte, but everything the loop learns or decides
//! (baseline, probes, sensitivity, each round's evaluation and verdict, the final check on the
//! holdout slice, the per-layer table, why the run stopped) is answered from the recorded
//! report instead of measured again. The recorded planner is the transcript's answers played
//! back through the same parse / validate path (`crate::planner::replay_planner`). The loop
//! itself does not know it is replaying. A round the recording lacks an evaluation or verdict
//! for (the recorded plan failed to apply but applies now) is measured and judged live.
use std::path::Path;

use profagent_onnx::Model;
use profagent_plan::{QuantSetting, ResolvedPrune};

use super::{
    compress, finish, measure, Analysis, CompressOptions, Compressed, FinalCheck, Kept, Progress,
    Split, StopReason, Verdict, Workbench,
};
use crate::error::AgentError;
use crate::facts::{Budget, Evaluation, GroupSensitivity, QuantProbe, SpeedComparison};
use crate::planner::replay_planner;
use crate::report::{LayerRow, ReplayInfo, RoundRecord, RunReport};
use crate::rundir::{RunDir, REPORT_FILE};

/// A recorded run: its report and the directory it came from (whose transcript holds the
/// planner's answers).
#[derive(Debug, Clone)]
pub struct ReplayScript {
    pub source: RunReport,
    pub source_dir: String,
}

impl ReplayScript {
    /// Reads `run_dir/report.json`.
    pub fn read(run_dir: &Path) -> Result<Self, AgentError> {
        Ok(ReplayScript {
            source: RunReport::read(&run_dir.join(REPORT_FILE))?,
            source_dir: run_dir.display().to_string(),
        })
    }

    fn round(&self, round: usize) -> Option<&RoundRecord> {
        self.source.rounds.iter().find(|r| r.round == round)
    }
}

/// Follows `script` again: the recorded planner's answers, the recorded measurements and
/// verdicts, and `bench`'s rewrites; the report says whether the final model came out
/// identical.
pub fn replay(
    input: &Model,
    options: &CompressOptions,
    script: &ReplayScript,
    bench: &mut dyn Workbench,
    run_dir: &RunDir,
    progress: &mut dyn Progress,
) -> Result<Compressed, AgentError> {
    let recorded_planner = replay_planner(Path::new(&script.source_dir))?;
    // A guarded run is replayed guarded: the built-in proposals are recomputed from the
    // recorded measurements, so the same plans are chosen.
    let mut planner: Box<dyn crate::planner::Planner> =
        if script.source.planner.ends_with(crate::guard::GUARD_SUFFIX) {
            Box::new(crate::guard::GuardedPlanner::new(Box::new(
                recorded_planner,
            )))
        } else {
            Box::new(recorded_planner)
        };
    let mut recorded = RecordedBench {
        inner: bench,
        script,
    };
    // The recording decides what was probed: its probes are always taken.
    let options = CompressOptions {
        probe_quantization: true,
        ..options.clone()
    };
    compress(
        input,
        &options,
        planner.as_mut(),
        &mut recorded,
        run_dir,
        progress,
    )
}

/// The real workbench for rewrites, the recording for everything measured or decided.
pub struct RecordedBench<'a> {
    pub inner: &'a mut dyn Workbench,
    pub script: &'a ReplayScript,
}

impl Workbench for RecordedBench<'_> {
    fn describe(&self) -> serde_json::Value {
        self.inner.describe()
    }

    fn analyze(&mut self, model: &Model) -> Result<Analysis, AgentError> {
        self.inner.analyze(model)
    }

    fn prune(
        &mut self,
        model: &Model,
        decisions: &[ResolvedPrune],
    ) -> Result<(Model, serde_json::Value), AgentError> {
        self.inner.prune(model, decisions)
    }

    fn quantize(
        &mut self,
        model: &Model,
        layers: &std::collections::BTreeMap<String, QuantSetting>,
    ) -> Result<(Model, serde_json::Value), AgentError> {
        self.inner.quantize(model, layers)
    }

    fn evaluate(&mut self, model: &Model, split: Split) -> Result<Evaluation, AgentError> {
        self.inner.evaluate(model, split)
    }

    fn compare_speed(
        &mut self,
        reference: &Model,
        candidate: &Model,
        split: Split,
    ) -> Result<SpeedComparison, AgentError> {
        self.inner.compare_speed(reference, candidate, split)
    }

    /// The input's column of the recorded per-layer table.
    fn input_layer_latencies(
        &mut self,
        _input: &Model,
        _progress: &mut dyn Progress,
    ) -> Vec<(String, String, f64)> {
        self.script
            .source
            .layers
            .iter()
            .filter_map(|l| Some((l.layer.clone(), l.op_type.clone(), l.before_ms?)))
            .collect()
    }

    fn baseline(
        &mut self,
        _input: &Model,
        _progress: &mut dyn Progress,
    ) -> Result<Evaluation, AgentError> {
        Ok(self.script.source.baseline.clone())
    }

    fn quant_probes(
        &mut self,
        _input: &Model,
        _analysis: &Analysis,
        _baseline: &Evaluation,
        _progress: &mut dyn Progress,
    ) -> Vec<QuantProbe> {
        self.script.source.quant_probes.clone()
    }

    fn sensitivity(
        &mut self,
        _input: &Model,
        _analysis: &Analysis,
        _baseline: &Evaluation,
        _max_groups: usize,
        _progress: &mut dyn Progress,
    ) -> Vec<GroupSensitivity> {
        self.script.source.sensitivity.clone()
    }

    /// The re-measurement recorded after that round (none: nothing is measured again).
    fn remeasure_sensitivity(
        &mut self,
        round: usize,
        _model: &Model,
        _analysis: &Analysis,
        _reference: Option<&Evaluation>,
        _max_groups: usize,
        _progress: &mut dyn Progress,
    ) -> Vec<GroupSensitivity> {
        self.script
            .round(round)
            .map(|r| r.sensitivity.clone())
            .unwrap_or_default()
    }

    /// As many rounds as were recorded, and no early stop: the recorded verdicts decide.
    fn schedule(&self, _rounds: usize, _patience: usize) -> (usize, usize) {
        (self.script.source.rounds.len(), usize::MAX)
    }

    fn evaluate_candidate(
        &mut self,
        round: usize,
        input: &Model,
        baseline: &Evaluation,
        best: Kept<'_>,
        candidate: &Model,
    ) -> Result<(Evaluation, Option<SpeedComparison>), AgentError> {
        match self.script.round(round) {
            Some(RoundRecord {
                evaluation: Some(evaluation),
                speed_vs_best,
                ..
            }) => Ok((evaluation.clone(), speed_vs_best.clone())),
            _ => measure::candidate(&mut *self.inner, input, baseline, best, candidate),
        }
    }

    fn verdict(
        &mut self,
        round: usize,
        budget: &Budget,
        best: &Evaluation,
        candidate: &Evaluation,
        vs_best: Option<&SpeedComparison>,
    ) -> Verdict {
        match self.script.round(round) {
            Some(recorded) => Verdict {
                decision: recorded.decision,
                reason: format!("replayed: {}", recorded.verdict),
                accepted: recorded.accepted,
            },
            None => self.inner.verdict(round, budget, best, candidate, vs_best),
        }
    }

    /// The recorded run ends for the recorded reason.
    fn stop_reason(&self, found: StopReason) -> StopReason {
        self.script
            .source
            .final_result
            .as_ref()
            .and_then(|f| f.stop)
            .unwrap_or(found)
    }

    /// The recorded choice, holdout evaluations and notes (measured live only when the
    /// recording has no final result).
    fn final_check(
        &mut self,
        input: &Model,
        baseline: &Evaluation,
        accepted: &[Kept<'_>],
        budget: &Budget,
        progress: &mut dyn Progress,
    ) -> Result<FinalCheck, AgentError> {
        let Some(recorded) = &self.script.source.final_result else {
            return finish::final_check(
                &mut *self.inner,
                input,
                baseline,
                accepted,
                budget,
                progress,
            );
        };
        let last_round = accepted.last().map(|s| s.round).unwrap_or(0);
        Ok(FinalCheck {
            round: recorded.chosen_round.unwrap_or(last_round),
            holdout_baseline: recorded.holdout_baseline.clone(),
            holdout_final: recorded.holdout_final.clone(),
            notes: recorded.fallback.clone(),
        })
    }

    fn layer_rows(
        &mut self,
        _input: &Model,
        _chosen: &Model,
        _progress: &mut dyn Progress,
    ) -> Vec<LayerRow> {
        self.script.source.layers.clone()
    }

    fn replay_info(&self, final_sha256: &str) -> Option<ReplayInfo> {
        let recorded_sha256 = self
            .script
            .source
            .final_result
            .as_ref()
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        Some(ReplayInfo {
            source: self.script.source_dir.clone(),
            identical: recorded_sha256 == final_sha256,
            recorded_sha256,
        })
    }
}
