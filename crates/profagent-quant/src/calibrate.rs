//! Calibration: the value ranges of chosen activation tensors over sample inputs.
//!
//! The values come through the activation seam the pruner reads too
//! (`profagent_onnx::ActivationSource`): the caller runs the model over its calibration data on
//! a runtime and streams each run's values here (`profagent_workbench::BatchActivations` on ONNX
//! Runtime, which splits large batches so the returned activations stay within a byte budget).
//! This crate runs no model. Each tensor's values update its statistics: min/max, a histogram
//! merged over batches for entropy and MSE (`histogram`), or a bounded sample for percentiles (every value would not fit in memory for large activations, so each
//! sample, a row along the first axis, contributes at most `SAMPLES_PER_ROW` evenly strided
//! values per tensor, whatever the batch it came in).
use std::collections::HashMap;

use profagent_onnx::{ActivationSource, Model};

use crate::error::{QuantError, Result};
use crate::histogram::{Criterion, Histogram};
use crate::spec::Calibration;

/// Values kept per tensor and sample (row along the first axis) for percentile calibration:
/// about what a batch of 50 kept when each batch kept 2^16.
pub const SAMPLES_PER_ROW: usize = 1 << 10;

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
    histogram: Option<Histogram>,
}

/// Streams `tensors` (float activations or inputs of `model`) from `source` and returns the
/// calibrated range of each.
pub fn calibrate(
    model: &Model,
    tensors: &[String],
    source: &mut dyn ActivationSource,
    method: Calibration,
) -> Result<HashMap<String, Range>> {
    if let Calibration::Percentile { percentile } = method {
        if !(50.0..=100.0).contains(&percentile) {
            return Err(QuantError::Option(format!(
                "percentile {percentile} must lie between 50 and 100 (99.99 is a good start)"
            )));
        }
    }
    let keep_samples = matches!(method, Calibration::Percentile { .. });
    let criterion = match method {
        Calibration::Entropy => Some(Criterion::Entropy),
        Calibration::Mse => Some(Criterion::Mse),
        _ => None,
    };
    let mut stats: Vec<Stats> = tensors
        .iter()
        .map(|_| Stats {
            histogram: criterion.map(|_| Histogram::default()),
            ..Stats::default()
        })
        .collect();
    source
        .visit_values(model, tensors, &mut |i, dims, data| {
            let rows = dims.first().copied().unwrap_or(1).max(1);
            update(
                &mut stats[i],
                data,
                keep_samples.then_some(SAMPLES_PER_ROW * rows),
            );
            Ok(())
        })
        .map_err(QuantError::Runtime)?;
    let mut ranges = HashMap::new();
    for (name, mut s) in tensors.iter().zip(stats) {
        if !s.seen {
            return Err(QuantError::Runtime(format!(
                "calibration produced no values for tensor '{name}'"
            )));
        }
        let range = match method {
            Calibration::MinMax => Range { lo: s.lo, hi: s.hi },
            Calibration::Percentile { percentile } => percentile_range(&mut s.samples, percentile),
            Calibration::Entropy | Calibration::Mse => match (&s.histogram, criterion) {
                (Some(h), Some(c)) => h.range(c),
                _ => Range { lo: s.lo, hi: s.hi },
            },
        };
        ranges.insert(name.clone(), range);
    }
    Ok(ranges)
}

fn update(s: &mut Stats, data: &[f32], samples: Option<usize>) {
    let Some((lo, hi)) = crate::histogram::finite_range(data) else {
        return;
    };
    if s.seen {
        s.lo = s.lo.min(lo);
        s.hi = s.hi.max(hi);
    } else {
        (s.lo, s.hi, s.seen) = (lo, hi, true);
    }
    if let Some(h) = s.histogram.as_mut() {
        h.add_within(data, (lo, hi));
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
