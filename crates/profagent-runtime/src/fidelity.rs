//! Output fidelity: how closely a rewritten (or differently executed) model reproduces
//! reference outputs. Every rewrite must be checked on the runtime it targets (tract 0.23.9, for
//! one, folds DequantizeLinear → Softmax → QuantizeLinear into a wrong lookup table), so other
//! crates call `check_fidelity` instead of comparing numbers their own way.
//!
//! Output cosine has one definition in ProfAgent: per sample (the rows along axis 0, all
//! outputs of that sample together), the cosine of the reference's and the model's values,
//! then the mean over samples; `profagent-data`'s fidelity of logits is the same quantity for
//! `[batch, classes]` outputs. The worst sample is reported beside the mean: one mangled input
//! hides in a mean.
use crate::{Result, RuntimeError, Tensor, TensorData};

/// Agreement between reference outputs and outputs under test, over all outputs together.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FidelityReport {
    /// Mean over samples of each sample's output cosine (1.0 = same direction; 1.0 when both
    /// are zero). NaN when any output is NaN.
    pub cosine: f64,
    /// Lowest cosine of any sample.
    #[serde(default)]
    pub worst_cosine: f64,
    /// Samples compared (rows along axis 0; 1 when the outputs have no common batch axis).
    #[serde(default)]
    pub samples: usize,
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
    /// Pools two reports on disjoint samples (e.g. a check run in chunks).
    pub fn merge(&self, other: &FidelityReport) -> FidelityReport {
        let total = (self.samples + other.samples).max(1) as f64;
        let weighted =
            |a: f64, b: f64| (a * self.samples as f64 + b * other.samples as f64) / total;
        let rows = |r: &FidelityReport| r.top1_agreement.map(|a| (a, r.samples as f64));
        FidelityReport {
            cosine: weighted(self.cosine, other.cosine),
            worst_cosine: if self.worst_cosine.is_nan() || other.worst_cosine.is_nan() {
                f64::NAN
            } else {
                self.worst_cosine.min(other.worst_cosine)
            },
            samples: self.samples + other.samples,
            max_abs_error: self.max_abs_error.max(other.max_abs_error),
            max_rel_error: self.max_rel_error.max(other.max_rel_error),
            top1_agreement: match (rows(self), rows(other)) {
                (Some((a, n)), Some((b, m))) => Some((a * n + b * m) / (n + m).max(1.0)),
                (a, b) => a.or(b).map(|(x, _)| x),
            },
            elements: self.elements + other.elements,
        }
    }

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
    // Samples: the common leading dimension of every output (else the whole as one sample).
    let batch = reference
        .first()
        .and_then(|(_, t)| t.shape.first().copied())
        .filter(|&b| {
            b > 0
                && reference
                    .iter()
                    .all(|(_, t)| t.shape.len() >= 2 && t.shape.first() == Some(&b))
        })
        .unwrap_or(1);
    let mut dot = vec![0f64; batch];
    let mut norm_reference = vec![0f64; batch];
    let mut norm_test = vec![0f64; batch];
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
        let per_sample = (expected.len() / batch).max(1);
        for (i, (&e, &a)) in expected.iter().zip(&actual).enumerate() {
            let sample = (i / per_sample).min(batch - 1);
            dot[sample] += e * a;
            norm_reference[sample] += e * e;
            norm_test[sample] += a * a;
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
    let cosines: Vec<f64> = (0..batch)
        .map(|i| {
            if norm_reference[i] == 0.0 && norm_test[i] == 0.0 {
                1.0
            } else if norm_reference[i] == 0.0 || norm_test[i] == 0.0 {
                0.0
            } else {
                dot[i] / (norm_reference[i].sqrt() * norm_test[i].sqrt())
            }
        })
        .collect();
    let cosine = cosines.iter().sum::<f64>() / batch as f64;
    let worst = cosines.iter().copied().fold(f64::INFINITY, f64::min);
    let max_rel_error = if reference_scale > 0.0 {
        max_abs / reference_scale
    } else if max_abs == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    // NaN anywhere must not read as agreement.
    let poisoned = saw_nan || !cosine.is_finite();
    Ok(FidelityReport {
        cosine: if poisoned { f64::NAN } else { cosine },
        worst_cosine: if poisoned { f64::NAN } else { worst },
        samples: batch,
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
        assert!(report.cosine < 1.0 && report.cosine > 0.85);
        assert_eq!(report.samples, 2);
        // The first sample is exact, the second is not: the worst is the second's cosine.
        assert!(report.worst_cosine < report.cosine);
        assert!(!report.within(0.1));
        let pooled = report.merge(&check_fidelity(&a, &a).unwrap());
        assert_eq!(pooled.samples, 4);
        assert!((pooled.cosine - (report.cosine + 1.0) / 2.0).abs() < 1e-12);
        assert_eq!(pooled.top1_agreement, Some(0.75));
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
