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
//! Two targets (`ReconstructTarget`): `independent` fits each layer on the dense model's
//! inputs (one pass over the data for every consumer); `sequential` fits the layers in
//! topological waves on the pruned model's own inputs (already-refitted upstream layers
//! included) against the dense model's outputs, which also corrects the error accumulated
//! upstream (`sequential.rs`; one pass per wave).
//!
//! Cost: the Gram updates and solves are blocked f32/f64 matrix products (`lsq`); the
//! consumers of one pass are solved in parallel. `ReconstructTiming` says where time went.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use profagent_onnx::{attr, tensor, GraphIndex, Model};
use rayon::prelude::*;
use serde::Serialize;

use crate::calibrate::ActivationSource;
use crate::error::{PruneError, Result};
use crate::group::{Group, SliceRole};
use crate::importance::find_tensor;
use crate::lsq::{solve_normal, solve_ridge, Gram, Ridge};
use crate::repair::bias_slot;
pub use crate::spec::ReconstructTarget;
use crate::walk::layer_name;

mod sequential;

/// Rows (Conv output positions or tokens) sampled per calibration sample and consumer.
pub const ROWS_PER_SAMPLE: usize = 32;
pub use crate::lsq::RIDGE;
/// Gram matrices accumulated in one pass over the calibration data (bytes); more consumers
/// take more passes.
pub const GRAM_BUDGET_BYTES: usize = 512 << 20;
/// Consumers with more input features than this (Gram of 512 MiB) are not reconstructed.
pub const MAX_FEATURES: usize = 8192;

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

/// One consumer to refit (or to score units on, `obs`).
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) node: usize,
    pub(crate) layer: String,
    /// The activation the consumer reads (its input 0).
    pub(crate) input: String,
    pub(crate) weight: String,
    /// Slot of the weight in the node's inputs.
    weight_slot: usize,
    /// Weight axis of the input channels (1 for Conv and transposed Gemm, 0 for `MatMul`).
    pub(crate) in_axis: usize,
    pub(crate) channels: usize,
    pub(crate) outputs: usize,
    removed: BTreeSet<usize>,
    layout: Layout,
    pub(crate) bias: Option<(usize, usize)>,
}

impl Job {
    pub(crate) fn kernel_len(&self) -> usize {
        match &self.layout {
            Layout::Linear => 1,
            Layout::Conv { kernel, .. } => kernel[0] * kernel[1],
        }
    }
    /// Input features, plus one for the bias column.
    pub(crate) fn features(&self) -> usize {
        self.channels * self.kernel_len() + usize::from(self.bias.is_some())
    }

    /// Features kept after pruning (indices into `0..features()`, the bias column last).
    fn kept(&self) -> Vec<usize> {
        let kk = self.kernel_len();
        let mut kept: Vec<usize> = (0..self.channels * kk)
            .filter(|f| !self.removed.contains(&(f / kk)))
            .collect();
        if self.bias.is_some() {
            kept.push(self.channels * kk);
        }
        kept
    }
}

/// A consumer's Gram matrix over all its features (symmetric, `n × n`, row-major) on the dense
/// model's inputs, from `rows` sampled rows.
pub struct Finished {
    pub(crate) n: usize,
    pub(crate) rows: u64,
    pub(crate) matrix: Vec<f64>,
}

impl From<Gram> for Finished {
    fn from(gram: Gram) -> Self {
        Finished {
            n: gram.n,
            rows: gram.rows,
            matrix: gram.finish(),
        }
    }
}

/// Gram matrices already accumulated (by `obs` importance), keyed by consumer node:
/// independent reconstruction solves from them instead of making a pass of its own.
pub type Prepared = HashMap<usize, Finished>;

/// Weight/bias deltas (original shapes) keyed by (node, input slot).
pub type Deltas = HashMap<(usize, usize), Vec<f32>>;
/// Makes the pruned model with the given deltas applied (sequential reconstruction runs it).
pub type Rebuild<'a> = dyn Fn(&Deltas) -> Result<Model> + 'a;

/// Where reconstruction spent its time (seconds of wall time) and how many passes over the
/// calibration data it made.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReconstructTiming {
    pub passes: usize,
    /// Running the model on the runtime (calibration batches, exposed activations).
    pub runtime_s: f64,
    /// Sampling rows (im2col) and Gram/cross-product updates.
    pub gram_s: f64,
    /// Cholesky factorisations and triangular solves.
    pub solve_s: f64,
}

/// What reconstruction did: weight/bias deltas (original shapes) keyed by (node, input slot),
/// the layers it refitted, and where its time went.
#[derive(Debug, Default)]
pub struct Reconstruction {
    pub deltas: Deltas,
    pub layers: Vec<String>,
    pub timing: ReconstructTiming,
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
pub(crate) fn job_for(
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

/// Evenly spaced picks of at most `cap` out of `total`, starting at an offset that moves
/// with `batch` so successive batches sample different positions.
fn picks(total: usize, cap: usize, batch: usize) -> impl Iterator<Item = usize> {
    let stride = total.div_ceil(cap.max(1)).max(1);
    let offset = (batch * 7919) % stride;
    (offset..total).step_by(stride)
}

/// Where sampled rows go: a Gram matrix, or a Gram matrix paired with stored targets.
pub(crate) trait RowSink {
    /// The next row to fill (zeroed), `None` when the sink can take no more.
    fn next_row(&mut self) -> Option<&mut [f32]>;
}

impl RowSink for Gram {
    fn next_row(&mut self) -> Option<&mut [f32]> {
        Some(self.row())
    }
}

/// Output size of one convolution axis.
fn conv_span(size: usize, k: usize, s: usize, p0: usize, p1: usize, d: usize) -> usize {
    let padded = size + p0 + p1;
    let reach = d * (k - 1) + 1;
    if padded < reach {
        0
    } else {
        (padded - reach) / s + 1
    }
}

/// Samples rows of one batch of `job`'s input (`dims`, row-major `data`, `channels` input
/// channels: all of them in the dense model, the kept ones in the pruned model) into `sink`:
/// features `channel·k·k + position`, then 1 for the bias column.
pub(crate) fn accumulate(
    job: &Job,
    channels: usize,
    sink: &mut dyn RowSink,
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
    let unpaired = || format!("calibration rows of '{}' do not pair up", job.layer);
    match &job.layout {
        Layout::Linear => {
            let c = *dims.last().unwrap_or(&0);
            if c != channels || dims.len() < 2 {
                return Err(format!(
                    "input of '{}' has shape {dims:?}, expected {channels} channels last",
                    job.layer
                ));
            }
            let total = data.len() / c;
            let cap = ROWS_PER_SAMPLE * dims[0];
            for r in picks(total, cap, batch) {
                let row = sink.next_row().ok_or_else(unpaired)?;
                row[..c].copy_from_slice(&data[r * c..(r + 1) * c]);
                if bias {
                    row[c] = 1.0;
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
            if c != channels {
                return Err(format!(
                    "input of '{}' has {c} channels, expected {channels}",
                    job.layer
                ));
            }
            let ho = conv_span(h, kernel[0], strides[0], pads[0], pads[2], dilations[0]);
            let wo = conv_span(w, kernel[1], strides[1], pads[1], pads[3], dilations[1]);
            let kk = kernel[0] * kernel[1];
            let total = batch_size * ho * wo;
            let cap = ROWS_PER_SAMPLE * batch_size;
            for pos in picks(total, cap, batch) {
                let (img, rest) = (pos / (ho * wo), pos % (ho * wo));
                let (oy, ox) = (rest / wo, rest % wo);
                let row = sink.next_row().ok_or_else(unpaired)?;
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
                        let base = img * c * h * w + y as usize * w + x as usize;
                        for ch in 0..c {
                            row[ch * kk + p] = data[base + ch * h * w];
                        }
                    }
                }
                if bias {
                    row[c * kk] = 1.0;
                }
            }
        }
    }
    Ok(())
}

/// Groups `jobs` into passes whose Gram matrices fit `GRAM_BUDGET_BYTES` together.
pub(crate) fn passes<'j>(jobs: &[&'j Job]) -> Vec<Vec<&'j Job>> {
    let mut passes: Vec<Vec<&Job>> = Vec::new();
    let mut bytes = 0;
    for &job in jobs {
        let need = job.features() * job.features() * 8;
        match passes.last_mut() {
            Some(p) if bytes + need <= GRAM_BUDGET_BYTES => p.push(job),
            _ => {
                passes.push(vec![job]);
                bytes = 0;
            }
        }
        bytes += need;
    }
    passes
}

/// The distinct inputs of `jobs`, in order.
pub(crate) fn inputs_of(jobs: &[&Job]) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    for job in jobs {
        if !values.contains(&job.input) {
            values.push(job.input.clone());
        }
    }
    values
}

/// A calibration error, or the warning that the source cannot stream (reconstruction is then
/// skipped): `Ok(true)` to go on, `Ok(false)` to stop without reconstruction.
pub(crate) fn streamed(
    visited: std::result::Result<(), String>,
    warnings: &mut Vec<String>,
) -> Result<bool> {
    match visited {
        Ok(()) => Ok(true),
        Err(e) if e.contains("cannot stream") => {
            warnings.push(format!("no reconstruction: {e}"));
            Ok(false)
        }
        Err(e) => Err(PruneError::Calibration(e)),
    }
}

/// Refits every consumer of the removed units on calibration data from `source`, against the
/// dense model's inputs (`Independent`) or in waves on the pruned model's own inputs
/// (`Sequential`; `rebuild` turns the deltas fitted so far into that pruned model).
/// `prepared` Gram matrices (from `obs` importance) replace an independent fit's own pass.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct(
    model: &Model,
    groups: &[&Group],
    removed: &HashMap<String, Vec<usize>>,
    source: &mut dyn ActivationSource,
    target: ReconstructTarget,
    rebuild: &Rebuild<'_>,
    prepared: &mut Prepared,
    warnings: &mut Vec<String>,
) -> Result<Reconstruction> {
    let jobs = jobs(model, groups, removed, warnings)?;
    let refs: Vec<&Job> = jobs.iter().collect();
    // Both targets count refitted layers on one step.
    let step = profagent_onnx::progress::step(
        "reconstructing pruned layers",
        Some(refs.len() as u64),
        "layers",
    );
    if target == ReconstructTarget::Sequential {
        return sequential::reconstruct(model, &refs, source, rebuild, &step, warnings);
    }
    let mut out = Reconstruction::default();
    let mut refitted = 0;
    // Consumers whose Gram matrices `obs` importance already accumulated on the dense inputs
    // are solved from them; the others take passes of their own.
    let mut ready: Vec<(&Job, Finished)> = Vec::new();
    let mut rest: Vec<&Job> = Vec::new();
    for job in refs {
        match prepared.remove(&job.node) {
            Some(gram) if gram.n == job.features() => ready.push((job, gram)),
            _ => rest.push(job),
        }
    }
    solve_and_record(
        &mut out,
        ready,
        |job, gram| fit_independent(model, job, gram),
        (&mut refitted, &step),
        warnings,
    )?;
    for pass in passes(&rest) {
        let values = inputs_of(&pass);
        let mut grams: Vec<Gram> = pass.iter().map(|j| Gram::new(j.features())).collect();
        let mut batches = vec![0usize; values.len()];
        let mut gram_s = 0.0;
        let start = Instant::now();
        let visited = source.visit_values(model, &values, &mut |vi, dims, data| {
            let t = Instant::now();
            let value = values.get(vi).ok_or("unknown value index")?;
            for (job, gram) in pass.iter().zip(grams.iter_mut()) {
                if &job.input == value {
                    accumulate(job, job.channels, gram, dims, data, batches[vi])?;
                }
            }
            batches[vi] += 1;
            gram_s += t.elapsed().as_secs_f64();
            Ok(())
        });
        out.timing.passes += 1;
        out.timing.gram_s += gram_s;
        out.timing.runtime_s += start.elapsed().as_secs_f64() - gram_s;
        if !streamed(visited, warnings)? {
            return Ok(Reconstruction::default());
        }
        solve_and_record(
            &mut out,
            pass.into_iter().zip(grams).collect(),
            |job, gram| fit_independent(model, job, Finished::from(gram)),
            (&mut refitted, &step),
            warnings,
        )?;
    }
    Ok(out)
}

/// The result of refitting one consumer.
enum Outcome {
    /// Weight and bias deltas in the original shapes.
    Fit {
        weight: Vec<f32>,
        bias: Vec<f32>,
        /// The ridge the solve took and the calibration rows it was fitted on.
        ridge: Ridge,
        rows: u64,
    },
    Singular,
    NoRows,
}

/// Solves `jobs` (each with its Gram statistics) in parallel with `fit`, timed as solve time,
/// then records every outcome in order, one progress step (`refitted` counts them) each.
fn solve_and_record<G: Send>(
    out: &mut Reconstruction,
    jobs: Vec<(&Job, G)>,
    fit: impl Fn(&Job, G) -> Result<Outcome> + Sync,
    (refitted, step): (&mut u64, &profagent_onnx::progress::Step),
    warnings: &mut Vec<String>,
) -> Result<()> {
    let start = Instant::now();
    let fits: Vec<(&Job, Result<Outcome>)> = jobs
        .into_par_iter()
        .map(|(job, gram)| (job, fit(job, gram)))
        .collect();
    out.timing.solve_s += start.elapsed().as_secs_f64();
    for (job, fit) in fits {
        *refitted += 1;
        step.set(*refitted);
        record(out, job, fit?, warnings);
    }
    Ok(())
}

/// Adds one consumer's outcome to `out` (a warning when it was not refitted).
fn record(out: &mut Reconstruction, job: &Job, outcome: Outcome, warnings: &mut Vec<String>) {
    match outcome {
        Outcome::Fit {
            weight,
            bias,
            ridge,
            rows,
        } => {
            out.deltas.insert((job.node, job.weight_slot), weight);
            if let Some(slot) = job.bias {
                out.deltas.insert(slot, bias);
            }
            out.layers.push(job.layer.clone());
            if ridge.relative > RIDGE * 1.5 {
                warnings.push(format!(
                    "layer '{}' was reconstructed with a ridge of {:.0e} of its mean input energy \
                     (not {RIDGE:.0e}): {rows} calibration rows for {} input features leave its \
                     Gram matrix singular to rounding; more calibration samples fit it more closely",
                    job.layer,
                    ridge.relative,
                    job.kept().len()
                ));
            }
        }
        Outcome::Singular => warnings.push(format!(
            "layer '{}' was not reconstructed (its calibration Gram matrix is singular); bias correction only",
            job.layer
        )),
        Outcome::NoRows => warnings.push(format!(
            "layer '{}' was not reconstructed (no calibration rows)",
            job.layer
        )),
    }
}

/// A consumer's original weights and bias.
pub(crate) struct Weights {
    pub weights: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

impl Weights {
    pub(crate) fn load(model: &Model, job: &Job) -> Result<Self> {
        let graph = model.graph();
        let layer_error =
            |reason: String| PruneError::InvalidResult(format!("{}: {reason}", job.layer));
        let w = find_tensor(graph, &job.weight)
            .ok_or_else(|| layer_error(format!("weight '{}' not found", job.weight)))?;
        let weights = tensor::to_f32(w)?;
        let features = job.channels * job.kernel_len();
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
        Ok(Weights { weights, bias })
    }

    /// The original value of feature `f` (the bias column last) for output `o`.
    pub(crate) fn get(&self, job: &Job, o: usize, f: usize) -> f64 {
        let features = job.channels * job.kernel_len();
        match &self.bias {
            Some(b) if f == features => b[o] as f64,
            _ => self.weights[at(job, o, f)] as f64,
        }
    }

    /// Deltas from a solution over the `kept` features: `solution(p, o)` is the new value of
    /// kept feature `kept[p]` for output `o`; `ridge` and `rows` say how it was fitted.
    fn deltas(
        &self,
        job: &Job,
        kept: &[usize],
        (ridge, rows): (Ridge, u64),
        solution: impl Fn(usize, usize) -> f64,
    ) -> Outcome {
        let features = job.channels * job.kernel_len();
        let mut weight = vec![0f32; self.weights.len()];
        let mut bias = vec![0f32; job.outputs];
        for o in 0..job.outputs {
            for (p, &f) in kept.iter().enumerate() {
                let delta = (solution(p, o) - self.get(job, o, f)) as f32;
                if f < features {
                    weight[at(job, o, f)] = delta;
                } else {
                    bias[o] = delta;
                }
            }
        }
        Outcome::Fit {
            weight,
            bias,
            ridge,
            rows,
        }
    }
}

/// Flat index of `W[o, feature]` in the weight tensor.
fn at(job: &Job, o: usize, f: usize) -> usize {
    if job.in_axis == 0 {
        f * job.outputs + o
    } else {
        o * job.channels * job.kernel_len() + f
    }
}

/// Solves one consumer against the dense model's inputs (its own weights as the target).
fn fit_independent(model: &Model, job: &Job, gram: Finished) -> Result<Outcome> {
    if gram.rows == 0 {
        return Ok(Outcome::NoRows);
    }
    let (n, rows) = (gram.n, gram.rows);
    let gram = gram.matrix;
    let w = Weights::load(model, job)?;
    let kept = job.kept();
    let unpenalised: Vec<usize> = if w.bias.is_some() {
        vec![n - 1]
    } else {
        vec![]
    };
    let targets: Vec<Vec<f64>> = (0..job.outputs)
        .map(|o| (0..n).map(|f| w.get(job, o, f)).collect())
        .collect();
    let Some((solution, ridge)) = solve_ridge(&gram, n, &kept, &unpenalised, &targets) else {
        return Ok(Outcome::Singular);
    };
    Ok(w.deltas(job, &kept, (ridge, rows), |p, o| solution[o][p]))
}

/// Solves one consumer from its normal equations `(G + Λ) W = C` over the kept features
/// (sequential targets); the bias column, last, takes no ridge.
fn fit_normal(model: &Model, job: &Job, mut gram: Gram) -> Result<Outcome> {
    if gram.rows == 0 {
        return Ok(Outcome::NoRows);
    }
    let (n, rows) = (gram.n, gram.rows);
    let cross = gram.take_cross();
    let gram = gram.finish();
    let w = Weights::load(model, job)?;
    let kept = job.kept();
    if kept.len() != n {
        return Err(PruneError::InvalidResult(format!(
            "{}: {n} features in the pruned model, {} kept",
            job.layer,
            kept.len()
        )));
    }
    let unpenalised: Vec<usize> = if w.bias.is_some() {
        vec![n - 1]
    } else {
        vec![]
    };
    let m = job.outputs;
    let Some((solution, ridge)) = solve_normal(&gram, n, &unpenalised, &cross, m) else {
        return Ok(Outcome::Singular);
    };
    Ok(w.deltas(job, &kept, (ridge, rows), |p, o| solution[p * m + o]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_bounded_and_spread() {
        let p: Vec<usize> = picks(1000, 10, 0).collect();
        assert_eq!(p.len(), 10);
        assert_eq!(p[0], 0);
        assert!(picks(1000, 10, 3).count() <= 10);
        assert_eq!(picks(5, 10, 1).count(), 5);
    }
}
