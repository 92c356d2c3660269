//! Calibration: the value ranges of chosen activation tensors over sample inputs.
//!
//! A copy of the model gets those tensors as extra graph outputs; the batches run through
//! ONNX Runtime (via `profagent-runtime`) and each tensor's values update its statistics:
//! min/max, or a bounded sample for percentiles (every value would not fit in memory for
//! large activations, so each batch contributes at most `SAMPLES_PER_BATCH` evenly strided
//! values per tensor).
//!
//! Memory is bounded by streaming: statistics are accumulated run by run and nothing of a
//! run is kept. Since every requested activation of a run is a graph output (ONNX Runtime
//! cannot reuse its buffer, and the values are then copied out), a batch is split into
//! sub-batches whose requested activations stay within `OUTPUT_BUDGET_BYTES` (the first
//! sample is run alone to measure its size). A ViT-S at batch 50 held every activation of
//! the batch at once and was killed at 14.7 GB RSS.
use std::collections::HashMap;

use profagent_onnx::builder::value_info;
use profagent_onnx::Model;
use profagent_runtime::{
    open_runtime, ModelSource, RuntimeKind, Session, SessionOptions, Tensor, TensorData,
};

use crate::error::{QuantError, Result};
use crate::spec::Calibration;

/// One batch of named model inputs.
pub type Batch = Vec<(String, Tensor)>;

/// Values kept per tensor and batch for percentile calibration.
pub const SAMPLES_PER_BATCH: usize = 1 << 16;

/// Bytes of requested activations one calibration run may return.
pub const OUTPUT_BUDGET_BYTES: usize = 256 << 20;

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
    calibrate_within(model, tensors, batches, method, OUTPUT_BUDGET_BYTES).map(|(r, _)| r)
}

/// `calibrate` with the bytes of activations one run may return set to `budget`; also returns
/// how many runs it took.
pub fn calibrate_within(
    model: &Model,
    tensors: &[String],
    batches: &[Batch],
    method: Calibration,
    budget: usize,
) -> Result<(HashMap<String, Range>, usize)> {
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
    let splittable = batch_axis_is_free(model);
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
    // Rows per run, known after the first sample has run alone.
    let mut rows_per_run: Option<usize> = None;
    let mut runs = 0;
    let total_rows: usize = batches.iter().map(|b| batch_rows(b).unwrap_or(1)).sum();
    let progress = profagent_onnx::progress::step(
        "calibrating static quantization",
        Some(total_rows as u64),
        "samples",
    );
    let mut rows_done = 0;
    for (b, batch) in batches.iter().enumerate() {
        let rows = batch_rows(batch).filter(|&r| splittable && r > 1);
        let mut start = 0;
        loop {
            let (part, end) = match rows {
                Some(total) => {
                    let step = rows_per_run.unwrap_or(1);
                    let end = (start + step).min(total);
                    (rows_of(batch, start, end), end)
                }
                None => (batch.clone(), 0),
            };
            // Percentile samples per run, so that a batch contributes the same in all.
            let share = match rows {
                Some(total) => SAMPLES_PER_BATCH * (end - start) / total,
                None => SAMPLES_PER_BATCH,
            };
            let returned = run_part(
                session.as_mut(),
                &part,
                &mut stats,
                keep_samples.then_some(share.max(1)),
            )
            .map_err(|e| match e {
                QuantError::Runtime(reason) => QuantError::Runtime(format!("batch {b}: {reason}")),
                other => other,
            })?;
            runs += 1;
            rows_done += match rows {
                Some(_) => end - start,
                None => batch_rows(batch).unwrap_or(1),
            };
            progress.set(rows_done as u64);
            if rows_per_run.is_none() && rows.is_some() {
                let per_row = returned.div_ceil(end - start).max(1);
                rows_per_run = Some((budget / per_row).max(1));
            }
            match rows {
                Some(total) if end < total => start = end,
                _ => break,
            }
        }
    }
    drop(progress);
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
    Ok((ranges, runs))
}

/// Runs one (sub-)batch and folds its values into `stats`; returns the bytes of float
/// outputs it got back. `samples`: values kept per tensor for percentiles.
fn run_part(
    session: &mut dyn Session,
    batch: &[(String, Tensor)],
    stats: &mut HashMap<&str, Stats>,
    samples: Option<usize>,
) -> Result<usize> {
    for (name, value) in batch {
        if let (Some(s), Some(data)) = (stats.get_mut(name.as_str()), value.as_f32()) {
            update(s, data, samples);
        }
    }
    let outputs = session
        .run(batch)
        .map_err(|e| QuantError::Runtime(e.to_string()))?;
    let mut bytes = 0;
    for (name, value) in outputs {
        let Some(s) = stats.get_mut(name.as_str()) else {
            continue;
        };
        let Some(data) = value.as_f32() else {
            return Err(QuantError::Runtime(format!(
                "tensor '{name}' is not float32; it cannot be quantized as an activation"
            )));
        };
        bytes += std::mem::size_of_val(data);
        update(s, data, samples);
    }
    Ok(bytes)
}

/// Whether the model's inputs leave their first axis free (symbolic or unknown), so a batch
/// can run as several smaller ones. A fixed first axis (e.g. an export at batch 1) cannot.
fn batch_axis_is_free(model: &Model) -> bool {
    use profagent_onnx::proto::tensor_shape_proto::dimension::Value;
    use profagent_onnx::proto::type_proto::Value as TypeValue;
    let graph = model.graph();
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&i.name()))
        .all(|input| {
            let first = input
                .r#type
                .as_ref()
                .and_then(|t| t.value.as_ref())
                .and_then(|v| match v {
                    TypeValue::TensorType(tt) => tt.shape.as_ref(),
                    _ => None,
                })
                .and_then(|shape| shape.dim.first())
                .and_then(|d| d.value.as_ref());
            !matches!(first, Some(Value::DimValue(_)))
        })
}

/// The common first-axis length of a batch's tensors, if they all have one.
fn batch_rows(batch: &[(String, Tensor)]) -> Option<usize> {
    let first = batch.first()?.1.shape.first().copied()?;
    batch
        .iter()
        .all(|(_, t)| {
            let len = match &t.data {
                TensorData::F32(v) => v.len(),
                TensorData::I64(v) => v.len(),
            };
            t.shape.first() == Some(&first) && len == t.shape.iter().product::<usize>()
        })
        .then_some(first)
}

/// Rows `start..end` (first axis) of every tensor of a batch.
fn rows_of(batch: &[(String, Tensor)], start: usize, end: usize) -> Batch {
    batch
        .iter()
        .map(|(name, t)| {
            let row: usize = t.shape[1..].iter().product();
            let mut shape = t.shape.clone();
            shape[0] = end - start;
            let data = match &t.data {
                TensorData::F32(v) => TensorData::F32(v[start * row..end * row].to_vec()),
                TensorData::I64(v) => TensorData::I64(v[start * row..end * row].to_vec()),
            };
            (name.clone(), Tensor { shape, data })
        })
        .collect()
}

fn update(s: &mut Stats, data: &[f32], samples: Option<usize>) {
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
    if let Some(samples) = samples {
        let stride = data.len().div_ceil(samples).max(1);
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
