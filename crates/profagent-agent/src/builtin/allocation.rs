//! The built-in planner's allocation of a MACs or latency target across groups (issue 19,
//! global allocation): what the target still asks for, spread where it costs least.
use profagent_plan::{CompressionPlan, PlanContext, PruneDecision};

use super::{
    probed, prune_decision, round_to_of, shrinks, BuiltinPlanner, INITIAL_STEP, ROUND_BUDGET_SHARE,
    SENSITIVITY_FLOOR,
};
use crate::coupling::{Coupling, Removed};

/// How close to the target (a share of what the round aims to remove) a full-step allocation
/// must come within its share of the budget for the rest to be paid from the budget left.
pub const FINISH_SHARE: f64 = 0.1;
use crate::facts::{GroupFacts, PlanningInput};

/// What an allocation counts as removed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Quantity {
    Macs,
    /// Milliseconds of the per-layer latency profile (measured on the input model, scaled by
    /// MACs for layers pruned since).
    Ms,
}

impl Quantity {
    fn of(self, removed: &Removed) -> f64 {
        match self {
            Quantity::Macs => removed.macs,
            Quantity::Ms => removed.ms.unwrap_or(0.0),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Quantity::Macs => "MACs",
            Quantity::Ms => "measured ms",
        }
    }

    fn amount(self, value: f64) -> String {
        match self {
            Quantity::Macs => format!("{:.1}", value / 1e6),
            Quantity::Ms => format!("{value:.2}"),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Quantity::Macs => "MMACs",
            Quantity::Ms => "ms of the per-layer profile",
        }
    }
}

/// What the round should remove: `amount` of `quantity` (already times the step's share of
/// `INITIAL_STEP`), and the target that asks for it, in words.
struct Need {
    amount: f64,
    quantity: Quantity,
    headline: String,
}

/// The speedup still missing on the current model (its measured speed against the input,
/// interleaved), judged as the loop judges a target (`SpeedComparison::meets_speedup`: the
/// interval's lower bound; `meets_latency`: the latency interval's upper bound): the larger
/// of what the speedup and the latency targets ask for; `None` when neither is set or both
/// are met.
fn speed_missing(input: &PlanningInput) -> Option<f64> {
    let budget = &input.budget;
    let speed = input.current.speed.as_ref();
    let now = speed.map_or(1.0, |s| s.speedup.low).max(1e-9);
    let ms = speed.map_or(input.current.latency_ms, |s| s.candidate_ms.high);
    let by_speedup = budget.target_speedup.map(|t| t / now);
    let by_latency = budget
        .target_latency_ms
        .filter(|t| *t > 0.0 && ms > 0.0)
        .map(|t| ms / t);
    let missing = match (by_speedup, by_latency) {
        (Some(a), Some(b)) => a.max(b),
        (a, b) => a.or(b)?,
    };
    (missing > 1.0).then_some(missing)
}

impl BuiltinPlanner {
    /// What a MACs target, else a speed or latency target, still asks pruning to remove.
    /// A speed target missing a factor `f` asks for `1 - 1/f` of the current model's latency,
    /// counted in the per-layer profile's ms where layers were timed (else in MACs): pruned
    /// layers take their share of the time with them, the rest stays.
    fn need(&self, input: &PlanningInput) -> Option<Need> {
        let scale = self.step / INITIAL_STEP;
        if let (Some(fraction), Some(now), Some(base)) = (
            input.budget.target_macs_fraction,
            input.current.macs,
            input.baseline.macs,
        ) {
            let missing = now as f64 - fraction * base as f64;
            if missing > 0.0 {
                return Some(Need {
                    amount: missing * scale,
                    quantity: Quantity::Macs,
                    headline: format!("MACs target {:.0} % of the baseline", fraction * 100.0),
                });
            }
        }
        let missing = speed_missing(input)?;
        let share = 1.0 - 1.0 / missing;
        let ms: f64 = input.layers.iter().filter_map(|l| l.latency_ms).sum();
        let (total, quantity) = if ms > 0.0 {
            (ms, Quantity::Ms)
        } else {
            (input.current.macs? as f64, Quantity::Macs)
        };
        Some(Need {
            amount: share * total * scale,
            quantity,
            headline: format!(
                "speed target: {missing:.2}x beyond the measured lower bound now, {:.0} % of the current latency to remove",
                share * 100.0
            ),
        })
    }

    /// With a MACs, speed or latency target (`need`): one plan that removes what is still
    /// missing (times the step's share of `INITIAL_STEP`, so a rejected allocation is retried
    /// at half the size), spread over the groups where it costs least. Greedy on increments of
    /// 1/16 of a group's baseline channels (rounded up to its aligned width, `round_to_for`):
    /// each increment goes to the group with the lowest expected extra drop per MAC (or
    /// measured ms) removed, counting all cuts together with each layer once
    /// (`coupling::Coupling`); a group's expected drop grows with the square of its pruned
    /// fraction, anchored at its measured sensitivity at the ratio it was probed at (the first
    /// channels removed are the least important, the last ones the most; between a first and a
    /// deeper probe the measured curve, `GroupFacts::expected_drop_at`). A group loses at most
    /// the deepest probed ratio of the channels it was measured at (the measured range), and
    /// the round's expected drop stays within `ROUND_BUDGET_SHARE` (times the step's share) of
    /// the budget left, even when that leaves the target missing, except that a full step
    /// (no rejection behind it) within `FINISH_SHARE` of the target finishes it if the whole
    /// budget left pays for the rest. `None` without a target that is missing, without measured
    /// sensitivities, or when not one increment fits.
    pub(super) fn allocation(
        &mut self,
        input: &PlanningInput,
        context: &PlanContext,
        budget_left: f64,
        binding: &str,
    ) -> Option<CompressionPlan> {
        let need = self.need(input)?;
        let scale = self.step / INITIAL_STEP;
        let candidates: Vec<&GroupFacts> = input
            .groups
            .iter()
            .filter(|g| g.prunable && !self.avoided.contains(&g.id) && g.macs > 0)
            .filter(|g| g.sensitivity.is_some())
            .filter(|g| context.may_prune(&g.id))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        // Per candidate: baseline channels, current channels, channels removed by this plan.
        let mut removed = vec![0usize; candidates.len()];
        let original: Vec<usize> = candidates.iter().map(|g| self.original(g)).collect();
        // Channels each candidate had when its sensitivity was measured (the input's, or the
        // accepted model's it was re-measured on): its cost curve starts there.
        let from: Vec<usize> = candidates
            .iter()
            .zip(&original)
            .map(|(g, o)| {
                match g.heads {
                    // Heads groups are probed in heads; this allocation counts channels.
                    Some(heads) => g
                        .probed_from
                        .map(|from| from * g.channels / heads.max(1))
                        .unwrap_or(*o),
                    None => g.probed_from.unwrap_or(*o),
                }
                .max(g.channels)
            })
            .collect();
        // Expected drop of candidate `i` with `extra` more channels removed than now, relative
        // to the current model (what has been removed since the measurement is spent).
        let expected = |i: usize, extra: usize| {
            let g = candidates[i];
            let curve = |removed: usize| {
                let gone = removed as f64 / from[i] as f64;
                // Measured drops near zero are noise, not free channels.
                self.calibration * g.expected_drop_at(gone, SENSITIVITY_FLOOR).unwrap_or(0.0)
            };
            let before = from[i].saturating_sub(g.channels);
            curve(before + extra) - curve(before)
        };
        // The round may spend at most ROUND_BUDGET_SHARE of the budget left (times the step's
        // share of INITIAL_STEP: after a rejection the estimates proved optimistic, so the
        // retry is smaller, not the same round again): the allocation stops where the next
        // cheapest increment would cross it, even if the target is still missing (later rounds
        // continue from the measured outcome).
        let share = ROUND_BUDGET_SHARE * scale;
        let allowed = share * budget_left;
        // What the cuts free together: a layer between two cut groups counts once.
        let coupling = Coupling::new(&candidates, input, context);
        let freed_by = |removed: &[usize]| {
            let fractions: Vec<f64> = removed
                .iter()
                .zip(&candidates)
                .map(|(r, g)| *r as f64 / g.channels.max(1) as f64)
                .collect();
            need.quantity.of(&coupling.removed(&fractions))
        };
        // Greedy: the cheapest increment per freed unit while the target is missing and the
        // round's expected drop stays within `cap`.
        let grow = |removed: &mut Vec<usize>, freed: &mut f64, spent: &mut f64, cap: f64| {
            while *freed < need.amount {
                let mut best: Option<(usize, usize, f64, f64)> = None;
                for i in 0..candidates.len() {
                    let g = candidates[i];
                    // Whole aligned widths (the kept count is rounded to `round_to_for`, which
                    // only ever keeps more): an increment rounding would undo frees nothing.
                    let align = match g.heads {
                        Some(_) => 1,
                        None => round_to_of(g, original[i]) as usize,
                    };
                    let increment = (original[i] / 16).max(1).div_ceil(align) * align;
                    // Never beyond the measured range: at most the deepest probed fraction of
                    // the channels it was measured at (the sensitivity says nothing about
                    // deeper cuts).
                    let range = g.measured_range().unwrap_or_else(|| probed(g));
                    let gone = from[i].saturating_sub(g.channels) + removed[i] + increment;
                    if gone as f64 > range * from[i] as f64 + 1e-9 || gone >= from[i] {
                        continue;
                    }
                    let cost = expected(i, removed[i] + increment) - expected(i, removed[i]);
                    if *spent + cost > cap {
                        continue;
                    }
                    let mut more = removed.clone();
                    more[i] += increment;
                    let gain = freed_by(&more) - *freed;
                    if gain <= 0.0 {
                        continue;
                    }
                    let price = (cost + 1e-6) / gain;
                    if best.is_none_or(|(_, _, p, _)| price < p) {
                        best = Some((i, increment, price, cost));
                    }
                }
                let Some((i, increment, _, cost)) = best else {
                    break;
                };
                *spent += cost;
                removed[i] += increment;
                *freed = freed_by(removed);
            }
        };
        let mut freed = 0.0;
        let mut spent = 0.0;
        grow(&mut removed, &mut freed, &mut spent, allowed);
        // A full step (no rejection behind it) that stops within FINISH_SHARE of the target
        // may finish it with the budget left beyond the round's share, never beyond the budget
        // left: a round that meets the target ends the run, while the sliver left over would
        // need a round of its own that the budget then left cannot pay for (vit_tiny stopped at
        // 0.6016 of the MACs with a 0.60 target, 0.07 points left).
        let mut finished = None;
        if scale >= 1.0 && freed < need.amount && need.amount - freed <= FINISH_SHARE * need.amount
        {
            let (mut more, mut more_freed, mut more_spent) = (removed.clone(), freed, spent);
            grow(&mut more, &mut more_freed, &mut more_spent, budget_left);
            if more_freed >= need.amount {
                finished = Some(more_spent - spent);
                removed = more;
            }
        }
        let mut chosen: Vec<(PruneDecision, usize)> = Vec::new();
        for (i, g) in candidates.iter().enumerate() {
            if removed[i] == 0 {
                continue;
            }
            let decision = prune_decision(
                g,
                removed[i] as f64 / g.channels as f64,
                round_to_of(g, original[i]),
                format!(
                    "{} of {} channels: cheapest {} per expected top-1 loss (expected drop {:.2} points at {:.0} % of the group)",
                    removed[i],
                    g.channels,
                    need.quantity.name(),
                    g.sensitivity.unwrap_or(0.0),
                    probed(g) * 100.0
                ),
            );
            if shrinks(&decision, context) {
                chosen.push((decision, i));
            }
        }
        if chosen.is_empty() {
            return None;
        }
        // The plan schema bounds the decisions per plan: keep the largest.
        chosen.sort_by(|(a, _), (b, _)| b.ratio.total_cmp(&a.ratio).then(a.target.cmp(&b.target)));
        chosen.truncate(profagent_plan::types::MAX_PRUNING_DECISIONS);
        // What the plan as proposed is expected to cost and free.
        let spent: f64 = chosen.iter().map(|(_, i)| expected(*i, removed[*i])).sum();
        let mut kept_removed = vec![0; candidates.len()];
        for (_, i) in &chosen {
            kept_removed[*i] = removed[*i];
        }
        let freed = freed_by(&kept_removed);
        self.last_groups = chosen.iter().map(|(d, _)| d.target.clone()).collect();
        self.last_expected = spent;
        let pruning: Vec<PruneDecision> = chosen.into_iter().map(|(d, _)| d).collect();
        Some(CompressionPlan {
            rationale: format!(
                "{}: remove {} of the {} {} this step aims at, over {} groups where the measured sensitivity makes them cheapest; expected drop {spent:.2}, {}",
                need.headline,
                need.quantity.amount(freed),
                need.quantity.amount(need.amount),
                need.quantity.unit(),
                pruning.len(),
                match finished {
                    None => format!(
                        "within {:.0} % of the {budget_left:.2} points of {binding}",
                        share * 100.0
                    ),
                    Some(extra) => format!(
                        "{extra:.2} of it beyond the round's {:.0} % of the {budget_left:.2} points of {binding}, to finish the target (the rest was within {:.0} % of it)",
                        share * 100.0,
                        FINISH_SHARE * 100.0
                    ),
                }
            ),
            pruning,
            ..CompressionPlan::empty("")
        })
    }
}
