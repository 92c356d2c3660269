//! The one error type of `profagent-quant`. Every variant names the layer, node, tensor or
//! option at fault and, where it helps, what to do about it.

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("layer selection: {pattern:?} {reason}")]
    Selection { pattern: String, reason: String },
    #[error("node '{node}' ({op_type}): {reason}")]
    Node {
        node: String,
        op_type: String,
        reason: String,
    },
    #[error("weight '{tensor}': {reason}")]
    Weight { tensor: String, reason: String },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("static quantization needs calibration data: pass input batches (CLI: --calib DATA)")]
    NoCalibration,
    #[error("calibration input '{input}': {reason}")]
    CalibrationInput { input: String, reason: String },
    #[error("calibration run failed: {0}")]
    Runtime(String),
    #[error("the model uses ONNX opset {found} for the default domain; {what} needs opset >= {needed} (re-export the model with a newer opset)")]
    Opset {
        found: i64,
        needed: i64,
        what: String,
    },
    #[error("the model uses ONNX opset {found} for the default domain; static quantization needs opset >= {needed}, and these ops keep it from being upgraded automatically: {blockers}. Re-export the model with opset 13 or newer (torch.onnx.export(..., opset_version=13), python -m tf2onnx.convert --opset 13)")]
    OpsetUpgrade {
        found: i64,
        needed: i64,
        blockers: String,
    },
    #[error(transparent)]
    Onnx(#[from] profagent_onnx::OnnxError),
}

pub type Result<T, E = QuantError> = std::result::Result<T, E>;
