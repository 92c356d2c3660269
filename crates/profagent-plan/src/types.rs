//! The compression plan: the versioned contract between every planner (LLM or built-in) and
//! the code that applies plans.
//!
//! A plan holds structured-pruning decisions (one per prunable group or layer) and
//! quantization decisions (one mode per layer, with a default), each with its rationale. The
//! JSON Schema in `schema/plan.schema.json` is generated from these types (see `schema.rs`);
//! change the types and the staleness test tells you to regenerate it.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The version of the plan format these types describe. Bump it on any incompatible change.
pub const PLAN_SCHEMA_VERSION: u32 = 1;
/// Pruning decisions per plan: a round changes a handful of groups and the loop iterates, so
/// a bound keeps answers short enough for small models' output budgets (and their grammars).
pub const MAX_PRUNING_DECISIONS: usize = 12;
/// Per-layer quantization overrides per plan.
pub const MAX_LAYER_OVERRIDES: usize = 24;
/// Characters in any rationale.
pub const MAX_RATIONALE_CHARS: usize = 400;

fn default_schema_version() -> u32 {
    PLAN_SCHEMA_VERSION
}

/// One round's compression plan for a model.
///
/// Pruning ratios apply to the model as it is at the start of the round (after the pruning
/// already accepted in earlier rounds). Quantization is the full choice for the resulting model;
/// leave `quantization` out to keep the choice of the model the round starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompressionPlan {
    /// Plan format version; must be 1.
    #[serde(default = "default_schema_version")]
    // The only version this tool reads; a range of one value lets grammar-constrained
    // decoders emit nothing else.
    #[schemars(range(min = 1, max = 1))]
    pub schema_version: u32,
    /// Why this plan: the bottlenecks it targets and the risks it accepts, in a few sentences.
    #[serde(default)]
    #[schemars(length(max = 400))]
    pub rationale: String,
    /// Structured pruning, one entry per group (or layer of a group). Empty: no pruning.
    #[serde(default)]
    #[schemars(length(max = 12))]
    pub pruning: Vec<PruneDecision>,
    /// Post-training quantization of the resulting model. Absent: keep the current choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<QuantizationPlan>,
}

/// Remove a fraction of the channels (or attention heads) of one prunable group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneDecision {
    /// A prunable group id, or the name of a layer that belongs to exactly one group.
    pub target: String,
    /// Fraction of the group's current channels (or heads) to remove, in (0, 1). Give this or
    /// `keep`, not both.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 0.9))]
    pub ratio: f64,
    /// Exact number of channels (or heads) to keep instead of a ratio: "keep 48 of 64" where a
    /// ratio would need 0.25; `round_to` does not apply to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Absent when a ratio is given: an optional integer, not a nullable one (structured-output
    // endpoints and grammar converters take plain types more reliably than type arrays).
    #[schemars(with = "u32", range(min = 1))]
    pub keep: Option<usize>,
    /// What gets removed: output channels (convolutions, MLP width) or whole attention heads.
    #[serde(default)]
    pub unit: PruneUnit,
    /// How channels are ranked; the least important ones are removed.
    #[serde(default)]
    pub criterion: ImportanceCriterion,
    /// Round the number of kept channels to a multiple of this (keeps kernels aligned; 1 = off).
    #[serde(default = "default_round_to")]
    pub round_to: u32,
    /// Why this group and this ratio.
    #[serde(default)]
    #[schemars(length(max = 400))]
    pub rationale: String,
}

fn default_round_to() -> u32 {
    1
}

/// What a pruning decision removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PruneUnit {
    /// Output channels of a convolution / features of an MLP hidden layer.
    #[default]
    Channels,
    /// Whole attention heads (the group must be an attention block).
    Heads,
}

/// Channel importance criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportanceCriterion {
    /// Sum of absolute weights of the channel (magnitude).
    #[default]
    L1,
    /// Euclidean norm of the channel's weights.
    L2,
    /// Random ranking (a baseline, seeded).
    Random,
    /// Data-aware (Optimal Brain Surgeon): channels removed greedily by the least increase of
    /// the next layers' reconstruction error on calibration data, re-fitting after each
    /// removal. Needs calibration data (the applier uses l1 without it).
    Obs,
}

/// Post-training quantization: a default for every quantizable layer plus per-layer overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantizationPlan {
    /// Applied to every quantizable layer without an override.
    pub default: QuantSetting,
    /// Per-layer exceptions (e.g. keep a sensitive layer in float with mode "none").
    #[serde(default)]
    #[schemars(length(max = 24))]
    pub layers: Vec<LayerQuantization>,
    /// Why this quantization.
    #[serde(default)]
    #[schemars(length(max = 400))]
    pub rationale: String,
}

/// How one layer (or the default) is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantSetting {
    pub mode: QuantMode,
    /// One scale per output channel instead of one per tensor (more accurate).
    #[serde(default = "default_true")]
    pub per_channel: bool,
    /// Signed int8 weights (s8). Unsigned (u8) weights are slower on most x86 kernels.
    #[serde(default = "default_true")]
    pub signed_weights: bool,
    /// Static mode: element type of the quantized activations (other modes ignore it). ONNX
    /// Runtime's CPU kernels fuse uint8 everywhere; take int8 only where a probe measured it
    /// faster.
    #[serde(default)]
    pub activations: QuantActivations,
    /// Static mode: how activation ranges are read from the calibration data (other modes
    /// ignore it; one method per model: per-layer overrides take the default's). Which
    /// method keeps most accuracy depends on the model's activations, so compress measures
    /// them on the feedback slice and shows the results with the static probe.
    #[serde(default, skip_serializing_if = "QuantCalibration::is_min_max")]
    pub calibration: QuantCalibration,
}

/// How static quantization reads activation ranges from calibration data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantCalibration {
    /// The observed minimum and maximum.
    #[default]
    Minmax,
    /// The 0.01 and 99.99 percentiles (clips rare outliers).
    Percentile,
    /// The range minimizing the KL divergence between the histogram and its 8-bit version.
    Entropy,
    /// The range minimizing the expected squared quantization error (clipping plus rounding).
    Mse,
}

impl QuantCalibration {
    pub const ALL: [QuantCalibration; 4] = [
        QuantCalibration::Minmax,
        QuantCalibration::Percentile,
        QuantCalibration::Entropy,
        QuantCalibration::Mse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QuantCalibration::Minmax => "minmax",
            QuantCalibration::Percentile => "percentile",
            QuantCalibration::Entropy => "entropy",
            QuantCalibration::Mse => "mse",
        }
    }

    pub fn is_min_max(&self) -> bool {
        *self == QuantCalibration::Minmax
    }
}

/// Element type of statically quantized activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantActivations {
    /// uint8, asymmetric.
    #[default]
    Uint8,
    /// int8, asymmetric.
    Int8,
}

impl QuantActivations {
    pub fn as_str(self) -> &'static str {
        match self {
            QuantActivations::Uint8 => "uint8",
            QuantActivations::Int8 => "int8",
        }
    }
}

fn default_true() -> bool {
    true
}

impl QuantSetting {
    /// Float: no quantization.
    pub const NONE: QuantSetting = QuantSetting {
        mode: QuantMode::None,
        per_channel: true,
        signed_weights: true,
        activations: QuantActivations::Uint8,
        calibration: QuantCalibration::Minmax,
    };

    pub fn new(mode: QuantMode) -> Self {
        QuantSetting { mode, ..Self::NONE }
    }
}

/// A per-layer quantization override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerQuantization {
    /// Layer name, as listed in the profile.
    pub layer: String,
    pub mode: QuantMode,
    /// One scale per output channel instead of one per tensor.
    #[serde(default = "default_true")]
    pub per_channel: bool,
    /// Signed int8 weights (s8).
    #[serde(default = "default_true")]
    pub signed_weights: bool,
    /// Why this layer differs from the default.
    #[serde(default)]
    #[schemars(length(max = 400))]
    pub rationale: String,
}

/// Quantization method.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QuantMode {
    /// Keep float32.
    None,
    /// Dynamic int8: weights int8 offline, activations quantized at run time (MatMul/Gemm).
    Dynamic,
    /// Static int8 (QDQ): weights and activations, activation ranges from calibration data.
    Static,
    /// Weight-only int4 (blockwise; MatMul).
    Int4,
}

impl QuantMode {
    pub const ALL: [QuantMode; 4] = [
        QuantMode::None,
        QuantMode::Dynamic,
        QuantMode::Static,
        QuantMode::Int4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QuantMode::None => "none",
            QuantMode::Dynamic => "dynamic",
            QuantMode::Static => "static",
            QuantMode::Int4 => "int4",
        }
    }
}

impl std::fmt::Display for QuantMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CompressionPlan {
    /// A plan that changes nothing.
    pub fn empty(rationale: impl Into<String>) -> Self {
        CompressionPlan {
            schema_version: PLAN_SCHEMA_VERSION,
            rationale: rationale.into(),
            pruning: Vec::new(),
            quantization: None,
        }
    }

    /// True when applying the plan would change nothing.
    pub fn is_noop(&self) -> bool {
        self.pruning.is_empty() && self.quantization.is_none()
    }
}

impl QuantizationPlan {
    /// The setting that applies to `layer`.
    pub fn setting_for(&self, layer: &str) -> QuantSetting {
        self.layers
            .iter()
            .find(|l| l.layer == layer)
            .map(|l| QuantSetting {
                // One activation type and calibration per model: overrides take the default's.
                activations: self.default.activations,
                calibration: self.default.calibration,
                ..l.setting()
            })
            .unwrap_or(self.default)
    }
}

impl LayerQuantization {
    pub fn setting(&self) -> QuantSetting {
        QuantSetting {
            mode: self.mode,
            per_channel: self.per_channel,
            signed_weights: self.signed_weights,
            activations: QuantActivations::default(),
            calibration: QuantCalibration::default(),
        }
    }
}
