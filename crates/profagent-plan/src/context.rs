//! `PlanContext`: what a plan is validated against (layer names, prunable groups and their
//! sizes, protected layers, the quantization modes the applier offers).
//!
//! It is plain data so that this crate needs nothing from the profiling, pruning or
//! quantization crates: whoever drives the loop fills it from their analyses.
//! `PlanContext::from_model` fills the layer table straight from an ONNX graph.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::types::QuantMode;

/// The largest pruning ratio a plan may ask for in one round unless the context says otherwise.
pub const DEFAULT_MAX_PRUNE_RATIO: f64 = 0.9;

/// Everything a plan may refer to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanContext {
    /// Layer name → what it is.
    pub layers: BTreeMap<String, LayerInfo>,
    /// Group id → a set of layers whose channels must be pruned together.
    pub groups: BTreeMap<String, GroupInfo>,
    /// Layers a plan may neither prune nor quantize (e.g. the classifier head, the stem).
    pub protected_layers: BTreeSet<String>,
    /// Quantization modes the applier can produce (`none` is always allowed).
    pub quant_modes: BTreeSet<QuantMode>,
    /// Whether one model may mix different non-float quantization modes.
    pub mixed_quant_modes: bool,
    /// Upper bound on a single decision's ratio.
    pub max_prune_ratio: f64,
}

/// One layer of the graph (a torch module path, see `profagent_onnx::naming`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// ONNX op types of the nodes in this layer.
    pub op_types: Vec<String>,
    /// Quantization modes this layer supports (empty: not quantizable).
    pub quant_modes: BTreeSet<QuantMode>,
}

/// A dependency group: layers coupled by shapes (residual adds, attention heads), pruned as one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Current number of prunable channels (output channels / hidden features).
    pub channels: usize,
    /// Current number of attention heads when the group is an attention block.
    pub heads: Option<usize>,
    /// Layers whose weights change when this group is pruned.
    pub layers: Vec<String>,
    /// Layers whose outputs this group prunes (a subset of `layers`; the others only lose
    /// inputs). A protected layer among them keeps the group whole; a protected consumer (a
    /// classifier reading a pruned stream) only loses inputs and keeps its outputs. Empty
    /// (contexts written before this field): every layer counts as a producer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub producers: Vec<String>,
    /// `None` when prunable; otherwise why not (shown to planners).
    pub not_prunable: Option<String>,
    /// At least this many channels must stay.
    pub min_channels: usize,
    /// Channels per counted unit: a grouped convolution's group width when the group's
    /// channels feed one (they go a whole conv group at a time, and `channels` counts conv
    /// groups); 1 otherwise.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub unit_channels: usize,
}

/// Serde default and skip test of the `unit_channels` fields (context and resolved plans).
pub(crate) fn one() -> usize {
    1
}

pub(crate) fn is_one(n: &usize) -> bool {
    *n == 1
}

impl GroupInfo {
    /// A group whose every layer counts as a producer (set `producers` to narrow it).
    pub fn new(channels: usize, layers: Vec<String>) -> Self {
        GroupInfo {
            channels,
            heads: None,
            producers: Vec::new(),
            layers,
            not_prunable: None,
            min_channels: 1,
            unit_channels: 1,
        }
    }
}

/// Which quantization modes an op type supports in the appliers we ship (a registry, not a
/// match scattered through the code).
const QUANTIZABLE_OPS: &[(&str, &[QuantMode])] = &[
    ("Conv", &[QuantMode::Dynamic, QuantMode::Static]),
    (
        "MatMul",
        &[QuantMode::Dynamic, QuantMode::Static, QuantMode::Int4],
    ),
    ("Gemm", &[QuantMode::Dynamic, QuantMode::Static]),
];

/// Quantization modes supported for `op_type` (empty when the op is never quantized).
pub fn quant_modes_for_op(op_type: &str) -> BTreeSet<QuantMode> {
    QUANTIZABLE_OPS
        .iter()
        .find(|(op, _)| *op == op_type)
        .map(|(_, modes)| modes.iter().copied().collect())
        .unwrap_or_default()
}

impl PlanContext {
    /// An empty context with the default limits and every quantization mode available.
    pub fn new() -> Self {
        PlanContext {
            quant_modes: QuantMode::ALL.into_iter().collect(),
            max_prune_ratio: DEFAULT_MAX_PRUNE_RATIO,
            ..Default::default()
        }
    }

    /// Layers from an ONNX graph, named by `profagent_onnx::layer_of_node`, with the
    /// quantization modes their ops support. Groups and protection are left to the caller.
    pub fn from_model(model: &profagent_onnx::Model) -> Self {
        let mut context = Self::new();
        for (index, node) in model.graph().node.iter().enumerate() {
            let layer = profagent_onnx::layer_of_node(node.name(), node.op_type(), index);
            let info = context.layers.entry(layer).or_default();
            let op = node.op_type().to_string();
            info.quant_modes.extend(quant_modes_for_op(&op));
            if !info.op_types.contains(&op) {
                info.op_types.push(op);
            }
        }
        context
    }

    /// Groups whose layers include `layer`.
    pub fn groups_of_layer(&self, layer: &str) -> Vec<&str> {
        self.groups
            .iter()
            .filter(|(_, g)| g.layers.iter().any(|l| l == layer))
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// True when group `id` exists, the pruner can follow it, and none of its producers is
    /// protected: what a plan may prune.
    pub fn may_prune(&self, id: &str) -> bool {
        self.groups
            .get(id)
            .is_some_and(|g| g.not_prunable.is_none() && self.group_is_protected(g).is_none())
    }

    /// The protected layer whose outputs `group` would prune, if any: the rule
    /// `profagent_prune::prune` applies (a protected layer that only reads the group's channels,
    /// such as a classifier after a pooled stream, loses inputs and keeps every output).
    pub fn group_is_protected<'g>(&self, group: &'g GroupInfo) -> Option<&'g str> {
        let producers = if group.producers.is_empty() {
            &group.layers
        } else {
            &group.producers
        };
        producers
            .iter()
            .find(|l| self.protected_layers.contains(*l))
            .map(String::as_str)
    }
}
