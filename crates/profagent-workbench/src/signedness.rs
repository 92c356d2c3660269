//! `quantize --activations auto`: static QDQ with uint8 and with int8 activations, timed
//! against each other on the target runtime, the faster kept.
//!
//! Which signedness ONNX Runtime fuses depends on the model, the runtime version and the CPU
//! (1.32 on AVX-512 VNNI Xeons fused every convolution of resnet18_cifar10 into QLinearConv
//! with uint8 activations, 8 of 20 with int8), so it is measured, not assumed. The two models
//! are compared with `profagent_runtime::compare_latency` (interleaved blocks, an interval on
//! the ratio). The rule: int8 only when it is measurably faster than uint8 (the interval of
//! uint8 / int8 above 1); a tie or a slower int8 keeps uint8, what ONNX Runtime's CPU kernels
//! fuse everywhere.
use profagent_onnx::Model;
use profagent_quant::{ActivationType, QuantReport, QuantSpec};

use crate::activations::{Batch, BatchActivations};
use profagent_runtime::{
    compare_latency, CompareSettings, ModelSource, Runtime, SessionOptions, SpeedComparison,
    SpeedVerdict, Tensor,
};

/// Why the automatic choice failed: quantizing or timing one of the two.
#[derive(Debug, thiserror::Error)]
pub enum SignednessError {
    #[error("quantizing with {activations} activations: {source}")]
    Quantize {
        activations: &'static str,
        source: profagent_quant::QuantError,
    },
    #[error("timing uint8 against int8 activations: {0}")]
    Compare(profagent_runtime::RuntimeError),
}

/// The measured choice, for the summary and `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActivationChoice {
    pub chosen: ActivationType,
    /// The int8 model timed against the uint8 one (speedup above 1: int8 is faster).
    pub int8_vs_uint8: SpeedComparison,
}

impl ActivationChoice {
    /// `activations auto: uint8 kept (int8 0.55x, i.e. 1.82x slower (...))`.
    pub fn line(&self) -> String {
        format!(
            "activations auto: {} kept; int8 against uint8 measured {}",
            self.chosen.name(),
            self.int8_vs_uint8.describe()
        )
    }
}

/// The activation type the measurement picks: int8 only when measurably faster.
pub fn pick(int8_vs_uint8: &SpeedComparison) -> ActivationType {
    match int8_vs_uint8.verdict() {
        SpeedVerdict::Faster => ActivationType::Int8,
        SpeedVerdict::NotDistinguishable | SpeedVerdict::Slower => ActivationType::Uint8,
    }
}

/// What a timing needs besides the two models.
pub struct Timing<'a> {
    pub runtime: &'a dyn Runtime,
    pub session: &'a SessionOptions,
    pub inputs: &'a [(String, Tensor)],
    pub settings: &'a CompareSettings,
}

/// Quantizes `model` statically with both activation types (the rest of `spec` as given),
/// times them against each other and returns the faster with its report and the measurement.
pub fn quantize_auto(
    model: &Model,
    spec: &QuantSpec,
    calibration: &[Batch],
    timing: &Timing<'_>,
) -> Result<(Model, QuantReport, ActivationChoice), SignednessError> {
    let with = |activations: ActivationType| {
        let spec = QuantSpec {
            activations,
            ..spec.clone()
        };
        let mut source =
            BatchActivations::for_quantization(timing.runtime, timing.session, calibration);
        profagent_quant::quantize(model, &spec, Some(&mut source)).map_err(|source| {
            SignednessError::Quantize {
                activations: activations.name(),
                source,
            }
        })
    };
    let unsigned = with(ActivationType::Uint8)?;
    let signed = with(ActivationType::Int8)?;
    let comparison = compare_latency(
        timing.runtime,
        &ModelSource::Bytes(unsigned.0.to_bytes()),
        &ModelSource::Bytes(signed.0.to_bytes()),
        timing.session,
        timing.inputs,
        timing.settings,
    )
    .map_err(SignednessError::Compare)?;
    let chosen = pick(&comparison);
    let (model, report) = match chosen {
        ActivationType::Int8 => signed,
        ActivationType::Uint8 => unsigned,
    };
    Ok((
        model,
        report,
        ActivationChoice {
            chosen,
            int8_vs_uint8: comparison,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_only_when_measurably_faster() {
        // SpeedComparison::known(reference ms, candidate ms, spread): uint8 is the reference.
        assert_eq!(
            pick(&SpeedComparison::known(10.0, 5.0, 0.02)),
            ActivationType::Int8
        );
        assert_eq!(
            pick(&SpeedComparison::known(10.0, 10.0, 0.02)),
            ActivationType::Uint8
        );
        assert_eq!(
            pick(&SpeedComparison::known(5.0, 10.0, 0.02)),
            ActivationType::Uint8
        );
    }
}
