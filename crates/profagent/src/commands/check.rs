//! The guardrail of `quantize` and `prune`: before a rewritten model is written, the original and
//! the rewrite run on the runtime the user deploys with, on the same inputs, and the rewrite must
//! reproduce the original's outputs within the rewrite's error budget. A runtime can mis-execute
//! a valid graph (tract 0.23.9 folds `DequantizeLinear → Softmax → QuantizeLinear` into a wrong
//! lookup table: cosine 0.34 on a QDQ ViT), so "the rewrite is correct" is checked where it runs.
use anyhow::Context;
use profagent_onnx::Model;
use profagent_runtime::{
    check_fidelity, open_runtime, synthetic_inputs, FidelityReport, ModelSource, RuntimeKind,
    SessionOptions, Tensor, TensorData,
};

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

/// Samples the check runs (the first rows of the given batch, or synthetic inputs).
pub const CHECK_SAMPLES: usize = 4;

/// What the check measured, for the summary and `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckOutcome {
    pub runtime: String,
    pub samples: usize,
    /// Real data (calibration samples) or synthetic inputs.
    pub inputs: &'static str,
    /// The budget (`-inf` for pruning: reported, not enforced; serialized as null).
    pub min_cosine: f64,
    pub report: FidelityReport,
}

impl CheckOutcome {
    pub fn line(&self) -> String {
        let needs = if self.min_cosine.is_finite() {
            format!(" (needs ≥ {})", self.min_cosine)
        } else {
            String::new()
        };
        format!(
            "checked on {}: output cosine {:.5} vs the original on {} {} samples{needs}{}",
            self.runtime,
            self.report.cosine,
            self.samples,
            self.inputs,
            self.report
                .top1_agreement
                .map(|a| format!(", top-1 agreement {:.0} %", a * 100.0))
                .unwrap_or_default()
        )
    }
}

/// Runs `original` and `rewritten` on `runtime` and fails (exit 3) when the rewrite's output
/// cosine is below `min_cosine`. `inputs`: real samples when the caller has them (static
/// quantization is calibrated for real data and must be checked on it), else synthetic ones.
pub fn check_rewrite(
    kind: CheckRuntime,
    original: &Model,
    rewritten: &Model,
    inputs: Option<&[(String, Tensor)]>,
    min_cosine: f64,
    what: &str,
) -> anyhow::Result<Option<CheckOutcome>> {
    let kind = match kind {
        CheckRuntime::None => return Ok(None),
        CheckRuntime::Ort => RuntimeKind::Ort,
        CheckRuntime::Tract => RuntimeKind::Tract,
    };
    let runtime = open_runtime(kind).map_err(|e| {
        RuntimeFailure(anyhow::Error::new(e).context(
            "cannot check the rewritten model (pass --check-runtime none to skip the check)",
        ))
    })?;
    let options = SessionOptions::default();
    let input_name = original
        .path
        .as_ref()
        .map(|p| format!("input model {}", p.display()))
        .unwrap_or_else(|| "input model".into());
    // The input model not loading or running on the target runtime (an op it does not know,
    // inputs it cannot take) is bad input (exit 2), as in `eval` and `profile`; only the
    // rewrite failing is a runtime failure.
    let mut reference = runtime
        .load(&ModelSource::Bytes(original.to_bytes()), &options)
        .with_context(|| format!("the {input_name} does not load on the check runtime"))?;
    let (inputs, origin): (Vec<(String, Tensor)>, &'static str) = match inputs {
        Some(given) => (
            given
                .iter()
                .map(|(name, t)| (name.clone(), first_rows(t, CHECK_SAMPLES)))
                .collect(),
            "real",
        ),
        None => (synthetic_inputs(&reference.inputs(), 2)?, "synthetic"),
    };
    let samples = inputs
        .first()
        .and_then(|(_, t)| t.shape.first())
        .copied()
        .unwrap_or(1);
    let expected = reference
        .run(&inputs)
        .with_context(|| format!("the {input_name} does not run on the check runtime"))?;
    drop(reference);
    let got = runtime
        .load(&ModelSource::Bytes(rewritten.to_bytes()), &options)
        .and_then(|mut session| session.run(&inputs))
        .map_err(|e| RuntimeFailure(e.into()))
        .with_context(|| format!("the {what} model does not run on {}", runtime.version()))?;
    let report = check_fidelity(&expected, &got).map_err(|e| RuntimeFailure(e.into()))?;
    let outcome = CheckOutcome {
        runtime: runtime.version(),
        samples,
        inputs: origin,
        min_cosine,
        report,
    };
    // NaN (non-finite outputs) fails too.
    if outcome.report.cosine.is_nan() || outcome.report.cosine < min_cosine {
        return Err(RuntimeFailure(anyhow::anyhow!(
            "the {what} model does not reproduce the original on {}: output cosine {:.4} < {min_cosine} on {samples} {origin} samples (max abs error {:.3e}); \
             nothing was written. The runtime may mis-execute this rewrite, or the rewrite is too aggressive: exclude the layers involved, try another mode or ratio, \
             or pass --check-runtime none to write it anyway",
            outcome.runtime,
            outcome.report.cosine,
            outcome.report.max_abs_error
        ))
        .into());
    }
    Ok(Some(outcome))
}

/// The first `rows` entries along axis 0 (the whole tensor when it has fewer).
fn first_rows(tensor: &Tensor, rows: usize) -> Tensor {
    let Some(&batch) = tensor.shape.first() else {
        return tensor.clone();
    };
    if batch <= rows {
        return tensor.clone();
    }
    let per_row = tensor.shape[1..].iter().product::<usize>();
    let mut shape = tensor.shape.clone();
    shape[0] = rows;
    match &tensor.data {
        TensorData::F32(v) => Tensor::f32(shape, v[..rows * per_row].to_vec()),
        TensorData::I64(v) => Tensor::i64(shape, v[..rows * per_row].to_vec()),
    }
}
