//! ONNX Runtime backend through `ort` (load-dynamic). The library is located by `discovery` and
//! loaded once per process with `ort::init_from`; every `ort` error becomes a `RuntimeError`
//! naming the model or input, and no `ort` type leaves this module.
use std::path::PathBuf;
use std::sync::OnceLock;

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{DynValue, TensorElementType, ValueType};

use crate::discovery::{discover_ort_library, Discovery};
use crate::trace::{parse_ort_trace, KernelTrace};
use crate::{
    IoInfo, ModelSource, OptLevel, ProfilingSession, Result, Runtime, RuntimeError, RuntimeKind,
    Session, SessionOptions, Tensor, TensorData,
};

const RUNTIME_NAME: &str = "onnxruntime";
/// Execution providers this build can register.
const AVAILABLE_PROVIDERS: &str = "cpu";

/// Process-wide ONNX Runtime state: the loaded library and its environment.
struct OrtGlobal {
    environment: ort::environment::Environment,
    library: PathBuf,
    version: String,
}

/// Environment variable that turns ONNX Runtime's own log on (stderr).
pub const ORT_LOG_ENV: &str = "PROFAGENT_ORT_LOG";

/// Why initialisation failed, kept so every later `open_runtime` call reports the same thing.
#[derive(Clone)]
enum InitFailure {
    NotFound { searched: String },
    Load { path: PathBuf, reason: String },
}

impl From<InitFailure> for RuntimeError {
    fn from(failure: InitFailure) -> Self {
        match failure {
            InitFailure::NotFound { searched } => RuntimeError::OrtLibraryNotFound { searched },
            InitFailure::Load { path, reason } => RuntimeError::OrtLibraryLoad { path, reason },
        }
    }
}

static ORT_GLOBAL: OnceLock<std::result::Result<OrtGlobal, InitFailure>> = OnceLock::new();

fn initialise() -> std::result::Result<OrtGlobal, InitFailure> {
    let (library, _how) = match discover_ort_library() {
        Discovery::Found { path, how } => (path, how),
        Discovery::NotFound { searched } => {
            return Err(InitFailure::NotFound {
                searched: searched.join("; "),
            })
        }
    };
    let load_failure = |reason: String| InitFailure::Load {
        path: library.clone(),
        reason,
    };
    let builder = ort::init_from(&library).map_err(|e| load_failure(e.to_string()))?;
    // ONNX Runtime logs its own errors to stderr before returning them; we report them once,
    // on one line. Its log is shown only when asked for (PROFAGENT_ORT_LOG=1).
    let verbose = std::env::var_os(ORT_LOG_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    let logger: ort::logging::LoggerFunction = std::sync::Arc::new(
        move |level: ort::logging::LogLevel,
              category: &str,
              _id: &str,
              location: &str,
              message: &str| {
            if verbose {
                eprintln!("onnxruntime {level:?} [{category}] {location}: {message}");
            }
        },
    );
    let environment = builder
        .with_name("profagent")
        .with_logger(logger)
        .build()
        .map_err(|e| load_failure(e.to_string()))?;
    let version = version_from_build_info(ort::info())
        .or_else(|| version_from_file_name(&library))
        .unwrap_or_else(|| "unknown".to_string());
    Ok(OrtGlobal {
        environment,
        library,
        version,
    })
}

/// "ORT Build Info: git-branch=rel-1.32.0, ..." → "1.32.0".
fn version_from_build_info(info: &str) -> Option<String> {
    let start = info.find("git-branch=rel-")? + "git-branch=rel-".len();
    let rest = &info[start..];
    let end = rest.find([',', ' ']).unwrap_or(rest.len());
    Some(rest[..end].to_string()).filter(|v| !v.is_empty())
}

/// "libonnxruntime.so.1.32.0" → "1.32.0".
fn version_from_file_name(path: &std::path::Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let version = name.strip_prefix("libonnxruntime.so.")?;
    (!version.is_empty()).then(|| version.to_string())
}

/// The ONNX Runtime backend (cheap handle; the library state is process-wide).
pub(crate) struct OrtRuntime {
    global: &'static OrtGlobal,
}

impl OrtRuntime {
    pub(crate) fn open() -> Result<Self> {
        match ORT_GLOBAL.get_or_init(initialise) {
            Ok(global) => Ok(OrtRuntime { global }),
            Err(failure) => Err(failure.clone().into()),
        }
    }

    /// Path of the shared library in use.
    #[allow(dead_code)]
    pub(crate) fn library(&self) -> &std::path::Path {
        &self.global.library
    }

    /// A session builder configured from `options`; `profiling` enables ORT's profiler with that
    /// file prefix.
    pub(crate) fn builder(
        &self,
        model: &ModelSource,
        options: &SessionOptions,
        opt_level: OptLevel,
        profiling: Option<&std::path::Path>,
    ) -> Result<SessionBuilder> {
        let load_error = |reason: String| RuntimeError::Load {
            runtime: RUNTIME_NAME,
            model: model.describe(),
            reason,
        };
        if !options.execution_provider.eq_ignore_ascii_case("cpu") {
            return Err(RuntimeError::UnknownExecutionProvider {
                provider: options.execution_provider.clone(),
                available: AVAILABLE_PROVIDERS.to_string(),
            });
        }
        let mut builder = ort::session::Session::builder(&self.global.environment)
            .map_err(|e| load_error(e.to_string()))?
            .with_optimization_level(ort_level(opt_level))
            .map_err(|e| load_error(e.to_string()))?;
        if options.threads > 0 {
            builder = builder
                .with_intra_threads(options.threads)
                .map_err(|e| load_error(e.to_string()))?;
        }
        if let Some(prefix) = profiling {
            builder = builder
                .with_profiling(prefix)
                .map_err(|e| load_error(e.to_string()))?;
        }
        Ok(builder)
    }

    pub(crate) fn commit(
        &self,
        mut builder: SessionBuilder,
        model: &ModelSource,
    ) -> Result<ort::session::Session> {
        let committed = match model {
            ModelSource::Path(path) => {
                if !path.is_file() {
                    return Err(RuntimeError::Io {
                        path: path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "model file not found",
                        ),
                    });
                }
                builder.commit_from_file(path)
            }
            ModelSource::Bytes(bytes) => builder.commit_from_memory(bytes),
        };
        committed.map_err(|e| RuntimeError::Load {
            runtime: RUNTIME_NAME,
            model: model.describe(),
            reason: e.to_string(),
        })
    }
}

fn ort_level(level: OptLevel) -> GraphOptimizationLevel {
    match level {
        OptLevel::Disabled => GraphOptimizationLevel::Disable,
        OptLevel::Basic => GraphOptimizationLevel::Level1,
        OptLevel::Extended => GraphOptimizationLevel::Level2,
        OptLevel::All => GraphOptimizationLevel::All,
    }
}

impl Runtime for OrtRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Ort
    }

    fn version(&self) -> String {
        format!("{RUNTIME_NAME} {}", self.global.version)
    }

    fn load(&self, model: &ModelSource, options: &SessionOptions) -> Result<Box<dyn Session>> {
        let builder = self.builder(model, options, options.opt_level, None)?;
        let session = self.commit(builder, model)?;
        Ok(Box::new(OrtSession::new(session)))
    }

    fn load_profiling(
        &self,
        model: &ModelSource,
        options: &SessionOptions,
    ) -> Result<Box<dyn ProfilingSession>> {
        let directory = ProfileDirectory::create()?;
        let prefix = directory.path.join("ort_profile");
        let builder = self.builder(model, options, options.opt_level, Some(&prefix))?;
        let session = self.commit(builder, model)?;
        Ok(Box::new(OrtProfilingSession {
            session: OrtSession::new(session),
            opt_level: options.opt_level,
            runs: 0,
            _directory: directory,
        }))
    }

    fn optimized_model(
        &self,
        model: &ModelSource,
        options: &SessionOptions,
    ) -> Result<Option<Vec<u8>>> {
        let directory = ProfileDirectory::create()?;
        let path = directory.path.join("optimized.onnx");
        let builder = self
            .builder(model, options, options.opt_level, None)?
            .with_optimized_model_path(&path)
            .map_err(|e| RuntimeError::Load {
                runtime: RUNTIME_NAME,
                model: model.describe(),
                reason: e.to_string(),
            })?;
        // Committing the session writes the optimised graph; the session itself is not needed.
        drop(self.commit(builder, model)?);
        let bytes = std::fs::read(&path).map_err(|source| RuntimeError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Some(bytes))
    }
}

/// A private folder for ORT's profile file, removed on drop.
struct ProfileDirectory {
    path: PathBuf,
}

impl ProfileDirectory {
    fn create() -> Result<Self> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "profagent-ort-profile-{}-{unique}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).map_err(|source| RuntimeError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(ProfileDirectory { path })
    }
}

impl Drop for ProfileDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A session with ORT's profiler on: every run is recorded; `finish` parses the trace.
struct OrtProfilingSession {
    session: OrtSession,
    opt_level: OptLevel,
    runs: usize,
    _directory: ProfileDirectory,
}

impl ProfilingSession for OrtProfilingSession {
    fn run(&mut self, inputs: &[(String, Tensor)]) -> Result<()> {
        self.session.run(inputs)?;
        self.runs += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>, skip_runs: usize) -> Result<KernelTrace> {
        let profile_error = |reason: String| RuntimeError::Profile {
            runtime: RUNTIME_NAME,
            reason,
        };
        if self.runs <= skip_runs {
            return Err(profile_error(format!(
                "{} runs recorded, need more than the {skip_runs} warm-up runs",
                self.runs
            )));
        }
        let file = self
            .session
            .session
            .end_profiling()
            .map_err(|e| profile_error(e.to_string()))?;
        let path = PathBuf::from(&file);
        let json = std::fs::read_to_string(&path).map_err(|source| RuntimeError::Io {
            path: path.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&path);
        parse_ort_trace(&json, skip_runs, self.opt_level)
    }
}

/// A loaded ONNX Runtime session.
pub(crate) struct OrtSession {
    session: ort::session::Session,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
}

impl OrtSession {
    pub(crate) fn new(session: ort::session::Session) -> Self {
        let describe = |outlets: &[ort::value::Outlet]| {
            outlets
                .iter()
                .map(|o| io_info(o.name(), o.dtype()))
                .collect()
        };
        let inputs = describe(session.inputs());
        let outputs = describe(session.outputs());
        OrtSession {
            session,
            inputs,
            outputs,
        }
    }
}

fn io_info(name: &str, dtype: &ValueType) -> IoInfo {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => IoInfo {
            name: name.to_string(),
            elem_type: onnx_type_name(*ty),
            shape: shape.iter().map(|&d| usize::try_from(d).ok()).collect(),
        },
        other => IoInfo {
            name: name.to_string(),
            elem_type: format!("{other:?}"),
            shape: Vec::new(),
        },
    }
}

/// ONNX's spelling of an element type (as in `TensorProto.DataType`, lower case).
fn onnx_type_name(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => "float".into(),
        TensorElementType::Float64 => "double".into(),
        TensorElementType::Float16 => "float16".into(),
        TensorElementType::Bfloat16 => "bfloat16".into(),
        TensorElementType::Int64 => "int64".into(),
        TensorElementType::Int32 => "int32".into(),
        TensorElementType::Int16 => "int16".into(),
        TensorElementType::Int8 => "int8".into(),
        TensorElementType::Uint8 => "uint8".into(),
        TensorElementType::Bool => "bool".into(),
        TensorElementType::String => "string".into(),
        other => other.to_string(),
    }
}

/// Checks an input against the session's declaration and converts it to an `ort` value.
pub(crate) fn to_ort_value(declared: &[IoInfo], name: &str, tensor: &Tensor) -> Result<DynValue> {
    let bad = |reason: String| RuntimeError::BadInput {
        name: name.to_string(),
        reason,
    };
    let Some(info) = declared.iter().find(|i| i.name == name) else {
        let known: Vec<&str> = declared.iter().map(|i| i.name.as_str()).collect();
        return Err(bad(format!(
            "the model has no such input (its inputs: {})",
            known.join(", ")
        )));
    };
    crate::onnx_io::check_input(info, tensor)?;
    let value =
        match &tensor.data {
            TensorData::F32(v) => ort::value::Tensor::from_array((tensor.shape.clone(), v.clone()))
                .map(|t| t.into_dyn()),
            TensorData::I64(v) => ort::value::Tensor::from_array((tensor.shape.clone(), v.clone()))
                .map(|t| t.into_dyn()),
        };
    value.map_err(|e| bad(e.to_string()))
}

/// Converts one `ort` output to a boundary tensor.
pub(crate) fn from_ort_value(name: &str, value: &DynValue) -> Result<Tensor> {
    let unsupported = || RuntimeError::UnsupportedOutputType {
        name: name.to_string(),
        elem_type: match value.dtype() {
            ValueType::Tensor { ty, .. } => onnx_type_name(*ty),
            other => format!("{other:?}"),
        },
    };
    let run_error = |e: ort::Error| RuntimeError::Run {
        runtime: RUNTIME_NAME,
        reason: format!("reading output '{name}': {e}"),
    };
    let to_dims = |shape: &[i64]| shape.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>();
    match value.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            ..
        } => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(run_error)?;
            Ok(Tensor::f32(to_dims(shape), data.to_vec()))
        }
        ValueType::Tensor {
            ty: TensorElementType::Int64,
            ..
        } => {
            let (shape, data) = value.try_extract_tensor::<i64>().map_err(run_error)?;
            Ok(Tensor::i64(to_dims(shape), data.to_vec()))
        }
        _ => Err(unsupported()),
    }
}

/// Runs `session` on named inputs and returns all outputs in graph-output order.
pub(crate) fn run_session(
    session: &mut ort::session::Session,
    declared_inputs: &[IoInfo],
    declared_outputs: &[IoInfo],
    inputs: &[(String, Tensor)],
) -> Result<Vec<(String, Tensor)>> {
    for declared in declared_inputs {
        if !inputs.iter().any(|(name, _)| *name == declared.name) {
            return Err(RuntimeError::BadInput {
                name: declared.name.clone(),
                reason: "required input not given".to_string(),
            });
        }
    }
    let values = inputs
        .iter()
        .map(|(name, tensor)| Ok((name.clone(), to_ort_value(declared_inputs, name, tensor)?)))
        .collect::<Result<Vec<(String, DynValue)>>>()?;
    let outputs = session.run(values).map_err(|e| RuntimeError::Run {
        runtime: RUNTIME_NAME,
        reason: e.to_string(),
    })?;
    declared_outputs
        .iter()
        .map(|declared| {
            let value = outputs
                .get(&declared.name)
                .ok_or_else(|| RuntimeError::Run {
                    runtime: RUNTIME_NAME,
                    reason: format!("output '{}' missing from the results", declared.name),
                })?;
            Ok((
                declared.name.clone(),
                from_ort_value(&declared.name, value)?,
            ))
        })
        .collect()
}

impl Session for OrtSession {
    fn inputs(&self) -> Vec<IoInfo> {
        self.inputs.clone()
    }

    fn outputs(&self) -> Vec<IoInfo> {
        self.outputs.clone()
    }

    fn run(&mut self, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        run_session(&mut self.session, &self.inputs, &self.outputs, inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            version_from_build_info("ORT Build Info: git-branch=rel-1.32.0, git-commit-id=abc"),
            Some("1.32.0".to_string())
        );
        assert_eq!(
            version_from_file_name(std::path::Path::new("/x/libonnxruntime.so.1.31.1")),
            Some("1.31.1".to_string())
        );
        assert_eq!(version_from_build_info("nothing"), None);
    }
}
