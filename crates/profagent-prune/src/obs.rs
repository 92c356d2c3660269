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
use ndarray::{Array2, ArrayView2, Axis};
use profagent_onnx::{GraphIndex, Model};
use rayon::prelude::*;

use crate::calibrate::ActivationSource;
use crate::error::{PruneError, Result};
use crate::group::{AxisMap, Group, SliceRole};
use crate::importance::{has_weighted_consumer, weight_scores, weighted_scores};
use crate::lsq::{cholesky, damped, Gram};
use crate::reconstruct::{
    accumulate, inputs_of, job_for, passes, Finished, Job, Prepared, Weights,
};
use crate::walk::layer_name;

/// Column block of the inverse (one parallel task per block and per pair of blocks).
const INVERSE_BLOCK: usize = 256;

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

/// One consumer during the greedy removal. The downdated inverse Hessian is kept as
/// `S = S₀ − V Vᵀ` (one `n × b` block of `V` per removal), so a removal costs `O(n·k·b)`
/// (`k` the columns of `V` so far) instead of the `O(n²·b)` of rewriting `S`, and each unit's
/// current `S_BB` is kept up to date in `O(b³)`.
pub(crate) struct Consumer {
    /// `S₀ = (G + Λ)⁻¹`, `n × n`.
    s0: Array2<f64>,
    pub n: usize,
    /// Weights, `m × n` (outputs × features, the bias column last), compensated.
    pub w: Array2<f64>,
    /// `tr(W G Wᵀ)` with the dense weights: the consumer's output energy.
    pub energy: f64,
    /// Feature indices of each unit of the group.
    pub blocks: Vec<Vec<usize>>,
    /// Columns of the low-rank downdate so far (`n` rows each, stored as rows of length `n`).
    v: Vec<Vec<f64>>,
    /// The current `S_BB` of every unit (`b × b`, row-major).
    diag: Vec<Vec<f64>>,
    /// Features removed so far.
    gone: Vec<bool>,
}

impl Consumer {
    /// `None` when `G + Λ` is not positive definite. `unpenalised` features (the bias column)
    /// take no ridge; `λ` from `lsq::damped`, as reconstruction's.
    pub fn new(
        gram: &[f64],
        n: usize,
        w: Array2<f64>,
        unpenalised: &[usize],
        blocks: Vec<Vec<usize>>,
    ) -> Option<Consumer> {
        let g = ArrayView2::from_shape((n, n), gram).ok()?;
        let energy: f64 = w
            .axis_chunks_iter(Axis(0), 16)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|rows| {
                let mut wg = Array2::<f64>::zeros((rows.nrows(), n));
                general_mat_mul(1.0, &rows, &g, 0.0, &mut wg);
                (&wg * &rows).sum()
            })
            .sum();
        let penalised: Vec<usize> = (0..n).filter(|f| !unpenalised.contains(f)).collect();
        let (s0, _) = damped(|| gram.to_vec(), n, &penalised, |h| inverse(h, n))?;
        let s0 = Array2::from_shape_vec((n, n), s0).ok()?;
        let diag = blocks
            .iter()
            .map(|block: &Vec<usize>| {
                let mut d = Vec::with_capacity(block.len() * block.len());
                for &i in block {
                    d.extend(block.iter().map(|&j| s0[[i, j]]));
                }
                d
            })
            .collect();
        Some(Consumer {
            s0,
            n,
            w,
            energy,
            blocks,
            v: Vec::new(),
            diag,
            gone: vec![false; n],
        })
    }

    /// The current (downdated) `S[i, j]`.
    #[cfg(test)]
    pub fn s(&self, i: usize, j: usize) -> f64 {
        self.s0[[i, j]] - self.v.iter().map(|c| c[i] * c[j]).sum::<f64>()
    }

    /// `tr(W_B (S_BB)⁻¹ W_Bᵀ)` for unit `u` (infinite when `S_BB` is not positive definite).
    pub fn cost(&self, u: usize) -> f64 {
        let block = &self.blocks[u];
        let b = block.len();
        let mut l = self.diag[u].clone();
        if !cholesky(&mut l, b) {
            return f64::INFINITY;
        }
        // Σ_o ||L⁻¹ w_o,B||² by forward substitution.
        let mut total = 0.0;
        let mut y = vec![0.0; b];
        for row in self.w.rows() {
            for r in 0..b {
                let mut v = row[block[r]];
                for p in 0..r {
                    v -= l[r * b + p] * y[p];
                }
                y[r] = v / l[r * b + r];
            }
            total += y.iter().map(|v| v * v).sum::<f64>();
        }
        total
    }

    /// Removes unit `u`: compensates the weights (`W −= W_B (S_BB)⁻¹ S_B·`) and downdates `S`
    /// by the block Schur complement (`S −= S_·B (S_BB)⁻¹ S_B·`, as `b` new columns of `V`);
    /// the block's columns of `W` become zero.
    pub fn remove(&mut self, u: usize) {
        let n = self.n;
        let block = self.blocks[u].clone();
        let b = block.len();
        // The current columns S_·B (n × b) and their Cholesky-scaled form C L⁻ᵀ.
        let mut cols = Array2::<f64>::zeros((n, b));
        for (c, &j) in block.iter().enumerate() {
            cols.column_mut(c).assign(&self.s0.column(j));
        }
        for v in &self.v {
            for (c, &j) in block.iter().enumerate() {
                let vj = v[j];
                if vj != 0.0 {
                    cols.column_mut(c)
                        .zip_mut_with(&ndarray::ArrayView1::from(&v[..]), |x, &y| *x -= vj * y);
                }
            }
        }
        let mut l = self.diag[u].clone();
        if !cholesky(&mut l, b) {
            // Numerically nothing left to compensate with: just drop the block.
            for &f in &block {
                self.gone[f] = true;
                self.w.column_mut(f).fill(0.0);
            }
            return;
        }
        // Scaled = cols · L⁻ᵀ: each row x solves L y = x; the rows of features removed before
        // are zero (exactly, not to rounding), so their columns of W stay zero.
        let mut scaled = cols;
        for (f, mut row) in scaled.rows_mut().into_iter().enumerate() {
            if self.gone[f] {
                row.fill(0.0);
            }
        }
        for mut row in scaled.rows_mut() {
            for r in 0..b {
                let mut v = row[r];
                for p in 0..r {
                    v -= l[r * b + p] * row[p];
                }
                row[r] = v / l[r * b + r];
            }
        }
        // W −= (W_B L⁻ᵀ) scaledᵀ.
        let mut wb = self.w.select(Axis(1), &block);
        for mut row in wb.rows_mut() {
            for r in 0..b {
                let mut v = row[r];
                for p in 0..r {
                    v -= l[r * b + p] * row[p];
                }
                row[r] = v / l[r * b + r];
            }
        }
        general_mat_mul(-1.0, &wb, &scaled.t(), 1.0, &mut self.w);
        for &f in &block {
            self.gone[f] = true;
            self.w.column_mut(f).fill(0.0);
        }
        // Every unit's S_BB loses its part of the new columns.
        let columns: Vec<Vec<f64>> = (0..b).map(|c| scaled.column(c).to_vec()).collect();
        self.diag
            .par_iter_mut()
            .zip(self.blocks.par_iter())
            .for_each(|(d, blk)| {
                let bb = blk.len();
                for col in &columns {
                    for (r, &i) in blk.iter().enumerate() {
                        let ci = col[i];
                        if ci != 0.0 {
                            for (q, &j) in blk.iter().enumerate() {
                                d[r * bb + q] -= ci * col[j];
                            }
                        }
                    }
                }
            });
        self.v.extend(columns);
    }
}

/// The inverse of a symmetric positive definite `n × n` matrix (row-major), `None` when it is
/// not positive definite: Cholesky `A = L Lᵀ`, `Y = L⁻¹` (lower triangular, solved per column
/// block from the block's diagonal down), then `A⁻¹ = Yᵀ Y` block by block (upper blocks,
/// mirrored), about `n³` flops against `2n³` for solving `A X = I`.
pub(crate) fn inverse(mut a: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    if !cholesky(&mut a, n) {
        return None;
    }
    let l = ArrayView2::from_shape((n, n), &a[..]).ok()?;
    let starts: Vec<usize> = (0..n).step_by(INVERSE_BLOCK).collect();
    // Y[j0.., j0..j1] for each block (rows above j0 are zero).
    let ys: Vec<Array2<f64>> = starts
        .par_iter()
        .map(|&j0| {
            let w = INVERSE_BLOCK.min(n - j0);
            let m = n - j0;
            let mut y = Array2::<f64>::zeros((m, w));
            for j in 0..w {
                y[[j, j]] = 1.0;
            }
            let mut i0 = 0;
            while i0 < m {
                let i1 = (i0 + INVERSE_BLOCK).min(m);
                let (done, mut rest) = y.view_mut().split_at(Axis(0), i0);
                let mut current = rest.slice_mut(ndarray::s![..i1 - i0, ..]);
                let lblock = l.slice(ndarray::s![j0 + i0..j0 + i1, j0..j0 + i0]);
                general_mat_mul(-1.0, &lblock, &done, 1.0, &mut current);
                for r in 0..i1 - i0 {
                    let li = j0 + i0 + r;
                    for p in 0..r {
                        let f = l[[li, j0 + i0 + p]];
                        let (above, mut below) = current.view_mut().split_at(Axis(0), r);
                        below
                            .row_mut(0)
                            .zip_mut_with(&above.row(p), |x, &y| *x -= f * y);
                    }
                    let d = l[[li, li]];
                    current.row_mut(r).mapv_inplace(|x| x / d);
                }
                i0 = i1;
            }
            y
        })
        .collect();
    drop(a);
    // (A⁻¹)[P, Q] = Y[rows ≥ q0, P]ᵀ · Y[rows ≥ q0, Q] for p0 ≤ q0.
    let pairs: Vec<(usize, usize)> = (0..starts.len())
        .flat_map(|q| (0..=q).map(move |p| (p, q)))
        .collect();
    let tiles: Vec<(usize, usize, Array2<f64>)> = pairs
        .into_par_iter()
        .map(|(p, q)| {
            let (p0, q0) = (starts[p], starts[q]);
            let yp = ys[p].slice(ndarray::s![q0 - p0.., ..]);
            let yq = &ys[q];
            let mut t = Array2::<f64>::zeros((yp.ncols(), yq.ncols()));
            general_mat_mul(1.0, &yp.t(), yq, 0.0, &mut t);
            (p0, q0, t)
        })
        .collect();
    let mut out = vec![0.0; n * n];
    for (p0, q0, t) in tiles {
        for ((i, j), &v) in t.indexed_iter() {
            out[(p0 + i) * n + q0 + j] = v;
            out[(q0 + j) * n + p0 + i] = v;
        }
    }
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
