//! The `Profile` data model: one row per node and per layer, plus model totals.
//!
//! Static fields (params, MACs, bytes) are always filled by `static_cost`; measured fields
//! (`latency_ms`, `latency_share`, `peak_rss_bytes`) are `None` until a runtime measurement
//! is merged in, and are left out of the JSON while absent.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole-model profile at one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub model: ModelSummary,
    /// Layers in graph order (first node of each layer in topological order).
    pub layers: Vec<LayerProfile>,
    /// Every node in topological order.
    pub nodes: Vec<NodeProfile>,
    /// What the static analysis could not see: a profile with gaps says so.
    pub coverage: Coverage,
    /// How the measured fields were obtained (runtime, machine, spread, memory); absent for a
    /// static-only profile. Only with the `measured` feature.
    #[cfg(feature = "measured")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<crate::dynamic::Measurement>,
    /// Which quantized nodes the runtime runs as int8 kernels after its own graph
    /// optimisation (absent for a static-only profile or a runtime that cannot show it).
    /// Only with the `measured` feature.
    #[cfg(feature = "measured")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<profagent_runtime::FusionReport>,
}

/// Totals for the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The file profiled, when it came from a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Batch size the MACs and activation bytes are computed for.
    pub batch: i64,
    pub node_count: usize,
    pub layer_count: usize,
    /// Elements of floating-point initializers (each counted once).
    pub params: u64,
    /// Multiply-accumulates of Conv/Gemm/MatMul (and their quantized forms) at `batch`.
    pub macs: u64,
    /// Bytes of all initializers, any dtype, each counted once.
    pub weight_bytes: u64,
    /// Bytes of all node outputs at `batch`.
    pub activation_bytes: u64,
    /// Measured mean latency of one inference at `batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Measured peak resident memory of the process while running the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// One layer: the nodes an exporter scoped under one module path (`blocks.3.attn.qkv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerProfile {
    pub name: String,
    /// Distinct op types of the layer's nodes, in first-seen order.
    pub op_types: Vec<String>,
    /// Names of the layer's nodes (labels `op#index` for unnamed ones).
    pub nodes: Vec<String>,
    pub params: u64,
    pub macs: u64,
    /// Bytes of the initializers the layer's nodes read (shared ones once per layer).
    pub weight_bytes: u64,
    /// Bytes of the layer's node outputs at the profile's batch.
    pub activation_bytes: u64,
    /// Fraction of the model's MACs (0 when the model has none).
    pub macs_share: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Fraction of measured node time spent in this layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_share: Option<f64>,
    /// 1 = slowest, from the noise-aware ranking of `rank` (identical layers pooled, near
    /// ties ordered by MACs): sort by this rather than by the raw `latency_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_rank: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// How the runtime runs the layer's quantized nodes (absent when it has none or fusion
    /// was not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<LayerKernels>,
}

/// A layer's quantized nodes by what the runtime runs them as (`crate::fusion`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerKernels {
    /// Run as one int8 kernel each (QLinearConv, QGemm, ...).
    pub int8: usize,
    /// Left in float between dequantize and quantize (float islands).
    pub float: usize,
    /// Folded into a neighbouring kernel.
    pub absorbed: usize,
    /// Layout ops (Transpose, NCHWc reorders) the runtime inserted next to them.
    pub layout_ops: usize,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeProfile {
    /// Node name, or `op#index` when the file leaves it empty.
    pub name: String,
    pub op_type: String,
    pub layer: String,
    /// Output dims at the profile's batch (`None` where not inferred).
    pub output_shapes: Vec<Option<Vec<i64>>>,
    /// Float initializer elements first read by this node.
    pub params: u64,
    pub macs: u64,
    pub weight_bytes: u64,
    pub activation_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// Gaps in the static analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Op types shape inference does not know → node count.
    pub unsupported_ops: BTreeMap<String, usize>,
    /// Compute nodes (Conv, Gemm, MatMul, ...) whose MACs could not be computed because their
    /// shapes are unknown: the model's MACs are a lower bound when this is not empty.
    pub nodes_without_macs: Vec<String>,
    /// Node outputs whose size is unknown: activation bytes leave them out.
    pub values_without_shape: usize,
}

impl Profile {
    /// True when every node's cost and every activation size was computed.
    pub fn is_complete(&self) -> bool {
        self.coverage.unsupported_ops.is_empty()
            && self.coverage.nodes_without_macs.is_empty()
            && self.coverage.values_without_shape == 0
    }

    pub fn layer(&self, name: &str) -> Option<&LayerProfile> {
        self.layers.iter().find(|l| l.name == name)
    }

    pub fn to_json(&self) -> crate::Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| crate::ProfileError::Json {
            reason: e.to_string(),
        })
    }

    /// Writes the profile as pretty JSON, atomically.
    pub fn write_json(&self, path: &std::path::Path) -> crate::Result<()> {
        let mut text = self.to_json()?;
        text.push('\n');
        Ok(profagent_onnx::write_atomic(path, text.as_bytes())?)
    }
}
