//! `--check-runtime` and `--check-samples` of `quantize` and `prune`: the flag, and the call
//! into the pre-write output check (`profagent_workbench::check`, where the check and its
//! budgets live), with its errors mapped to exit codes.
use profagent_onnx::Model;
use profagent_runtime::RuntimeKind;
pub use profagent_workbench::check::{CheckInputs, CheckOutcome, Floor, CHECK_SAMPLES};

use crate::exit::RuntimeFailure;

/// `--check-runtime`: where to check, or not at all.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckRuntime {
    /// ONNX Runtime (the default runtime).
    Ort,
    /// tract (builds with the `tract` feature).
    Tract,
    /// Write the model without checking it.
    None,
}

/// Runs the check unless `--check-runtime none`: a rewrite below its floor or failing on the
/// runtime exits 3; an input model or input sizes the runtime cannot take exit 2.
pub fn check_rewrite(
    kind: CheckRuntime,
    original: &Model,
    rewritten: &Model,
    inputs: Option<CheckInputs<'_>>,
    input_shapes: &[profagent_data::InputShape],
    floor: Floor<'_>,
) -> anyhow::Result<Option<CheckOutcome>> {
    let kind = match kind {
        CheckRuntime::None => return Ok(None),
        CheckRuntime::Ort => RuntimeKind::Ort,
        CheckRuntime::Tract => RuntimeKind::Tract,
    };
    profagent_workbench::check_rewrite(kind, original, rewritten, inputs, input_shapes, floor)
        .map(Some)
        .map_err(|e| {
            if e.is_bad_input() {
                anyhow::Error::new(e)
            } else {
                RuntimeFailure(e.into()).into()
            }
        })
}
