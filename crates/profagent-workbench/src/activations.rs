//! Calibration activations on a runtime: `BatchActivations` runs calibration batches through a
//! copy of the model that also outputs the requested values, and streams them to the pruner
//! (activation importance, bias correction, reconstruction, BN re-estimation) and to the
//! quantizer (static ranges) through `profagent_onnx::ActivationSource`. Shared by
//! `prune --calib`, `quantize --calib` and `compress`.
//!
//! Memory: every requested value of a run is a graph output (the runtime cannot reuse its
//! buffer, and the values are then copied out). With an output budget (`within`), a batch is
//! split into sub-batches whose requested values stay within it (the first sample runs alone to
//! measure its size); a ViT-S at batch 50 held every activation of the batch at once and was
//! killed at 14.7 GB RSS. A model whose batch axis is fixed always runs whole batches.
use profagent_onnx::{expose_values, ActivationSource, Model, ValueVisitor};
use profagent_runtime::{ModelSource, Runtime, Session, SessionOptions, Tensor, TensorData};

/// One batch of named model inputs.
pub type Batch = Vec<(String, Tensor)>;

/// Bytes of requested values one calibration run of the quantizer may return.
pub const OUTPUT_BUDGET_BYTES: usize = 256 << 20;

pub struct BatchActivations<'a> {
    pub runtime: &'a dyn Runtime,
    pub session: &'a SessionOptions,
    pub batches: &'a [Batch],
    /// Bytes of requested values one run may return (`None`: whole batches).
    pub output_budget: Option<usize>,
    /// Runs so far (a batch split in sub-batches counts each).
    pub runs: usize,
    /// What the progress step over the samples is called.
    pub label: &'static str,
}

impl<'a> BatchActivations<'a> {
    /// Whole batches, as the pruner reads them.
    pub fn new(
        runtime: &'a dyn Runtime,
        session: &'a SessionOptions,
        batches: &'a [Batch],
    ) -> Self {
        BatchActivations {
            runtime,
            session,
            batches,
            output_budget: None,
            runs: 0,
            label: "running calibration samples",
        }
    }

    /// The quantizer's calibration: batches within `OUTPUT_BUDGET_BYTES` per run, under the
    /// "calibrating static quantization" step (`quantize --calib`, `--activations auto` and
    /// `compress` all read ranges this way).
    pub fn for_quantization(
        runtime: &'a dyn Runtime,
        session: &'a SessionOptions,
        batches: &'a [Batch],
    ) -> Self {
        Self::new(runtime, session, batches)
            .within(OUTPUT_BUDGET_BYTES)
            .labelled("calibrating static quantization")
    }

    /// Names the progress step ("gathering calibration activations", ...).
    pub fn labelled(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }

    /// Batches split so that one run returns at most `budget` bytes of requested values, as
    /// the quantizer's calibration reads them (`OUTPUT_BUDGET_BYTES`).
    pub fn within(mut self, budget: usize) -> Self {
        self.output_budget = Some(budget);
        self
    }
}

impl BatchActivations<'_> {
    /// A progress step over every calibration sample.
    fn step(&self, label: &str) -> profagent_onnx::progress::Step {
        let total: u64 = self.batches.iter().map(samples).sum();
        profagent_onnx::progress::step(label, Some(total), "samples")
    }
}

/// Samples in a batch: the first input's leading dimension.
fn samples(batch: &Batch) -> u64 {
    batch
        .first()
        .and_then(|(_, t)| t.shape.first())
        .map_or(1, |&rows| rows as u64)
}

impl ActivationSource for BatchActivations<'_> {
    fn visit_values(
        &mut self,
        model: &Model,
        values: &[String],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), String> {
        // Graph inputs are read from the batches directly: echoing an input as an output is
        // legal ONNX, but the value ONNX Runtime hands back for it is not reliable.
        let inputs: Vec<&str> = model.graph().input.iter().map(|i| i.name()).collect();
        let computed: Vec<String> = values
            .iter()
            .filter(|v| !inputs.contains(&v.as_str()))
            .cloned()
            .collect();
        let exposed = expose_values(model, &computed);
        let mut session = self
            .runtime
            .load(&ModelSource::Bytes(exposed.to_bytes()), self.session)
            .map_err(|e| e.to_string())?;
        let splittable = self.output_budget.is_some() && batch_axis_is_free(model);
        // Rows per run, known after the first sample has run alone.
        let mut rows_per_run: Option<usize> = None;
        let step = self.step(self.label);
        let mut done = 0;
        for (b, batch) in self.batches.iter().enumerate() {
            let rows = batch_rows(batch).filter(|&r| splittable && r > 1);
            let mut start = 0;
            loop {
                let (part, end) = match rows {
                    Some(total) => {
                        let end = (start + rows_per_run.unwrap_or(1)).min(total);
                        (rows_of(batch, start, end), end)
                    }
                    None => (batch.clone(), 0),
                };
                let returned = run_part(session.as_mut(), &part, values, visit)
                    .map_err(|reason| format!("batch {b}: {reason}"))?;
                self.runs += 1;
                done += match rows {
                    Some(_) => (end - start) as u64,
                    None => samples(batch),
                };
                step.set(done);
                if let (None, Some(_), Some(budget)) = (rows_per_run, rows, self.output_budget) {
                    let per_row = returned.div_ceil(end - start).max(1);
                    rows_per_run = Some((budget / per_row).max(1));
                }
                match rows {
                    Some(total) if end < total => start = end,
                    _ => break,
                }
            }
        }
        Ok(())
    }

    fn batches(&self) -> Option<usize> {
        Some(self.batches.len())
    }
}

/// Runs one (sub-)batch and hands each requested value to `visit`; returns the bytes of
/// requested values the runtime returned.
fn run_part(
    session: &mut dyn Session,
    batch: &[(String, Tensor)],
    values: &[String],
    visit: &mut ValueVisitor<'_>,
) -> Result<usize, String> {
    let outputs = session.run(batch).map_err(|e| e.to_string())?;
    let mut bytes = 0;
    for (i, v) in values.iter().enumerate() {
        let (tensor, fed) = match batch.iter().find(|(name, _)| name == v) {
            Some((_, t)) => (t, true),
            None => match outputs.iter().find(|(name, _)| name == v) {
                Some((_, t)) => (t, false),
                None => return Err(format!("runtime did not return '{v}'")),
            },
        };
        let data = tensor
            .as_f32()
            .ok_or_else(|| format!("calibration value '{v}' is not float"))?;
        if !fed {
            bytes += std::mem::size_of_val(data);
        }
        visit(i, &tensor.shape, data)?;
    }
    Ok(bytes)
}

/// Whether the model's inputs leave their first axis free (symbolic or unknown), so a batch
/// can run as several smaller ones. A fixed first axis (e.g. an export at batch 1) cannot.
fn batch_axis_is_free(model: &Model) -> bool {
    let (declared, _) = profagent_runtime::onnx_io::graph_io(model.graph());
    declared
        .iter()
        .all(|input| !matches!(input.shape.first(), Some(Some(_))))
}

/// The common first-axis length of a batch's tensors, if they all have one.
fn batch_rows(batch: &[(String, Tensor)]) -> Option<usize> {
    let first = batch.first()?.1.shape.first().copied()?;
    batch
        .iter()
        .all(|(_, t)| {
            let len = match &t.data {
                TensorData::F32(v) => v.len(),
                TensorData::I64(v) => v.len(),
            };
            t.shape.first() == Some(&first) && len == t.shape.iter().product::<usize>()
        })
        .then_some(first)
}

/// Rows `start..end` (first axis) of every tensor of a batch.
fn rows_of(batch: &[(String, Tensor)], start: usize, end: usize) -> Batch {
    batch
        .iter()
        .map(|(name, t)| {
            let row: usize = t.shape[1..].iter().product();
            let mut shape = t.shape.clone();
            shape[0] = end - start;
            let data = match &t.data {
                TensorData::F32(v) => TensorData::F32(v[start * row..end * row].to_vec()),
                TensorData::I64(v) => TensorData::I64(v[start * row..end * row].to_vec()),
            };
            (name.clone(), Tensor { shape, data })
        })
        .collect()
}
