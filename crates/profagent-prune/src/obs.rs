//! `Importance::Obs`: data-aware unit scores from the reconstruction statistics, structured
//! Optimal Brain Surgeon (Hassibi & Stork 1993; greedy structured removal as in OBC, Frantar &
//! Alistarh 2022, and ZipLM, Kurtic et al. 2023).
//!
//! A unit is a block `B` of input features of every layer reading it (the consumers: `k·k`
//! im2col columns per channel of a Conv, one column of an MLP down projection, `head_dim`
//! columns of an attention output projection). With `G = XᵀX` the consumer's Gram matrix on
//! calibration data (the one reconstruction accumulates, `reconstruct::accumulate`),
//! `H = G + Λ` (Λ the ridge of reconstruction, none on the bias column) and `S = H⁻¹`,
//! removing `B` and re-fitting the other weights optimally costs
//! `ΔE = tr(W_B (S_BB)⁻¹ W_Bᵀ)` (`W_B` the weights on `B`, one row per output). A unit read
//! by several consumers (a residual stream, a concat) costs the sum over consumers of
//! `ΔE / tr(W G Wᵀ)`, each consumer's error relative to its dense output energy.
//!
//! **Greedy**: the cheapest unit is removed, every consumer's weights are compensated
//! (`W ← W − W_B (S_BB)⁻¹ S_B·`) and `S` is downdated by the block Schur complement
//! (`S ← S − S_·B (S_BB)⁻¹ S_B·`, which leaves the inverse Hessian of the remaining features),
//! all units are scored again, until the group's kept count is reached. Scores are the
//! removal order (first removed lowest); kept units score above every removed one, among
//! themselves by their last `ΔE`. The compensated weights are the exact least-squares refit
//! (ridge towards the dense weights), so the removal order accounts for reconstruction.
//!
//! Groups with a consumer that cannot be reconstructed (`reconstruct::job_for` says why: a
//! 1-D convolution, auto_pad, more than `MAX_FEATURES` features, an op without a weight) are
//! scored by `Importance::Weighted` (or L1 when no consumer has a weight), with a warning.
//! The Gram matrices are handed back for independent reconstruction, which then makes no
//! pass of its own.
use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use profagent_onnx::{GraphIndex, Model};
use rayon::prelude::*;

use crate::calibrate::ActivationSource;
use crate::error::{PruneError, Result};
use crate::group::{AxisMap, Group, SliceRole};
use crate::importance::{has_weighted_consumer, weight_scores, weighted_scores};
use crate::lsq::{cholesky, cholesky_solve, Gram, RIDGE};
use crate::reconstruct::{
    accumulate, inputs_of, job_for, passes, Finished, Job, Prepared, Weights,
};
use crate::walk::layer_name;

/// Rows of `S` updated by one parallel task in the Schur downdate.
const DOWNDATE_ROWS: usize = 128;

/// What `rank` found: a score per unit of every group (same order; the lowest are removed)
/// and the Gram matrices it accumulated on the dense model's inputs, by consumer node.
pub(crate) struct Ranking {
    pub scores: Vec<Vec<f64>>,
    pub grams: Prepared,
    /// Seconds spent streaming calibration data (runtime and Gram updates) and ranking.
    pub statistics_s: f64,
    pub ranking_s: f64,
}

/// Where a group's units sit in one consumer's input channels.
#[derive(Clone, Copy)]
struct Reader {
    node: usize,
    map: AxisMap,
}

/// Ranks the units of every `(group, kept count)` by greedy structured OBS on calibration
/// data from `source`.
pub(crate) fn rank(
    model: &Model,
    groups: &[(&Group, usize)],
    source: &mut dyn ActivationSource,
    warnings: &mut Vec<String>,
) -> Result<Ranking> {
    let (jobs, readers) = plan(model, groups)?;
    let used: Vec<&Job> = jobs
        .values()
        .filter(|j| readers.iter().flatten().flatten().any(|r| r.node == j.node))
        .collect();
    let start = Instant::now();
    let grams = match statistics(model, &used, source) {
        Ok(grams) => grams,
        Err(e) if e.contains("cannot stream") => {
            warnings.push(format!("obs importance: {e}"));
            BTreeMap::new()
        }
        Err(e) => return Err(PruneError::Calibration(e)),
    };
    let statistics_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let step = profagent_onnx::progress::step(
        "ranking units (obs importance)",
        Some(groups.len() as u64),
        "groups",
    );
    let mut scores: Vec<Option<Vec<f64>>> = Vec::with_capacity(groups.len());
    let mut fallback: Vec<usize> = Vec::new();
    for (gi, (&(g, keep), readers)) in groups.iter().zip(&readers).enumerate() {
        let ranked = match readers {
            Ok(readers) if readers.iter().all(|r| grams.contains_key(&r.node)) => {
                greedy(model, g.units, keep, readers, &jobs, &grams)?
            }
            _ => None,
        };
        match (ranked, readers) {
            (Some(s), _) => scores.push(Some(s)),
            (None, Err(reason)) => {
                warnings.push(format!(
                    "group '{}': {reason}; ranked by weighted importance instead of obs",
                    g.id
                ));
                fallback.push(gi);
                scores.push(None);
            }
            (None, Ok(_)) => {
                warnings.push(format!(
                    "group '{}': a consumer's calibration system is singular or has no rows; \
                     ranked by weighted importance instead of obs",
                    g.id
                ));
                fallback.push(gi);
                scores.push(None);
            }
        }
        step.set(gi as u64 + 1);
    }
    fill_fallback(model, groups, &fallback, &mut scores, source, warnings)?;
    let grams = grams.into_iter().collect();
    Ok(Ranking {
        scores: scores.into_iter().map(Option::unwrap_or_default).collect(),
        grams,
        statistics_s,
        ranking_s: start.elapsed().as_secs_f64(),
    })
}

/// The consumers to accumulate statistics for, by node, and per group either where its units
/// sit in each consumer or why it cannot be scored by OBS.
type Plan = (
    BTreeMap<usize, Job>,
    Vec<std::result::Result<Vec<Reader>, String>>,
);

fn plan(model: &Model, groups: &[(&Group, usize)]) -> Result<Plan> {
    let index = GraphIndex::new(model.graph())?;
    let mut jobs: BTreeMap<usize, Job> = BTreeMap::new();
    let mut all = Vec::new();
    for (g, _) in groups {
        let mut readers = Vec::new();
        let mut refused = None;
        for s in g
            .slices
            .iter()
            .filter(|s| s.role == SliceRole::ConsumerWeight)
        {
            let layer = layer_name(model, s.node);
            if let Some(job) = jobs.get(&s.node) {
                if job.weight != s.tensor || job.in_axis != s.axis {
                    refused = Some(format!("'{layer}' reads its units on two weights or axes"));
                }
            } else {
                match job_for(model, &index, s.node, &s.tensor, s.axis) {
                    Ok(job) => {
                        jobs.insert(s.node, job);
                    }
                    Err(reason) => {
                        refused = Some(format!("'{layer}' cannot be reconstructed ({reason})"));
                        continue;
                    }
                }
            }
            let channels = jobs[&s.node].channels;
            if (0..g.units).any(|u| s.map.indices(u).any(|c| c >= channels)) {
                return Err(PruneError::Group {
                    group: g.id.clone(),
                    reason: format!("its units exceed the {channels} input channels of '{layer}'"),
                });
            }
            readers.push(Reader {
                node: s.node,
                map: s.map,
            });
        }
        all.push(match (refused, readers.is_empty()) {
            (Some(reason), _) => Err(reason),
            (None, true) => Err("no Conv, Gemm or MatMul with a weight reads its units".into()),
            (None, false) => Ok(readers),
        });
    }
    Ok((jobs, all))
}

/// Gram matrices of `jobs` on the dense model's inputs (the passes of independent
/// reconstruction: same rows, same budget per pass).
fn statistics(
    model: &Model,
    jobs: &[&Job],
    source: &mut dyn ActivationSource,
) -> std::result::Result<BTreeMap<usize, Finished>, String> {
    let mut out = BTreeMap::new();
    for pass in passes(jobs) {
        let values = inputs_of(&pass);
        let mut grams: Vec<Gram> = pass.iter().map(|j| Gram::new(j.features())).collect();
        let mut batches = vec![0usize; values.len()];
        source.visit_values(model, &values, &mut |vi, dims, data| {
            let value = values.get(vi).ok_or("unknown value index")?;
            for (job, gram) in pass.iter().zip(grams.iter_mut()) {
                if &job.input == value {
                    accumulate(job, job.channels, gram, dims, data, batches[vi])?;
                }
            }
            batches[vi] += 1;
            Ok(())
        })?;
        let finished: Vec<Finished> = grams.into_par_iter().map(Finished::from).collect();
        for (job, gram) in pass.iter().zip(finished) {
            out.insert(job.node, gram);
        }
    }
    Ok(out)
}

/// Scores the groups OBS could not by `weighted` importance (one pass for all of them), or
/// L1 for a group no weighted layer reads.
fn fill_fallback(
    model: &Model,
    groups: &[(&Group, usize)],
    fallback: &[usize],
    scores: &mut [Option<Vec<f64>>],
    source: &mut dyn ActivationSource,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let graph = model.graph();
    let (weighted, l1): (Vec<usize>, Vec<usize>) = fallback
        .iter()
        .partition(|&&gi| has_weighted_consumer(graph, groups[gi].0));
    if !weighted.is_empty() {
        let chosen: Vec<&Group> = weighted.iter().map(|&gi| groups[gi].0).collect();
        for (gi, s) in weighted
            .iter()
            .zip(weighted_scores(model, &chosen, source)?)
        {
            scores[*gi] = Some(s);
        }
    }
    let mut cache = Default::default();
    for gi in l1 {
        let g = groups[gi].0;
        warnings.push(format!(
            "group '{}': no weighted layer reads its units either; ranked by l1",
            g.id
        ));
        scores[gi] = Some(weight_scores(graph, g, false, &mut cache)?);
    }
    Ok(())
}

/// One consumer during the greedy removal: its inverse Hessian and compensated weights.
pub(crate) struct Consumer {
    /// `S = (G + Λ)⁻¹`, `n × n` row-major, downdated as blocks are removed.
    pub s: Vec<f64>,
    pub n: usize,
    /// Weights, `m × n` (outputs × features, the bias column last), compensated.
    pub w: Array2<f64>,
    /// `tr(W G Wᵀ)` with the dense weights: the consumer's output energy.
    pub energy: f64,
    /// Feature indices of each unit of the group.
    pub blocks: Vec<Vec<usize>>,
}

impl Consumer {
    /// `None` when `G + Λ` is not positive definite. `unpenalised` features (the bias column)
    /// take no ridge; `λ = RIDGE · mean penalised diagonal`, as reconstruction's.
    pub fn new(
        gram: &[f64],
        n: usize,
        w: Array2<f64>,
        unpenalised: &[usize],
        blocks: Vec<Vec<usize>>,
    ) -> Option<Consumer> {
        let g = ArrayView2::from_shape((n, n), gram).ok()?;
        let mut wg = Array2::<f64>::zeros((w.nrows(), n));
        general_mat_mul(1.0, &w, &g, 0.0, &mut wg);
        let energy = (&wg * &w).sum();
        let mut h = gram.to_vec();
        let penalised: Vec<usize> = (0..n).filter(|f| !unpenalised.contains(f)).collect();
        let trace: f64 = penalised.iter().map(|&f| h[f * n + f]).sum();
        let lambda = RIDGE * trace / penalised.len().max(1) as f64;
        let lambda = if lambda > 0.0 { lambda } else { RIDGE };
        for &f in &penalised {
            h[f * n + f] += lambda;
        }
        let s = inverse(h, n)?;
        Some(Consumer {
            s,
            n,
            w,
            energy,
            blocks,
        })
    }

    /// `tr(W_B (S_BB)⁻¹ W_Bᵀ)` for unit `u` (infinite when `S_BB` is not positive definite).
    pub fn cost(&self, u: usize) -> f64 {
        let block = &self.blocks[u];
        let b = block.len();
        let mut sbb = vec![0.0; b * b];
        for (r, &i) in block.iter().enumerate() {
            for (c, &j) in block.iter().enumerate() {
                sbb[r * b + c] = self.s[i * self.n + j];
            }
        }
        if !cholesky(&mut sbb, b) {
            return f64::INFINITY;
        }
        // Σ_o ||L⁻¹ w_o,B||² by forward substitution.
        let mut total = 0.0;
        let mut y = vec![0.0; b];
        for row in self.w.rows() {
            for r in 0..b {
                let mut v = row[block[r]];
                for p in 0..r {
                    v -= sbb[r * b + p] * y[p];
                }
                y[r] = v / sbb[r * b + r];
            }
            total += y.iter().map(|v| v * v).sum::<f64>();
        }
        total
    }

    /// Removes unit `u`: compensates the weights and downdates `S` by the block Schur
    /// complement; the block's rows and columns of `S` and columns of `W` become zero.
    pub fn remove(&mut self, u: usize) {
        let n = self.n;
        let block = self.blocks[u].clone();
        let b = block.len();
        let mut sbb = vec![0.0; b * b];
        for (r, &i) in block.iter().enumerate() {
            for (c, &j) in block.iter().enumerate() {
                sbb[r * b + c] = self.s[i * n + j];
            }
        }
        let Some(sinv) = inverse(sbb, b) else {
            // Numerically nothing left to compensate with: just drop the block.
            self.clear(&block);
            return;
        };
        let sinv = Array2::from_shape_vec((b, b), sinv).expect("b × b");
        let mut rows = Array2::<f64>::zeros((b, n));
        for (r, &i) in block.iter().enumerate() {
            rows.row_mut(r).assign(
                &ArrayView2::from_shape((n, n), &self.s[..])
                    .expect("n × n")
                    .row(i),
            );
        }
        // T = (S_BB)⁻¹ S_B·, then W −= W_B T and S −= S_·B T (S_·B = S_B·ᵀ).
        let mut t = Array2::<f64>::zeros((b, n));
        general_mat_mul(1.0, &sinv, &rows, 0.0, &mut t);
        let wb = self.w.select(Axis(1), &block);
        general_mat_mul(-1.0, &wb, &t, 1.0, &mut self.w);
        self.s
            .par_chunks_mut(DOWNDATE_ROWS * n)
            .enumerate()
            .for_each(|(ci, chunk)| {
                let i0 = ci * DOWNDATE_ROWS;
                let h = chunk.len() / n;
                let a = rows.slice(ndarray::s![.., i0..i0 + h]);
                let mut c = ArrayViewMut2::from_shape((h, n), chunk).expect("rows × n");
                general_mat_mul(-1.0, &a.t(), &t, 1.0, &mut c);
            });
        self.clear(&block);
    }

    fn clear(&mut self, block: &[usize]) {
        let n = self.n;
        for &i in block {
            self.s[i * n..(i + 1) * n].fill(0.0);
            for r in 0..n {
                self.s[r * n + i] = 0.0;
            }
            self.w.column_mut(i).fill(0.0);
        }
    }
}

/// The inverse of a symmetric positive definite `n × n` matrix (row-major), by Cholesky;
/// `None` when it is not positive definite.
pub(crate) fn inverse(mut a: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    if !cholesky(&mut a, n) {
        return None;
    }
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        out[i * n + i] = 1.0;
    }
    cholesky_solve(&a, n, &mut out, n);
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// Greedy removal of `units − keep` units over the consumers `readers`: the scores (removal
/// order, kept units above), or `None` when a consumer's system cannot be inverted.
fn greedy(
    model: &Model,
    units: usize,
    keep: usize,
    readers: &[Reader],
    jobs: &BTreeMap<usize, Job>,
    grams: &BTreeMap<usize, Finished>,
) -> Result<Option<Vec<f64>>> {
    let mut consumers = Vec::new();
    for r in readers {
        let (job, gram) = (&jobs[&r.node], &grams[&r.node]);
        if gram.rows == 0 {
            return Ok(None);
        }
        let weights = Weights::load(model, job)?;
        let n = gram.n;
        let w = Array2::from_shape_fn((job.outputs, n), |(o, f)| weights.get(job, o, f));
        let kk = job.kernel_len();
        let blocks = (0..units)
            .map(|u| {
                r.map
                    .indices(u)
                    .flat_map(|c| c * kk..(c + 1) * kk)
                    .collect()
            })
            .collect();
        let unpenalised: Vec<usize> = job.bias.map(|_| n - 1).into_iter().collect();
        let Some(c) = Consumer::new(&gram.matrix, n, w, &unpenalised, blocks) else {
            return Ok(None);
        };
        consumers.push(c);
    }
    Ok(Some(greedy_order(&mut consumers, units, keep)))
}

/// The greedy loop over prepared consumers: scores per unit (see the module doc).
pub(crate) fn greedy_order(consumers: &mut [Consumer], units: usize, keep: usize) -> Vec<f64> {
    let cost = |consumers: &[Consumer], u: usize| -> f64 {
        consumers
            .iter()
            .map(|c| c.cost(u) / c.energy.max(f64::MIN_POSITIVE))
            .sum()
    };
    let mut alive = vec![true; units];
    let mut scores = vec![0.0; units];
    let mut removed = 0;
    while removed + keep < units {
        let costs: Vec<f64> = (0..units)
            .into_par_iter()
            .map(|u| {
                if alive[u] {
                    cost(consumers, u)
                } else {
                    f64::INFINITY
                }
            })
            .collect();
        let Some(best) = (0..units)
            .filter(|&u| alive[u])
            .min_by(|&a, &b| costs[a].total_cmp(&costs[b]).then(a.cmp(&b)))
        else {
            break;
        };
        alive[best] = false;
        scores[best] = removed as f64;
        removed += 1;
        consumers.iter_mut().for_each(|c| c.remove(best));
    }
    let mut kept: Vec<(usize, f64)> = (0..units)
        .filter(|&u| alive[u])
        .map(|u| (u, cost(consumers, u)))
        .collect();
    kept.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    for (rank, (u, _)) in kept.into_iter().enumerate() {
        scores[u] = (removed + 1 + rank) as f64;
    }
    scores
}

#[cfg(test)]
#[path = "obs_tests.rs"]
mod tests;
