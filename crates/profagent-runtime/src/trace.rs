//! Per-kernel timings as a runtime reports them, before they are attributed to ONNX nodes, and
//! the parser for ONNX Runtime's Chrome-trace profile.
//!
//! ORT writes one JSON array of events. We keep `cat == "Node"` events whose name ends in
//! `_kernel_time` (one per kernel execution; `dur` in µs, `args.op_name`, `args.output_size`)
//! and the `model_run` session events that delimit runs.
use std::collections::HashMap;

use crate::{OptLevel, Result, RuntimeError, RuntimeKind};

const KERNEL_SUFFIX: &str = "_kernel_time";

/// One kernel (runtime node) over all recorded runs, in execution order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KernelRecord {
    /// The runtime's name for it (ORT: node name, or output tensor name plus `_nchwc` after
    /// layout fusion; tract: ONNX node name plus `.suffix` for pieces of a lowered node).
    pub name: String,
    /// The runtime's op (e.g. `FusedConv`, `Conv`, `MatMul`).
    pub op_type: String,
    /// Time in ms in each recorded run (0 when it did not run in that run).
    pub samples_ms: Vec<f64>,
    /// Bytes of the kernel's outputs, when the runtime reports it.
    pub output_bytes: Option<u64>,
}

/// Everything one profiling pass recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KernelTrace {
    pub runtime: RuntimeKind,
    /// Graph optimisation level of the profiled session (None for tract: it always optimises).
    pub opt_level: Option<OptLevel>,
    /// The runtime's own time for each whole recorded run, in ms.
    pub run_totals_ms: Vec<f64>,
    pub kernels: Vec<KernelRecord>,
    /// Peak bytes of the runtime's activation memory during the runs, when reported.
    pub peak_activation_bytes: Option<u64>,
}

fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Parses ORT's profile JSON, dropping the first `skip_runs` runs (warm-up).
pub fn parse_ort_trace(json: &str, skip_runs: usize, opt_level: OptLevel) -> Result<KernelTrace> {
    let bad = |reason: String| RuntimeError::Profile {
        runtime: "onnxruntime",
        reason,
    };
    let events: Vec<serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| bad(format!("profile is not a JSON event array: {e}")))?;
    let span = |event: &serde_json::Value| {
        let start = number(&event["ts"])?;
        Some((start, start + number(&event["dur"])?))
    };
    let mut runs: Vec<(f64, f64)> = events
        .iter()
        .filter(|e| e["cat"] == "Session" && e["name"] == "model_run")
        .filter_map(span)
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    if runs.len() <= skip_runs {
        return Err(bad(format!(
            "profile holds {} runs, fewer than the {} warm-up runs plus one",
            runs.len(),
            skip_runs
        )));
    }
    let recorded = &runs[skip_runs..];
    let mut kernels: Vec<KernelRecord> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut peak_activation: Option<u64> = None;
    for event in events.iter().filter(|e| e["cat"] == "Node") {
        let Some(full_name) = event["name"].as_str() else {
            continue;
        };
        let Some(name) = full_name.strip_suffix(KERNEL_SUFFIX) else {
            continue;
        };
        let Some((start, _)) = span(event) else {
            continue;
        };
        let Some(run) = recorded
            .iter()
            .position(|&(run_start, run_end)| start >= run_start && start <= run_end)
        else {
            continue;
        };
        let args = &event["args"];
        let slot = *position.entry(name.to_string()).or_insert_with(|| {
            kernels.push(KernelRecord {
                name: name.to_string(),
                op_type: args["op_name"].as_str().unwrap_or("?").to_string(),
                samples_ms: vec![0.0; recorded.len()],
                output_bytes: number(&args["output_size"]).map(|v| v as u64),
            });
            kernels.len() - 1
        });
        kernels[slot].samples_ms[run] += number(&event["dur"]).unwrap_or(0.0) / 1e3;
        if let Some(peak) = number(&args["mem_in_use_peak"]) {
            peak_activation = Some(peak_activation.unwrap_or(0).max(peak as u64));
        }
    }
    if kernels.is_empty() {
        return Err(bad("profile holds no kernel events".to_string()));
    }
    Ok(KernelTrace {
        runtime: RuntimeKind::Ort,
        opt_level: Some(opt_level),
        run_totals_ms: recorded.iter().map(|(s, e)| (e - s) / 1e3).collect(),
        kernels,
        peak_activation_bytes: peak_activation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runs_and_kernels() {
        let json = r#"[
          {"cat":"Session","name":"model_run","ts":0,"dur":100},
          {"cat":"Node","name":"a_kernel_time","ts":10,"dur":50,"args":{"op_name":"Conv","output_size":"64"}},
          {"cat":"Session","name":"model_run","ts":200,"dur":100},
          {"cat":"Node","name":"a_kernel_time","ts":210,"dur":40,"args":{"op_name":"Conv","output_size":"64","mem_in_use_peak":"1000"}},
          {"cat":"Node","name":"a_fence_before","ts":211,"dur":1,"args":{}},
          {"cat":"Node","name":"b_kernel_time","ts":260,"dur":30,"args":{"op_name":"Relu"}}
        ]"#;
        let trace = parse_ort_trace(json, 1, OptLevel::All).unwrap();
        assert_eq!(trace.run_totals_ms, vec![0.1]);
        assert_eq!(trace.kernels.len(), 2);
        assert_eq!(trace.kernels[0].samples_ms, vec![0.04]);
        assert_eq!(trace.kernels[0].output_bytes, Some(64));
        assert_eq!(trace.kernels[1].op_type, "Relu");
        assert_eq!(trace.peak_activation_bytes, Some(1000));
        assert!(parse_ort_trace(json, 2, OptLevel::All).is_err());
        assert!(parse_ort_trace("{}", 0, OptLevel::All).is_err());
    }
}
