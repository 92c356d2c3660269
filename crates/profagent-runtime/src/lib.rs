//! Runtimes: load an ONNX model, run batches, time every node, report memory.
//!
//! Backends sit behind the `Runtime` / `Session` traits so callers never see `ort` or
//! `tract` types. ONNX Runtime (through `ort` with `load-dynamic`) is the default; tract is
//! behind the `tract` feature, and when it is not compiled in, asking for it gives a clear
//! "not compiled in" error instead of a `cfg` at every call site.
//!
//! API CONTRACT (other crates code against this; backends are filled in by the runtime work):
//! - `open_runtime(kind)` → `Box<dyn Runtime>`
//! - `Runtime::load(&ModelSource, &SessionOptions)` → `Box<dyn Session>`
//! - `Session::run(&[(name, Tensor)])` → outputs in graph-output order
//! - `Session::profile_nodes(...)` → per-ONNX-node timings for dynamic profiling
use std::path::PathBuf;

/// A dense tensor crossing the runtime boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        Tensor {
            shape,
            data: TensorData::I64(data),
        }
    }
    /// The f32 payload, if this is a float tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }
}

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Ort,
    Tract,
}

/// Graph optimisation level (ONNX Runtime's names; tract always optimises).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptLevel {
    Disabled,
    Basic,
    Extended,
    #[default]
    All,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionOptions {
    /// Intra-op threads; 0 = the runtime's default.
    pub threads: usize,
    pub opt_level: OptLevel,
    /// Execution provider name for ONNX Runtime ("cpu" by default).
    pub execution_provider: String,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            threads: 0,
            opt_level: OptLevel::All,
            execution_provider: "cpu".into(),
        }
    }
}

/// Where the model comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

/// Name, element type and shape (None = dynamic dim) of a model input or output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IoInfo {
    pub name: String,
    pub elem_type: String,
    pub shape: Vec<Option<usize>>,
}
