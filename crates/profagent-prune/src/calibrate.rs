//! Calibration: per-channel activation statistics over a calibration set, supplied by the
//! caller through `ActivationSource` (this crate runs no model itself), and the two repairs
//! that use them after pruning: BatchNormalization re-estimation and bias correction.
use std::collections::HashMap;

use profagent_onnx::builder::value_info;
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

/// Receives one batch of one streamed value: (index in the requested values, dims, row-major
/// data). An error stops the stream.
pub type ValueVisitor<'a> =
    dyn FnMut(usize, &[usize], &[f32]) -> std::result::Result<(), String> + 'a;

/// Runs a model on calibration data and measures intermediate values. Implementations
/// typically call `expose_values`, run the copy on a runtime batch by batch and feed the
/// outputs to a `StatsAccumulator`.
pub trait ActivationSource {
    fn channel_stats(
        &mut self,
        model: &Model,
        requests: &[StatRequest],
    ) -> std::result::Result<Vec<ChannelStats>, String>;

    /// Runs `model` over the calibration data batch by batch and hands every batch's value of
    /// each of `values` to `visit(value_index, dims, data)` (row-major), so callers can
    /// accumulate statistics without holding all activations (layer-wise reconstruction).
    /// Sources that cannot stream say so; the pruner then skips reconstruction with a warning.
    fn visit_values(
        &mut self,
        model: &Model,
        values: &[String],
        visit: &mut ValueVisitor<'_>,
    ) -> std::result::Result<(), String> {
        let _ = (model, values, visit);
        Err("this calibration source cannot stream activations".into())
    }
}

/// A copy of `model` whose graph also outputs `values` (float tensors, shape left open).
pub fn expose_values(model: &Model, values: &[String]) -> Model {
    let mut copy = model.clone();
    let graph = copy.graph_mut();
    for v in values {
        if !graph.output.iter().any(|o| o.name() == v) {
            let mut info = value_info(v, &[]);
            // Unknown rank: drop the shape entirely so runtimes accept any.
            if let Some(profagent_onnx::proto::type_proto::Value::TensorType(t)) =
                info.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                t.shape = None;
            }
            graph.output.push(info);
        }
    }
    copy
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
