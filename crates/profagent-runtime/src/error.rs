//! The runtime crate's one error type. Every variant names what failed (library path, model,
//! input name, backend) and, where the user can act, what to do.
use std::path::PathBuf;

/// The pip line that installs the ONNX Runtime library this build is pinned to.
pub const ORT_INSTALL_HINT: &str = "pip install onnxruntime==1.32.0";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No ONNX Runtime shared library was found anywhere we looked.
    #[error(
        "ONNX Runtime library not found (looked at: {searched}). Install it with `{hint}` \
         (profagent finds the Python package's library by itself), or set ORT_DYLIB_PATH to a \
         libonnxruntime.so of version 1.31 or 1.32",
        hint = ORT_INSTALL_HINT
    )]
    OrtLibraryNotFound { searched: String },

    /// A library was found but could not be loaded (wrong version, not ONNX Runtime, ...).
    #[error(
        "could not load the ONNX Runtime library {path}: {reason}. Install a compatible one with \
         `{hint}` or point ORT_DYLIB_PATH at libonnxruntime.so 1.31/1.32",
        hint = ORT_INSTALL_HINT
    )]
    OrtLibraryLoad { path: PathBuf, reason: String },

    #[error("tract support not compiled in; rebuild with --features tract")]
    TractNotCompiled,

    #[error(
        "execution provider '{provider}' is not available in this build (available: {available})"
    )]
    UnknownExecutionProvider { provider: String, available: String },

    #[error("{runtime} could not load model {model}: {reason}")]
    Load {
        runtime: &'static str,
        model: String,
        reason: String,
    },

    #[error("input '{name}': {reason}")]
    BadInput { name: String, reason: String },

    #[error(
        "output '{name}' has element type {elem_type}; the runtime boundary carries only f32 and i64 tensors"
    )]
    UnsupportedOutputType { name: String, elem_type: String },

    #[error("{runtime} failed running the model: {reason}")]
    Run {
        runtime: &'static str,
        reason: String,
    },

    #[error("profiling with {runtime} failed: {reason}")]
    Profile {
        runtime: &'static str,
        reason: String,
    },

    #[error("fidelity check: {reason}")]
    Fidelity { reason: String },

    #[error("latency comparison: {reason}")]
    Comparison { reason: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
