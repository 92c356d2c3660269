//! Verdicts on measurements: whether a candidate is accepted, whether a budget is met, and
//! why, in words that name what was compared and how sure the comparison is.
//!
//! Every verdict here reads intervals, never two point estimates taken at different moments:
//! - accuracy: the paired comparison with the baseline on the same images must put a drop
//!   beyond `max_acc_drop` at most `1 − Budget::acc_confidence` likely (0.9 unless the user chose);
//! - speed: a candidate counts as faster only when the interleaved comparison's interval
//!   lies above 1, a speedup target is met only when the whole interval reaches it, and a
//!   latency target only when the latency interval lies below it;
//! - size and MACs are exact, so a small fixed margin is enough.
//!
//! Used by the loop (`compressor`) and by the built-in planner; depends on neither.
use crate::facts::{Budget, Evaluation, Objective, SpeedComparison, SpeedVerdict};

/// With a MACs-only budget a candidate must cut MACs by this much (log scale, 0.5 %).
pub const MIN_MACS_GAIN: f64 = 0.005;
/// A candidate that is not measurably faster must be at least this much smaller (log scale,
/// about 2 %) to count as progress.
pub const MIN_SIZE_GAIN: f64 = 0.02;

pub use profagent_record::Decision;

/// A decision and the sentence that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub decision: Decision,
    pub reason: String,
}

fn judgement(decision: Decision, reason: String) -> Judgement {
    Judgement { decision, reason }
}

/// "top-1 drop 0.40 points on 1000 images (95 % interval −0.2–1.0, 90 % upper bound 0.85)",
/// the upper bound at `confidence` (`Budget::acc_confidence`).
pub fn describe_accuracy(evaluation: &Evaluation, confidence: f64) -> String {
    match &evaluation.accuracy_change {
        Some(p) => {
            let interval = p.drop_interval(profagent_stats::REPORT_CONFIDENCE);
            format!(
                "top-1 drop {:.2} points on {} images (95 % interval {:.2} to {:.2}; {:.0} % upper bound {:.2}; McNemar p = {:.2})",
                p.drop_points(),
                p.samples,
                interval.low,
                interval.high,
                confidence * 100.0,
                p.drop_upper_bound(confidence),
                p.mcnemar_p()
            )
        }
        None if evaluation.top1.is_none() => "no labels: accuracy not measured".into(),
        None => "top-1 change not measured".into(),
    }
}

/// Accepts or rejects `candidate` against the current best. `vs_best`: the candidate timed
/// against the current best (interleaved); `None` when the best is the input model, whose
/// comparison is `candidate.speed`.
pub fn judge(
    budget: &Budget,
    best: &Evaluation,
    candidate: &Evaluation,
    vs_best: Option<&SpeedComparison>,
) -> Judgement {
    if !budget.accuracy_kept(candidate) {
        let needed = candidate
            .accuracy_change
            .and_then(|p| p.samples_needed(budget.max_acc_drop, budget.acc_confidence))
            .filter(|&n| n > candidate.images)
            .map(|n| {
                format!(
                    "; deciding it at this drop needs about {n} feedback images (--feedback-samples)"
                )
            })
            .unwrap_or_default();
        return judgement(
            Decision::AccuracyAtRisk,
            format!(
                "rejected, rolled back: {}: a drop beyond the budget of {:.2} points is too likely{needed}",
                describe_accuracy(candidate, budget.acc_confidence),
                budget.max_acc_drop
            ),
        );
    }
    if !budget.fidelity_kept(candidate) {
        return judgement(
            Decision::FidelityBroken,
            format!(
                "rejected, rolled back: output cosine with the original {} is below the budget's {:.4}",
                candidate
                    .cosine
                    .map(|c| format!("{c:.5}"))
                    .unwrap_or_else(|| "(not measured)".into()),
                budget.min_cosine.unwrap_or_default()
            ),
        );
    }
    let within = match (budget.min_cosine, candidate.cosine) {
        (Some(_), Some(c)) => format!(
            "within the bounds ({}; output cosine {c:.5})",
            describe_accuracy(candidate, budget.acc_confidence)
        ),
        _ => format!(
            "within the bounds ({})",
            describe_accuracy(candidate, budget.acc_confidence)
        ),
    };
    let size_gain =
        (best.model_bytes.max(1) as f64).ln() - (candidate.model_bytes.max(1) as f64).ln();
    // Shown as the plain fraction of bytes removed.
    let smaller = 100.0 * (1.0 - (-size_gain).exp());
    let speed = vs_best.or(candidate.speed.as_ref());
    match budget.objective() {
        Objective::Macs => {
            let gain = match (best.macs, candidate.macs) {
                (Some(b), Some(c)) => (b.max(1) as f64).ln() - (c.max(1) as f64).ln(),
                _ => 0.0,
            };
            if gain < MIN_MACS_GAIN {
                return judgement(
                    Decision::NoGain,
                    format!("rejected: MACs {:+.1} % against the current best, below the {:.1} % that counts", 100.0 * ((-gain).exp() - 1.0), MIN_MACS_GAIN * 100.0),
                );
            }
            judgement(
                Decision::Accepted,
                format!(
                    "accepted: {within}, {:.1} % fewer MACs than the current best",
                    // `gain` is a log ratio: shown as the plain fraction of MACs removed.
                    100.0 * (1.0 - (-gain).exp())
                ),
            )
        }
        Objective::Size => {
            if size_gain < MIN_SIZE_GAIN {
                return judgement(
                    Decision::NoGain,
                    format!("rejected: {smaller:.1} % smaller than the current best, below the {:.0} % that counts", MIN_SIZE_GAIN * 100.0),
                );
            }
            let speed_note = speed
                .map(|s| {
                    format!(
                        "; speed against the {}: {}",
                        if vs_best.is_some() {
                            "current best"
                        } else {
                            "input"
                        },
                        s.describe()
                    )
                })
                .unwrap_or_default();
            judgement(
                Decision::Accepted,
                format!("accepted: {within} and {smaller:.1} % smaller than the current best{speed_note}"),
            )
        }
        Objective::Speed => {
            let Some(speed) = speed else {
                return judgement(
                    Decision::NoGain,
                    "rejected: its speed could not be measured".into(),
                );
            };
            let against = if vs_best.is_some() {
                "the current best"
            } else {
                "the input model"
            };
            match speed.verdict() {
                SpeedVerdict::Faster => judgement(
                    Decision::Accepted,
                    format!("accepted: {within} and {} than {against}", speed.describe()),
                ),
                SpeedVerdict::NotDistinguishable if size_gain >= MIN_SIZE_GAIN => judgement(
                    Decision::Accepted,
                    format!(
                        "accepted: {within}, as fast as {against} within the measurement's resolution ({}) and {smaller:.1} % smaller",
                        speed.describe()
                    ),
                ),
                SpeedVerdict::NotDistinguishable => judgement(
                    Decision::NoGain,
                    format!("rejected: not measurably faster than {against} ({}) nor {:.0} % smaller", speed.describe(), MIN_SIZE_GAIN * 100.0),
                ),
                SpeedVerdict::Slower => judgement(
                    Decision::Slower,
                    format!("rejected: slower than {against}: {}", speed.describe()),
                ),
            }
        }
    }
}

/// True when accuracy and fidelity are kept and every named target is reached with the
/// confidence of its measurement (`false` without any target: then the loop keeps improving).
pub fn budget_met(budget: &Budget, baseline: &Evaluation, current: &Evaluation) -> bool {
    budget.any_target()
        && bounds_kept(budget, current)
        && targets_reached(budget, baseline, current)
}

/// Accuracy (paired, with confidence) and fidelity bounds.
pub fn bounds_kept(budget: &Budget, current: &Evaluation) -> bool {
    budget.accuracy_kept(current) && budget.fidelity_kept(current)
}

/// Every named latency, speedup, memory and MACs target, judged on intervals.
pub fn targets_reached(budget: &Budget, baseline: &Evaluation, current: &Evaluation) -> bool {
    budget
        .target_latency_ms
        .is_none_or(|t| current.speed.as_ref().is_some_and(|s| s.meets_latency(t)))
        && budget
            .target_memory_bytes
            .is_none_or(|t| current.model_bytes <= t)
        && budget
            .target_speedup
            .is_none_or(|t| current.speed.as_ref().is_some_and(|s| s.meets_speedup(t)))
        && budget
            .target_macs_fraction
            .is_none_or(|f| match (current.macs, baseline.macs) {
                (Some(now), Some(base)) => now as f64 <= f * base as f64,
                _ => false,
            })
}
