//! The one error type of the profile crate.
use profagent_onnx::OnnxError;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Loading, indexing or shape inference failed (the message names file/node).
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("the model has no graph: it is not an ONNX model")]
    NoGraph,
    #[error("batch size must be at least 1, got {batch}")]
    InvalidBatch { batch: i64 },
    #[error("cannot serialise the profile to JSON: {reason}")]
    Json { reason: String },
}

pub type Result<T, E = ProfileError> = std::result::Result<T, E>;
