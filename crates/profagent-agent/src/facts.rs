//! What planners know about a model: the compact facts the prompt and the built-in planner
//! are built from (filled from the profile, the pruning analysis and the measurements of the
//! run), plus the budget and the history of earlier rounds.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use profagent_plan::{QuantActivations, QuantMode};
pub use profagent_stats::{Estimate, PairedAccuracy, SpeedComparison, SpeedVerdict};

/// One-sided confidence with which an accepted candidate's top-1 drop must stay within
/// `max_acc_drop`: a candidate is accepted only when the paired comparison with the baseline
/// on the feedback images puts a larger drop at most 10 % likely.
pub const ACCURACY_CONFIDENCE: f64 = 0.9;

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

    /// True when `evaluation` keeps the accuracy bound with `ACCURACY_CONFIDENCE`: the
    /// one-sided upper bound of its paired top-1 drop against the baseline is within
    /// `max_acc_drop`. Without labels there is no accuracy to keep (the fidelity bound
    /// decides); with labels but no paired comparison the bound counts as broken.
    pub fn accuracy_kept(&self, evaluation: &Evaluation) -> bool {
        match (&evaluation.accuracy_change, evaluation.top1) {
            (Some(p), _) => p.drop_upper_bound(ACCURACY_CONFIDENCE) <= self.max_acc_drop,
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

/// Accuracy, speed and size of one model on one data slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Top-1 accuracy in percent; `None` when the data has no labels (then nothing is said
    /// or decided about accuracy).
    pub top1: Option<f64>,
    /// Wilson interval of `top1`, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_interval: Option<Estimate>,
    /// Median batch-1 latency, ms, from the interleaved comparison in `speed` (for the input
    /// model: from timing it against itself).
    pub latency_ms: f64,
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
    pub images: usize,
    /// Mean cross-entropy of the labelled class (nats): less noisy than top-1 for comparing
    /// two models on the same images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
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
    /// The evaluator's full record (runtime, threads, machine, percentiles, ...).
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Evaluation {
    /// Top-1 drop against the baseline on the same images, points (paired), when measured.
    pub fn drop_points(&self) -> Option<f64> {
        self.accuracy_change.map(|p| p.drop_points())
    }

    /// Fills `accuracy_change` for the input model itself (no image changes), so its bounds read
    /// like any candidate's.
    pub fn pair_with_itself(&mut self) {
        self.accuracy_change = self
            .correct
            .as_deref()
            .and_then(|c| PairedAccuracy::from_flags(c, c));
    }

    /// Fills `accuracy_change` from both models' per-image correctness.
    pub fn pair_with(&mut self, baseline: &Evaluation) {
        if let (Some(b), Some(c)) = (&baseline.correct, &self.correct) {
            self.accuracy_change = PairedAccuracy::from_flags(b, c);
        }
    }
}

/// Cost of one layer (from the static profile, plus measured latency when available).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerFacts {
    pub name: String,
    pub op_type: String,
    pub params: u64,
    pub macs: u64,
    /// Median latency on the target runtime, ms: measured once on the input model by the
    /// runtime's profiler (`Workbench::layer_latencies`); for a layer pruning has shrunk since,
    /// the input's number times the layer's MACs now over its MACs then (`latency_scaled`).
    pub latency_ms: Option<f64>,
    /// True when `latency_ms` is the input model's measurement scaled by MACs, not measured
    /// on this model.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub latency_scaled: bool,
    /// Activation + weight memory, bytes.
    pub memory_bytes: Option<u64>,
}

/// A prunable group as planners see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupFacts {
    pub id: String,
    pub channels: usize,
    pub heads: Option<usize>,
    pub params: u64,
    pub macs: u64,
    /// Summed latency of the layers the group touches (its producers and the layers that read
    /// its channels), ms, from the per-layer latencies in `LayerFacts` (when profiled).
    pub latency_ms: Option<f64>,
    /// The top-1 drop (points) planners rank by when `probed_ratio` of this group is pruned
    /// alone: `fitted_drop` when the fit was possible, else `measured_drop`.
    pub sensitivity: Option<f64>,
    /// Top-1 drop (points) measured on `probed_images` feedback images with `probed_ratio` of
    /// this group pruned alone, on the input model: it moves in steps of 100 / `probed_images`
    /// points (one image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_drop: Option<f64>,
    /// Images the sensitivity measurement used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_images: Option<usize>,
    /// Fraction of the group's units the measurement removed (after rounding to whole units:
    /// 1 of 3 heads is 0.33, not the nominal `SENSITIVITY_RATIO`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_ratio: Option<f64>,
    /// Loss-fitted estimate of the same drop: the group's cross-entropy increase times the
    /// points-per-nat slope fitted over all measured groups (`GroupSensitivity::expected_drop`);
    /// `None` when too few groups were measured to fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_drop: Option<f64>,
    /// Output cosine lost (1 - cosine with the original model) in the same measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity_loss: Option<f64>,
    /// True when the group's channels are a residual stream: two or more producers write them
    /// and an `Add` of two such tensors (a skip connection) couples them, so pruning it thins
    /// every block on the stream at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub residual: bool,
    pub prunable: bool,
    pub note: Option<String>,
}

/// How one quantization mode did on this model and runtime (measured, not assumed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantProbe {
    pub mode: QuantMode,
    /// Static mode: the activation type probed (ONNX Runtime fuses uint8 and int8 differently,
    /// so both are measured); absent for other modes.
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
}

impl QuantProbe {
    /// `static (uint8 activations)`, or the mode alone.
    pub fn label(&self) -> String {
        match self.activations {
            Some(activations) => format!("{} ({} activations)", self.mode, activations.as_str()),
            None => self.mode.to_string(),
        }
    }

    /// The plan setting that reproduces this probe.
    pub fn setting(&self) -> profagent_plan::QuantSetting {
        profagent_plan::QuantSetting {
            activations: self.activations.unwrap_or_default(),
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
            top1: self.top1,
            top1_interval: None,
            latency_ms: self.latency_ms,
            speed: self.speed.clone(),
            accuracy_change: self.accuracy_change,
            correct: None,
            model_bytes: self.model_bytes,
            images: baseline.images,
            loss: None,
            macs: baseline.macs,
            cosine: self.cosine,
            worst_cosine: None,
            agreement: None,
            details: serde_json::Value::Null,
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
    pub top1: Option<f64>,
    /// Baseline top-1 minus `top1`, points (negative: pruning helped on this slice).
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
    pub error: Option<String>,
}

/// One earlier round in a few fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    pub round: usize,
    pub plan: String,
    pub top1: Option<f64>,
    pub latency_ms: Option<f64>,
    pub model_bytes: Option<u64>,
    /// The candidate's top-1 against the input model on the same feedback images (paired:
    /// the change and its interval), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_change: Option<PairedAccuracy>,
    /// The candidate timed against the input model, interleaved (speedup interval and
    /// verdict), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    /// The candidate's MACs at batch 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<u64>,
    pub accepted: bool,
    pub note: String,
}

/// Everything a planner gets for one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanningInput {
    pub model_name: String,
    /// "convolutional", "transformer" or "mixed" (from the op types).
    pub family: String,
    pub runtime: String,
    pub baseline: Evaluation,
    /// The model this round starts from.
    pub current: Evaluation,
    /// Quantization in effect on the current model ("none", "static", ...).
    pub current_quantization: String,
    pub layers: Vec<LayerFacts>,
    pub groups: Vec<GroupFacts>,
    pub quant_probes: Vec<QuantProbe>,
    pub budget: Budget,
    pub history: Vec<RoundSummary>,
    pub rounds_left: usize,
}

impl PlanningInput {
    /// Top-1 drop of `top1` against the baseline, points (0 without labels: then the
    /// fidelity bound is the budget).
    pub fn drop_of(&self, top1: Option<f64>) -> f64 {
        match (self.baseline.top1, top1) {
            (Some(b), Some(t)) => b - t,
            _ => 0.0,
        }
    }
}
