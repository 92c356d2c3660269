//! Measured columns: merges a runtime's `DynamicProfile` (per-layer latency, end-to-end
//! latency, memory) into the static `Profile`, and records how and where it was measured.
//!
//! Layers are matched by name (both sides use `profagent_onnx::layer_of_node`). A static layer
//! with no measured kernel gets 0 ms: the runtime folded or fused it away (Shape/Gather chains,
//! a Relu inside a FusedConv), which is a real cost of zero, not a gap.
use profagent_runtime::profile::{AttributionSummary, MemoryProfile, Spread};
use profagent_runtime::{DynamicProfile, LatencyStats, MachineInfo, OptLevel, RuntimeKind};
use serde::{Deserialize, Serialize};

use crate::types::Profile;

/// How, where and how reliably the measured columns were obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub runtime: RuntimeKind,
    pub runtime_version: String,
    pub machine: MachineInfo,
    /// Intra-op threads asked for (0 = the runtime's default).
    pub threads: usize,
    pub opt_level: OptLevel,
    pub warmup: usize,
    pub runs: usize,
    /// Plain-session latency per run (model.latency_ms is its median).
    pub end_to_end: LatencyStats,
    /// The runtime's whole-run time in the profiled runs (profiler overhead included).
    pub profiled_run: Spread,
    /// Sum of layer medians / end-to-end median.
    pub layer_sum_ratio: f64,
    /// Median per-run kernel sum as the runtime's profiler timed it, ms (before the overhead
    /// correction).
    #[serde(default)]
    pub layer_sum_raw_ms: f64,
    /// Factor applied to the profiled kernel times to remove the profiler's own overhead
    /// (1 = none; see profagent_runtime::profile).
    #[serde(default = "one")]
    pub profiler_scale: f64,
    /// Share of the timed runs the measuring thread waited for a CPU (machine busy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_wait_fraction: Option<f64>,
    pub attribution: AttributionSummary,
    pub memory: MemoryProfile,
    /// Measured time that belongs to no static layer (runtime-inserted kernels), in ms.
    pub unmatched_layer_ms: f64,
    pub warnings: Vec<String>,
}

fn one() -> f64 {
    1.0
}

/// Fills the measured fields of `profile` from `measured`.
pub fn merge_measured(profile: &mut Profile, measured: &DynamicProfile) {
    let mut unmatched_layer_ms = 0.0;
    for layer in &measured.layers {
        if profile.layer(&layer.layer).is_none() {
            unmatched_layer_ms += layer.latency.median_ms;
        }
    }
    for layer in &mut profile.layers {
        let found = measured.layers.iter().find(|m| m.layer == layer.name);
        layer.latency_ms = Some(found.map_or(0.0, |m| m.latency.median_ms));
        layer.latency_share = Some(found.map_or(0.0, |m| m.share));
    }
    for node in &mut profile.nodes {
        let found = measured.nodes.iter().find(|m| m.node == node.name);
        node.latency_ms = Some(found.map_or(0.0, |m| m.latency.median_ms));
    }
    crate::rank::assign_latency_ranks(profile);
    profile.model.latency_ms = Some(measured.end_to_end.median_ms);
    profile.model.peak_rss_bytes = measured.memory.peak_rss_bytes;
    profile.measurement = Some(Measurement {
        runtime: measured.runtime,
        runtime_version: measured.runtime_version.clone(),
        machine: measured.machine.clone(),
        threads: measured.threads,
        opt_level: measured.opt_level,
        warmup: measured.settings.warmup,
        runs: measured.settings.runs,
        end_to_end: measured.end_to_end.clone(),
        profiled_run: measured.profiled_run,
        layer_sum_ratio: measured.layer_sum_ratio,
        layer_sum_raw_ms: measured.layer_sum_raw_ms,
        profiler_scale: measured.profiler_scale,
        cpu_wait_fraction: measured.cpu_wait_fraction,
        attribution: measured.attribution.clone(),
        memory: measured.memory.clone(),
        unmatched_layer_ms,
        warnings: measured.warnings.clone(),
    });
}

/// Lines for the terminal under the table: where it ran, end-to-end latency, memory, warnings.
pub fn render_measurement(measurement: &Measurement) -> String {
    let mut text = String::new();
    let machine = &measurement.machine;
    let isa: Vec<&str> = [
        ("avx2", machine.avx2),
        ("avx512f", machine.avx512f),
        ("avx512_vnni", machine.avx512_vnni),
        ("amx_int8", machine.amx_int8),
    ]
    .iter()
    .filter(|(_, present)| *present)
    .map(|(name, _)| *name)
    .collect();
    let threads = if measurement.threads == 0 {
        "default".to_string()
    } else {
        measurement.threads.to_string()
    };
    text.push_str(&format!(
        "measured on {} ({} logical cores; {}) with {}, {threads} threads, opt level {:?}\n",
        machine.cpu_model,
        machine.logical_cores,
        if isa.is_empty() {
            "no int8 ISA extensions".to_string()
        } else {
            isa.join(" ")
        },
        measurement.runtime_version,
        measurement.opt_level,
    ));
    let e2e = &measurement.end_to_end;
    text.push_str(&format!(
        "end-to-end latency: median {:.3} ms, p90 {:.3} ms, IQR {:.3} ms, CV {:.1}% over {} runs; layers add up to {:.1}% of it\n",
        e2e.median_ms,
        e2e.p90_ms,
        e2e.iqr_ms,
        e2e.cv * 100.0,
        measurement.runs,
        measurement.layer_sum_ratio * 100.0
    ));
    if measurement.profiler_scale < 0.995 {
        text.push_str(&format!(
            "profiler overhead: with the profiler on, the kernels took {:.3} ms per run vs {:.3} ms end to end without it; per-layer times are scaled by {:.2} to describe the unprofiled run\n",
            measurement.layer_sum_raw_ms, e2e.median_ms, measurement.profiler_scale
        ));
    }
    let memory = &measurement.memory;
    let bytes = |v: Option<u64>| v.map_or("n/a".to_string(), crate::table::human_bytes);
    text.push_str(&format!(
        "memory: weights {}, peak RSS {} (session {}), peak activations {}\n",
        crate::table::human_bytes(memory.weight_bytes),
        bytes(memory.peak_rss_bytes),
        bytes(memory.session_rss_bytes),
        bytes(memory.peak_activation_bytes),
    ));
    text.push_str(&format!(
        "attribution: {}\n",
        measurement.attribution.description
    ));
    for warning in &measurement.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text
}
