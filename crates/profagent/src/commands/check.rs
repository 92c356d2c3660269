//! The guardrail of `quantize` and `prune`: before a rewritten model is written, the original and
//! the rewrite run on the runtime the user deploys with, on the same inputs, and the rewrite must
//! reproduce the original's outputs within the rewrite's error budget. A runtime can mis-execute
//! a valid graph (tract 0.23.9 folds `DequantizeLinear → Softmax → QuantizeLinear` into a wrong
//! lookup table: cosine 0.34 on a QDQ ViT), so "the rewrite is correct" is checked where it runs.
use anyhow::Context;
use profagent_data::InputShape;
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

/// Real samples the check runs by default when the data has them (`--check-samples`): a
/// static model that keeps cosine 0.99 on 4 samples can sit at 0.87 over 50 (PP-LCNet).
pub const CHECK_SAMPLES: usize = 50;
/// Fewer real samples than this are reported as too few to trust.
pub const MIN_TRUSTED_SAMPLES: usize = 32;
/// Synthetic samples when no data is given.
const SYNTHETIC_SAMPLES: usize = 4;

/// What the check measured, for the summary and `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckOutcome {
    pub runtime: String,
    pub samples: usize,
    /// Where the inputs came from ("held-out real", "calibration", "synthetic").
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
        let few = if self.samples < MIN_TRUSTED_SAMPLES {
            format!(
                " [only {} samples: too few to trust; give at least {MIN_TRUSTED_SAMPLES} real samples]",
                self.samples
            )
        } else {
            String::new()
        };
        format!(
            "checked on {}: mean output cosine {:.5} (worst sample {:.5}) vs the original on {} {} samples{needs}{}{few}",
            self.runtime,
            self.report.cosine,
            self.report.worst_cosine,
            self.samples,
            self.inputs,
            self.report
                .top1_agreement
                .map(|a| format!(", top-1 agreement {:.0} %", a * 100.0))
                .unwrap_or_default()
        )
    }
}

/// Inputs of the check: batches of real samples (and where they come from), or none
/// (synthetic inputs are generated from the model's declared inputs).
pub struct CheckInputs<'a> {
    pub batches: &'a [Vec<(String, Tensor)>],
    pub origin: &'static str,
    /// Samples to run at most (`--check-samples`).
    pub samples: usize,
}

/// The floor a rewrite is held to, and the words of a refusal.
pub struct Floor<'a> {
    /// Smallest mean output cosine (`-inf`: reported, not enforced).
    pub min_cosine: f64,
    /// The rewrite, as in "the {what} model" ("quantized", "pruned").
    pub what: &'a str,
    /// What the user can do, ending the refusal.
    pub remedy: &'a str,
}

/// Runs `original` and `rewritten` on `runtime` and fails (exit 3) when the rewrite's mean
/// output cosine is below `floor.min_cosine`. Real samples when the caller has them (up to
/// `samples`, batch by batch: static quantization is calibrated for real data and must be
/// checked on it), else synthetic ones shaped by `input_shapes` (`--input-shape`) where the
/// model leaves dimensions dynamic; a dynamic dimension nobody sized is a bad-input error
/// (exit 2) naming the flag to pass.
pub fn check_rewrite(
    kind: CheckRuntime,
    original: &Model,
    rewritten: &Model,
    inputs: Option<CheckInputs<'_>>,
    input_shapes: &[InputShape],
    floor: Floor<'_>,
) -> anyhow::Result<Option<CheckOutcome>> {
    let Floor {
        min_cosine,
        what,
        remedy,
    } = floor;
    let kind = match kind {
        CheckRuntime::None => return Ok(None),
        CheckRuntime::Ort => RuntimeKind::Ort,
        CheckRuntime::Tract => RuntimeKind::Tract,
    };
    let synthetic = match inputs {
        Some(_) => None,
        None => {
            let declared = crate::commands::inputs::model_inputs(original, input_shapes)?;
            profagent_data::inputs::require_known_shapes(&declared)?;
            Some(declared)
        }
    };
    let runtime = open_runtime(kind).map_err(|e| {
        RuntimeFailure(anyhow::Error::new(e).context(
            "cannot check the rewritten model (pass --check-runtime none to skip the check)",
        ))
    })?;
    let options = SessionOptions::default();
    let (declared, _) = profagent_runtime::onnx_io::graph_io(original.graph());
    let fixed_batch = declared
        .first()
        .and_then(|i| i.shape.first().copied().flatten())
        .is_some();
    let (batches, origin): (Vec<Vec<(String, Tensor)>>, &'static str) = match inputs {
        Some(given) if !given.batches.is_empty() => {
            let mut left = given.samples.max(1);
            let mut out = Vec::new();
            for batch in given.batches {
                if left == 0 {
                    break;
                }
                let rows = batch
                    .first()
                    .and_then(|(_, t)| t.shape.first())
                    .copied()
                    .unwrap_or(1);
                // A model with a fixed batch runs whole batches (they were built at it).
                let take = if fixed_batch { rows } else { rows.min(left) };
                out.push(
                    batch
                        .iter()
                        .map(|(name, t)| (name.clone(), first_rows(t, take)))
                        .collect(),
                );
                left = left.saturating_sub(take);
            }
            (out, given.origin)
        }
        _ => {
            let declared = match synthetic {
                Some(declared) => declared,
                None => crate::commands::inputs::model_inputs(original, input_shapes)?,
            };
            (
                vec![synthetic_inputs(&declared, SYNTHETIC_SAMPLES)
                    .map_err(|e| RuntimeFailure(e.into()))?],
                "synthetic",
            )
        }
    };
    // The original's outputs first, then the rewrite's: one session alive at a time. The
    // input model not loading or running on the target runtime (an op it does not know,
    // inputs it cannot take) is bad input (exit 2), as in `eval` and `profile`; only the
    // rewrite failing is a runtime failure.
    let input_name = original
        .path
        .as_ref()
        .map(|p| format!("input model {}", p.display()))
        .unwrap_or_else(|| "input model".into());
    let mut expected = Vec::with_capacity(batches.len());
    {
        let mut reference = runtime
            .load(&ModelSource::Bytes(original.to_bytes()), &options)
            .with_context(|| format!("the {input_name} does not load on the check runtime"))?;
        for batch in &batches {
            expected.push(
                reference.run(batch).with_context(|| {
                    format!("the {input_name} does not run on the check runtime")
                })?,
            );
        }
    }
    let mut rewritten_session = runtime
        .load(&ModelSource::Bytes(rewritten.to_bytes()), &options)
        .map_err(|e| RuntimeFailure(e.into()))
        .with_context(|| format!("the {what} model does not load on {}", runtime.version()))?;
    let mut report: Option<FidelityReport> = None;
    for (batch, expected) in batches.iter().zip(&expected) {
        let got = rewritten_session
            .run(batch)
            .map_err(|e| RuntimeFailure(e.into()))
            .with_context(|| format!("the {what} model does not run on {}", runtime.version()))?;
        let part = check_fidelity(expected, &got).map_err(|e| RuntimeFailure(e.into()))?;
        report = Some(match report {
            Some(so_far) => so_far.merge(&part),
            None => part,
        });
    }
    let report =
        report.ok_or_else(|| RuntimeFailure(anyhow::anyhow!("the check had no inputs to run")))?;
    let samples = report.samples;
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
            "the {what} model does not reproduce the original on {}: mean output cosine {:.4} < {min_cosine} on {samples} {origin} samples (worst sample {:.4}, max abs error {:.3e}); \
             nothing was written. {remedy}",
            outcome.runtime,
            outcome.report.cosine,
            outcome.report.worst_cosine,
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
