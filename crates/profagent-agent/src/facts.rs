//! What planners know about a model: the compact facts the prompt and the built-in planner
//! are built from (filled from the profile, the pruning analysis and the measurements of the
//! run), plus the budget and the history of earlier rounds.
use serde::{Deserialize, Serialize};

use profagent_plan::QuantMode;

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

    /// True when `evaluation` keeps the fidelity bound (always, without one). A bound that
    /// cannot be checked (no cosine measured) is not kept.
    pub fn fidelity_kept(&self, evaluation: &Evaluation) -> bool {
        self.min_cosine
            .is_none_or(|min| evaluation.cosine.is_some_and(|c| c >= min))
    }
}

/// Accuracy, speed and size of one model on one data slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Median batch-1 latency, ms.
    pub latency_ms: f64,
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
    /// Images where this model's top-1 class is the original model's, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// The evaluator's full record (runtime, threads, machine, percentiles, ...).
    #[serde(default)]
    pub details: serde_json::Value,
}

/// Cost of one layer (from the static profile, plus measured latency when available).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerFacts {
    pub name: String,
    pub op_type: String,
    pub params: u64,
    pub macs: u64,
    pub latency_ms: Option<f64>,
    /// Activation + weight memory, bytes.
    pub memory_bytes: Option<u64>,
}

/// A prunable group as planners see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFacts {
    pub id: String,
    pub channels: usize,
    pub heads: Option<usize>,
    pub params: u64,
    pub macs: u64,
    /// Measured share of the latency of the layers in the group, ms (when profiled).
    pub latency_ms: Option<f64>,
    /// Top-1 drop (points) measured when pruning `SENSITIVITY_RATIO` of this group alone.
    pub sensitivity: Option<f64>,
    /// Output cosine lost (1 - cosine with the original model) in the same measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity_loss: Option<f64>,
    pub prunable: bool,
    pub note: Option<String>,
}

/// How one quantization mode did on this model and runtime (measured, not assumed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantProbe {
    pub mode: QuantMode,
    pub latency_ms: f64,
    pub speedup: f64,
    pub model_bytes: u64,
    pub top1: Option<f64>,
    /// Mean output cosine with the original model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f64>,
    pub error: Option<String>,
}

impl QuantProbe {
    /// The probe as an evaluation of the quantized baseline (quantization keeps MACs).
    pub fn as_evaluation(&self, baseline: &Evaluation) -> Evaluation {
        Evaluation {
            top1: self.top1.unwrap_or(f64::NEG_INFINITY),
            latency_ms: self.latency_ms,
            model_bytes: self.model_bytes,
            images: baseline.images,
            loss: None,
            macs: baseline.macs,
            cosine: self.cosine,
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
    pub error: Option<String>,
}

/// One earlier round in a few fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    pub round: usize,
    pub plan: String,
    pub top1: Option<f64>,
    pub latency_ms: Option<f64>,
    pub model_bytes: Option<u64>,
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
    /// Top-1 drop of `top1` against the baseline, points.
    pub fn drop_of(&self, top1: f64) -> f64 {
        self.baseline.top1 - top1
    }
}
