//! Post-training quantization of ONNX models as graph rewrites:
//! - dynamic int8 (`Mode::Dynamic`): MatMul/Gemm weights in int8, activations quantized at
//!   run time (`DynamicQuantizeMatMul` for ONNX Runtime, or standard `MatMulInteger`);
//! - static int8 (`Mode::Static`): QDQ with ranges calibrated on sample inputs, laid out so
//!   ONNX Runtime fuses QLinearConv/QLinearMatMul/QLinearAdd;
//! - int4 weight-only (`Mode::Int4`): `MatMulNBits` blocks.
//!
//! `quantize(model, spec, calibration)` is the one entry point; the `QuantSpec` selects layers
//! by name, regex or op type (see `select`), and may give layers modes of their own
//! (`QuantSpec::layer_modes`, applied by `mixed`), and the `QuantReport` says which layers were
//! quantized and why every other candidate was not. The input model is never modified; a
//! spec that selects nothing returns an identical copy. This crate never evaluates accuracy
//! and runs no model: calibration values come through `profagent_onnx::ActivationSource`, the
//! seam the pruner reads too.
pub mod calibrate;
pub mod dynamic;
pub mod error;
pub mod histogram;
pub mod int4;
pub mod linear;
pub mod mixed;
pub mod numeric;
pub mod opset;
mod rewrite;
pub mod select;
pub mod spec;
pub mod static_qdq;

pub use calibrate::Range;
pub use error::{QuantError, Result};
pub use profagent_onnx::ActivationSource;
pub use select::Selection;
pub use spec::{
    ActivationType, Calibration, LayerMode, Mode, QuantReport, QuantSpec, QuantizedLayer,
    SkippedLayer, Target, WeightRange,
};

use profagent_onnx::Model;

/// Quantizes a copy of `model` as `spec` says. `calibration` (the model's activations over
/// calibration data) is needed by static mode only and ignored by the others.
pub fn quantize(
    model: &Model,
    spec: &QuantSpec,
    calibration: Option<&mut dyn ActivationSource>,
) -> Result<(Model, QuantReport)> {
    if !spec.layer_modes.is_empty() {
        return mixed::quantize_mixed(model, spec, calibration);
    }
    match spec.mode {
        Mode::Dynamic => dynamic::quantize_dynamic(model, spec),
        Mode::Static => static_qdq::quantize_static(model, spec, calibration),
        Mode::Int4 => int4::quantize_int4(model, spec),
    }
}
