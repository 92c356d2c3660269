//! How `compress` divides one data folder into its three disjoint slices: calibration (static
//! quantization ranges, the pruner's repairs), feedback (what the loop and the planner see) and
//! holdout (the final comparison only).

/// Samples per calibration batch for a model whose batch dimension is free (a model with a
/// fixed batch gets batches of that size from `profagent_data::calibration_batches`).
pub const CALIBRATION_BATCH: usize = 50;

/// Feedback slice size when none is asked: at least this many samples...
pub const MIN_DEFAULT_FEEDBACK: usize = 1000;
/// ...and, when the data holds more, half of what calibration leaves, up to this many: the
/// loop accepts a round on the upper confidence bound of its paired top-1 drop on this slice,
/// whose margin shrinks with the square root of its size (2,500 images instead of 1,000: a
/// 1.6x tighter bound, so less of the budget is spent on noise), while every candidate and
/// probe is evaluated on it.
pub const MAX_DEFAULT_FEEDBACK: usize = 2500;

/// Calibration and feedback slice sizes: as asked when the data has room for them plus a
/// holdout at least as large as the feedback slice; else the asked calibration when it is at
/// most a fifth of the data, with feedback and holdout halving the rest (asking 4,000 feedback
/// images of 5,000 gives 500 / 2,250 / 2,250, the most feedback a holdout as large allows);
/// else 20 % / 40 % / 40 % of the data (the holdout gets the rest). Without an asked feedback
/// size: half of what calibration leaves, between `MIN_DEFAULT_FEEDBACK` and
/// `MAX_DEFAULT_FEEDBACK`.
pub fn split_sizes(samples: usize, calibration: usize, feedback: Option<usize>) -> (usize, usize) {
    let feedback = feedback.unwrap_or_else(|| {
        (samples.saturating_sub(calibration) / 2).clamp(MIN_DEFAULT_FEEDBACK, MAX_DEFAULT_FEEDBACK)
    });
    if calibration + 2 * feedback <= samples {
        (calibration, feedback)
    } else if calibration <= samples / 5 {
        (calibration, (samples - calibration) / 2)
    } else {
        (samples / 5, samples * 2 / 5)
    }
}

#[cfg(test)]
mod tests {
    use super::split_sizes;

    #[test]
    fn asked_sizes_are_kept_when_a_holdout_as_large_as_feedback_remains() {
        assert_eq!(split_sizes(2500, 500, Some(1000)), (500, 1000));
        assert_eq!(split_sizes(10_000, 500, Some(1000)), (500, 1000));
    }

    #[test]
    fn the_default_feedback_grows_with_the_data_up_to_its_cap() {
        assert_eq!(split_sizes(2500, 500, None), (500, 1000));
        assert_eq!(split_sizes(5000, 500, None), (500, 2250));
        assert_eq!(split_sizes(10_000, 500, None), (500, 2500));
        // Too little data for the minimum: the 20/40/40 split, as with an asked size.
        assert_eq!(split_sizes(300, 500, None), (60, 120));
    }

    #[test]
    fn small_data_is_split_20_40_40() {
        // 300 bundled images: 500 + 2 × 1000 do not fit.
        assert_eq!(split_sizes(300, 500, Some(1000)), (60, 120));
        // One sample short of room for the holdout.
        assert_eq!(split_sizes(2499, 500, Some(1000)), (499, 999));
        // The asked calibration fits in a fifth: feedback and holdout halve the rest.
        assert_eq!(split_sizes(5000, 500, Some(4000)), (500, 2250));
        assert_eq!(split_sizes(5000, 1000, Some(4000)), (1000, 2000));
        let (calibration, feedback) = split_sizes(7, 500, Some(1000));
        assert!(calibration + feedback <= 7);
    }
}
