//! The one rule that turns a pruning ratio into a number of kept units.
//!
//! The plan validator resolves every pruning decision with it (`ResolvedPrune::keep`), and
//! `profagent prune --ratio/--layers` (through `profagent-prune`) uses it too, so a ratio
//! means the same count everywhere. Whoever applies a validated plan passes the pruner the
//! resolved count, never the ratio: the plan is the only description of what is applied.

/// Units kept when removing `ratio` of `current` units, rounded to a multiple of `round_to`.
///
/// The rule: take the whole count nearest to `current × (1 − ratio)`, round it *up* to a
/// multiple of `round_to` (1 = no rounding), and never keep more than `current`. Rounding up
/// keeps more units, the safe direction: the cut is at most half a unit deeper than asked,
/// never a whole rounding step deeper. For 64 channels, ratio 0.35, round_to 8: 41.6 → 42 →
/// 48 kept.
///
/// Returns 0 when the ratio leaves less than half a unit; callers refuse that (the plan
/// validator as `NothingLeft`, the pruner as an error naming the group).
pub fn kept_after(current: usize, ratio: f64, round_to: usize) -> usize {
    let raw = (current as f64 * (1.0 - ratio)).round().max(0.0) as usize;
    let round_to = round_to.max(1);
    let rounded = raw.div_ceil(round_to) * round_to;
    rounded.min(current)
}

/// Units of `unit_channels` channels (a grouped convolution's group) that keep a channel count
/// a multiple of `round_to` channels: `round_to / gcd(round_to, unit_channels)`. Used wherever
/// a channel multiple (`--round-to`, the runtime's channel block) meets a group counted in
/// conv groups.
pub fn units_per_multiple(round_to: usize, unit_channels: usize) -> usize {
    let round_to = round_to.max(1);
    round_to / gcd(round_to, unit_channels.max(1))
}

/// Greatest common divisor (`gcd(a, 0) = a`).
pub fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_multiples_become_conv_group_multiples() {
        assert_eq!(units_per_multiple(8, 1), 8);
        assert_eq!(units_per_multiple(8, 4), 2); // 2 groups of 4 = 8 channels
        assert_eq!(units_per_multiple(8, 8), 1);
        assert_eq!(units_per_multiple(8, 24), 1);
        assert_eq!(units_per_multiple(16, 6), 8); // 8 groups of 6 = 48 = 3 x 16
        assert_eq!(units_per_multiple(1, 4), 1);
    }

    #[test]
    fn kept_units_round_up_and_never_exceed_current() {
        assert_eq!(kept_after(64, 0.5, 1), 32);
        assert_eq!(kept_after(64, 0.3, 8), 48); // 44.8 → 45 → 48
        assert_eq!(kept_after(64, 0.35, 8), 48); // 41.6 → 42 → 48 (issue 16)
        assert_eq!(kept_after(10, 0.05, 8), 10); // 9.5 → 10 → 16 → capped
        assert_eq!(kept_after(24, 0.5, 8), 16); // 12 → 16: never a step deeper than asked
        assert_eq!(kept_after(3, 0.9, 1), 0); // nothing left: callers refuse it
        assert_eq!(kept_after(0, 0.5, 8), 0);
        assert_eq!(kept_after(16, f64::NAN, 1), 0);
    }

    #[test]
    fn the_cut_is_never_a_whole_step_deeper_than_asked() {
        for current in 1..=130usize {
            for step in [1usize, 2, 3, 4, 8, 16] {
                for percent in 1..90 {
                    let ratio = f64::from(percent) / 100.0;
                    let keep = kept_after(current, ratio, step);
                    let asked = current as f64 * (1.0 - ratio);
                    assert!(keep <= current);
                    assert!(
                        keep as f64 >= asked - 0.5 - 1e-9,
                        "{current} units, ratio {ratio}, round_to {step}: keeps {keep}"
                    );
                    assert!(keep == current || keep.is_multiple_of(step));
                }
            }
        }
    }
}
