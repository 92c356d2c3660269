//! Metrics over logits: top-k accuracy against labels, and fidelity to a reference model's
//! logits when there are no labels (or to measure how much a compressed model drifted).
use serde::{Deserialize, Serialize};

/// Rank of `class` in `row` (0 = highest). Ties go to the lower index, as `numpy.argmax` and a
/// stable descending sort do.
fn rank_of(row: &[f32], class: usize) -> usize {
    let value = row[class];
    row.iter()
        .enumerate()
        .filter(|&(i, &v)| v > value || (v == value && i < class))
        .count()
}

/// Index of the largest logit (first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Running top-1 / top-5 counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub samples: usize,
    pub top1_correct: usize,
    pub top5_correct: usize,
    /// Sum over samples of -log softmax(logits)[label], in nats.
    pub nll_sum: f64,
}

impl Accuracy {
    /// Adds a batch: `logits` is `[labels.len(), num_classes]` row-major. Labels must be
    /// `< num_classes` (checked by the caller, which can name the item).
    pub fn update(&mut self, logits: &[f32], num_classes: usize, labels: &[usize]) {
        for (row, &label) in logits.chunks_exact(num_classes).zip(labels) {
            let rank = rank_of(row, label);
            self.samples += 1;
            self.top1_correct += usize::from(rank == 0);
            self.top5_correct += usize::from(rank < 5);
            self.nll_sum += nll_of(row, label);
        }
    }

    /// Mean cross-entropy of the labelled class, in nats (0 when empty): a continuous,
    /// much less noisy signal than top-1 for comparing two models on the same images.
    pub fn mean_nll(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.nll_sum / self.samples as f64
        }
    }

    /// Fraction in [0, 1]; 0 when empty.
    pub fn top1(&self) -> f64 {
        ratio(self.top1_correct, self.samples)
    }

    pub fn top5(&self) -> f64 {
        ratio(self.top5_correct, self.samples)
    }
}

/// -log softmax(row)[label], computed stably (max subtracted).
fn nll_of(row: &[f32], label: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if !max.is_finite() {
        return f64::NAN;
    }
    let log_sum = row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln();
    max + log_sum - row[label] as f64
}

fn ratio(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// Agreement of a model with a reference model on the same inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    pub samples: usize,
    /// Fraction of samples where both models' top-1 class is the same.
    pub top1_agreement: f64,
    /// Mean KL(softmax(reference) ‖ softmax(model)), in nats.
    pub mean_kl: f64,
    /// Mean cosine similarity of the logit vectors.
    pub mean_cosine: f64,
    /// Lowest cosine of any one sample (one badly mangled input hides in a mean).
    #[serde(default = "one")]
    pub worst_cosine: f64,
}

fn one() -> f64 {
    1.0
}

/// Streaming version of `fidelity`, for batch-by-batch evaluation.
#[derive(Debug, Clone, Default)]
pub struct FidelityAccumulator {
    samples: usize,
    agreements: usize,
    kl_sum: f64,
    cosine_sum: f64,
    worst_cosine: Option<f64>,
}

impl FidelityAccumulator {
    pub fn update(&mut self, reference: &[f32], logits: &[f32], num_classes: usize) {
        for (r, m) in reference
            .chunks_exact(num_classes)
            .zip(logits.chunks_exact(num_classes))
        {
            self.samples += 1;
            self.agreements += usize::from(argmax(r) == argmax(m));
            self.kl_sum += kl_divergence(r, m);
            let similarity = cosine(r, m);
            self.cosine_sum += similarity;
            self.worst_cosine = Some(self.worst_cosine.map_or(similarity, |w| w.min(similarity)));
        }
    }

    pub fn finish(&self) -> Fidelity {
        let n = self.samples.max(1) as f64;
        Fidelity {
            samples: self.samples,
            top1_agreement: ratio(self.agreements, self.samples),
            mean_kl: self.kl_sum / n,
            mean_cosine: self.cosine_sum / n,
            worst_cosine: self.worst_cosine.unwrap_or(1.0),
        }
    }
}

/// Fidelity of `logits` to `reference_logits`, both `[samples, num_classes]` row-major.
pub fn fidelity(reference_logits: &[f32], logits: &[f32], num_classes: usize) -> Fidelity {
    let mut accumulator = FidelityAccumulator::default();
    accumulator.update(reference_logits, logits, num_classes);
    accumulator.finish()
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let log_sum = row
        .iter()
        .map(|&v| (f64::from(v) - max).exp())
        .sum::<f64>()
        .ln();
    row.iter().map(|&v| f64::from(v) - max - log_sum).collect()
}

fn kl_divergence(reference: &[f32], model: &[f32]) -> f64 {
    let p = log_softmax(reference);
    let q = log_softmax(model);
    p.iter()
        .zip(&q)
        .map(|(&lp, &lq)| lp.exp() * (lp - lq))
        .sum::<f64>()
        .max(0.0)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        // Two all-zero vectors are identical; one zero vector has no direction to compare.
        return if na == nb { 1.0 } else { 0.0 };
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_counts_ranks_with_first_index_winning_ties() {
        let logits = [
            0.1, 0.9, 0.0, 0.0, 0.0, 0.0, // label 1: top-1
            0.5, 0.4, 0.3, 0.2, 0.1, 0.0, // label 4: rank 4 → top-5 only
            0.5, 0.4, 0.3, 0.2, 0.1, 0.0, // label 5: rank 5 → neither
            0.7, 0.7, 0.0, 0.0, 0.0, 0.0, // label 1 ties with 0 → rank 1
        ];
        let mut accuracy = Accuracy::default();
        accuracy.update(&logits, 6, &[1, 4, 5, 1]);
        assert_eq!(accuracy.top1_correct, 1);
        assert_eq!(accuracy.top5_correct, 3);
        assert!((accuracy.top1() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn mean_nll_is_the_cross_entropy_of_the_label() {
        // Uniform logits over 4 classes: -ln(1/4) whatever the label; large logits stay finite.
        let mut accuracy = Accuracy::default();
        accuracy.update(&[0.0, 0.0, 0.0, 0.0, 1000.0, 0.0, 0.0, 0.0], 4, &[2, 0]);
        assert!((accuracy.mean_nll() - (4f64.ln() + 0.0) / 2.0).abs() < 1e-9);
        let mut wrong = Accuracy::default();
        wrong.update(&[1000.0, 0.0], 2, &[1]);
        assert!((wrong.mean_nll() - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn fidelity_of_identical_logits_is_perfect_and_of_shifted_logits_is_not() {
        let reference = [1.0, 2.0, 3.0, -1.0, 0.0, 5.0];
        let same = fidelity(&reference, &reference, 3);
        assert_eq!(same.top1_agreement, 1.0);
        assert!(same.mean_kl.abs() < 1e-12);
        assert!((same.mean_cosine - 1.0).abs() < 1e-12);

        let other = [3.0, 2.0, 1.0, -1.0, 0.0, 5.0];
        let drift = fidelity(&reference, &other, 3);
        assert_eq!(drift.top1_agreement, 0.5);
        assert!(drift.mean_kl > 0.1);
        assert!(drift.mean_cosine < 0.9);
    }
}
