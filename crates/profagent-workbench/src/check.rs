//! The guardrail of `quantize` and `prune`: before a rewritten model is written, the original and
//! the rewrite run on the runtime the user deploys with, on the same inputs, and the rewrite must
//! reproduce the original's outputs within the rewrite's error budget. A runtime can mis-execute
//! a valid graph (tract 0.23.9 folds `DequantizeLinear → Softmax → QuantizeLinear` into a wrong
//! lookup table: cosine 0.34 on a QDQ ViT), so "the rewrite is correct" is checked where it runs.
//!
//! The budgets are named here (`quant_min_cosine`, `PRUNE_WARN_COSINE`); the CLI only builds the
//! inputs from its flags and prints the outcome. Output cosine is the one definition of
//! `profagent_runtime::fidelity` (mean over samples of each sample's cosine).
use profagent_data::InputShape;
use profagent_onnx::Model;
use profagent_quant::Mode;
use profagent_runtime::{
    check_fidelity, open_runtime, synthetic_inputs, FidelityReport, ModelSource, RuntimeKind,
    SessionOptions, Tensor, TensorData,
};

use crate::activations::Batch;

/// Real samples the check runs by default when the data has them (`--check-samples`): a
/// static model that keeps cosine 0.99 on 4 samples can sit at 0.87 over 50 (PP-LCNet).
pub const CHECK_SAMPLES: usize = 50;
/// Fewer real samples than this are reported as too few to trust.
pub const MIN_TRUSTED_SAMPLES: usize = 32;
/// Synthetic samples when no data is given.
pub const SYNTHETIC_SAMPLES: usize = 4;

// The floors below were set with the check itself (commit 9d28995) as looser versions of the
// error budgets the quantizer's own tests hold each mode to on small random nets
// (crates/profagent-quant/tests/error_budget.rs: 0.999 dynamic, 0.995 static, 0.97 int4),
// leaving room for real models over 50 real samples; they were not fitted to a sweep. They
// catch a runtime mis-executing a rewrite (tract's QDQ Softmax folding gave 0.34), not a
// slightly lossy one.

/// Dynamic int8 (weights int8, activations quantized at run time): ONNX Runtime's own tool
/// keeps ≥ 0.9994 on real ViTs (notes/engines.md, as quoted in error_budget.rs); the floor
/// allows over ten times that loss.
pub const DYNAMIC_MIN_COSINE: f64 = 0.99;
/// Static int8 QDQ: every activation is quantized too, with ranges calibrated on a few hundred
/// samples, about twice the error of dynamic mode in the quantizer's tests.
pub const STATIC_MIN_COSINE: f64 = 0.98;
/// Int4 weight-only blocks: cosine 0.98 was measured on ViT-B/16 with blocks of 32 (as quoted
/// in error_budget.rs); the floor sits below that so a model as hard as ViT-B still passes.
pub const INT4_MIN_COSINE: f64 = 0.95;

/// Smallest mean output cosine to the float model a quantized model may have on the check
/// runtime, by mode.
pub fn quant_min_cosine(mode: Mode) -> f64 {
    match mode {
        Mode::Dynamic => DYNAMIC_MIN_COSINE,
        Mode::Static => STATIC_MIN_COSINE,
        Mode::Int4 => INT4_MIN_COSINE,
    }
}

/// Without `--min-cosine`, a pruned model whose mean output cosine to the original is below
/// this is still written, with a warning: its outputs have moved far enough that accuracy is
/// lost. The bundled resnet20 (88.0 % top-1 on the 300 bundled images) pruned without
/// fine-tuning: cosine 0.97 kept 84.3 %, 0.93 kept 83.0 %, 0.86 fell to 70.0 %, 0.58 to 42.0 %.
pub const PRUNE_WARN_COSINE: f64 = 0.9;

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
    /// The one-line summary the commands print.
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

    /// The warning for a pruned model written without `--min-cosine` whose outputs moved far
    /// from the original's (below `PRUNE_WARN_COSINE`; NaN counts as far, though the check
    /// refuses non-finite outputs before this).
    pub fn prune_warning(&self) -> Option<String> {
        let cosine = self.report.cosine;
        if cosine >= PRUNE_WARN_COSINE {
            return None;
        }
        Some(format!(
            "the pruned model's outputs moved far from the original (cosine {cosine:.3} on {} {} samples, below {PRUNE_WARN_COSINE}): fine-tune it or prune less; --min-cosine C refuses such a model",
            self.samples, self.inputs
        ))
    }
}

/// Inputs of the check: batches of real samples (and where they come from), or none
/// (synthetic inputs are generated from the model's declared inputs).
pub struct CheckInputs<'a> {
    pub batches: &'a [Batch],
    pub origin: &'static str,
    /// Samples to run at most (`--check-samples`).
    pub samples: usize,
}

impl<'a> CheckInputs<'a> {
    /// The inputs of `quantize`'s check: samples calibration did not see (`held_out`) when the
    /// data has them (calibrating and checking on the same images would hide bad ranges), else
    /// the calibration batches, else none (synthetic inputs).
    pub fn for_quantization(
        mode: Mode,
        held_out: &'a [Batch],
        calibration: Option<&'a [Batch]>,
        samples: usize,
    ) -> Option<Self> {
        if !held_out.is_empty() {
            let origin = if mode == Mode::Static {
                "real held-out (not used for calibration)"
            } else {
                "real"
            };
            return Some(CheckInputs {
                batches: held_out,
                origin,
                samples,
            });
        }
        calibration.map(|batches| CheckInputs {
            batches,
            origin: "real calibration (no others in the data)",
            samples,
        })
    }
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

/// Why a check failed. `is_bad_input` tells the input's fault (the model or the sizes given)
/// from a failure of the rewrite or the runtime.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The model's inputs cannot be sized from what was given.
    #[error(transparent)]
    Inputs(#[from] profagent_data::DataError),
    #[error("cannot check the rewritten model (pass --check-runtime none to skip the check): {0}")]
    OpenRuntime(String),
    #[error("{0}")]
    SyntheticInputs(String),
    /// The input model does not load or run on the check runtime.
    #[error("the {model} does not {action} on the check runtime: {reason}")]
    InputModel {
        model: String,
        action: &'static str,
        reason: String,
    },
    /// The rewrite does not load or run.
    #[error("the {what} model does not {action} on {runtime}: {reason}")]
    Rewrite {
        what: String,
        action: &'static str,
        runtime: String,
        reason: String,
    },
    #[error("{0}")]
    Fidelity(String),
    #[error("the check had no inputs to run")]
    NoInputs,
    /// The rewrite runs but falls below its floor (or gives non-finite outputs).
    #[error("{0}")]
    BelowFloor(Box<Refusal>),
}

/// A rewrite held below its floor: what was measured, and what the user can do.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub what: String,
    pub runtime: String,
    pub cosine: f64,
    pub min_cosine: f64,
    pub samples: usize,
    pub origin: &'static str,
    pub worst: f64,
    pub max_abs_error: f64,
    pub remedy: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} model does not reproduce the original on {}: mean output cosine {:.4} < {} on {} {} samples (worst sample {:.4}, max abs error {:.3e}); nothing was written. {}",
            self.what,
            self.runtime,
            self.cosine,
            self.min_cosine,
            self.samples,
            self.origin,
            self.worst,
            self.max_abs_error,
            self.remedy
        )
    }
}

impl CheckError {
    /// Whether the input is at fault (exit 2) rather than the rewrite or the runtime (exit 3).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, CheckError::Inputs(_) | CheckError::InputModel { .. })
    }
}

/// Runs `original` and `rewritten` on `kind` and fails when the rewrite's mean output cosine is
/// below `floor.min_cosine`. Real samples when the caller has them (up to `samples`, batch by
/// batch: static quantization is calibrated for real data and must be checked on it), else
/// `SYNTHETIC_SAMPLES` synthetic ones shaped by `input_shapes` (`--input-shape`) where the
/// model leaves dimensions dynamic; a dynamic dimension nobody sized is a bad-input error
/// naming the flag to pass.
pub fn check_rewrite(
    kind: RuntimeKind,
    original: &Model,
    rewritten: &Model,
    inputs: Option<CheckInputs<'_>>,
    input_shapes: &[InputShape],
    floor: Floor<'_>,
) -> Result<CheckOutcome, CheckError> {
    let (declared, _) = profagent_runtime::onnx_io::graph_io(original.graph());
    let real = inputs.filter(|given| !given.batches.is_empty());
    let synthetic = match real {
        Some(_) => None,
        None => {
            let shaped = profagent_data::inputs::apply_input_shapes(&declared, input_shapes)?;
            profagent_data::inputs::require_known_shapes(&shaped)?;
            Some(shaped)
        }
    };
    let runtime = open_runtime(kind).map_err(|e| CheckError::OpenRuntime(e.to_string()))?;
    let fixed_batch = declared
        .first()
        .and_then(|i| i.shape.first().copied().flatten())
        .is_some();
    let (batches, origin) = match (real, synthetic) {
        (Some(given), _) => (
            first_samples(given.batches, given.samples, fixed_batch),
            given.origin,
        ),
        (None, Some(shaped)) => (
            vec![synthetic_inputs(&shaped, SYNTHETIC_SAMPLES)
                .map_err(|e| CheckError::SyntheticInputs(e.to_string()))?],
            "synthetic",
        ),
        (None, None) => return Err(CheckError::NoInputs),
    };
    let options = SessionOptions::default();
    // The original's outputs first, then the rewrite's: one session alive at a time. The
    // input model not loading or running on the target runtime (an op it does not know,
    // inputs it cannot take) is bad input, as in `eval` and `profile`; only the rewrite
    // failing is a runtime failure.
    let input_name = original
        .path
        .as_ref()
        .map(|p| format!("input model {}", p.display()))
        .unwrap_or_else(|| "input model".into());
    let input_error =
        |action: &'static str, e: profagent_runtime::RuntimeError| CheckError::InputModel {
            model: input_name.clone(),
            action,
            reason: e.to_string(),
        };
    let mut expected = Vec::with_capacity(batches.len());
    {
        let mut reference = runtime
            .load(&ModelSource::Bytes(original.to_bytes()), &options)
            .map_err(|e| input_error("load", e))?;
        for batch in &batches {
            expected.push(reference.run(batch).map_err(|e| input_error("run", e))?);
        }
    }
    let rewrite_error =
        |action: &'static str, e: profagent_runtime::RuntimeError| CheckError::Rewrite {
            what: floor.what.to_string(),
            action,
            runtime: runtime.version(),
            reason: e.to_string(),
        };
    let mut session = runtime
        .load(&ModelSource::Bytes(rewritten.to_bytes()), &options)
        .map_err(|e| rewrite_error("load", e))?;
    let mut report: Option<FidelityReport> = None;
    for (batch, expected) in batches.iter().zip(&expected) {
        let got = session.run(batch).map_err(|e| rewrite_error("run", e))?;
        let part =
            check_fidelity(expected, &got).map_err(|e| CheckError::Fidelity(e.to_string()))?;
        report = Some(match report {
            Some(so_far) => so_far.merge(&part),
            None => part,
        });
    }
    let report = report.ok_or(CheckError::NoInputs)?;
    let outcome = CheckOutcome {
        runtime: runtime.version(),
        samples: report.samples,
        inputs: origin,
        min_cosine: floor.min_cosine,
        report,
    };
    // NaN (non-finite outputs) fails too.
    if outcome.report.cosine.is_nan() || outcome.report.cosine < floor.min_cosine {
        return Err(CheckError::BelowFloor(Box::new(Refusal {
            what: floor.what.to_string(),
            runtime: outcome.runtime,
            cosine: outcome.report.cosine,
            min_cosine: floor.min_cosine,
            samples: outcome.samples,
            origin,
            worst: outcome.report.worst_cosine,
            max_abs_error: outcome.report.max_abs_error,
            remedy: floor.remedy.to_string(),
        })));
    }
    Ok(outcome)
}

/// Up to `samples` samples (at least one) from the front of `batches`. A model with a fixed
/// batch runs whole batches (they were built at it), so it may get a few more.
pub fn first_samples(batches: &[Batch], samples: usize, fixed_batch: bool) -> Vec<Batch> {
    let mut left = samples.max(1);
    let mut out = Vec::new();
    for batch in batches {
        if left == 0 {
            break;
        }
        let rows = batch
            .first()
            .and_then(|(_, t)| t.shape.first())
            .copied()
            .unwrap_or(1);
        let take = if fixed_batch { rows } else { rows.min(left) };
        out.push(
            batch
                .iter()
                .map(|(name, t)| (name.clone(), first_rows(t, take)))
                .collect(),
        );
        left = left.saturating_sub(take);
    }
    out
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
