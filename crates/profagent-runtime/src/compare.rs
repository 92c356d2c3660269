//! The one latency comparator: is model B faster than model A on this runtime, and how sure is
//! that?
//!
//! Two models timed minutes apart on a shared machine are not comparable: load comes and goes
//! (a baseline timed at 148.9 ms under load against a candidate at 44.2 ms read "3.37x" for a
//! pair that measures 0.99x side by side). So A and B are timed in alternating blocks
//! (A B, B A, A B, ...: the order flips every pair so a slow drift favours neither), each
//! block's warm-up runs discarded and its median kept, and the speedup is the median over pairs
//! of `median(A block) / median(B block)` with a distribution-free interval (order statistics
//! of the pair ratios, `profagent_stats::median_interval`). Pairs are added until the interval
//! is narrower than a tolerance or a time cap is hit; on a loaded machine the answer may be
//! "not distinguishable", never a confident wrong "faster".
//!
//! Each block loads its model's session and drops it before the other model's block: two live
//! ONNX Runtime sessions disturb each other (an idle thread pool next to a running one inflated
//! latency up to 2x on 2 cores), and a session keeps its own memory placement for its whole
//! life: timing the same model in two sessions kept alive side by side measured 1.04x
//! (interval 1.01–1.06x) under load, a bias that fresh sessions per block spread over both sides.
//! Blocks are made long enough for loading to stay a small part of a comparison.
use std::time::{Duration, Instant};

use profagent_stats::{median_interval, Estimate, SpeedComparison};

use crate::{ModelSource, Result, Runtime, RuntimeError, Session, SessionOptions, Tensor};

/// How long and how precisely to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareSettings {
    /// Pairs measured before the interval is looked at (6 is the least that gives a 95 %
    /// distribution-free interval for a median).
    pub min_pairs: usize,
    /// Pairs at most.
    pub max_pairs: usize,
    /// Stop once the interval's half-width (in log-ratio) is below this (0.03: ±3 %).
    pub tolerance: f64,
    /// Stop adding pairs after this long (the interval then says how sure the answer is).
    pub time_cap: Duration,
    /// Untimed runs at the start of every block (first runs after a load or a switch are slow).
    pub warmup_runs: usize,
    /// Timed runs per block are chosen so a block lasts about this long...
    pub block_target: Duration,
    /// ...within these bounds.
    pub min_block_runs: usize,
    pub max_block_runs: usize,
    /// Two-sided confidence of the interval.
    pub confidence: f64,
}

impl Default for CompareSettings {
    fn default() -> Self {
        CompareSettings {
            min_pairs: 8,
            max_pairs: 60,
            tolerance: 0.03,
            time_cap: Duration::from_secs(30),
            warmup_runs: 2,
            block_target: Duration::from_millis(150),
            min_block_runs: 3,
            max_block_runs: 40,
            confidence: profagent_stats::REPORT_CONFIDENCE,
        }
    }
}

/// One side of the comparison: its bytes, and its session when it stays loaded.
struct Side<'a> {
    source: &'a ModelSource,
    session: Option<Box<dyn Session>>,
    block_medians: Vec<f64>,
    /// How long the last session load took, ms.
    load_ms: f64,
}

impl Side<'_> {
    /// Runs one block (warm-up, then `runs` timed) and returns its median, ms.
    fn block(
        &mut self,
        runtime: &dyn Runtime,
        options: &SessionOptions,
        inputs: &[(String, Tensor)],
        warmup: usize,
        runs: usize,
    ) -> Result<f64> {
        if self.session.is_none() {
            let started = Instant::now();
            self.session = Some(runtime.load(self.source, options)?);
            self.load_ms = started.elapsed().as_secs_f64() * 1e3;
        }
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| RuntimeError::Comparison {
                reason: "a comparison session could not be kept".into(),
            })?;
        for _ in 0..warmup {
            session.run(inputs)?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs.max(1) {
            let start = Instant::now();
            let outputs = session.run(inputs)?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
            drop(outputs);
        }
        self.session = None;
        times.sort_by(f64::total_cmp);
        let median = crate::latency::quantile(&times, 0.5);
        self.block_medians.push(median);
        Ok(median)
    }
}

/// Compares the latency of `candidate` against `reference` on `inputs` (see the module doc).
pub fn compare_latency(
    runtime: &dyn Runtime,
    reference: &ModelSource,
    candidate: &ModelSource,
    options: &SessionOptions,
    inputs: &[(String, Tensor)],
    settings: &CompareSettings,
) -> Result<SpeedComparison> {
    let started = Instant::now();
    let load_before = crate::machine::cpu_times();
    // How many pairs it takes is known only at the end (an interval within the tolerance, or
    // the time cap): a counter, not a bar.
    let step = profagent_onnx::progress::step("timing interleaved (A B, B A, ...)", None, "pairs");
    let mut a = Side {
        source: reference,
        session: None,
        block_medians: Vec::new(),
        load_ms: 0.0,
    };
    let mut b = Side {
        source: candidate,
        session: None,
        block_medians: Vec::new(),
        load_ms: 0.0,
    };
    // Block length from a first untimed look at each model (also loads and warms them).
    let probe_runs = 3;
    let a_first = a.block(runtime, options, inputs, 1, probe_runs)?;
    let b_first = b.block(runtime, options, inputs, 1, probe_runs)?;
    a.block_medians.clear();
    b.block_medians.clear();
    let slowest = a_first.max(b_first).max(1e-3);
    // A block lasts the target, or twice the slower load, so loading stays a small share.
    let block_ms = (settings.block_target.as_secs_f64() * 1e3).max(2.0 * a.load_ms.max(b.load_ms));
    let runs = ((block_ms / slowest).ceil() as usize).clamp(
        settings.min_block_runs.max(1),
        settings.max_block_runs.max(1),
    );
    let mut log_ratios = Vec::new();
    let min_pairs = settings.min_pairs.max(6);
    let stopped = loop {
        let pair = log_ratios.len();
        // A B on even pairs, B A on odd ones: a slow drift favours neither side.
        let a_first = pair % 2 == 0;
        let (first, second) = if a_first {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let timed =
            |side: &mut Side<'_>| side.block(runtime, options, inputs, settings.warmup_runs, runs);
        let first_ms = timed(first)?;
        let second_ms = timed(second)?;
        let (a_ms, b_ms) = if a_first {
            (first_ms, second_ms)
        } else {
            (second_ms, first_ms)
        };
        log_ratios.push((a_ms.max(1e-9) / b_ms.max(1e-9)).ln());
        let pairs = log_ratios.len();
        step.set(pairs as u64);
        if pairs < min_pairs {
            continue;
        }
        if let Some(e) = median_interval(&log_ratios, settings.confidence) {
            if (e.high - e.low) / 2.0 <= settings.tolerance {
                break format!("interval within ±{:.0} %", settings.tolerance * 100.0);
            }
        }
        // Ctrl-C: the pairs so far give a wider interval, still an honest one.
        if profagent_onnx::progress::stop_requested() {
            break format!("stopped early (interrupted) after {pairs} pairs");
        }
        if started.elapsed() >= settings.time_cap {
            break format!(
                "time cap of {:.0} s reached",
                settings.time_cap.as_secs_f64()
            );
        }
        if pairs >= settings.max_pairs.max(min_pairs) {
            break format!("{pairs} pairs measured");
        }
    };
    let ratio = median_interval(&log_ratios, settings.confidence).ok_or_else(|| {
        RuntimeError::Comparison {
            reason: "too few interleaved pairs for a speedup interval".into(),
        }
    })?;
    let candidate_ms = median_interval(&b.block_medians, settings.confidence).ok_or_else(|| {
        RuntimeError::Comparison {
            reason: "too few interleaved blocks for a latency interval".into(),
        }
    })?;
    let mut reference_sorted = a.block_medians.clone();
    reference_sorted.sort_by(f64::total_cmp);
    Ok(SpeedComparison {
        speedup: Estimate {
            value: ratio.value.exp(),
            low: ratio.low.exp(),
            high: ratio.high.exp(),
            confidence: ratio.confidence,
        },
        reference_ms: crate::latency::quantile(&reference_sorted, 0.5),
        candidate_ms,
        pairs: log_ratios.len(),
        runs_per_block: runs,
        stopped,
        seconds: started.elapsed().as_secs_f64(),
        batch: inputs
            .first()
            .and_then(|(_, t)| t.shape.first())
            .copied()
            .unwrap_or(1),
        load: crate::machine::machine_load(load_before, options.threads),
    })
}
