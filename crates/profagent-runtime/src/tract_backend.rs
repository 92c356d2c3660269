//! tract backend (pure Rust, Cargo feature `tract`).
//!
//! tract compiles a model for concrete input shapes, so a session keeps the parsed model and
//! compiles (and caches) an optimised plan for the shapes of the batch it is given. tract 0.23
//! runs single-threaded here (multi-threaded matmul needs `tract-linalg/multithread-mm`), so the
//! `threads` option is recorded but has no effect. Per-node timing wraps tract's own
//! `plan::eval` through `SimpleState::run_plan_with_eval`, the hook its CLI profiler uses.
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::eval as tract_eval;

use crate::onnx_io::graph_io;
use crate::trace::{KernelRecord, KernelTrace};
use crate::{
    IoInfo, ModelSource, ProfilingSession, Result, Runtime, RuntimeError, RuntimeKind, Session,
    SessionOptions, Tensor, TensorData,
};

const RUNTIME_NAME: &str = "tract";
/// The tract version pinned in the workspace.
const TRACT_VERSION: &str = "0.23.9";

type Plan = Arc<TypedRunnableModel>;

pub(crate) struct TractRuntime;

impl TractRuntime {
    fn parse(model: &ModelSource) -> Result<(InferenceModel, Vec<IoInfo>, Vec<IoInfo>)> {
        let load_error = |reason: String| RuntimeError::Load {
            runtime: RUNTIME_NAME,
            model: model.describe(),
            reason,
        };
        let decoded = match model {
            ModelSource::Path(path) => profagent_onnx::Model::load(path),
            ModelSource::Bytes(bytes) => {
                profagent_onnx::Model::decode(bytes, Path::new("<in-memory model>"))
            }
        }
        .map_err(|e| load_error(e.to_string()))?;
        let (inputs, outputs) = graph_io(decoded.graph());
        let parsed = match model {
            ModelSource::Path(path) => tract_onnx::onnx().model_for_path(path),
            ModelSource::Bytes(bytes) => tract_onnx::onnx().model_for_read(&mut bytes.as_slice()),
        }
        .map_err(|e| load_error(format!("{e:#}")))?;
        Ok((parsed, inputs, outputs))
    }
}

impl Runtime for TractRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Tract
    }

    fn version(&self) -> String {
        format!("{RUNTIME_NAME} {TRACT_VERSION}")
    }

    fn load(&self, model: &ModelSource, _options: &SessionOptions) -> Result<Box<dyn Session>> {
        let (parsed, inputs, outputs) = Self::parse(model)?;
        Ok(Box::new(TractSession {
            parsed,
            inputs,
            outputs,
            compiled: None,
            model_name: model.describe(),
        }))
    }

    fn load_profiling(
        &self,
        model: &ModelSource,
        options: &SessionOptions,
    ) -> Result<Box<dyn ProfilingSession>> {
        let (parsed, inputs, outputs) = Self::parse(model)?;
        let _ = options;
        Ok(Box::new(TractProfilingSession {
            session: TractSession {
                parsed,
                inputs,
                outputs,
                compiled: None,
                model_name: model.describe(),
            },
            kernels: Vec::new(),
            runs: Vec::new(),
        }))
    }
}

struct TractSession {
    parsed: InferenceModel,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
    /// The plan compiled for the last input shapes.
    compiled: Option<(Vec<Vec<usize>>, Plan)>,
    model_name: String,
}

impl TractSession {
    /// Inputs in the model's input order, checked, plus the plan for their shapes.
    fn prepare(&mut self, inputs: &[(String, Tensor)]) -> Result<(TVec<TValue>, Plan)> {
        let mut ordered: Vec<&Tensor> = Vec::with_capacity(self.inputs.len());
        for declared in &self.inputs {
            let Some((_, tensor)) = inputs.iter().find(|(name, _)| *name == declared.name) else {
                return Err(RuntimeError::BadInput {
                    name: declared.name.clone(),
                    reason: "required input not given".to_string(),
                });
            };
            crate::onnx_io::check_input(declared, tensor)?;
            ordered.push(tensor);
        }
        if let Some((name, _)) = inputs
            .iter()
            .find(|(name, _)| !self.inputs.iter().any(|d| d.name == *name))
        {
            return Err(RuntimeError::BadInput {
                name: name.clone(),
                reason: "the model has no such input".to_string(),
            });
        }
        let shapes: Vec<Vec<usize>> = ordered.iter().map(|t| t.shape.clone()).collect();
        let plan = match &self.compiled {
            Some((cached, plan)) if *cached == shapes => plan.clone(),
            _ => {
                let plan = self.compile(&ordered)?;
                self.compiled = Some((shapes, plan.clone()));
                plan
            }
        };
        let values = ordered
            .iter()
            .map(|tensor| {
                let converted = match &tensor.data {
                    TensorData::F32(v) => tract_onnx::prelude::Tensor::from_shape(&tensor.shape, v),
                    TensorData::I64(v) => tract_onnx::prelude::Tensor::from_shape(&tensor.shape, v),
                };
                converted.map(TValue::from).map_err(|e| RuntimeError::Run {
                    runtime: RUNTIME_NAME,
                    reason: format!("{e:#}"),
                })
            })
            .collect::<Result<TVec<TValue>>>()?;
        Ok((values, plan))
    }

    fn compile(&self, ordered: &[&Tensor]) -> Result<Plan> {
        let load_error = |e: TractError| RuntimeError::Load {
            runtime: RUNTIME_NAME,
            model: self.model_name.clone(),
            reason: format!("{e:#}"),
        };
        let mut model = self.parsed.clone();
        for (position, tensor) in ordered.iter().enumerate() {
            let datum = match tensor.data {
                TensorData::F32(_) => f32::datum_type(),
                TensorData::I64(_) => i64::datum_type(),
            };
            model = model
                .with_input_fact(
                    position,
                    InferenceFact::dt_shape(datum, tensor.shape.clone()),
                )
                .map_err(load_error)?;
        }
        model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(load_error)
    }

    fn convert_outputs(&self, values: TVec<TValue>) -> Result<Vec<(String, Tensor)>> {
        self.outputs
            .iter()
            .zip(values)
            .map(|(declared, value)| {
                let read_error = |e: TractError| RuntimeError::Run {
                    runtime: RUNTIME_NAME,
                    reason: format!("reading output '{}': {e:#}", declared.name),
                };
                let shape = value.shape().to_vec();
                let tensor = match value.datum_type() {
                    DatumType::F32 => Tensor::f32(
                        shape,
                        value
                            .to_plain_array_view::<f32>()
                            .map_err(read_error)?
                            .iter()
                            .copied()
                            .collect(),
                    ),
                    DatumType::I64 => Tensor::i64(
                        shape,
                        value
                            .to_plain_array_view::<i64>()
                            .map_err(read_error)?
                            .iter()
                            .copied()
                            .collect(),
                    ),
                    other => {
                        return Err(RuntimeError::UnsupportedOutputType {
                            name: declared.name.clone(),
                            elem_type: format!("{other:?}"),
                        })
                    }
                };
                Ok((declared.name.clone(), tensor))
            })
            .collect()
    }
}

impl Session for TractSession {
    fn inputs(&self) -> Vec<IoInfo> {
        self.inputs.clone()
    }

    fn outputs(&self) -> Vec<IoInfo> {
        self.outputs.clone()
    }

    fn run(&mut self, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        let (values, plan) = self.prepare(inputs)?;
        let outputs = plan.run(values).map_err(|e| RuntimeError::Run {
            runtime: RUNTIME_NAME,
            reason: format!("{e:#}"),
        })?;
        self.convert_outputs(outputs)
    }
}

/// A tract session timing every node of every run.
struct TractProfilingSession {
    session: TractSession,
    /// Per plan node: (name, op, per-run ms, output bytes), in first-execution order.
    kernels: Vec<KernelRecord>,
    /// Whole-run wall time of each run, in ms.
    runs: Vec<f64>,
}

impl ProfilingSession for TractProfilingSession {
    fn run(&mut self, inputs: &[(String, Tensor)]) -> Result<()> {
        let (values, plan) = self.session.prepare(inputs)?;
        let run_index = self.runs.len();
        let mut timings: Vec<(usize, String, String, f64, u64)> = Vec::new();
        let mut state = plan.spawn().map_err(|e| RuntimeError::Run {
            runtime: RUNTIME_NAME,
            reason: format!("{e:#}"),
        })?;
        let start = Instant::now();
        state
            .run_plan_with_eval(values, |context, op_state, node, node_inputs| {
                let node_start = Instant::now();
                let result = tract_eval(context, op_state, node, node_inputs);
                let elapsed_ms = node_start.elapsed().as_secs_f64() * 1e3;
                let output_bytes = result.as_ref().map_or(0, |outputs| {
                    outputs
                        .iter()
                        .map(|v| (v.len() * v.datum_type().size_of()) as u64)
                        .sum()
                });
                timings.push((
                    node.id,
                    node.name.clone(),
                    node.op().name().to_string(),
                    elapsed_ms,
                    output_bytes,
                ));
                result
            })
            .map_err(|e| RuntimeError::Run {
                runtime: RUNTIME_NAME,
                reason: format!("{e:#}"),
            })?;
        self.runs.push(start.elapsed().as_secs_f64() * 1e3);
        for (_, name, op, elapsed_ms, output_bytes) in timings {
            let slot = match self.kernels.iter().position(|k| k.name == name) {
                Some(slot) => slot,
                None => {
                    self.kernels.push(KernelRecord {
                        name,
                        op_type: op,
                        samples_ms: Vec::new(),
                        output_bytes: Some(output_bytes),
                    });
                    self.kernels.len() - 1
                }
            };
            let samples = &mut self.kernels[slot].samples_ms;
            samples.resize(run_index + 1, 0.0);
            samples[run_index] += elapsed_ms;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, skip_runs: usize) -> Result<KernelTrace> {
        let recorded = self.runs.len().saturating_sub(skip_runs);
        if recorded == 0 {
            return Err(RuntimeError::Profile {
                runtime: RUNTIME_NAME,
                reason: format!(
                    "{} runs recorded, need more than the {skip_runs} warm-up runs",
                    self.runs.len()
                ),
            });
        }
        let total_runs = self.runs.len();
        let kernels = self
            .kernels
            .into_iter()
            .map(|mut kernel| {
                kernel.samples_ms.resize(total_runs, 0.0);
                kernel.samples_ms.drain(..skip_runs);
                kernel
            })
            .collect();
        Ok(KernelTrace {
            runtime: RuntimeKind::Tract,
            opt_level: None,
            run_totals_ms: self.runs[skip_runs..].to_vec(),
            kernels,
            peak_activation_bytes: None,
        })
    }
}
