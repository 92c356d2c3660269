//! The calibration source of these tests: batches run whole through ONNX Runtime, streamed to
//! the quantizer through `profagent_onnx::ActivationSource` (the CLI and `compress` use
//! `profagent_workbench::BatchActivations`, which also splits large batches).
use profagent_onnx::{expose_values, ActivationSource, Model, ValueVisitor};
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions, Tensor};

/// One batch of named model inputs.
pub type Batch = Vec<(String, Tensor)>;

pub struct OrtBatches<'a> {
    pub batches: &'a [Batch],
}

/// `batches` as a calibration source.
pub fn source(batches: &[Batch]) -> OrtBatches<'_> {
    OrtBatches { batches }
}

impl ActivationSource for OrtBatches<'_> {
    fn visit_values(
        &mut self,
        model: &Model,
        values: &[String],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), String> {
        let runtime = open_runtime(RuntimeKind::Ort).map_err(|e| e.to_string())?;
        // Graph inputs are read from the batch: ONNX Runtime's echo of an input as an output
        // is not reliable (it crashed the output copy here).
        let inputs: Vec<&str> = model.graph().input.iter().map(|i| i.name()).collect();
        let computed: Vec<String> = values
            .iter()
            .filter(|v| !inputs.contains(&v.as_str()))
            .cloned()
            .collect();
        let exposed = expose_values(model, &computed);
        let mut session = runtime
            .load(
                &ModelSource::Bytes(exposed.to_bytes()),
                &SessionOptions::default(),
            )
            .map_err(|e| e.to_string())?;
        for batch in self.batches {
            let outputs = session.run(batch).map_err(|e| e.to_string())?;
            for (i, v) in values.iter().enumerate() {
                let tensor = batch
                    .iter()
                    .chain(&outputs)
                    .find(|(name, _)| name == v)
                    .map(|(_, t)| t)
                    .ok_or_else(|| format!("runtime did not return '{v}'"))?;
                visit(i, &tensor.shape, tensor.as_f32().ok_or("not float")?)?;
            }
        }
        Ok(())
    }

    fn batches(&self) -> Option<usize> {
        Some(self.batches.len())
    }
}
