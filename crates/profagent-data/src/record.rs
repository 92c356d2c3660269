//! The evaluation record (what one model did on one dataset on one machine) and the comparison
//! of two records (before/after compression). Both serialise to JSON for reports and the agent.
use serde::{Deserialize, Serialize};

use crate::dataset::Skipped;
use crate::metrics::Fidelity;
use profagent_runtime::{LatencyStats, MachineInfo};

/// Latency at one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyPoint {
    pub batch: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub runs: usize,
}

impl LatencyPoint {
    pub fn from_stats(batch: usize, stats: &LatencyStats) -> LatencyPoint {
        LatencyPoint {
            batch,
            median_ms: stats.median_ms,
            p90_ms: stats.p90_ms,
            runs: stats.samples.len(),
        }
    }
}

/// One model evaluated on one dataset. Accuracies are fractions in [0, 1].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Model file evaluated.
    pub model: String,
    /// Size of the model file in bytes.
    pub model_bytes: u64,
    /// Parameter count and multiply-accumulates at batch 1 (static profile), when known.
    pub params: Option<u64>,
    pub macs: Option<u64>,
    pub dataset: String,
    /// Samples evaluated (skipped ones excluded).
    pub samples: usize,
    pub skipped: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_items: Vec<Skipped>,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    /// Wilson intervals of `top1` / `top5` (fractions) at `profagent_stats::REPORT_CONFIDENCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_interval: Option<profagent_stats::Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top5_interval: Option<profagent_stats::Estimate>,
    /// Mean cross-entropy of the labelled class (nats), with labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nll: Option<f64>,
    /// Agreement with the reference model, when one was given.
    pub fidelity: Option<Fidelity>,
    /// Median latency at the first measured batch size (batch 1 by default), in ms.
    pub latency_ms: Option<f64>,
    /// Median/p90 latency per batch size.
    pub latency: Vec<LatencyPoint>,
    /// Inference throughput at the largest measured batch (from its median latency).
    pub throughput_images_per_s: Option<f64>,
    /// End-to-end evaluation speed: decode + preprocess + inference, overlapped.
    pub eval_images_per_s: f64,
    pub eval_batch_size: usize,
    /// Peak resident memory of the evaluating process (VmHWM), Linux only.
    pub peak_rss_bytes: Option<u64>,
    /// Runtime and its version, e.g. "onnxruntime 1.32.0".
    pub runtime: String,
    pub machine: Option<MachineInfo>,
    /// Every sample's logits, `[samples, classes]` row-major, when `EvalOptions::keep_logits`
    /// asked for them (not serialized).
    #[serde(skip)]
    pub logits: Option<Vec<f32>>,
    /// Per sample (in dataset order), whether the top-1 class is the label: what a paired
    /// comparison of two models on the same images needs (not serialized).
    #[serde(skip)]
    pub correct: Option<Vec<bool>>,
}

/// Before → after. Accuracy deltas are in percentage points; ratios are before / after, so a
/// speedup or a shrink factor above 1 means "after" is better.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub before: EvalRecord,
    pub after: EvalRecord,
    pub top1_delta_pp: Option<f64>,
    pub top5_delta_pp: Option<f64>,
    /// Speedup of the median latency per batch size both records measured.
    pub latency_speedup: Vec<(usize, f64)>,
    pub model_bytes_ratio: Option<f64>,
    pub params_delta: Option<i64>,
    pub macs_delta: Option<i64>,
    pub peak_rss_delta_bytes: Option<i64>,
    pub throughput_ratio: Option<f64>,
}

/// Compares two records of (usually) the same dataset.
pub fn compare(before: &EvalRecord, after: &EvalRecord) -> Comparison {
    let pp = |b: Option<f64>, a: Option<f64>| Some((a? - b?) * 100.0);
    let signed = |b: Option<u64>, a: Option<u64>| Some(a? as i64 - b? as i64);
    let latency_speedup = before
        .latency
        .iter()
        .filter_map(|b| {
            let a = after.latency.iter().find(|a| a.batch == b.batch)?;
            (a.median_ms > 0.0).then(|| (b.batch, b.median_ms / a.median_ms))
        })
        .collect();
    Comparison {
        top1_delta_pp: pp(before.top1, after.top1),
        top5_delta_pp: pp(before.top5, after.top5),
        latency_speedup,
        model_bytes_ratio: (after.model_bytes > 0)
            .then(|| before.model_bytes as f64 / after.model_bytes as f64),
        params_delta: signed(before.params, after.params),
        macs_delta: signed(before.macs, after.macs),
        peak_rss_delta_bytes: signed(before.peak_rss_bytes, after.peak_rss_bytes),
        throughput_ratio: match (
            before.throughput_images_per_s,
            after.throughput_images_per_s,
        ) {
            (Some(b), Some(a)) if b > 0.0 => Some(a / b),
            _ => None,
        },
        before: before.clone(),
        after: after.clone(),
    }
}

impl Comparison {
    /// One line per metric, for terminals and reports.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let (Some(b), Some(a), Some(d)) = (self.before.top1, self.after.top1, self.top1_delta_pp)
        {
            lines.push(format!(
                "top-1      {:.2} % -> {:.2} % ({d:+.2} pp)",
                b * 100.0,
                a * 100.0
            ));
        }
        if let (Some(b), Some(a), Some(d)) = (self.before.top5, self.after.top5, self.top5_delta_pp)
        {
            lines.push(format!(
                "top-5      {:.2} % -> {:.2} % ({d:+.2} pp)",
                b * 100.0,
                a * 100.0
            ));
        }
        for &(batch, speedup) in &self.latency_speedup {
            lines.push(format!("latency@{batch:<3} {speedup:.2}x faster"));
        }
        if let Some(ratio) = self.model_bytes_ratio {
            lines.push(format!(
                "file size  {} -> {} bytes ({ratio:.2}x smaller)",
                self.before.model_bytes, self.after.model_bytes
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_reports_deltas_and_ratios() {
        let before = EvalRecord {
            top1: Some(0.90),
            model_bytes: 4000,
            params: Some(100),
            latency: vec![LatencyPoint {
                batch: 1,
                median_ms: 4.0,
                p90_ms: 5.0,
                runs: 10,
            }],
            ..EvalRecord::default()
        };
        let after = EvalRecord {
            top1: Some(0.885),
            model_bytes: 1000,
            params: Some(60),
            latency: vec![LatencyPoint {
                batch: 1,
                median_ms: 2.0,
                p90_ms: 2.5,
                runs: 10,
            }],
            ..EvalRecord::default()
        };
        let comparison = compare(&before, &after);
        assert!((comparison.top1_delta_pp.unwrap() + 1.5).abs() < 1e-9);
        assert_eq!(comparison.latency_speedup, vec![(1, 2.0)]);
        assert_eq!(comparison.model_bytes_ratio, Some(4.0));
        assert_eq!(comparison.params_delta, Some(-40));
        assert_eq!(comparison.top5_delta_pp, None);
    }
}
