//! How `compress` divides one data folder into its three disjoint slices: calibration (static
//! quantization ranges, the pruner's repairs), feedback (what the loop and the planner see) and
//! holdout (the final comparison only).

/// Samples per calibration batch for a model whose batch dimension is free (a model with a
/// fixed batch gets batches of that size from `profagent_data::calibration_batches`).
pub const CALIBRATION_BATCH: usize = 50;

/// Calibration and feedback slice sizes: as asked when the data has room for them plus a
/// holdout at least as large as the feedback slice, else 20 % / 40 % / 40 % of the data (the
/// holdout gets the rest).
pub fn split_sizes(samples: usize, calibration: usize, feedback: usize) -> (usize, usize) {
    if calibration + 2 * feedback <= samples {
        (calibration, feedback)
    } else {
        (samples / 5, samples * 2 / 5)
    }
}

#[cfg(test)]
mod tests {
    use super::split_sizes;

    #[test]
    fn asked_sizes_are_kept_when_a_holdout_as_large_as_feedback_remains() {
        assert_eq!(split_sizes(2500, 500, 1000), (500, 1000));
        assert_eq!(split_sizes(10_000, 500, 1000), (500, 1000));
    }

    #[test]
    fn small_data_is_split_20_40_40() {
        // 300 bundled images: 500 + 2 × 1000 do not fit.
        assert_eq!(split_sizes(300, 500, 1000), (60, 120));
        // One sample short of room for the holdout.
        assert_eq!(split_sizes(2499, 500, 1000), (499, 999));
        let (calibration, feedback) = split_sizes(7, 500, 1000);
        assert!(calibration + feedback <= 7);
    }
}
