//! Statistics behind every decision ProfAgent takes on measurements.
//!
//! Three questions come back everywhere in the loop, and each gets one answer here:
//! - *How sure is a top-1 on n images?* `wilson`: the Wilson score interval of a proportion
//!   (good coverage down to a few dozen samples, never outside [0, 1]).
//! - *Did the candidate lose accuracy against the baseline on the same images?*
//!   `PairedAccuracy`: the paired comparison (only the images where the two models disagree
//!   carry information), an Agresti–Min interval for the difference and McNemar's exact test.
//!   Two independent point estimates would throw the pairing away and be far noisier.
//! - *Is B faster than A?* `median_interval`: a distribution-free interval for the median of
//!   paired ratios (order statistics of a binomial), robust to the load spikes of a shared
//!   machine, which make means and normal intervals meaningless.
//!
//! No I/O and no dependencies beyond serde: the measuring crates (runtime, data) and the
//! deciding crate (agent) all use the same definitions.
use serde::{Deserialize, Serialize};

/// Two-sided confidence of the intervals the tool reports (speedup, top-1, top-1 change).
pub const REPORT_CONFIDENCE: f64 = 0.95;

/// A closed interval with its estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    /// Two-sided confidence of `[low, high]`.
    pub confidence: f64,
}

impl Estimate {
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// Standard normal quantile (inverse CDF) by Acklam's rational approximation (relative error
/// below 1.2e-9), `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// z for a two-sided interval of `confidence` (0.95 → 1.96).
pub fn two_sided_z(confidence: f64) -> f64 {
    normal_quantile(0.5 + confidence.clamp(0.0, 0.999_999) / 2.0)
}

/// z for a one-sided bound of `confidence` (0.9 → 1.28).
pub fn one_sided_z(confidence: f64) -> f64 {
    normal_quantile(confidence.clamp(0.5, 0.999_999))
}

/// Wilson score interval of `successes` out of `n`, as fractions in [0, 1]; `None` for n = 0.
pub fn wilson(successes: usize, n: usize, confidence: f64) -> Option<Estimate> {
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    let p = successes.min(n) as f64 / n_f;
    let z = two_sided_z(confidence);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n_f)) / (1.0 + z2 / n_f);
    let half = z / (1.0 + z2 / n_f) * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    Some(Estimate {
        value: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
        confidence,
    })
}

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    let k = k.min(n - k);
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

/// P(X ≤ k) for X ~ Binomial(n, 1/2).
pub fn binomial_half_cdf(k: u64, n: u64) -> f64 {
    if k >= n {
        return 1.0;
    }
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut total = 0.0;
    for i in 0..=k {
        total += (ln_choose(n, i) + ln_half_n).exp();
    }
    total.min(1.0)
}

/// Top-1 of a candidate against a baseline on the same images.
///
/// `only_baseline` (b): images the baseline gets right and the candidate wrong;
/// `only_candidate` (c): the reverse. The drop is (b − c) / n; everything about its
/// uncertainty comes from b and c.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedAccuracy {
    pub samples: usize,
    pub baseline_correct: usize,
    pub candidate_correct: usize,
    pub only_baseline: usize,
    pub only_candidate: usize,
}

impl PairedAccuracy {
    /// Counts from per-image top-1 correctness of the two models (same images, same order).
    /// `None` when the lengths differ or there are no images.
    pub fn from_flags(baseline: &[bool], candidate: &[bool]) -> Option<Self> {
        if baseline.len() != candidate.len() || baseline.is_empty() {
            return None;
        }
        let mut out = PairedAccuracy {
            samples: baseline.len(),
            baseline_correct: 0,
            candidate_correct: 0,
            only_baseline: 0,
            only_candidate: 0,
        };
        for (&b, &c) in baseline.iter().zip(candidate) {
            out.baseline_correct += usize::from(b);
            out.candidate_correct += usize::from(c);
            out.only_baseline += usize::from(b && !c);
            out.only_candidate += usize::from(c && !b);
        }
        Some(out)
    }

    /// Observed top-1 drop, percentage points (negative: the candidate did better).
    pub fn drop_points(&self) -> f64 {
        100.0 * (self.only_baseline as f64 - self.only_candidate as f64)
            / self.samples.max(1) as f64
    }

    /// Agresti–Min adjusted interval (0.5 added to each cell) for the drop, in points, with
    /// normal quantile `z`: returns (low, high).
    fn adjusted(&self, z: f64) -> (f64, f64) {
        let n = self.samples as f64 + 2.0;
        let pb = (self.only_baseline as f64 + 0.5) / n;
        let pc = (self.only_candidate as f64 + 0.5) / n;
        let difference = pb - pc;
        let variance = ((pb + pc) - difference * difference).max(0.0) / n;
        let half = z * variance.sqrt();
        (100.0 * (difference - half), 100.0 * (difference + half))
    }

    /// Two-sided interval for the drop (points) at `confidence`.
    pub fn drop_interval(&self, confidence: f64) -> Estimate {
        let (low, high) = self.adjusted(two_sided_z(confidence));
        Estimate {
            value: self.drop_points(),
            low,
            high,
            confidence,
        }
    }

    /// One-sided upper confidence bound for the drop (points): the drop is below it with
    /// probability `confidence`.
    pub fn drop_upper_bound(&self, confidence: f64) -> f64 {
        self.adjusted(one_sided_z(confidence)).1
    }

    /// Two-sided exact McNemar p-value (binomial test of b against b + c at 1/2; a normal
    /// approximation with continuity correction beyond 5,000 discordant images).
    pub fn mcnemar_p(&self) -> f64 {
        let b = self.only_baseline as u64;
        let c = self.only_candidate as u64;
        let m = b + c;
        if m == 0 {
            return 1.0;
        }
        if m > 5_000 {
            let statistic = ((b as f64 - c as f64).abs() - 1.0).max(0.0) / (m as f64).sqrt();
            return (2.0 * (1.0 - normal_cdf(statistic))).min(1.0);
        }
        (2.0 * binomial_half_cdf(b.min(c), m)).min(1.0)
    }

    /// Images needed for the one-sided bound at `confidence` to come within `bound` points,
    /// if the drop and the disagreement rate stayed what they are now; `None` when the
    /// observed drop already exceeds the bound (no sample size would show it within).
    pub fn samples_needed(&self, bound: f64, confidence: f64) -> Option<usize> {
        let margin = bound - self.drop_points().max(0.0);
        if margin <= 0.0 {
            return None;
        }
        let n = self.samples.max(1) as f64;
        let discordant = ((self.only_baseline + self.only_candidate) as f64 + 1.0) / (n + 2.0);
        let z = one_sided_z(confidence);
        let needed = (z * 100.0 * discordant.sqrt() / margin).powi(2);
        Some(needed.ceil().max(1.0) as usize)
    }
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 erf, absolute error below 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(x * x) / 2.0).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Median of `values` with a distribution-free two-sided interval at (at least)
/// `confidence`: order statistics `[x(k), x(n−k+1)]` with k the largest rank whose binomial
/// tail stays within (1 − confidence)/2. `None` when there are too few values for any such
/// interval (fewer than 6 at 95 %).
pub fn median_interval(values: &[f64], confidence: f64) -> Option<Estimate> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let alpha_half = (1.0 - confidence) / 2.0;
    // Largest k (1-based) with P(X ≤ k − 1) ≤ alpha/2.
    let mut k = 0usize;
    while k < n / 2 && binomial_half_cdf(k as u64, n as u64) <= alpha_half {
        k += 1;
    }
    if k == 0 {
        return None;
    }
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    // The achieved coverage is 1 − 2 P(X ≤ k − 1) ≥ confidence.
    let achieved = 1.0 - 2.0 * binomial_half_cdf(k as u64 - 1, n as u64);
    Some(Estimate {
        value: median,
        low: sorted[k - 1],
        high: sorted[n - k],
        confidence: achieved,
    })
}

/// How busy the machine was while a comparison ran: the CPU time other processes used over
/// the comparison's wall time (in CPUs, from the system's counters less this process's own),
/// next to the CPUs there are and the threads the timed sessions used. Interleaving cancels
/// load that slows both models alike, not load that slows one more: on 2 cores at a load
/// average of 6-10, a 44 MB fp32 model lost more to the busy memory system than its 11 MB int8
/// copy, and static int8 measured 5.73x where a quiet run measures 3.5-3.6x.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MachineLoad {
    /// CPUs' worth of time other processes (and the hypervisor, as steal) used, on average.
    pub others: f64,
    /// CPUs of the machine.
    pub cores: usize,
    /// Threads of the timed sessions.
    pub threads: usize,
}

impl MachineLoad {
    /// Busy: other work used more than a quarter of a CPU beyond the CPUs the timed sessions
    /// left free, so the timed threads shared their CPUs (or the memory system was loaded).
    pub fn busy(&self) -> bool {
        self.others > self.cores.saturating_sub(self.threads) as f64 + 0.25
    }

    /// "machine busy: other processes used 1.6 of the 2 CPUs beside the 1 timed thread; ..."
    /// (only said when `busy`).
    pub fn warning(&self) -> Option<String> {
        self.busy().then(|| {
            format!(
                "machine busy: other processes used {:.1} of the {} CPUs beside the {} timed \
                 thread{}; ratios between models of different sizes may be off, re-measure on \
                 a quiet machine",
                self.others,
                self.cores,
                self.threads,
                if self.threads == 1 { "" } else { "s" }
            )
        })
    }
}

/// What one comparison of A (the reference) and B (the candidate) found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedComparison {
    /// Latency of A over latency of B (above 1: B is faster), median over pairs, with its
    /// distribution-free interval.
    pub speedup: Estimate,
    /// Median of A's block medians, ms.
    pub reference_ms: f64,
    /// Median of B's block medians, ms, with the interval of that median.
    pub candidate_ms: Estimate,
    /// A/B block pairs measured.
    pub pairs: usize,
    /// Timed runs per block.
    pub runs_per_block: usize,
    /// Why measuring stopped ("interval within ±3 %", "time cap of 30 s", ...).
    pub stopped: String,
    pub seconds: f64,
    /// Batch size of the timed inputs.
    pub batch: usize,
    /// The machine's load around the comparison; absent in records written before it was
    /// kept, in known comparisons, and where the system does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<MachineLoad>,
}

/// The three honest answers to "is B faster than A?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeedVerdict {
    /// The whole interval is above 1.
    Faster,
    /// The whole interval is below 1.
    Slower,
    /// The interval contains 1: the measurements cannot tell the two apart.
    NotDistinguishable,
}

impl SpeedComparison {
    /// A comparison with known latencies and a relative `spread` (e.g. 0.02 for ±2 %) on
    /// both the speedup and the candidate's latency: for scripted workbenches in tests and
    /// for replays of older records, never for a measurement.
    pub fn known(reference_ms: f64, candidate_ms: f64, spread: f64) -> Self {
        let speedup = reference_ms / candidate_ms.max(f64::MIN_POSITIVE);
        SpeedComparison {
            speedup: Estimate {
                value: speedup,
                low: speedup * (1.0 - spread),
                high: speedup * (1.0 + spread),
                confidence: REPORT_CONFIDENCE,
            },
            reference_ms,
            candidate_ms: Estimate {
                value: candidate_ms,
                low: candidate_ms * (1.0 - spread),
                high: candidate_ms * (1.0 + spread),
                confidence: REPORT_CONFIDENCE,
            },
            pairs: 0,
            runs_per_block: 0,
            stopped: "known".into(),
            seconds: 0.0,
            batch: 1,
            load: None,
        }
    }

    pub fn verdict(&self) -> SpeedVerdict {
        if self.speedup.low > 1.0 {
            SpeedVerdict::Faster
        } else if self.speedup.high < 1.0 {
            SpeedVerdict::Slower
        } else {
            SpeedVerdict::NotDistinguishable
        }
    }

    /// True when the whole interval reaches `target` (a speedup target is met only then).
    pub fn meets_speedup(&self, target: f64) -> bool {
        self.speedup.low >= target
    }

    /// True when B's latency interval lies at or below `target_ms`.
    pub fn meets_latency(&self, target_ms: f64) -> bool {
        self.candidate_ms.high <= target_ms
    }

    /// "1.48x faster (95 % interval 1.41–1.55x, 12 pairs)", "0.56x: slower (...)" or
    /// "not distinguishable (0.97–1.04x, ...)"; a busy machine is said inside the parentheses.
    pub fn describe(&self) -> String {
        let s = &self.speedup;
        let mut interval = format!(
            "{:.0} % interval {:.2}–{:.2}x, {} interleaved pairs",
            s.confidence * 100.0,
            s.low,
            s.high,
            self.pairs
        );
        if let Some(warning) = self.load.as_ref().and_then(MachineLoad::warning) {
            interval = format!("{interval}; {warning}");
        }
        match self.verdict() {
            SpeedVerdict::Faster => format!("{:.2}x faster ({interval})", s.value),
            SpeedVerdict::Slower => format!(
                "{:.2}x, i.e. {:.2}x slower ({interval})",
                s.value,
                1.0 / s.value.max(f64::MIN_POSITIVE)
            ),
            SpeedVerdict::NotDistinguishable => {
                format!("{:.2}x: not distinguishable from 1 ({interval})", s.value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn a_comparison_on_a_busy_machine_says_so() {
        let load = |others, threads| MachineLoad {
            others,
            cores: 2,
            threads,
        };
        // One timed thread on 2 CPUs: one other busy process fits the free CPU.
        assert!(!load(0.1, 1).busy());
        assert!(!load(1.0, 1).busy());
        // More than the free CPU: the timed thread shared its own.
        assert!(load(1.6, 1).busy());
        // Timed on every CPU: anything beyond a quarter of one shares them.
        assert!(!load(0.2, 2).busy());
        assert!(load(0.5, 2).busy());
        let mut compared = SpeedComparison::known(10.0, 4.0, 0.02);
        let quiet = compared.describe();
        assert!(!quiet.contains("busy"), "{quiet}");
        compared.load = Some(load(1.6, 1));
        let busy = compared.describe();
        assert!(busy.starts_with("2.50x faster ("), "{busy}");
        assert!(
            busy.contains(
                "machine busy: other processes used 1.6 of the 2 CPUs beside the 1 timed thread;"
            ),
            "{busy}"
        );
        // Older records have no load: they read as before.
        let json = serde_json::to_value(SpeedComparison::known(10.0, 4.0, 0.02)).unwrap();
        assert!(json.get("load").is_none());
        let back: SpeedComparison = serde_json::from_value(json).unwrap();
        assert_eq!(back.load, None);
    }

    #[test]
    fn normal_quantiles_match_tables() {
        assert!((two_sided_z(0.95) - 1.959_964).abs() < 1e-5);
        assert!((one_sided_z(0.9) - 1.281_552).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn wilson_matches_reference_values() {
        // 81 of 263 (Wilson 1927 style example; R binom.wilson gives 0.2553 .. 0.3662).
        let e = wilson(81, 263, 0.95).unwrap();
        assert!((e.low - 0.2553).abs() < 5e-4, "{e:?}");
        assert!((e.high - 0.3662).abs() < 5e-4, "{e:?}");
        let all = wilson(10, 10, 0.95).unwrap();
        assert_eq!(all.high, 1.0);
        assert!(all.low > 0.65 && all.low < 0.75);
        assert!(wilson(0, 0, 0.95).is_none());
    }

    #[test]
    fn mcnemar_exact_p_values() {
        let p = PairedAccuracy {
            samples: 100,
            baseline_correct: 90,
            candidate_correct: 85,
            only_baseline: 7,
            only_candidate: 2,
        };
        // Two-sided binomial test of 2 of 9 at 1/2: 2 * (1 + 9 + 36) / 512.
        assert!((p.mcnemar_p() - 2.0 * 46.0 / 512.0).abs() < 1e-12);
        assert!((p.drop_points() - 5.0).abs() < 1e-12);
        let same = PairedAccuracy {
            only_baseline: 0,
            only_candidate: 0,
            ..p
        };
        assert_eq!(same.mcnemar_p(), 1.0);
    }

    #[test]
    fn paired_interval_covers_the_true_drop() {
        // Simulated: baseline right 90 %, candidate loses 2 points through 4 % vs 2 % flips.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let trials = 400;
        let mut covered = 0;
        let mut under_bound = 0;
        for _ in 0..trials {
            let mut base = Vec::new();
            let mut cand = Vec::new();
            for _ in 0..1000 {
                let b = rng.gen_bool(0.9);
                let u: f64 = rng.gen();
                let c = if u < 0.04 {
                    false
                } else if u < 0.06 {
                    true
                } else {
                    b
                };
                base.push(b);
                cand.push(c);
            }
            let p = PairedAccuracy::from_flags(&base, &cand).unwrap();
            let true_drop = 100.0 * (0.04 * 0.9 - 0.02 * 0.1);
            covered += usize::from(p.drop_interval(0.95).contains(true_drop));
            under_bound += usize::from(true_drop <= p.drop_upper_bound(0.9));
        }
        let coverage = covered as f64 / trials as f64;
        let one_sided = under_bound as f64 / trials as f64;
        assert!(coverage > 0.92, "coverage {coverage}");
        assert!(one_sided > 0.86, "one-sided coverage {one_sided}");
    }

    #[test]
    fn samples_needed_grows_as_the_margin_shrinks() {
        let p = PairedAccuracy {
            samples: 120,
            baseline_correct: 100,
            candidate_correct: 100,
            only_baseline: 3,
            only_candidate: 3,
        };
        let wide = p.samples_needed(1.0, 0.9).unwrap();
        let narrow = p.samples_needed(0.5, 0.9).unwrap();
        assert!(narrow > 3 * wide, "{wide} {narrow}");
        let over = PairedAccuracy {
            only_baseline: 10,
            only_candidate: 0,
            ..p
        };
        assert_eq!(over.samples_needed(1.0, 0.9), None);
    }

    #[test]
    fn median_interval_needs_six_values_at_95() {
        assert!(median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95).is_none());
        let e = median_interval(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0], 0.95).unwrap();
        assert_eq!((e.low, e.value, e.high), (1.0, 3.5, 6.0));
        assert!(e.confidence >= 0.95);
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let e = median_interval(&values, 0.95).unwrap();
        // n = 20: k = 6 (P(X ≤ 5) = 0.0207), interval x(6) .. x(15).
        assert_eq!((e.low, e.high), (6.0, 15.0));
    }

    #[test]
    fn median_interval_coverage_on_skewed_noise() {
        // Ratios with occasional large load spikes on either side: the interval still covers
        // the true median (1.0) at about its stated rate.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut covered = 0;
        let trials = 500;
        for _ in 0..trials {
            let values: Vec<f64> = (0..12)
                .map(|_| {
                    let spike = if rng.gen_bool(0.15) {
                        rng.gen_range(-0.6..0.6)
                    } else {
                        0.0
                    };
                    let noise: f64 = rng.gen_range(-0.03..0.03);
                    (noise + spike).exp()
                })
                .collect();
            covered += usize::from(median_interval(&values, 0.95).unwrap().contains(1.0));
        }
        assert!(covered as f64 / trials as f64 > 0.93);
    }
}
