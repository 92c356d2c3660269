//! Dependency groups: sets of weight slices that must be removed together.
//!
//! A group has `units` prunable units (channels, MLP neurons or attention heads). Removing
//! unit `u` removes, in every member tensor, the indices `AxisMap::indices(u)` along one axis,
//! and may rewrite shape constants (head counts) or a depthwise Conv's `group` attribute.
use serde::Serialize;

/// What a group's units are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Conv/Gemm output channels (with BN, activations, residual Adds, depthwise convs).
    Channel,
    /// Hidden width of a transformer MLP (`MatMul` fc1 → activation → `MatMul` fc2).
    Mlp,
    /// Whole attention heads (qkv projection columns, output projection rows, shape constants).
    Heads,
}

impl GroupKind {
    /// The conv-group width a group of this kind with `unit_width` channels per unit is counted
    /// in: channel groups a grouped Conv reads go a whole conv group at a time (`None`: one
    /// channel, MLP unit or head per unit).
    pub fn conv_group_width(self, unit_width: usize) -> Option<usize> {
        (self == GroupKind::Channel && unit_width > 1).then_some(unit_width)
    }
}

/// Whether a group can be pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GroupStatus {
    Prunable,
    /// The pruner does not understand something on the group's path (the reason names it);
    /// these layers are left untouched.
    Unprunable {
        reason: String,
    },
}

/// Maps unit `u` to indices along an axis: for each block `b < blocks`,
/// `base + b * block_stride + u * unit_len + j` for `j < unit_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisMap {
    pub base: usize,
    pub blocks: usize,
    pub block_stride: usize,
    pub unit_len: usize,
}

impl AxisMap {
    pub fn simple(base: usize) -> Self {
        AxisMap {
            base,
            blocks: 1,
            block_stride: 0,
            unit_len: 1,
        }
    }

    pub fn indices(&self, unit: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.blocks).flat_map(move |b| {
            let start = self.base + b * self.block_stride + unit * self.unit_len;
            start..start + self.unit_len
        })
    }
}

/// What a sliced tensor is, for importance and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceRole {
    /// Output side of a producer (Conv/Gemm/MatMul weight rows or columns).
    ProducerWeight,
    /// Input side of a consumer.
    ConsumerWeight,
    /// Bias or other per-channel constant.
    Bias,
    /// BatchNormalization scale (gamma): the `bn` importance reads it.
    BnScale,
    /// Other BatchNormalization parameters.
    BnParam,
}

/// One tensor slice a group removes.
#[derive(Debug, Clone)]
pub struct Slice {
    pub tensor: String,
    pub axis: usize,
    pub map: AxisMap,
    pub role: SliceRole,
    /// The node that reads the tensor (for layer names and cost).
    pub node: usize,
}

/// A non-weight edit a group needs.
#[derive(Debug, Clone)]
pub enum Rewrite {
    /// A depthwise or grouped Conv's `group` must equal its (new) output channel count over
    /// `channels_per_group` (1 for depthwise).
    ConvGroupFromWeight {
        node: usize,
        channels_per_group: usize,
    },
    /// Element `element` of constant value `value` becomes `kept_units * per_unit`.
    ShapeConst {
        value: String,
        element: usize,
        per_unit: i64,
    },
}

/// A value whose per-channel activations belong to the group (for activation importance,
/// BN re-calibration and bias correction): `axis` counted from the end (-1 = last).
#[derive(Debug, Clone)]
pub struct Probe {
    pub value: String,
    pub axis_from_end: i64,
    pub base: usize,
    /// Channels per unit: unit `u` is channels `base + u·width ..` (`width` of them).
    pub width: usize,
}

/// A dependency group.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Stable id: the first producer's layer name (`layer1.0.conv1`, `blocks.3.mlp.fc1`).
    pub id: String,
    pub kind: GroupKind,
    /// Layers whose outputs this group prunes.
    pub producers: Vec<String>,
    /// Every layer touched (producers, BN, depthwise convs, consumers).
    pub layers: Vec<String>,
    /// Number of units (channels or heads).
    pub units: usize,
    /// True when the group's channels are a residual stream: an `Add` of two tensors laid
    /// out in its channels (a skip connection) couples its producers, so pruning it thins
    /// every block on the stream at once.
    pub residual: bool,
    /// Channels per unit (head size for heads; a grouped Conv's group width for the channels
    /// it reads, which go a whole group at a time; 1 otherwise).
    pub unit_width: usize,
    #[serde(flatten)]
    pub status: GroupStatus,
    #[serde(skip)]
    pub slices: Vec<Slice>,
    #[serde(skip)]
    pub rewrites: Vec<Rewrite>,
    #[serde(skip)]
    pub probes: Vec<Probe>,
    /// Consumer nodes reading this group's channels (for bias correction).
    #[serde(skip)]
    pub consumer_nodes: Vec<usize>,
    /// Nodes whose MACs scale with the kept fraction without owning a weight (attention's
    /// `q·kᵀ` and `·v` MatMuls).
    #[serde(skip)]
    pub scaled_nodes: Vec<usize>,
}

impl Group {
    pub fn is_prunable(&self) -> bool {
        self.status == GroupStatus::Prunable
    }

    pub fn has_batchnorm(&self) -> bool {
        self.slices.iter().any(|s| s.role == SliceRole::BnScale)
    }
}
