//! Calibration: per-channel activation statistics over a calibration set, streamed by the
//! caller through `profagent_onnx::ActivationSource` (this crate runs no model itself), and the two repairs
//! that use them after pruning: BatchNormalization re-estimation and bias correction.
use std::collections::HashMap;

use profagent_onnx::Model;

/// Which value to measure and its channel axis (like ONNX axes: negative counts from the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRequest {
    pub value: String,
    pub axis: i64,
}

/// Per-channel statistics over every other axis and the whole calibration set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelStats {
    pub mean: Vec<f64>,
    pub mean_abs: Vec<f64>,
    /// Population variance.
    pub var: Vec<f64>,
}

pub use profagent_onnx::activations::{expose_values, ActivationSource, ValueVisitor};

/// Per-channel statistics of `requests` over everything `source` streams (one pass).
pub fn channel_stats(
    source: &mut dyn ActivationSource,
    model: &Model,
    requests: &[StatRequest],
) -> std::result::Result<Vec<ChannelStats>, String> {
    let values: Vec<String> = requests.iter().map(|r| r.value.clone()).collect();
    let mut acc = StatsAccumulator::new();
    source.visit_values(model, &values, &mut |i, dims, data| {
        acc.add(&requests[i], dims, data)
    })?;
    acc.finish(requests)
}

/// Per-channel running sums of x, |x| and x², and the count per channel.
type Sums = (Vec<f64>, Vec<f64>, Vec<f64>, u64);

/// Accumulates per-channel sums batch by batch.
#[derive(Debug, Default)]
pub struct StatsAccumulator {
    sums: HashMap<String, Sums>,
}

impl StatsAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch of `value` (row-major `data` with `dims`).
    pub fn add(
        &mut self,
        request: &StatRequest,
        dims: &[usize],
        data: &[f32],
    ) -> Result<(), String> {
        let rank = dims.len() as i64;
        let axis = if request.axis < 0 {
            rank + request.axis
        } else {
            request.axis
        };
        if axis < 0 || axis >= rank {
            return Err(format!(
                "value '{}' of rank {rank} has no channel axis {}",
                request.value, request.axis
            ));
        }
        let axis = axis as usize;
        let channels = dims[axis];
        let inner: usize = dims[axis + 1..].iter().product();
        let entry = self.sums.entry(request.value.clone()).or_insert_with(|| {
            (
                vec![0.0; channels],
                vec![0.0; channels],
                vec![0.0; channels],
                0,
            )
        });
        if entry.0.len() != channels {
            return Err(format!(
                "value '{}' changed channel count between batches",
                request.value
            ));
        }
        if channels == 0 || inner == 0 {
            return Ok(());
        }
        for (i, &v) in data.iter().enumerate() {
            let c = (i / inner) % channels;
            let v = v as f64;
            entry.0[c] += v;
            entry.1[c] += v.abs();
            entry.2[c] += v * v;
        }
        entry.3 += (data.len() / channels) as u64;
        Ok(())
    }

    /// Statistics for `requests`, in order.
    pub fn finish(&self, requests: &[StatRequest]) -> Result<Vec<ChannelStats>, String> {
        requests
            .iter()
            .map(|r| {
                let (sum, abs, sq, n) = self
                    .sums
                    .get(&r.value)
                    .ok_or_else(|| format!("no data was recorded for '{}'", r.value))?;
                let n = (*n).max(1) as f64;
                let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
                Ok(ChannelStats {
                    mean_abs: abs.iter().map(|s| s / n).collect(),
                    var: sq
                        .iter()
                        .zip(&mean)
                        .map(|(q, m)| (q / n - m * m).max(0.0))
                        .collect(),
                    mean,
                })
            })
            .collect()
    }
}
