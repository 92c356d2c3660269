//! Layer-wise reconstruction after pruning (ThiNet, He et al. 2017, Kwon et al. 2022's mask
//! tuning): every layer that *reads* removed channels (the consumer: a Conv with `group` 1, a
//! Gemm, or a `MatMul` by a weight, such as an MLP down projection or an attention output
//! projection) gets new weights over its kept inputs, fitted by ridge least squares so that
//! its outputs on calibration data match the dense layer's:
//!
//! `min_W' ||X W − X_K W'||² + λ ||W'||²`, `X` the consumer's input in the dense model (rows
//! of a `MatMul`/Gemm input; im2col patches of a Conv input), `K` the kept input features,
//! with a column of ones when the layer has a bias so the bias is re-fitted too (this
//! subsumes bias correction for these layers).
//!
//! Only the Gram matrix `XᵀX` is kept, accumulated in f64 as calibration batches stream
//! through `ActivationSource::visit_values` (at most `ROWS_PER_SAMPLE` rows per sample and
//! batch, so a Conv costs `(C_in·k·k + 1)²` numbers, never its activations); the normal
//! equations `(G_KK + λI) W' = G_K· W` are solved by Cholesky. `λ = RIDGE · trace(G_KK)/|K|`.
//! Targets are the dense model's inputs ("independent" reconstruction); upstream consumers
//! are themselves fitted to dense outputs, so each layer sees inputs close to the dense ones.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use profagent_onnx::{attr, tensor, GraphIndex, Model};

use crate::calibrate::ActivationSource;
use crate::error::{PruneError, Result};
use crate::group::{Group, SliceRole};
use crate::importance::find_tensor;
use crate::repair::bias_slot;
use crate::walk::layer_name;

/// Rows (Conv output positions or tokens) sampled per calibration sample and consumer.
pub const ROWS_PER_SAMPLE: usize = 32;
/// Ridge strength relative to the mean diagonal of the kept Gram block.
pub const RIDGE: f64 = 1e-5;
/// Gram matrices accumulated in one pass over the calibration data (bytes); more consumers
/// take more passes.
pub const GRAM_BUDGET_BYTES: usize = 512 << 20;
/// Consumers with more input features than this (Gram of 512 MiB) are not reconstructed.
pub const MAX_FEATURES: usize = 8192;
/// Rows gathered before one Gram update (amortises the passes over the matrix).
const ROW_BLOCK: usize = 64;

/// How a consumer turns its input into rows of features.
#[derive(Debug, Clone)]
enum Layout {
    /// Rows are the last axis of the input.
    Linear,
    /// 2-D convolution: im2col patches, feature `c·kh·kw + ky·kw + kx`.
    Conv {
        kernel: [usize; 2],
        strides: [usize; 2],
        /// top, left (bottom/right only bound the output size).
        pads: [usize; 4],
        dilations: [usize; 2],
    },
}

/// One consumer to refit.
#[derive(Debug, Clone)]
struct Job {
    node: usize,
    layer: String,
    /// The activation the consumer reads (its input 0).
    input: String,
    weight: String,
    /// Slot of the weight in the node's inputs.
    weight_slot: usize,
    /// Weight axis of the input channels (1 for Conv and transposed Gemm, 0 for `MatMul`).
    in_axis: usize,
    channels: usize,
    outputs: usize,
    removed: BTreeSet<usize>,
    layout: Layout,
    bias: Option<(usize, usize)>,
}

impl Job {
    fn kernel_len(&self) -> usize {
        match &self.layout {
            Layout::Linear => 1,
            Layout::Conv { kernel, .. } => kernel[0] * kernel[1],
        }
    }
    /// Input features, plus one for the bias column.
    fn features(&self) -> usize {
        self.channels * self.kernel_len() + usize::from(self.bias.is_some())
    }
}

/// What reconstruction did: weight/bias deltas (original shapes) keyed by (node, input slot),
/// the layers it refitted, and warnings (layers left to bias correction, with the reason).
#[derive(Debug, Default)]
pub struct Reconstruction {
    pub deltas: HashMap<(usize, usize), Vec<f32>>,
    pub layers: Vec<String>,
}

/// The consumers of the removed units that reconstruction can refit, and a warning per
/// consumer it cannot (with the reason).
fn jobs(
    model: &Model,
    groups: &[&Group],
    removed: &HashMap<String, Vec<usize>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Job>> {
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    let mut by_node: BTreeMap<usize, Job> = BTreeMap::new();
    let mut skipped: BTreeMap<String, String> = BTreeMap::new();
    for g in groups {
        let Some(units) = removed.get(&g.id) else {
            continue;
        };
        for s in g
            .slices
            .iter()
            .filter(|s| s.role == SliceRole::ConsumerWeight)
        {
            let layer = layer_name(model, s.node);
            let indices = units.iter().flat_map(|&u| s.map.indices(u));
            if let Some(job) = by_node.get_mut(&s.node) {
                if job.weight == s.tensor && job.in_axis == s.axis {
                    job.removed.extend(indices);
                } else {
                    skipped.insert(layer, "its inputs are cut on two weights or axes".into());
                }
                continue;
            }
            match job_for(model, &index, s.node, &s.tensor, s.axis) {
                Ok(mut job) => {
                    job.removed.extend(indices);
                    if job.removed.iter().any(|&c| c >= job.channels) {
                        return Err(PruneError::Group {
                            group: g.id.clone(),
                            reason: format!(
                                "removed input channels of '{layer}' exceed its {} channels",
                                job.channels
                            ),
                        });
                    }
                    by_node.insert(s.node, job);
                }
                Err(reason) => {
                    skipped.insert(layer, reason);
                }
            }
        }
    }
    for (layer, reason) in &skipped {
        by_node.retain(|_, j| &j.layer != layer);
        warnings.push(format!(
            "layer '{layer}' was not reconstructed ({reason}); bias correction only"
        ));
    }
    Ok(by_node.into_values().collect())
}

/// How to refit consumer `ni` whose weight `weight` loses inputs along `axis`, or why not.
fn job_for(
    model: &Model,
    index: &GraphIndex,
    ni: usize,
    weight: &str,
    axis: usize,
) -> std::result::Result<Job, String> {
    let graph = model.graph();
    let node = &graph.node[ni];
    let weight_slot = node
        .input
        .iter()
        .position(|i| i == weight)
        .ok_or("the weight is not one of its inputs")?;
    if weight_slot != 1 {
        return Err("the pruned weight is not its second input".into());
    }
    let w = find_tensor(graph, weight).ok_or("its weight is not a constant")?;
    if w.data_type() != tensor::ElemType::Float as i32 {
        return Err("its weight is not float32".into());
    }
    let dims: Vec<usize> = w.dims.iter().map(|&d| d.max(0) as usize).collect();
    let (layout, in_axis) = match node.op_type() {
        "Conv" => {
            if attr::get_int(node, "group").unwrap_or(1) != 1 {
                return Err("grouped or depthwise convolution".into());
            }
            if dims.len() != 4 || axis != 1 {
                return Err("only 2-D convolutions are reconstructed".into());
            }
            let auto_pad = attr::get_string(node, "auto_pad").unwrap_or_default();
            if !auto_pad.is_empty() && auto_pad != "NOTSET" && auto_pad != "VALID" {
                return Err(format!("auto_pad {auto_pad}"));
            }
            let two = |name: &str| -> std::result::Result<[usize; 2], String> {
                match attr::get_ints(node, name).as_deref() {
                    None => Ok([1, 1]),
                    Some([a, b]) if *a >= 1 && *b >= 1 => Ok([*a as usize, *b as usize]),
                    Some(v) => Err(format!("{name} {v:?}")),
                }
            };
            let pads = match attr::get_ints(node, "pads").as_deref() {
                None => [0; 4],
                Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => {
                    [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
                }
                Some(p) => return Err(format!("pads {p:?}")),
            };
            (
                Layout::Conv {
                    kernel: [dims[2], dims[3]],
                    strides: two("strides")?,
                    pads,
                    dilations: two("dilations")?,
                },
                1,
            )
        }
        "Gemm" => {
            if attr::get_int(node, "transA").unwrap_or(0) != 0 || dims.len() != 2 {
                return Err("Gemm with a transposed input".into());
            }
            (Layout::Linear, axis)
        }
        "MatMul" if dims.len() == 2 && axis == 0 => (Layout::Linear, 0),
        "MatMul" => return Err("MatMul whose weight is not a matrix read by rows".into()),
        other => return Err(format!("{other} is not a Conv, Gemm or MatMul")),
    };
    let bias = bias_slot(model, index, ni);
    if node.op_type() == "Gemm" {
        let alpha = attr::get_float(node, "alpha").unwrap_or(1.0);
        let beta = attr::get_float(node, "beta").unwrap_or(1.0);
        if alpha != 1.0 || beta != 1.0 {
            return Err("Gemm with alpha or beta other than 1".into());
        }
    }
    let (channels, outputs) = if in_axis == 0 {
        (dims[0], dims[1])
    } else {
        (dims[1], dims[0])
    };
    let job = Job {
        node: ni,
        layer: layer_name(model, ni),
        input: node.input[0].clone(),
        weight: weight.to_string(),
        weight_slot,
        in_axis,
        channels,
        outputs,
        removed: BTreeSet::new(),
        layout,
        bias,
    };
    if job.features() > MAX_FEATURES {
        return Err(format!(
            "{} input features, more than {MAX_FEATURES}",
            job.features()
        ));
    }
    if let Some((bn, slot)) = bias {
        let b = find_tensor(graph, &graph.node[bn].input[slot]).ok_or("its bias is not found")?;
        if b.dims != [outputs as i64] {
            return Err(format!("bias of shape {:?}", b.dims));
        }
    }
    Ok(job)
}

/// Accumulates the upper triangle of `XᵀX` (f64) from rows of features.
struct Gram {
    n: usize,
    matrix: Vec<f64>,
    block: Vec<f64>,
    pending: usize,
    rows: u64,
}

impl Gram {
    fn new(n: usize) -> Self {
        Gram {
            n,
            matrix: vec![0.0; n * n],
            block: vec![0.0; ROW_BLOCK * n],
            pending: 0,
            rows: 0,
        }
    }

    /// The next row to fill (zeroed).
    fn row(&mut self) -> &mut [f64] {
        if self.pending == ROW_BLOCK {
            self.flush();
        }
        let n = self.n;
        let row = &mut self.block[self.pending * n..(self.pending + 1) * n];
        row.fill(0.0);
        self.pending += 1;
        self.rows += 1;
        row
    }

    fn flush(&mut self) {
        let n = self.n;
        let rows = &self.block[..self.pending * n];
        for i in 0..n {
            let mut a = [0.0; ROW_BLOCK];
            for (r, v) in a.iter_mut().enumerate().take(self.pending) {
                *v = rows[r * n + i];
            }
            let target = &mut self.matrix[i * n + i..(i + 1) * n];
            for (r, &ar) in a.iter().enumerate().take(self.pending) {
                if ar == 0.0 {
                    continue;
                }
                let src = &rows[r * n + i..(r + 1) * n];
                for (t, &x) in target.iter_mut().zip(src) {
                    *t += ar * x;
                }
            }
        }
        self.pending = 0;
    }

    /// The full symmetric matrix.
    fn finish(mut self) -> Vec<f64> {
        self.flush();
        let n = self.n;
        for i in 0..n {
            for j in 0..i {
                self.matrix[i * n + j] = self.matrix[j * n + i];
            }
        }
        self.matrix
    }
}

/// Evenly spaced picks of at most `cap` out of `total`, starting at an offset that moves
/// with `batch` so successive batches sample different positions.
fn picks(total: usize, cap: usize, batch: usize) -> impl Iterator<Item = usize> {
    let stride = total.div_ceil(cap.max(1)).max(1);
    let offset = (batch * 7919) % stride;
    (offset..total).step_by(stride)
}

/// Adds one batch of `job`'s input (`dims`, row-major `data`) to its Gram matrix.
fn accumulate(
    job: &Job,
    gram: &mut Gram,
    dims: &[usize],
    data: &[f32],
    batch: usize,
) -> std::result::Result<(), String> {
    if dims.iter().product::<usize>() != data.len() {
        return Err(format!(
            "input of '{}' has shape {dims:?} but {} values",
            job.layer,
            data.len()
        ));
    }
    let bias = job.bias.is_some();
    let n = gram.n;
    match &job.layout {
        Layout::Linear => {
            let c = *dims.last().unwrap_or(&0);
            if c != job.channels || dims.len() < 2 {
                return Err(format!(
                    "input of '{}' has shape {dims:?}, expected {} channels last",
                    job.layer, job.channels
                ));
            }
            let total = data.len() / c;
            let cap = ROWS_PER_SAMPLE * dims[0];
            for r in picks(total, cap, batch) {
                let row = gram.row();
                for (t, &x) in row.iter_mut().zip(&data[r * c..(r + 1) * c]) {
                    *t = x as f64;
                }
                if bias {
                    row[n - 1] = 1.0;
                }
            }
        }
        Layout::Conv {
            kernel,
            strides,
            pads,
            dilations,
        } => {
            let &[batch_size, c, h, w] = dims else {
                return Err(format!(
                    "input of '{}' has shape {dims:?}, expected NCHW",
                    job.layer
                ));
            };
            if c != job.channels {
                return Err(format!(
                    "input of '{}' has {c} channels, its weight expects {}",
                    job.layer, job.channels
                ));
            }
            let span = |size: usize, k: usize, s: usize, p0: usize, p1: usize, d: usize| {
                let padded = size + p0 + p1;
                let reach = d * (k - 1) + 1;
                if padded < reach {
                    0
                } else {
                    (padded - reach) / s + 1
                }
            };
            let ho = span(h, kernel[0], strides[0], pads[0], pads[2], dilations[0]);
            let wo = span(w, kernel[1], strides[1], pads[1], pads[3], dilations[1]);
            let kk = kernel[0] * kernel[1];
            let total = batch_size * ho * wo;
            let cap = ROWS_PER_SAMPLE * batch_size;
            for pos in picks(total, cap, batch) {
                let (img, rest) = (pos / (ho * wo), pos % (ho * wo));
                let (oy, ox) = (rest / wo, rest % wo);
                let row = gram.row();
                for ky in 0..kernel[0] {
                    let y = (oy * strides[0] + ky * dilations[0]) as isize - pads[0] as isize;
                    if y < 0 || y >= h as isize {
                        continue;
                    }
                    for kx in 0..kernel[1] {
                        let x = (ox * strides[1] + kx * dilations[1]) as isize - pads[1] as isize;
                        if x < 0 || x >= w as isize {
                            continue;
                        }
                        let p = ky * kernel[1] + kx;
                        for ch in 0..c {
                            let v = data[((img * c + ch) * h + y as usize) * w + x as usize];
                            row[ch * kk + p] = v as f64;
                        }
                    }
                }
                if bias {
                    row[n - 1] = 1.0;
                }
            }
        }
    }
    Ok(())
}

/// Dot product with four partial sums (lets the compiler use SIMD lanes).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc[0] + acc[1] + acc[2] + acc[3] + tail
}

/// In-place Cholesky of a symmetric positive definite `n×n` matrix (lower triangle, rows
/// contiguous); false when it is not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let row_j = &mut a[j * n..(j + 1) * n];
        let d = row_j[j] - dot(&row_j[..j], &row_j[..j]);
        if d.is_nan() || d <= 0.0 {
            return false;
        }
        let d = d.sqrt();
        row_j[j] = d;
        for i in j + 1..n {
            let (upper, lower) = a.split_at_mut(i * n);
            let row_j = &upper[j * n..j * n + j];
            let row_i = &mut lower[..n];
            row_i[j] = (row_i[j] - dot(&row_i[..j], row_j)) / d;
        }
    }
    true
}

/// Solves `L Lᵀ x = b` in place, `L` from `cholesky`; both sweeps read rows of `L`.
fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        b[i] = (b[i] - dot(row, &b[..i])) / l[i * n + i];
    }
    for i in (0..n).rev() {
        b[i] /= l[i * n + i];
        let x = b[i];
        let row = &l[i * n..i * n + i];
        for (bk, &lik) in b[..i].iter_mut().zip(row) {
            *bk -= lik * x;
        }
    }
}

/// Ridge least squares from a Gram matrix: for each column `t` of `targets` (`n × m`, the
/// original weights over every feature), the weights over `kept` features minimising
/// `||X t − X_K w||² + λ||w||²`; `unpenalised` features (the bias column) get no ridge.
/// `None` when the system is not positive definite.
pub fn solve_ridge(
    gram: &[f64],
    n: usize,
    kept: &[usize],
    unpenalised: &[usize],
    targets: &[Vec<f64>],
) -> Option<Vec<Vec<f64>>> {
    let k = kept.len();
    let mut a = vec![0.0; k * k];
    for (r, &i) in kept.iter().enumerate() {
        for (c, &j) in kept.iter().enumerate() {
            a[r * k + c] = gram[i * n + j];
        }
    }
    let penalised: Vec<usize> = (0..k)
        .filter(|&r| !unpenalised.contains(&kept[r]))
        .collect();
    let trace: f64 = penalised.iter().map(|&r| a[r * k + r]).sum();
    let lambda = RIDGE * trace / penalised.len().max(1) as f64;
    let lambda = if lambda > 0.0 { lambda } else { RIDGE };
    for &r in &penalised {
        a[r * k + r] += lambda;
    }
    if !cholesky(&mut a, k) {
        return None;
    }
    // A x = G_K· t = A t_K + G_KR t_R − Λ t_K, so x = t_K + A⁻¹ (G_KR t_R − Λ t_K): the
    // right-hand side only reads the removed features' columns.
    let mut is_kept = vec![false; n];
    for &i in kept {
        is_kept[i] = true;
    }
    let removed: Vec<usize> = (0..n).filter(|&i| !is_kept[i]).collect();
    let mut ridge = vec![0.0; k];
    for &r in &penalised {
        ridge[r] = lambda;
    }
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let t_removed: Vec<f64> = removed.iter().map(|&j| t[j]).collect();
        let mut b: Vec<f64> = kept
            .iter()
            .enumerate()
            .map(|(r, &i)| {
                let row = &gram[i * n..(i + 1) * n];
                let cross: f64 = removed
                    .iter()
                    .zip(&t_removed)
                    .map(|(&j, w)| row[j] * w)
                    .sum();
                cross - ridge[r] * t[i]
            })
            .collect();
        cholesky_solve(&a, k, &mut b);
        for (x, &i) in b.iter_mut().zip(kept) {
            *x += t[i];
        }
        if b.iter().any(|v| !v.is_finite()) {
            return None;
        }
        out.push(b);
    }
    Some(out)
}

/// Refits every consumer of the removed units on calibration data from `source`.
pub fn reconstruct(
    model: &Model,
    groups: &[&Group],
    removed: &HashMap<String, Vec<usize>>,
    source: &mut dyn ActivationSource,
    warnings: &mut Vec<String>,
) -> Result<Reconstruction> {
    let jobs = jobs(model, groups, removed, warnings)?;
    let mut out = Reconstruction::default();
    // Passes over the calibration data, each within the Gram budget.
    let mut passes: Vec<Vec<&Job>> = Vec::new();
    let mut bytes = 0;
    for job in &jobs {
        let need = job.features() * job.features() * 8;
        if passes.is_empty() || bytes + need > GRAM_BUDGET_BYTES {
            passes.push(Vec::new());
            bytes = 0;
        }
        bytes += need;
        if let Some(p) = passes.last_mut() {
            p.push(job);
        }
    }
    let step = profagent_onnx::progress::step(
        "reconstructing pruned layers",
        Some(jobs.len() as u64),
        "layers",
    );
    let mut refitted = 0;
    for pass in passes {
        let mut values: Vec<String> = Vec::new();
        for job in &pass {
            if !values.contains(&job.input) {
                values.push(job.input.clone());
            }
        }
        let mut grams: Vec<Gram> = pass.iter().map(|j| Gram::new(j.features())).collect();
        let mut batches = vec![0usize; values.len()];
        let visited = source.visit_values(model, &values, &mut |vi, dims, data| {
            let value = values.get(vi).ok_or("unknown value index")?;
            for (job, gram) in pass.iter().zip(grams.iter_mut()) {
                if &job.input == value {
                    accumulate(job, gram, dims, data, batches[vi])?;
                }
            }
            batches[vi] += 1;
            Ok(())
        });
        if let Err(e) = visited {
            if e.contains("cannot stream") {
                warnings.push(format!("no reconstruction: {e}"));
                return Ok(Reconstruction::default());
            }
            return Err(PruneError::Calibration(e));
        }
        for (job, gram) in pass.into_iter().zip(grams) {
            refitted += 1;
            step.set(refitted);
            if gram.rows == 0 {
                warnings.push(format!(
                    "layer '{}' was not reconstructed (no calibration rows)",
                    job.layer
                ));
                continue;
            }
            refit(model, job, gram.finish(), &mut out, warnings)?;
        }
    }
    Ok(out)
}

/// Solves one consumer and records its weight and bias deltas.
fn refit(
    model: &Model,
    job: &Job,
    gram: Vec<f64>,
    out: &mut Reconstruction,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let graph = model.graph();
    let layer_error =
        |reason: String| PruneError::InvalidResult(format!("{}: {reason}", job.layer));
    let w = find_tensor(graph, &job.weight)
        .ok_or_else(|| layer_error(format!("weight '{}' not found", job.weight)))?;
    let weights = tensor::to_f32(w)?;
    let kk = job.kernel_len();
    let n = job.features();
    let features = job.channels * kk;
    // Flat index of W[o, feature] in the weight tensor.
    let at = |o: usize, f: usize| -> usize {
        if job.in_axis == 0 {
            f * job.outputs + o
        } else {
            o * features + f
        }
    };
    if weights.len() != job.outputs * features {
        return Err(layer_error(format!(
            "weight '{}' has {} values, expected {}",
            job.weight,
            weights.len(),
            job.outputs * features
        )));
    }
    let bias = match job.bias {
        Some((bn, slot)) => {
            let name = &graph.node[bn].input[slot];
            let t = find_tensor(graph, name)
                .ok_or_else(|| layer_error(format!("bias '{name}' not found")))?;
            Some(tensor::to_f32(t)?)
        }
        None => None,
    };
    let mut kept: Vec<usize> = (0..features)
        .filter(|f| !job.removed.contains(&(f / kk)))
        .collect();
    let unpenalised: Vec<usize> = if bias.is_some() { vec![n - 1] } else { vec![] };
    kept.extend(&unpenalised);
    let targets: Vec<Vec<f64>> = (0..job.outputs)
        .map(|o| {
            let mut t: Vec<f64> = (0..features).map(|f| weights[at(o, f)] as f64).collect();
            if let Some(b) = &bias {
                t.push(b[o] as f64);
            }
            t
        })
        .collect();
    let Some(solution) = solve_ridge(&gram, n, &kept, &unpenalised, &targets) else {
        warnings.push(format!(
            "layer '{}' was not reconstructed (its calibration Gram matrix is singular); bias correction only",
            job.layer
        ));
        return Ok(());
    };
    let mut weight_delta = vec![0f32; weights.len()];
    let mut bias_delta = vec![0f32; job.outputs];
    for (o, x) in solution.iter().enumerate() {
        for (&f, &v) in kept.iter().zip(x) {
            if f < features {
                weight_delta[at(o, f)] = (v - weights[at(o, f)] as f64) as f32;
            } else if let Some(b) = &bias {
                bias_delta[o] = (v - b[o] as f64) as f32;
            }
        }
    }
    out.deltas.insert((job.node, job.weight_slot), weight_delta);
    if let Some(slot) = job.bias {
        out.deltas.insert(slot, bias_delta);
    }
    out.layers.push(job.layer.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_solve_matches_a_direct_solve() {
        // Three features, the third = first + second: dropping it is exactly representable.
        let rows: Vec<[f64; 3]> = (0..50)
            .map(|i| {
                let a = ((i * 37) % 11) as f64 - 5.0;
                let b = ((i * 17) % 7) as f64 - 3.0;
                [a, b, a + b]
            })
            .collect();
        let mut gram = vec![0.0; 9];
        for r in &rows {
            for i in 0..3 {
                for j in 0..3 {
                    gram[i * 3 + j] += r[i] * r[j];
                }
            }
        }
        let target = vec![0.5, -1.0, 2.0];
        let w = solve_ridge(&gram, 3, &[0, 1], &[], &[target]).unwrap();
        // X t = a·(0.5 + 2) + b·(−1 + 2)
        assert!((w[0][0] - 2.5).abs() < 1e-3, "{:?}", w);
        assert!((w[0][1] - 1.0).abs() < 1e-3, "{:?}", w);
    }

    /// Gaussian elimination with partial pivoting on a dense copy (the reference).
    fn direct_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
        let n = b.len();
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
                .unwrap();
            a.swap(c, p);
            b.swap(c, p);
            for r in c + 1..n {
                let f = a[r][c] / a[c][c];
                let pivot = a[c].clone();
                for (x, p) in a[r].iter_mut().zip(&pivot).skip(c) {
                    *x -= f * p;
                }
                b[r] -= f * b[c];
            }
        }
        let mut x = vec![0.0; n];
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|k| a[i][k] * x[k]).sum();
            x[i] = (b[i] - s) / a[i][i];
        }
        x
    }

    #[test]
    fn ridge_solve_matches_dense_normal_equations() {
        // 7 features (the last a bias column of ones), 40 pseudo-random rows; keep 4 + bias.
        let n = 7;
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let mut gram = vec![0.0; n * n];
        for _ in 0..40 {
            let row: Vec<f64> = (0..n)
                .map(|i| if i == n - 1 { 1.0 } else { next() })
                .collect();
            for i in 0..n {
                for j in 0..n {
                    gram[i * n + j] += row[i] * row[j];
                }
            }
        }
        let kept = [0, 2, 3, 5, 6];
        let target: Vec<f64> = (0..n).map(|_| next()).collect();
        let got = solve_ridge(&gram, n, &kept, &[6], std::slice::from_ref(&target)).unwrap();
        let penalised = [0, 2, 3, 5];
        let lambda = RIDGE * penalised.iter().map(|&i| gram[i * n + i]).sum::<f64>()
            / penalised.len() as f64;
        let a: Vec<Vec<f64>> = kept
            .iter()
            .map(|&i| {
                kept.iter()
                    .map(|&j| gram[i * n + j] + if i == j && i != 6 { lambda } else { 0.0 })
                    .collect()
            })
            .collect();
        let b: Vec<f64> = kept
            .iter()
            .map(|&i| (0..n).map(|j| gram[i * n + j] * target[j]).sum())
            .collect();
        let want = direct_solve(a, b);
        for (g, w) in got[0].iter().zip(&want) {
            assert!((g - w).abs() < 1e-9, "{:?} vs {want:?}", got[0]);
        }
    }

    #[test]
    fn gram_matches_the_dense_product() {
        let mut g = Gram::new(3);
        let data = [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0], [2.0, 2.0, -2.0]];
        for _ in 0..5 {
            for r in &data {
                g.row().copy_from_slice(r);
            }
        }
        let m = g.finish();
        for i in 0..3 {
            for j in 0..3 {
                let want: f64 = data.iter().map(|r| r[i] * r[j]).sum::<f64>() * 5.0;
                assert!((m[i * 3 + j] - want).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn picks_are_bounded_and_spread() {
        let p: Vec<usize> = picks(1000, 10, 0).collect();
        assert_eq!(p.len(), 10);
        assert_eq!(p[0], 0);
        assert!(picks(1000, 10, 3).count() <= 10);
        assert_eq!(picks(5, 10, 1).count(), 5);
    }
}
