//! The activation seam: how a rewrite that needs intermediate values of a network (the
//! pruner's importance and repairs, the quantizer's calibration ranges) gets them without
//! running a model itself. The caller implements `ActivationSource` over its calibration data
//! on a runtime (`profagent_workbench::BatchActivations` on ONNX Runtime; tests use their own);
//! `profagent-prune` and `profagent-quant` only read the values it streams, so neither links
//! a runtime.
use crate::builder::value_info;
use crate::Model;

/// Receives one run's value of one requested tensor: (index in the requested values, dims,
/// row-major data). An error stops the stream.
pub type ValueVisitor<'a> =
    dyn FnMut(usize, &[usize], &[f32]) -> std::result::Result<(), String> + 'a;

/// Runs a model over calibration data and streams intermediate values to a visitor, run by
/// run, so callers accumulate statistics without holding every activation.
pub trait ActivationSource {
    /// Runs `model` over the calibration data and hands every run's value of each of `values`
    /// to `visit(value_index, dims, data)` (row-major). A value that is a graph input is the
    /// input fed. A value that is not float is an error naming it.
    fn visit_values(
        &mut self,
        model: &Model,
        values: &[String],
        visit: &mut ValueVisitor<'_>,
    ) -> std::result::Result<(), String>;

    /// Batches one pass over the data holds (a report counts them); `None` when unknown.
    fn batches(&self) -> Option<usize> {
        None
    }
}

/// A copy of `model` whose graph also outputs `values` (float tensors, shape left open).
pub fn expose_values(model: &Model, values: &[String]) -> Model {
    let mut copy = model.clone();
    let graph = copy.graph_mut();
    for v in values {
        if !graph.output.iter().any(|o| o.name() == v) {
            let mut info = value_info(v, &[]);
            // Unknown rank: drop the shape entirely so runtimes accept any.
            if let Some(crate::proto::type_proto::Value::TensorType(t)) =
                info.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                t.shape = None;
            }
            graph.output.push(info);
        }
    }
    copy
}
