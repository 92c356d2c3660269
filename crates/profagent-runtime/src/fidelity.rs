//! Output fidelity: how closely a rewritten (or differently executed) model reproduces
//! reference outputs. Every rewrite must be checked on the runtime it targets (tract 0.23.9, for
//! one, folds DequantizeLinear → Softmax → QuantizeLinear into a wrong lookup table), so other
//! crates call `check_fidelity` instead of comparing numbers their own way.
use crate::{Result, RuntimeError, Tensor, TensorData};

/// Agreement between reference outputs and outputs under test, over all outputs together.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FidelityReport {
    /// Cosine similarity of the flattened outputs (1.0 = same direction; 1.0 when both are zero).
    pub cosine: f64,
    /// Largest absolute elementwise difference.
    pub max_abs_error: f64,
    /// Largest absolute difference divided by the reference's largest magnitude (scale-free,
    /// stable near zero-valued elements, unlike a per-element ratio).
    pub max_rel_error: f64,
    /// Share of rows whose arg-max agrees (outputs of rank ≥ 2, last axis = classes); `None`
    /// when no output has that form.
    pub top1_agreement: Option<f64>,
    /// Number of elements compared.
    pub elements: usize,
}

impl FidelityReport {
    /// True when the outputs match within `max_rel_error` (relative to the reference scale).
    pub fn within(&self, max_rel_error: f64) -> bool {
        self.max_rel_error <= max_rel_error
    }
}

/// Compares outputs pairwise, by position (both lists in graph-output order). Names, shapes and
/// element types must agree; a mismatch is an error, not a low score.
pub fn check_fidelity(
    reference: &[(String, Tensor)],
    outputs: &[(String, Tensor)],
) -> Result<FidelityReport> {
    if reference.len() != outputs.len() {
        return Err(RuntimeError::Fidelity {
            reason: format!(
                "{} reference outputs but {} outputs under test",
                reference.len(),
                outputs.len()
            ),
        });
    }
    let mut dot = 0f64;
    let mut norm_reference = 0f64;
    let mut norm_test = 0f64;
    let mut max_abs = 0f64;
    let mut reference_scale = 0f64;
    let mut elements = 0usize;
    let mut rows = 0usize;
    let mut agreeing_rows = 0usize;
    // `f64::max` skips NaN, so NaN is tracked on its own.
    let mut saw_nan = false;
    for ((ref_name, ref_tensor), (name, tensor)) in reference.iter().zip(outputs) {
        if ref_tensor.shape != tensor.shape {
            return Err(RuntimeError::Fidelity {
                reason: format!(
                    "output '{name}' has shape {:?}, reference '{ref_name}' has {:?}",
                    tensor.shape, ref_tensor.shape
                ),
            });
        }
        let (expected, actual) = match (values(ref_tensor), values(tensor)) {
            (Some(e), Some(a)) if e.len() == a.len() => (e, a),
            _ => {
                return Err(RuntimeError::Fidelity {
                    reason: format!(
                        "output '{name}' ({}) cannot be compared with reference '{ref_name}' ({})",
                        tensor.elem_type(),
                        ref_tensor.elem_type()
                    ),
                })
            }
        };
        for (&e, &a) in expected.iter().zip(&actual) {
            dot += e * a;
            norm_reference += e * e;
            norm_test += a * a;
            saw_nan |= e.is_nan() || a.is_nan();
            max_abs = max_abs.max((e - a).abs());
            reference_scale = reference_scale.max(e.abs());
        }
        elements += expected.len();
        if let (Some(&classes), true) = (tensor.shape.last(), tensor.shape.len() >= 2) {
            if classes > 1 && matches!(tensor.data, TensorData::F32(_)) {
                for (e_row, a_row) in expected.chunks(classes).zip(actual.chunks(classes)) {
                    rows += 1;
                    agreeing_rows += usize::from(arg_max(e_row) == arg_max(a_row));
                }
            }
        }
    }
    let cosine = if norm_reference == 0.0 && norm_test == 0.0 {
        1.0
    } else if norm_reference == 0.0 || norm_test == 0.0 {
        0.0
    } else {
        dot / (norm_reference.sqrt() * norm_test.sqrt())
    };
    let max_rel_error = if reference_scale > 0.0 {
        max_abs / reference_scale
    } else if max_abs == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    // NaN anywhere must not read as agreement.
    let poisoned = saw_nan || !dot.is_finite();
    Ok(FidelityReport {
        cosine: if poisoned { f64::NAN } else { cosine },
        max_abs_error: if poisoned { f64::INFINITY } else { max_abs },
        max_rel_error: if poisoned {
            f64::INFINITY
        } else {
            max_rel_error
        },
        top1_agreement: (rows > 0).then(|| agreeing_rows as f64 / rows as f64),
        elements,
    })
}

fn values(tensor: &Tensor) -> Option<Vec<f64>> {
    match &tensor.data {
        TensorData::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
        TensorData::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
    }
}

/// Index of the largest value (first one on ties; NaN never wins).
fn arg_max(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(best_i, best), (i, &v)| {
            if v > best {
                (i, v)
            } else {
                (best_i, best)
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(rows: Vec<Vec<f32>>) -> Vec<(String, Tensor)> {
        let classes = rows[0].len();
        let shape = vec![rows.len(), classes];
        vec![("logits".into(), Tensor::f32(shape, rows.concat()))]
    }

    #[test]
    fn identical_outputs_are_perfect() {
        let a = logits(vec![vec![1.0, 2.0, 3.0], vec![-1.0, 0.5, 0.0]]);
        let report = check_fidelity(&a, &a).unwrap();
        assert!((report.cosine - 1.0).abs() < 1e-12);
        assert_eq!(report.max_abs_error, 0.0);
        assert_eq!(report.top1_agreement, Some(1.0));
        assert!(report.within(0.0));
    }

    #[test]
    fn measures_errors_and_top1_flips() {
        let a = logits(vec![vec![1.0, 2.0, 3.0], vec![-1.0, 0.5, 0.0]]);
        let b = logits(vec![vec![1.0, 2.0, 3.0], vec![-1.0, 0.0, 0.6]]);
        let report = check_fidelity(&a, &b).unwrap();
        assert_eq!(report.top1_agreement, Some(0.5));
        assert!((report.max_abs_error - 0.6).abs() < 1e-6);
        assert!((report.max_rel_error - 0.2).abs() < 1e-6);
        assert!(report.cosine < 1.0 && report.cosine > 0.9);
        assert!(!report.within(0.1));
    }

    #[test]
    fn nan_is_never_agreement() {
        let a = logits(vec![vec![1.0, 2.0]]);
        let b = logits(vec![vec![1.0, f32::NAN]]);
        let report = check_fidelity(&a, &b).unwrap();
        assert!(!report.within(1.0));
        assert!(report.cosine.is_nan());
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let a = logits(vec![vec![1.0, 2.0]]);
        let b = vec![("logits".to_string(), Tensor::f32(vec![2], vec![1.0, 2.0]))];
        assert!(check_fidelity(&a, &b).is_err());
        assert!(check_fidelity(&a, &[]).is_err());
    }
}
