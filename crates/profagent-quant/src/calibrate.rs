//! Calibration: the value ranges of chosen activation tensors over sample inputs.
//!
//! A copy of the model gets those tensors as extra graph outputs; every batch runs through
//! ONNX Runtime (via `profagent-runtime`) and each tensor's values update its statistics:
//! min/max, or a bounded sample for percentiles (every value would not fit in memory for
//! large activations, so each batch contributes at most `SAMPLES_PER_BATCH` evenly strided
//! values per tensor).
use std::collections::HashMap;

use profagent_onnx::builder::value_info;
use profagent_onnx::Model;
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions, Tensor};

use crate::error::{QuantError, Result};
use crate::spec::Calibration;

/// One batch of named model inputs.
pub type Batch = Vec<(String, Tensor)>;

/// Values kept per tensor and batch for percentile calibration.
pub const SAMPLES_PER_BATCH: usize = 1 << 16;

/// Observed range of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub lo: f32,
    pub hi: f32,
}

#[derive(Default)]
struct Stats {
    lo: f32,
    hi: f32,
    seen: bool,
    samples: Vec<f32>,
}

/// Runs `batches` through `model` and returns the calibrated range of every tensor in
/// `tensors` (which must be float activations of the graph).
pub fn calibrate(
    model: &Model,
    tensors: &[String],
    batches: &[Batch],
    method: Calibration,
) -> Result<HashMap<String, Range>> {
    if batches.is_empty() {
        return Err(QuantError::NoCalibration);
    }
    if let Calibration::Percentile { percentile } = method {
        if !(50.0..=100.0).contains(&percentile) {
            return Err(QuantError::Option(format!(
                "percentile {percentile} must lie between 50 and 100 (99.99 is a good start)"
            )));
        }
    }
    let mut augmented = model.clone();
    let graph = augmented.graph_mut();
    let existing: Vec<String> = graph.output.iter().map(|o| o.name().to_string()).collect();
    // Graph inputs are read from the batches directly: echoing an input as an output is
    // legal ONNX, but the value ONNX Runtime hands back for it is not reliable.
    let inputs: Vec<String> = graph.input.iter().map(|i| i.name().to_string()).collect();
    for t in tensors {
        if !existing.contains(t) && !inputs.contains(t) {
            // Element type float, shape unknown: ORT infers it.
            let mut info = value_info(t, &[]);
            if let Some(profagent_onnx::proto::type_proto::Value::TensorType(tt)) =
                info.r#type.as_mut().and_then(|ty| ty.value.as_mut())
            {
                tt.shape = None;
            }
            graph.output.push(info);
        }
    }
    let runtime = open_runtime(RuntimeKind::Ort).map_err(|e| QuantError::Runtime(e.to_string()))?;
    let mut session = runtime
        .load(
            &ModelSource::Bytes(augmented.to_bytes()),
            &SessionOptions::default(),
        )
        .map_err(|e| QuantError::Runtime(e.to_string()))?;
    let keep_samples = matches!(method, Calibration::Percentile { .. });
    let mut stats: HashMap<&str, Stats> = tensors
        .iter()
        .map(|t| (t.as_str(), Stats::default()))
        .collect();
    for (b, batch) in batches.iter().enumerate() {
        for (name, value) in batch {
            if let (Some(s), Some(data)) = (stats.get_mut(name.as_str()), value.as_f32()) {
                update(s, data, keep_samples);
            }
        }
        let outputs = session
            .run(batch)
            .map_err(|e| QuantError::Runtime(format!("batch {b}: {e}")))?;
        for (name, value) in outputs {
            let Some(s) = stats.get_mut(name.as_str()) else {
                continue;
            };
            let Some(data) = value.as_f32() else {
                return Err(QuantError::Runtime(format!(
                    "tensor '{name}' is not float32; it cannot be quantized as an activation"
                )));
            };
            update(s, data, keep_samples);
        }
    }
    let mut ranges = HashMap::new();
    for (name, mut s) in stats {
        if !s.seen {
            return Err(QuantError::Runtime(format!(
                "calibration produced no values for tensor '{name}'"
            )));
        }
        let range = match method {
            Calibration::MinMax => Range { lo: s.lo, hi: s.hi },
            Calibration::Percentile { percentile } => percentile_range(&mut s.samples, percentile),
        };
        ranges.insert(name.to_string(), range);
    }
    Ok(ranges)
}

fn update(s: &mut Stats, data: &[f32], keep_samples: bool) {
    let (lo, hi) = data
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return;
    }
    if s.seen {
        s.lo = s.lo.min(lo);
        s.hi = s.hi.max(hi);
    } else {
        (s.lo, s.hi, s.seen) = (lo, hi, true);
    }
    if keep_samples {
        let stride = data.len().div_ceil(SAMPLES_PER_BATCH).max(1);
        s.samples
            .extend(data.iter().step_by(stride).filter(|v| v.is_finite()));
    }
}

/// The `100 - p` and `p` percentiles of `samples`.
pub fn percentile_range(samples: &mut [f32], percentile: f64) -> Range {
    samples.sort_unstable_by(f32::total_cmp);
    let at = |q: f64| {
        let pos = (q / 100.0 * (samples.len() - 1) as f64).round() as usize;
        samples[pos.min(samples.len() - 1)]
    };
    Range {
        lo: at(100.0 - percentile),
        hi: at(percentile),
    }
}
