//! Histogram calibration: the activation range that loses least when quantized, chosen from a
//! histogram of the tensor's values merged over every calibration batch (never all values in
//! memory).
//!
//! The histogram has `BINS` bins over `[-t, t]`, `t` the largest magnitude seen so far. When a
//! batch holds a larger value, `t` doubles (as often as needed) and neighbouring bins merge in
//! pairs toward the centre, so counts are never re-binned approximately and memory stays
//! `BINS` counters per tensor (onnxruntime's `HistogramCollector` adds bins of the old width
//! instead, so its histogram grows with the data).
//!
//! Candidate ranges: a tensor that was never negative (after a ReLU, most activations)
//! searches `[0, T]` over the positive half; any other searches `[-T, T]` (onnxruntime's
//! entropy calibration is symmetric around zero too). Either way the range is then clipped to
//! the observed minimum and maximum, and both methods account for the 256 levels our 8-bit
//! activations really have over the range:
//! - `entropy`: the threshold minimizing the KL divergence between the clipped histogram
//!   (outliers added to the edge bins) and its quantized version (`LEVELS` levels merged, then
//!   spread back over the non-empty bins), as TensorRT's calibrator and onnxruntime's
//!   `get_entropy_threshold` do (they use 128 levels for int8 symmetric; we use the levels our
//!   range gets: 256 one-sided, 256 over the symmetric span);
//! - `mse`: the threshold minimizing the expected squared error: clipping `(|x| - T)^2` for
//!   values beyond it (at bin centres) plus rounding `Δ^2 / 12` for values inside, `Δ` the
//!   quantization step `span / 255`.
use crate::calibrate::Range;

/// Histogram bins over `[-t, t]` (2048 per side, as TensorRT's entropy calibrator uses).
pub const BINS: usize = 4096;
/// Quantization levels of an 8-bit activation.
pub const LEVELS: usize = 256;
/// At most this many candidate thresholds are scored per tensor (evenly spaced in bins).
const CANDIDATES: usize = 512;

/// Counts of one tensor's values.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    /// Half-width: bins cover `[-t, t]`; 0 until a non-zero value is seen.
    t: f32,
    /// Exact zeros seen before `t` was known.
    pending_zeros: u64,
    pub lo: f32,
    pub hi: f32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BINS],
            t: 0.0,
            pending_zeros: 0,
            lo: f32::INFINITY,
            hi: f32::NEG_INFINITY,
        }
    }
}

/// Which criterion picks the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    Entropy,
    Mse,
}

/// The smallest and largest finite values of `data`, or `None` when it has none.
pub fn finite_range(data: &[f32]) -> Option<(f32, f32)> {
    let (lo, hi) = data
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    (lo <= hi).then_some((lo, hi))
}

impl Histogram {
    /// Adds `data` (non-finite values are ignored).
    pub fn add(&mut self, data: &[f32]) {
        if let Some(range) = finite_range(data) {
            self.add_within(data, range);
        }
    }

    /// Adds `data` whose finite values span `(lo, hi)` (`finite_range(data)`, computed once by
    /// a caller that needs it too).
    pub fn add_within(&mut self, data: &[f32], (lo, hi): (f32, f32)) {
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
        let magnitude = lo.abs().max(hi.abs());
        if magnitude == 0.0 {
            if self.t == 0.0 {
                self.pending_zeros += data.iter().filter(|v| **v == 0.0).count() as u64;
            } else {
                self.counts[BINS / 2] += data.iter().filter(|v| **v == 0.0).count() as u64;
            }
            return;
        }
        if self.t == 0.0 {
            self.t = magnitude;
            self.counts[BINS / 2] += std::mem::take(&mut self.pending_zeros);
        }
        while magnitude > self.t {
            self.widen();
        }
        let scale = BINS as f32 / (2.0 * self.t);
        for &v in data.iter().filter(|v| v.is_finite()) {
            let bin = ((v + self.t) * scale) as usize;
            self.counts[bin.min(BINS - 1)] += 1;
        }
    }

    /// Doubles `t`: old bins `2m, 2m+1` become new bin `BINS/4 + m`.
    fn widen(&mut self) {
        let mut merged = vec![0u64; BINS];
        for m in 0..BINS / 2 {
            merged[BINS / 4 + m] = self.counts[2 * m] + self.counts[2 * m + 1];
        }
        self.counts = merged;
        self.t *= 2.0;
    }

    /// Whether any value was seen.
    pub fn seen(&self) -> bool {
        self.lo <= self.hi
    }

    /// The range `criterion` picks, within the observed minimum and maximum.
    pub fn range(&self, criterion: Criterion) -> Range {
        let observed = Range {
            lo: self.lo,
            hi: self.hi,
        };
        if self.t == 0.0 || !self.seen() {
            return observed;
        }
        let width = 2.0 * self.t / BINS as f32;
        let one_sided = self.lo >= 0.0;
        // Bins as distances from zero: the positive half, or both halves folded by |x|
        // for the symmetric search.
        let mut half: Vec<u64> = if one_sided {
            self.counts[BINS / 2..].to_vec()
        } else {
            (0..BINS / 2)
                .map(|k| self.counts[BINS / 2 + k] + self.counts[BINS / 2 - 1 - k])
                .collect()
        };
        // The spike of exact zeros a ReLU leaves would dominate the divergence and pull the
        // threshold far in (resnet20: post-ReLU ranges cut to a quarter, output cosine 0.953):
        // entropy sees the first bin as high as the second, as NVIDIA's pytorch-quantization
        // histogram calibrator does (`_compute_amax_entropy`: `bins[0] = bins[1]`; its unsigned
        // 8-bit case also uses 256 levels).
        if criterion == Criterion::Entropy && half.len() > 1 {
            half[0] = half[1];
        }
        // Only bins up to the largest magnitude matter.
        let used = half.iter().rposition(|&c| c > 0).map_or(1, |p| p + 1);
        let half = &half[..used];
        // Levels within [0, T]: all 256 one-sided, half of them for [-T, T].
        let levels = if one_sided { LEVELS } else { LEVELS / 2 };
        let first = levels.min(used);
        let step = (used - first).div_ceil(CANDIDATES).max(1);
        let mut best = (f64::INFINITY, used);
        let mut i = first;
        while i <= used {
            let cost = match criterion {
                Criterion::Entropy => kl_cost(half, i, levels),
                Criterion::Mse => mse_cost(half, i, levels, width as f64),
            };
            if cost < best.0 {
                best = (cost, i);
            }
            if i == used {
                break;
            }
            i = (i + step).min(used);
        }
        let threshold = best.1 as f32 * width;
        if one_sided {
            Range {
                lo: self.lo,
                hi: threshold.min(self.hi),
            }
        } else {
            Range {
                lo: (-threshold).max(self.lo),
                hi: threshold.min(self.hi),
            }
        }
    }
}

/// KL divergence between the first `i` bins (the rest folded into the last) and their
/// quantization to `levels` levels.
fn kl_cost(half: &[u64], i: usize, levels: usize) -> f64 {
    let mut p: Vec<f64> = half[..i].iter().map(|&c| c as f64).collect();
    p[i - 1] += half[i..].iter().map(|&c| c as f64).sum::<f64>();
    let merged = (i / levels).max(1);
    let mut q = vec![0.0f64; i];
    let mut start = 0;
    while start < i {
        // The last level takes the remainder, as onnxruntime's merge does.
        let end = if start + 2 * merged > i {
            i
        } else {
            start + merged
        };
        let total: f64 = half[start..end].iter().map(|&c| c as f64).sum();
        let nonzero = half[start..end].iter().filter(|&&c| c > 0).count();
        if nonzero > 0 {
            for k in start..end {
                if half[k] > 0 {
                    q[k] = total / nonzero as f64;
                }
            }
        }
        start = end;
    }
    // q of the clipped bins: what the quantized histogram puts in the edge bin is p's edge
    // without the outliers; the divergence then charges the clipping.
    let (Some(p), Some(q)) = (smooth(&p), smooth(&q)) else {
        return f64::INFINITY;
    };
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    p.iter()
        .zip(&q)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| (a / sp) * ((a / sp) / (b / sq)).ln())
        .sum()
}

/// Replaces zeros by a small mass taken from the non-zero entries (onnxruntime's
/// `smooth_distribution`, eps 1e-4), so the divergence stays finite.
fn smooth(p: &[f64]) -> Option<Vec<f64>> {
    const EPS: f64 = 1e-4;
    let zeros = p.iter().filter(|v| **v == 0.0).count();
    let nonzeros = p.len() - zeros;
    if nonzeros == 0 {
        return None;
    }
    let eps1 = EPS * zeros as f64 / nonzeros as f64;
    Some(
        p.iter()
            .map(|&v| if v == 0.0 { EPS } else { (v - eps1).max(EPS) })
            .collect(),
    )
}

/// Expected squared error per value of quantizing with threshold `i` bins: clipping beyond,
/// rounding (`Δ²/12`) within.
fn mse_cost(half: &[u64], i: usize, levels: usize, width: f64) -> f64 {
    let threshold = i as f64 * width;
    let step = threshold / (levels - 1) as f64;
    let inside: f64 = half[..i].iter().map(|&c| c as f64).sum();
    let clipped: f64 = half[i..]
        .iter()
        .enumerate()
        .map(|(k, &c)| {
            let centre = (i + k) as f64 * width + width / 2.0;
            c as f64 * (centre - threshold).powi(2)
        })
        .sum();
    let total: f64 = half.iter().map(|&c| c as f64).sum();
    (clipped + inside * step * step / 12.0) / total.max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_keeps_every_count() {
        let mut h = Histogram::default();
        h.add(&[0.0, 0.5, -1.0, 1.0]);
        h.add(&[7.0, -3.0]);
        assert_eq!(h.counts.iter().sum::<u64>(), 6);
        assert_eq!(h.t, 8.0);
        assert_eq!((h.lo, h.hi), (-3.0, 7.0));
    }

    #[test]
    fn zeros_before_the_first_non_zero_are_counted() {
        let mut h = Histogram::default();
        h.add(&[0.0, 0.0]);
        h.add(&[2.0]);
        assert_eq!(h.counts.iter().sum::<u64>(), 3);
        assert_eq!(h.counts[BINS / 2], 2);
    }

    #[test]
    fn a_uniform_distribution_keeps_its_range() {
        // Nothing to clip: both criteria keep (nearly) the whole range.
        let data: Vec<f32> = (0..100_000).map(|i| i as f32 / 100_000.0).collect();
        let mut h = Histogram::default();
        h.add(&data);
        for criterion in [Criterion::Entropy, Criterion::Mse] {
            let r = h.range(criterion);
            assert_eq!(r.lo, 0.0);
            assert!(r.hi > 0.95, "{criterion:?}: {r:?}");
        }
    }
}
