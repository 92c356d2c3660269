//! What was measured about one model: the user's budget, an evaluation on a data slice, a
//! quantization probe and a group's pruning sensitivity. The loop fills every field the
//! renderers show (top-5, batch-N latency, peak memory, params, MACs) as a typed field; the
//! evaluator's full record stays in `details` for people, and nothing reads it back.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use profagent_plan::{QuantActivations, QuantMode};
use profagent_stats::{PairedAccuracy, SpeedComparison, SpeedVerdict};

pub use profagent_stats::Estimate;

/// Default one-sided confidence with which an accepted candidate's top-1 drop must stay within
/// `max_acc_drop` (`Budget::acc_confidence`): a candidate is accepted only when the paired
/// comparison with the baseline on the feedback images puts a larger drop at most 10 % likely.
pub const ACCURACY_CONFIDENCE: f64 = 0.9;

fn default_acc_confidence() -> f64 {
    ACCURACY_CONFIDENCE
}

/// The user's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Largest allowed top-1 drop against the baseline, in percentage points.
    pub max_acc_drop: f64,
    /// Batch-1 latency to reach, ms.
    pub target_latency_ms: Option<f64>,
    /// Model size to reach, bytes.
    pub target_memory_bytes: Option<u64>,
    /// Baseline latency / final latency to reach.
    pub target_speedup: Option<f64>,
    /// MACs to reach, as a fraction of the baseline's (the pruning papers' FLOPs budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_macs_fraction: Option<f64>,
    /// Smallest allowed mean cosine between the compressed and the original model's outputs
    /// on the feedback slice: a fidelity bound that needs no labels and, unlike top-1 on a few
    /// hundred images, moves continuously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cosine: Option<f64>,
    /// One-sided confidence with which the top-1 drop must stay within `max_acc_drop`
    /// (`ACCURACY_CONFIDENCE` unless the user chose another; 0.5 accepts on the measured drop
    /// alone). Rounds are accepted, and the final model judged, on this bound.
    #[serde(default = "default_acc_confidence")]
    pub acc_confidence: f64,
}

impl Budget {
    /// True when the budget names only a MACs target (quantization cannot help, and MACs
    /// are exact, so small gains count).
    pub fn macs_only(&self) -> bool {
        self.target_macs_fraction.is_some()
            && self.target_latency_ms.is_none()
            && self.target_memory_bytes.is_none()
            && self.target_speedup.is_none()
    }

    /// Any latency, memory, speedup or MACs target.
    pub fn any_target(&self) -> bool {
        self.target_latency_ms.is_some()
            || self.target_memory_bytes.is_some()
            || self.target_speedup.is_some()
            || self.target_macs_fraction.is_some()
    }

    /// True when the budget names a latency or speedup target.
    pub fn wants_speed(&self) -> bool {
        self.target_latency_ms.is_some() || self.target_speedup.is_some()
    }

    /// What a round tries to improve: MACs when only a MACs target is named, size when only
    /// a memory target is, otherwise speed on the target runtime (then size): the default
    /// objective when only `max_acc_drop` is given.
    pub fn objective(&self) -> Objective {
        if self.macs_only() {
            Objective::Macs
        } else if self.target_memory_bytes.is_some() && !self.wants_speed() {
            Objective::Size
        } else {
            Objective::Speed
        }
    }

    /// True when `evaluation` keeps the accuracy bound with `acc_confidence`: the
    /// one-sided upper bound of its paired top-1 drop against the baseline is within
    /// `max_acc_drop`. Without labels there is no accuracy to keep (the fidelity bound
    /// decides); with labels but no paired comparison the bound counts as broken.
    pub fn accuracy_kept(&self, evaluation: &Evaluation) -> bool {
        match (&evaluation.accuracy_change, evaluation.top1) {
            (Some(p), _) => p.drop_upper_bound(self.acc_confidence) <= self.max_acc_drop,
            (None, None) => true,
            (None, Some(_)) => false,
        }
    }

    /// True when `evaluation` keeps the fidelity bound (always, without one). A bound that
    /// cannot be checked (no cosine measured) is not kept.
    pub fn fidelity_kept(&self, evaluation: &Evaluation) -> bool {
        self.min_cosine
            .is_none_or(|min| evaluation.cosine.is_some_and(|c| c >= min))
    }
}

/// What a round tries to improve (`Budget::objective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    Speed,
    Size,
    Macs,
}

/// Median latency at one batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyAt {
    pub batch: usize,
    pub median_ms: f64,
}

/// Accuracy, speed and size of one model on one data slice. Accuracies in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Top-1 accuracy in percent; `None` when the data has no labels (then nothing is said
    /// or decided about accuracy).
    pub top1: Option<f64>,
    /// Wilson interval of `top1`, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_interval: Option<Estimate>,
    /// Top-5 accuracy, percent (with labels and at least 5 classes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
    /// Median batch-1 latency, ms, from the interleaved comparison in `speed` (for the input
    /// model: from timing it against itself).
    pub latency_ms: f64,
    /// Median latency at the largest batch size above 1 the evaluator timed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_batch: Option<LatencyAt>,
    /// This model against the input model, timed interleaved in one process (`speedup`
    /// above 1: this model is faster). For the input model itself: its A/A comparison, which
    /// shows how noisy the machine is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    /// Top-1 against the input model on the same images (paired; absent without labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_change: Option<PairedAccuracy>,
    /// Per image, whether top-1 is right (for paired comparisons; not serialized).
    #[serde(skip)]
    pub correct: Option<Arc<Vec<bool>>>,
    /// Serialized model size, bytes.
    pub model_bytes: u64,
    /// Images evaluated.
    #[serde(default)]
    pub images: usize,
    /// Peak resident memory of the evaluating process, bytes, when it says something about
    /// this model (not when one process evaluated many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// Mean cross-entropy of the labelled class (nats): less noisy than top-1 for comparing
    /// two models on the same images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Weight elements (static profile; quantization changes bytes, not parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<u64>,
    /// Multiply-accumulates at batch 1 (static profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<u64>,
    /// Mean cosine of this model's outputs with the original model's on the same images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f64>,
    /// Lowest per-image cosine with the original model's outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_cosine: Option<f64>,
    /// Images where this model's top-1 class is the original model's, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// The evaluator's full record (runtime, threads, machine, percentiles, ...), kept for
    /// people reading the JSON; every number a renderer shows has its own field above.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Evaluation {
    /// An evaluation with only what every evaluation has (the rest empty), to fill in.
    pub fn new(top1: Option<f64>, latency_ms: f64, model_bytes: u64, images: usize) -> Self {
        Evaluation {
            top1,
            top1_interval: None,
            top5: None,
            latency_ms,
            latency_batch: None,
            speed: None,
            accuracy_change: None,
            correct: None,
            model_bytes,
            images,
            peak_memory_bytes: None,
            loss: None,
            params: None,
            macs: None,
            cosine: None,
            worst_cosine: None,
            agreement: None,
            details: serde_json::Value::Null,
        }
    }

    /// Top-1 drop against the baseline on the same images, points (paired), when measured.
    pub fn drop_points(&self) -> Option<f64> {
        self.accuracy_change.map(|p| p.drop_points())
    }

    /// Fills `accuracy_change` for the input model itself (no image changes), so its bounds
    /// read like any candidate's. Without per-image flags (an evaluation read back from a
    /// record) the recorded comparison stays.
    pub fn pair_with_itself(&mut self) {
        if let Some(c) = self.correct.as_deref() {
            self.accuracy_change = PairedAccuracy::from_flags(c, c);
        }
    }

    /// Fills `accuracy_change` from both models' per-image correctness.
    pub fn pair_with(&mut self, baseline: &Evaluation) {
        if let (Some(b), Some(c)) = (&baseline.correct, &self.correct) {
            self.accuracy_change = PairedAccuracy::from_flags(b, c);
        }
    }
}

/// How one quantization mode did on this model and runtime (measured, not assumed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantProbe {
    pub mode: QuantMode,
    /// Static mode: the activation type probed (ONNX Runtime fuses uint8 and int8 QDQ graphs
    /// differently, so both are measured); absent for other modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activations: Option<QuantActivations>,
    pub latency_ms: f64,
    /// Median speedup against the input model (see `speed` for its interval and verdict).
    pub speedup: f64,
    /// The interleaved comparison with the input model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    pub model_bytes: u64,
    pub top1: Option<f64>,
    /// Top-1 against the input model on the same images (paired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_change: Option<PairedAccuracy>,
    /// Mean output cosine with the original model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f64>,
    pub error: Option<String>,
    /// How the runtime runs the quantized layers after its own graph optimisation ("21 of 21
    /// quantized nodes run as int8 kernels ..."), when the workbench can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<String>,
    /// Layers probed in a mode other than `mode` (a mixed probe, e.g. static convolutions
    /// with dynamic MatMuls); a plan reproduces the probe with them as its per-layer list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<profagent_plan::LayerQuantization>,
    /// Static mode: the calibration method this probe's accuracy and size were measured with
    /// (min-max when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<profagent_plan::QuantCalibration>,
    /// Static mode: every calibration method tried on the same quantized graph, each on the
    /// feedback slice (the probe reports the best). Only the range scales differ between
    /// them, so speed was timed once, on the min-max model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration_trials: Vec<CalibrationTrial>,
}

/// One calibration method tried for a static probe, on the feedback slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationTrial {
    pub method: profagent_plan::QuantCalibration,
    pub top1: Option<f64>,
    /// Top-1 against the input model on the same images (paired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_change: Option<PairedAccuracy>,
    /// Mean output cosine with the original model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f64>,
    pub model_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CalibrationTrial {
    /// `entropy 91.52 %` / `entropy cosine 0.99871` / `entropy failed`.
    pub fn describe(&self) -> String {
        let method = self.method.as_str();
        match (&self.error, self.top1, self.cosine) {
            (Some(_), _, _) => format!("{method} failed"),
            (None, Some(top1), _) => format!("{method} {top1:.2} %"),
            (None, None, Some(cosine)) => format!("{method} cosine {cosine:.5}"),
            (None, None, None) => format!("{method} not measured"),
        }
    }
}

impl QuantProbe {
    /// `static (uint8 activations)` (`, entropy calibration` when not min-max), or the mode alone.
    pub fn label(&self) -> String {
        let details: Vec<String> = [
            self.activations
                .map(|a| format!("{} activations", a.as_str())),
            self.calibration
                .filter(|c| !c.is_min_max())
                .map(|c| format!("{} calibration", c.as_str())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let base = if details.is_empty() {
            self.mode.to_string()
        } else {
            format!("{} ({})", self.mode, details.join(", "))
        };
        if self.layers.is_empty() {
            return base;
        }
        let mut modes: Vec<(profagent_plan::QuantMode, usize)> = Vec::new();
        for layer in &self.layers {
            match modes.iter_mut().find(|(m, _)| *m == layer.mode) {
                Some((_, n)) => *n += 1,
                None => modes.push((layer.mode, 1)),
            }
        }
        let others: Vec<String> = modes.iter().map(|(m, n)| format!("{n} {m}")).collect();
        format!("mixed: {base}, {}", others.join(", "))
    }

    /// The plan setting that reproduces this probe.
    pub fn setting(&self) -> profagent_plan::QuantSetting {
        profagent_plan::QuantSetting {
            activations: self.activations.unwrap_or_default(),
            calibration: self.calibration.unwrap_or_default(),
            ..profagent_plan::QuantSetting::new(self.mode)
        }
    }

    /// The probe's speed verdict against the input model (`None` when it failed).
    pub fn verdict(&self) -> Option<SpeedVerdict> {
        self.speed.as_ref().map(|s| s.verdict())
    }

    /// The probe as an evaluation of the quantized baseline (quantization keeps MACs).
    pub fn as_evaluation(&self, baseline: &Evaluation) -> Evaluation {
        Evaluation {
            speed: self.speed.clone(),
            accuracy_change: self.accuracy_change,
            macs: baseline.macs,
            cosine: self.cosine,
            ..Evaluation::new(
                self.top1,
                self.latency_ms,
                self.model_bytes,
                baseline.images,
            )
        }
    }
}

/// How much top-1 one group costs when pruned alone (measured on the baseline, before planning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSensitivity {
    pub group: String,
    /// Fraction of the group's channels (or heads) removed for the measurement.
    pub ratio: f64,
    pub current: usize,
    pub keep: usize,
    /// Top-1 on the feedback slice with only this group pruned, percent.
    #[serde(default)]
    pub top1: Option<f64>,
    /// Baseline top-1 minus `top1`, points (negative: pruning helped on this slice).
    #[serde(default)]
    pub drop: Option<f64>,
    /// Mean cross-entropy increase over the baseline, nats.
    #[serde(default)]
    pub loss_increase: Option<f64>,
    /// The drop planners are given: `loss_increase` times the points-per-nat slope fitted over
    /// all measured groups (far less noisy than one group's own top-1 difference), else `drop`.
    #[serde(default)]
    pub expected_drop: Option<f64>,
    /// 1 - mean output cosine with the original model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine_loss: Option<f64>,
    /// Feedback images the measurement used (one image is 100 / `images` points of top-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<usize>,
    /// The points-per-nat slope `expected_drop` was read off (`None`: too few groups to fit,
    /// and `expected_drop` is the measured `drop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_per_nat: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accuracy bound is judged at the budget's confidence: 0.6 points lost on 1,000 images
    /// (8 images only the baseline gets right, 2 only the candidate) is within a 1-point budget
    /// on the measured drop alone, not at 90 %; a report.json without the field reads as 90 %.
    #[test]
    fn the_accuracy_bound_is_judged_at_the_budgets_confidence() {
        let mut budget: Budget = serde_json::from_str(
            r#"{"max_acc_drop": 1.0, "target_latency_ms": null, "target_memory_bytes": null, "target_speedup": null}"#,
        )
        .unwrap();
        assert_eq!(budget.acc_confidence, ACCURACY_CONFIDENCE);
        let mut candidate = Evaluation::new(Some(89.4), 1.0, 10, 1000);
        candidate.accuracy_change = Some(PairedAccuracy {
            samples: 1000,
            baseline_correct: 900,
            candidate_correct: 894,
            only_baseline: 8,
            only_candidate: 2,
        });
        let change = candidate.accuracy_change.unwrap();
        assert!(change.drop_upper_bound(0.9) > 1.0, "{change:?}");
        assert!(!budget.accuracy_kept(&candidate));
        budget.acc_confidence = 0.5;
        assert!(budget.accuracy_kept(&candidate));
        // 1.2 points measured: over the budget at any confidence.
        candidate.accuracy_change = Some(PairedAccuracy {
            candidate_correct: 888,
            only_baseline: 14,
            ..change
        });
        assert!(!budget.accuracy_kept(&candidate));
    }

    /// An evaluation read back from a record has no per-image flags: pairing it with itself
    /// (as the loop does with every baseline) keeps the recorded comparison; with flags it is
    /// computed from them.
    #[test]
    fn pairing_with_itself_keeps_a_recorded_comparison_without_flags() {
        let flags = [true, true, false, true];
        let recorded = PairedAccuracy::from_flags(&flags, &[true, false, false, true]);
        let mut read_back = Evaluation::new(Some(50.0), 1.0, 10, 4);
        read_back.accuracy_change = recorded;
        read_back.pair_with_itself();
        assert_eq!(read_back.accuracy_change, recorded);

        let mut measured = read_back.clone();
        measured.correct = Some(Arc::new(flags.to_vec()));
        measured.pair_with_itself();
        assert_eq!(
            measured.accuracy_change,
            PairedAccuracy::from_flags(&flags, &flags)
        );
        assert_ne!(measured.accuracy_change, recorded);
    }
}
