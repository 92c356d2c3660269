//! `quantize --calibration auto`: static QDQ with every calibration method, each checked
//! against the float model on the same real samples (`check::check_rewrite`, the one output
//! cosine), the most faithful kept.
//!
//! Which range method is best depends on the model's activations (rare outliers favour
//! entropy/MSE, a bulk that fills its range favours min-max), so it is measured. A tie within
//! `TIE_COSINE` keeps the earlier method in `AUTO_METHODS` (min-max first: the cheapest to
//! explain). The samples should be ones calibration did not see; the pre-write check that
//! follows then reads the chosen model on the samples it was chosen on, so its cosine is the
//! best of four and slightly optimistic.
use profagent_onnx::Model;
use profagent_quant::{Calibration, QuantReport, QuantSpec};
use profagent_runtime::{Runtime, RuntimeKind, SessionOptions};

use crate::activations::{Batch, BatchActivations};
use crate::check::{check_rewrite, CheckError, CheckInputs, Floor};

/// The percentile `auto` and plans use (clips one value in 10,000 on each side).
pub const PERCENTILE: f64 = 99.99;

/// The methods `auto` tries, in order of preference on a tie.
pub const AUTO_METHODS: [Calibration; 4] = [
    Calibration::MinMax,
    Calibration::Percentile {
        percentile: PERCENTILE,
    },
    Calibration::Entropy,
    Calibration::Mse,
];

/// The quantizer's method for a plan's calibration choice.
pub fn calibration_method(method: profagent_plan::QuantCalibration) -> Calibration {
    use profagent_plan::QuantCalibration as Plan;
    match method {
        Plan::Minmax => Calibration::MinMax,
        Plan::Percentile => Calibration::Percentile {
            percentile: PERCENTILE,
        },
        Plan::Entropy => Calibration::Entropy,
        Plan::Mse => Calibration::Mse,
    }
}

/// Cosines closer than this are a tie (the fifth decimal the check prints).
pub const TIE_COSINE: f64 = 1e-5;

/// Why the automatic choice failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("quantizing with {method} calibration: {source}")]
    Quantize {
        method: &'static str,
        source: profagent_quant::QuantError,
    },
    #[error("checking the {method} model: {source}")]
    Check {
        method: &'static str,
        source: CheckError,
    },
}

/// The measured choice, for the summary and `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CalibrationChoice {
    pub chosen: &'static str,
    /// Mean output cosine of each method's model against the float model.
    pub cosines: Vec<(&'static str, f64)>,
    pub samples: usize,
}

impl CalibrationChoice {
    pub fn line(&self) -> String {
        let all: Vec<String> = self
            .cosines
            .iter()
            .map(|(m, c)| format!("{m} {c:.5}"))
            .collect();
        format!(
            "calibration auto: {} kept; mean output cosine on {} samples: {}",
            self.chosen,
            self.samples,
            all.join(", ")
        )
    }
}

/// The index of the best cosine; a tie within `TIE_COSINE` keeps the earlier.
pub fn pick(cosines: &[f64]) -> usize {
    let mut best = 0;
    for (i, &c) in cosines.iter().enumerate().skip(1) {
        if c > cosines[best] + TIE_COSINE {
            best = i;
        }
    }
    best
}

/// Quantizes `model` as `spec` says with each of `AUTO_METHODS`, checks each on `check`
/// (real samples), and returns the model with the highest mean output cosine.
pub fn quantize_auto_calibration(
    model: &Model,
    spec: &QuantSpec,
    runtime: &dyn Runtime,
    calibration: &[Batch],
    check: &CheckInputs<'_>,
) -> Result<(Model, QuantReport, CalibrationChoice), CalibrationError> {
    let session = SessionOptions::default();
    let mut results = Vec::new();
    let mut cosines = Vec::new();
    let mut samples = 0;
    for method in AUTO_METHODS {
        let spec = QuantSpec {
            calibration: method,
            ..spec.clone()
        };
        let mut source = BatchActivations::for_quantization(runtime, &session, calibration);
        let (quantized, report) = profagent_quant::quantize(model, &spec, Some(&mut source))
            .map_err(|source| CalibrationError::Quantize {
                method: method.name(),
                source,
            })?;
        let outcome = check_rewrite(
            RuntimeKind::Ort,
            model,
            &quantized,
            Some(CheckInputs {
                batches: check.batches,
                origin: check.origin,
                samples: check.samples,
            }),
            &[],
            Floor {
                min_cosine: f64::NEG_INFINITY,
                what: "quantized",
                remedy: "",
            },
        )
        .map_err(|source| CalibrationError::Check {
            method: method.name(),
            source,
        })?;
        samples = outcome.samples;
        cosines.push(outcome.report.cosine);
        results.push((quantized, report));
    }
    let best = pick(&cosines);
    let choice = CalibrationChoice {
        chosen: AUTO_METHODS[best].name(),
        cosines: AUTO_METHODS
            .iter()
            .map(|m| m.name())
            .zip(cosines.iter().copied())
            .collect(),
        samples,
    };
    let (quantized, report) = results.swap_remove(best);
    Ok((quantized, report, choice))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_cosine_wins_and_a_tie_keeps_the_earlier() {
        assert_eq!(pick(&[0.990, 0.995, 0.993, 0.994]), 1);
        assert_eq!(pick(&[0.99500, 0.995004, 0.99, 0.99]), 0);
        assert_eq!(pick(&[0.9, 0.9, 0.9, 0.95]), 3);
    }
}
