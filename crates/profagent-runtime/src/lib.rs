//! Runtimes: load an ONNX model, run batches, time every node, report memory.
//!
//! Backends sit behind the `Runtime` / `Session` traits so callers never see `ort` or
//! `tract` types. ONNX Runtime (through `ort` with `load-dynamic`) is the default; tract is
//! behind the `tract` feature, and when it is not compiled in, asking for it gives a clear
//! "not compiled in" error instead of a `cfg` at every call site.
//!
//! API CONTRACT (other crates code against this):
//! - `open_runtime(kind)` → `Box<dyn Runtime>`
//! - `Runtime::load(&ModelSource, &SessionOptions)` → `Box<dyn Session>`
//! - `Session::run(&[(name, Tensor)])` → outputs in graph-output order
//! - `Runtime::load_profiling` → a `ProfilingSession` whose `finish` gives per-kernel timings
//!   (`KernelTrace`); `profile::profile_model` attributes them to ONNX nodes and layers
//!
//! Helpers for other crates: `check_fidelity` (output agreement), `measure_latency`
//! (warm-up + timed runs → `LatencyStats`), `machine_info` (CPU model, int8 ISA flags).
pub mod attribution;
pub mod compare;
pub mod discovery;
pub mod error;
pub mod fidelity;
pub mod fusion;
pub mod latency;
pub mod layout;
pub mod machine;
pub mod memory;
pub mod onnx_io;
mod ort_backend;
pub mod profile;
pub mod trace;
#[cfg(feature = "tract")]
mod tract_backend;

pub use compare::{compare_latency, CompareSettings};
pub use error::{Result, RuntimeError, ORT_INSTALL_HINT};
pub use fidelity::{check_fidelity, FidelityReport};
pub use fusion::{fusion_report, FusedNode, FusionReport, KernelPrecision};
pub use latency::{measure_latency, LatencyStats};
pub use layout::conv_channel_block;
pub use machine::{machine_info, MachineInfo};
pub use profagent_stats::{SpeedComparison, SpeedVerdict};
pub use profile::{
    profile_model, synthetic_inputs, DynamicProfile, LayerLatency, NodeLatency, ProfileSettings,
};
pub use trace::{KernelRecord, KernelTrace};

use std::path::PathBuf;

/// Most elements one input tensor built by this tool may hold (4 GiB of f32): a model whose
/// fixed dims (a batch of 2^62, say) need more is refused before anything is allocated.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 30;

/// Elements of a tensor of `shape`, or an error naming `name` when they overflow or exceed
/// `MAX_TENSOR_ELEMENTS`.
pub fn checked_elements(name: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |count, &dim| count.checked_mul(dim))
        .filter(|&count| count <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| RuntimeError::BadInput {
            name: name.to_string(),
            reason: format!(
                "shape {shape:?} needs more than {MAX_TENSOR_ELEMENTS} elements; export the model with a smaller (or dynamic) batch and dims"
            ),
        })
}

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
    /// The i64 payload, if this is an integer tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }
    /// Number of elements the shape describes.
    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }
    /// Number of elements actually stored.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// ONNX name of the element type ("float", "int64").
    pub fn elem_type(&self) -> &'static str {
        match &self.data {
            TensorData::F32(_) => "float",
            TensorData::I64(_) => "int64",
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

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Ort => "onnxruntime",
            RuntimeKind::Tract => "tract",
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "ort" | "onnxruntime" | "onnx-runtime" => Ok(RuntimeKind::Ort),
            "tract" => Ok(RuntimeKind::Tract),
            other => Err(format!(
                "unknown runtime '{other}' (expected 'ort' or 'tract')"
            )),
        }
    }
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

impl ModelSource {
    /// How error messages name the model.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::Path(path) => path.display().to_string(),
            ModelSource::Bytes(bytes) => format!("<in-memory model, {} bytes>", bytes.len()),
        }
    }
}

/// Name, element type and shape (None = dynamic dim) of a model input or output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IoInfo {
    pub name: String,
    pub elem_type: String,
    pub shape: Vec<Option<usize>>,
}

/// A backend that loads models into sessions.
pub trait Runtime: Send + Sync {
    fn kind(&self) -> RuntimeKind;
    /// Backend version, e.g. "onnxruntime 1.32.0" or "tract 0.23.9".
    fn version(&self) -> String;
    fn load(&self, model: &ModelSource, options: &SessionOptions) -> Result<Box<dyn Session>>;
    /// Loads the model with per-kernel timing switched on (slower per run: use `load` for
    /// end-to-end latency).
    fn load_profiling(
        &self,
        model: &ModelSource,
        options: &SessionOptions,
    ) -> Result<Box<dyn ProfilingSession>>;
    /// The graph the runtime executes after its own optimisation at `options.opt_level`
    /// (fused kernels, inserted layout ops), as ONNX bytes; `None` when the backend cannot
    /// show it (tract).
    fn optimized_model(
        &self,
        _model: &ModelSource,
        _options: &SessionOptions,
    ) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// Fusion coverage of `model` (its graph `graph`) on `runtime`: which quantized nodes run as
/// int8 kernels. `None` when the runtime cannot show its optimised graph.
pub fn fusion_coverage(
    runtime: &dyn Runtime,
    model: &ModelSource,
    graph: &profagent_onnx::proto::GraphProto,
    options: &SessionOptions,
) -> Result<Option<FusionReport>> {
    let Some(bytes) = runtime.optimized_model(model, options)? else {
        return Ok(None);
    };
    let optimized = decode_optimized(&bytes, &model.describe())?;
    let Some(optimized_graph) = optimized.proto.graph.as_ref() else {
        return Ok(None);
    };
    Ok(Some(fusion_report(graph, optimized_graph)))
}

/// The graph `Runtime::optimized_model` wrote for the model `what` describes.
pub(crate) fn decode_optimized(bytes: &[u8], what: &str) -> Result<profagent_onnx::Model> {
    let origin = std::path::PathBuf::from(format!("{what} (optimized)"));
    profagent_onnx::Model::decode(bytes, &origin).map_err(|e| RuntimeError::Profile {
        runtime: "onnxruntime",
        reason: format!("cannot read the optimized graph of {what}: {e}"),
    })
}

/// A session that records per-kernel time for every run.
pub trait ProfilingSession: Send {
    /// One recorded run (outputs are discarded).
    fn run(&mut self, inputs: &[(String, Tensor)]) -> Result<()>;
    /// Ends recording and returns the timings, dropping the first `skip_runs` runs (warm-up).
    fn finish(self: Box<Self>, skip_runs: usize) -> Result<KernelTrace>;
}

/// A loaded model, ready to run. `Send` so callers may move it to a worker thread.
pub trait Session: Send {
    fn inputs(&self) -> Vec<IoInfo>;
    fn outputs(&self) -> Vec<IoInfo>;
    /// Runs one batch; returns every graph output, in graph-output order.
    fn run(&mut self, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>>;
}

/// Opens a backend. ONNX Runtime finds and loads its shared library here (see `discovery`), so
/// a missing library is an error now rather than a panic at the first run.
pub fn open_runtime(kind: RuntimeKind) -> Result<Box<dyn Runtime>> {
    match kind {
        RuntimeKind::Ort => Ok(Box::new(ort_backend::OrtRuntime::open()?)),
        #[cfg(feature = "tract")]
        RuntimeKind::Tract => Ok(Box::new(tract_backend::TractRuntime)),
        #[cfg(not(feature = "tract"))]
        RuntimeKind::Tract => Err(RuntimeError::TractNotCompiled),
    }
}

/// Opens `kind`; when ONNX Runtime is wanted but its library cannot be found and tract is
/// compiled in, opens tract instead and returns a one-line notice saying so.
pub fn open_runtime_with_fallback(kind: RuntimeKind) -> Result<(Box<dyn Runtime>, Option<String>)> {
    match open_runtime(kind) {
        Ok(runtime) => Ok((runtime, None)),
        Err(
            error @ (RuntimeError::OrtLibraryNotFound { .. } | RuntimeError::OrtLibraryLoad { .. }),
        ) if cfg!(feature = "tract") => {
            let runtime = open_runtime(RuntimeKind::Tract)?;
            let notice = format!(
                "ONNX Runtime unavailable, using tract instead (install it with `{ORT_INSTALL_HINT}`): {error}"
            );
            Ok((runtime, Some(notice)))
        }
        Err(error) => Err(error),
    }
}
