//! Latency measurement: warm-up, then timed runs, summarised robustly (median, p90, IQR, CV).
//! Shared by dynamic profiling and by evaluation so every latency number in a report is measured
//! the same way.
use std::time::Instant;

use crate::{Result, Session, Tensor};

/// A coefficient of variation above this says the timings are dominated by noise (other load on
/// the machine, frequency scaling): reports should warn instead of ranking on them.
pub const NOISY_CV: f64 = 0.25;

/// Summary of repeated timings, in milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencyStats {
    pub median_ms: f64,
    pub p90_ms: f64,
    pub iqr_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    /// Coefficient of variation (standard deviation / mean); 0 for fewer than two samples.
    pub cv: f64,
    pub samples: Vec<f64>,
}

impl LatencyStats {
    /// Summarises samples (ms). Empty input gives all zeros.
    pub fn from_samples(samples: Vec<f64>) -> Self {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        };
        let cv = if sorted.len() < 2 || mean <= 0.0 {
            0.0
        } else {
            let variance =
                sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (sorted.len() - 1) as f64;
            variance.sqrt() / mean
        };
        LatencyStats {
            median_ms: quantile(&sorted, 0.5),
            p90_ms: quantile(&sorted, 0.9),
            iqr_ms: quantile(&sorted, 0.75) - quantile(&sorted, 0.25),
            mean_ms: mean,
            min_ms: sorted.first().copied().unwrap_or(0.0),
            cv,
            samples,
        }
    }

    /// True when the spread is large enough that the median should not be trusted alone.
    pub fn is_noisy(&self) -> bool {
        self.cv > NOISY_CV
    }
}

/// Linear-interpolated quantile of sorted data (`q` in 0..=1); 0 for empty data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let position = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let low = position.floor() as usize;
            let high = position.ceil() as usize;
            let fraction = position - low as f64;
            sorted[low] + (sorted[high] - sorted[low]) * fraction
        }
    }
}

/// Runs `warmup` untimed then `runs` timed inferences (`runs` ≥ 1) and summarises wall time.
pub fn measure_latency(
    session: &mut dyn Session,
    inputs: &[(String, Tensor)],
    warmup: usize,
    runs: usize,
) -> Result<LatencyStats> {
    let batch = inputs
        .first()
        .and_then(|(_, t)| t.shape.first())
        .copied()
        .unwrap_or(1);
    let step = profagent_onnx::progress::step(
        format!("timing batch {batch}"),
        Some((warmup + runs.max(1)) as u64),
        "runs",
    );
    for run in 0..warmup {
        session.run(inputs)?;
        step.set(run as u64 + 1);
    }
    let mut samples = Vec::with_capacity(runs.max(1));
    for run in 0..runs.max(1) {
        let start = Instant::now();
        let outputs = session.run(inputs)?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        drop(outputs);
        step.set((warmup + run) as u64 + 1);
    }
    Ok(LatencyStats::from_samples(samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_samples() {
        let stats = LatencyStats::from_samples(vec![4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!(stats.median_ms, 3.0);
        assert_eq!(stats.iqr_ms, 2.0);
        assert!((stats.p90_ms - 4.6).abs() < 1e-12);
        assert_eq!(stats.min_ms, 1.0);
        assert!((stats.cv - (2.5f64).sqrt() / 3.0).abs() < 1e-12);
        assert!(stats.is_noisy());
        let steady = LatencyStats::from_samples(vec![10.0, 10.1, 9.9]);
        assert!(!steady.is_noisy());
        assert_eq!(LatencyStats::from_samples(vec![]).median_ms, 0.0);
    }
}
