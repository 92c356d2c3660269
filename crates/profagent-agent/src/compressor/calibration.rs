//! Which calibration method static quantization uses, measured per model.
//!
//! Min-max ranges keep every value but spend levels on rare outliers; percentile, entropy and
//! MSE ranges clip them. Which keeps most accuracy depends on the model's activations, so the
//! static probe that planners will most likely take (the fastest successful one) is quantized
//! again with each other method and evaluated on the same feedback slice, paired with the
//! baseline. The graph is the same for every method (only the range scales and zero points
//! differ), so speed is not timed again. The most faithful method (output cosine with the input
//! model, then top-1; `best_trial`) is kept, and the probe reports its accuracy,
//! fidelity and size, with every trial beside it for the prompt and the report; a plan
//! reproduces it through `QuantSetting::calibration`.
use profagent_onnx::Model;
use profagent_plan::{QuantCalibration, QuantMode, QuantSetting};

use super::measure::layers_for;
use super::{Analysis, Progress, Split, Workbench};
use crate::facts::{Evaluation, QuantProbe};
use profagent_record::CalibrationTrial;

/// Mean output cosines closer than this are a tie (the fifth decimal the reports print), as
/// `quantize --calibration auto` judges them.
pub const TIE_COSINE: f64 = 1e-5;

/// Tries every other calibration method on the fastest successful static probe (the one
/// without per-layer overrides) and makes the most faithful (`best_trial`) its result.
pub(super) fn try_calibrations<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    analysis: &Analysis,
    baseline: &Evaluation,
    progress: &mut dyn Progress,
    probes: &mut [QuantProbe],
) {
    let Some(probe) = probes
        .iter_mut()
        .filter(|p| p.mode == QuantMode::Static && p.error.is_none() && p.layers.is_empty())
        .max_by(|a, b| a.speedup.total_cmp(&b.speedup))
    else {
        return;
    };
    let current = probe.calibration.unwrap_or_default();
    let mut trials = vec![CalibrationTrial {
        method: current,
        top1: probe.top1,
        accuracy_change: probe.accuracy_change,
        cosine: probe.cosine,
        model_bytes: probe.model_bytes,
        error: None,
    }];
    for method in QuantCalibration::ALL {
        if method == current || progress.stop_requested() {
            continue;
        }
        progress.line(&format!(
            "probing {} with {} calibration (accuracy only: the graph is the same)",
            probe.label(),
            method.as_str()
        ));
        let setting = QuantSetting {
            calibration: method,
            ..probe.setting()
        };
        let trial = trial(bench, input, analysis, baseline, setting);
        progress.line(&format!(
            "  {}{}",
            trial.describe(),
            trial
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
        trials.push(trial);
    }
    let best = &trials[best_trial(&trials)];
    progress.line(&format!(
        "  {} calibration kept (feedback slice: {})",
        best.method.as_str(),
        trials
            .iter()
            .map(CalibrationTrial::describe)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    probe.top1 = best.top1;
    probe.accuracy_change = best.accuracy_change;
    probe.cosine = best.cosine;
    probe.model_bytes = best.model_bytes;
    probe.calibration = Some(best.method);
    probe.calibration_trials = trials;
}

/// Quantizes the input with `setting` and evaluates it on the feedback slice; a failure is a
/// trial with its error.
fn trial<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    analysis: &Analysis,
    baseline: &Evaluation,
    setting: QuantSetting,
) -> CalibrationTrial {
    let failed = |error: String| CalibrationTrial {
        method: setting.calibration,
        top1: None,
        accuracy_change: None,
        cosine: None,
        model_bytes: 0,
        error: Some(error),
    };
    let layers = layers_for(analysis, setting);
    let model = match bench.quantize(input, &layers) {
        Ok((model, _)) => model,
        Err(e) => return failed(e.to_string()),
    };
    match bench.evaluate(&model, Split::Feedback) {
        Ok(mut evaluation) => {
            evaluation.pair_with(baseline);
            CalibrationTrial {
                method: setting.calibration,
                top1: evaluation.top1,
                accuracy_change: evaluation.accuracy_change,
                cosine: evaluation.cosine,
                model_bytes: evaluation.model_bytes,
                error: None,
            }
        }
        Err(e) => failed(e.to_string()),
    }
}

/// The index of the best trial: the highest mean output cosine with the input model beyond
/// `TIE_COSINE` (fidelity on every feedback image, far less noisy than a top-1 difference of a
/// few images: on MobileNetV2, docs/benchmarks-calibration.md, min-max, percentile and MSE
/// kept 0.981, 0.992 and 0.989 of logit cosine, and top-1 -0.32, -0.40 and +0.08 points
/// against fp32 on 1,236 images: differences of 1-6 images), then the highest top-1 (all
/// trials saw the same images, so
/// equal top-1 is an equal count of correct images); a tie keeps the earlier (the probe's own
/// method first). `quantize --calibration auto` judges by cosine too. Failed trials never win.
pub fn best_trial(trials: &[CalibrationTrial]) -> usize {
    let mut best = 0;
    for (i, t) in trials.iter().enumerate().skip(1) {
        if t.error.is_some() {
            continue;
        }
        let b = &trials[best];
        if b.error.is_some() {
            best = i;
            continue;
        }
        let cosine_gain = match (t.cosine, b.cosine) {
            (Some(c), Some(d)) => c - d,
            _ => 0.0,
        };
        let better = if cosine_gain.abs() > TIE_COSINE {
            cosine_gain > 0.0
        } else {
            matches!((t.top1, b.top1), (Some(x), Some(y)) if x > y)
        };
        if better {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(method: QuantCalibration, top1: Option<f64>, cosine: f64) -> CalibrationTrial {
        CalibrationTrial {
            method,
            top1,
            accuracy_change: None,
            cosine: Some(cosine),
            model_bytes: 1,
            error: None,
        }
    }

    #[test]
    fn cosine_decides_then_top1_and_a_tie_keeps_the_first() {
        use QuantCalibration::*;
        // MobileNetV2's measured pattern: the most faithful method wins over a top-1
        // difference of a few images.
        let trials = [
            t(Minmax, Some(79.53), 0.98143),
            t(Percentile, Some(79.45), 0.99237),
            t(Entropy, Some(78.88), 0.98006),
            t(Mse, Some(79.94), 0.98879),
        ];
        assert_eq!(best_trial(&trials), 1);
        // Cosines within 1e-5: top-1 decides.
        let tied = [
            t(Minmax, Some(90.0), 0.99900),
            t(Percentile, Some(90.1), 0.999005),
            t(Entropy, Some(89.0), 0.998),
        ];
        assert_eq!(best_trial(&tied), 1);
        let same = [t(Minmax, Some(90.0), 0.999), t(Mse, Some(90.0), 0.999)];
        assert_eq!(best_trial(&same), 0);
        let unlabelled = [t(Minmax, None, 0.990), t(Mse, None, 0.995)];
        assert_eq!(best_trial(&unlabelled), 1);
    }

    #[test]
    fn a_failed_trial_never_wins() {
        use QuantCalibration::*;
        let mut failed = t(Entropy, Some(99.0), 1.0);
        failed.error = Some("boom".into());
        let trials = [t(Minmax, Some(90.0), 0.99), failed];
        assert_eq!(best_trial(&trials), 0);
    }
}
