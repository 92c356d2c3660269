//! Calibration activations for the pruner (activation importance, bias correction, BN
//! re-estimation): runs batches through ONNX Runtime with the requested values exposed as
//! extra outputs. Shared by `prune --calib` and `compress`.
use profagent_onnx::Model;
use profagent_prune::{
    expose_values, ActivationSource, ChannelStats, StatRequest, StatsAccumulator, ValueVisitor,
};
use profagent_runtime::{ModelSource, Runtime, SessionOptions, Tensor};

/// One batch of named model inputs.
pub type Batch = Vec<(String, Tensor)>;

pub struct BatchActivations<'a> {
    pub runtime: &'a dyn Runtime,
    pub session: &'a SessionOptions,
    pub batches: &'a [Batch],
}

impl BatchActivations<'_> {
    /// A progress step over every calibration sample.
    fn step(&self, label: &str) -> profagent_onnx::progress::Step {
        let total: u64 = self.batches.iter().map(rows).sum();
        profagent_onnx::progress::step(label, Some(total), "samples")
    }
}

/// Samples in a batch: the first input's leading dimension.
fn rows(batch: &Batch) -> u64 {
    batch
        .first()
        .and_then(|(_, t)| t.shape.first())
        .map_or(1, |&rows| rows as u64)
}

impl ActivationSource for BatchActivations<'_> {
    fn channel_stats(
        &mut self,
        model: &Model,
        requests: &[StatRequest],
    ) -> Result<Vec<ChannelStats>, String> {
        let values: Vec<String> = requests.iter().map(|r| r.value.clone()).collect();
        let exposed = expose_values(model, &values);
        let mut session = self
            .runtime
            .load(&ModelSource::Bytes(exposed.to_bytes()), self.session)
            .map_err(|e| e.to_string())?;
        let mut acc = StatsAccumulator::new();
        let step = self.step("gathering activations for importance");
        let mut done = 0;
        for batch in self.batches {
            let outputs = session.run(batch).map_err(|e| e.to_string())?;
            done += rows(batch);
            step.set(done);
            for r in requests {
                let (_, t) = outputs
                    .iter()
                    .find(|(name, _)| *name == r.value)
                    .ok_or_else(|| format!("runtime did not return '{}'", r.value))?;
                acc.add(
                    r,
                    &t.shape,
                    t.as_f32().ok_or("calibration value is not float")?,
                )?;
            }
        }
        acc.finish(requests)
    }

    fn visit_values(
        &mut self,
        model: &Model,
        values: &[String],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), String> {
        let exposed = expose_values(model, values);
        let mut session = self
            .runtime
            .load(&ModelSource::Bytes(exposed.to_bytes()), self.session)
            .map_err(|e| e.to_string())?;
        let step = self.step("streaming activations for reconstruction");
        let mut done = 0;
        for batch in self.batches {
            let outputs = session.run(batch).map_err(|e| e.to_string())?;
            done += rows(batch);
            step.set(done);
            for (i, v) in values.iter().enumerate() {
                let (_, t) = outputs
                    .iter()
                    .find(|(name, _)| name == v)
                    .ok_or_else(|| format!("runtime did not return '{v}'"))?;
                let data = t
                    .as_f32()
                    .ok_or_else(|| format!("calibration value '{v}' is not float"))?;
                visit(i, &t.shape, data)?;
            }
        }
        Ok(())
    }
}
