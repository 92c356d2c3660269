//! Sequential reconstruction: the consumers are refitted in waves (a wave holds the consumers
//! whose inputs no other unfitted consumer feeds), each on the activations of the pruned
//! model with every earlier wave already refitted, against the dense model's outputs at the
//! same sampled rows: `min_W' ||Y − X̃ W'||² + λ||W'||²`, `X̃` the pruned model's input of
//! the consumer (kept features only), `Y` the dense consumer's output (bias included). One
//! pass of the dense model stores `Y` (f32, `ROWS_PER_SAMPLE` rows per sample and consumer);
//! then one pass of the pruned model per wave accumulates `X̃ᵀX̃` and `X̃ᵀY`, running only the
//! part of the graph the wave's inputs need (`truncated`).
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use profagent_onnx::{GraphIndex, Model, Patch};

use super::{
    fit_normal, inputs_of, passes, picks, solve_and_record, streamed, Job, Layout, Rebuild,
    Reconstruction, RowSink, Weights, ROWS_PER_SAMPLE,
};
use crate::calibrate::{expose_values, ActivationSource};
use crate::error::{PruneError, Result};
use crate::lsq::Gram;

/// Feeds sampled rows into a Gram matrix together with the stored target rows, in order.
struct Paired<'a> {
    gram: &'a mut Gram,
    targets: &'a [f32],
    m: usize,
    cursor: usize,
}

impl RowSink for Paired<'_> {
    fn next_row(&mut self) -> Option<&mut [f32]> {
        let m = self.m;
        let target = self.targets.get(self.cursor * m..(self.cursor + 1) * m)?;
        self.cursor += 1;
        let (row, y) = self.gram.row_and_target();
        y.copy_from_slice(target);
        Some(row)
    }
}

/// The consumers grouped in waves: a consumer's wave is the largest number of consumers on
/// any path from the graph inputs to its input, so every consumer upstream of it is in an
/// earlier wave.
fn waves<'j>(model: &Model, jobs: &[&'j Job]) -> Result<Vec<Vec<&'j Job>>> {
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    let is_job: HashSet<usize> = jobs.iter().map(|j| j.node).collect();
    let mut reach = vec![0usize; graph.node.len()];
    let upstream =
        |reach: &[usize], value: &str| index.producer.get(value).map_or(0, |&(p, _)| reach[p]);
    for &ni in &index.topo {
        let r = graph.node[ni]
            .input
            .iter()
            .map(|v| upstream(&reach, v))
            .max()
            .unwrap_or(0);
        reach[ni] = r + usize::from(is_job.contains(&ni));
    }
    let mut by_level: Vec<Vec<&Job>> = Vec::new();
    for &job in jobs {
        let level = upstream(&reach, &job.input);
        if by_level.len() <= level {
            by_level.resize(level + 1, Vec::new());
        }
        by_level[level].push(job);
    }
    by_level.retain(|w| !w.is_empty());
    Ok(by_level)
}

/// `model` with `values` as its only outputs and every node and initializer they do not
/// need removed (a wave early in the network runs a short prefix).
fn truncated(model: &Model, values: &[String]) -> Result<Model> {
    let mut copy = model.clone();
    copy.graph_mut().output.clear();
    let mut copy = expose_values(&copy, values);
    let mut patch = Patch::new();
    patch.prune_dead(true);
    patch.apply(copy.graph_mut())?;
    Ok(copy)
}

/// Samples one batch of a consumer's dense output at the rows `accumulate` samples from its
/// input, adding the bias when a separate Add holds it.
fn sample_outputs(
    job: &Job,
    bias: Option<&[f32]>,
    dims: &[usize],
    data: &[f32],
    batch: usize,
    out: &mut Vec<f32>,
) -> std::result::Result<(), String> {
    let o = job.outputs;
    let shape_error = || format!("output of '{}' has shape {dims:?}", job.layer);
    if dims.iter().product::<usize>() != data.len() || dims.len() < 2 {
        return Err(shape_error());
    }
    let start = out.len();
    match &job.layout {
        Layout::Linear => {
            if dims[dims.len() - 1] != o {
                return Err(shape_error());
            }
            let cap = ROWS_PER_SAMPLE * dims[0];
            for r in picks(data.len() / o, cap, batch) {
                out.extend_from_slice(&data[r * o..(r + 1) * o]);
            }
        }
        Layout::Conv { .. } => {
            let &[n, c, h, w] = dims else {
                return Err(shape_error());
            };
            if c != o {
                return Err(shape_error());
            }
            for pos in picks(n * h * w, ROWS_PER_SAMPLE * n, batch) {
                let (img, rest) = (pos / (h * w), pos % (h * w));
                out.extend((0..o).map(|ch| data[(img * o + ch) * h * w + rest]));
            }
        }
    }
    if let Some(b) = bias {
        for row in out[start..].chunks_mut(o) {
            row.iter_mut().zip(b).for_each(|(y, &b)| *y += b);
        }
    }
    Ok(())
}

/// The dense outputs of every consumer at the sampled rows (`rows × outputs`, per job), or
/// `None` when the source cannot stream.
fn dense_targets(
    model: &Model,
    jobs: &[&Job],
    source: &mut dyn ActivationSource,
    out: &mut Reconstruction,
    warnings: &mut Vec<String>,
) -> Result<Option<Vec<Vec<f32>>>> {
    let graph = model.graph();
    let values: Vec<String> = jobs
        .iter()
        .map(|j| graph.node[j.node].output[0].clone())
        .collect();
    // A bias in a separate Add is not part of the consumer's output.
    let mut biases = Vec::new();
    for job in jobs {
        let separate = job.bias.is_some_and(|(bn, _)| bn != job.node);
        biases.push(if separate {
            Weights::load(model, job)?.bias
        } else {
            None
        });
    }
    let mut targets = vec![Vec::new(); jobs.len()];
    let mut batches = vec![0usize; jobs.len()];
    let mut gram_s = 0.0;
    let start = Instant::now();
    let visited = source.visit_values(model, &values, &mut |vi, dims, data| {
        let t = Instant::now();
        let job = jobs.get(vi).ok_or("unknown value index")?;
        sample_outputs(
            job,
            biases[vi].as_deref(),
            dims,
            data,
            batches[vi],
            &mut targets[vi],
        )?;
        batches[vi] += 1;
        gram_s += t.elapsed().as_secs_f64();
        Ok(())
    });
    out.timing.passes += 1;
    out.timing.gram_s += gram_s;
    out.timing.runtime_s += start.elapsed().as_secs_f64() - gram_s;
    Ok(streamed(visited, warnings)?.then_some(targets))
}

/// Sequential reconstruction of `jobs` (see the module comment); `rebuild` makes the pruned
/// model with the given deltas applied.
pub(super) fn reconstruct(
    model: &Model,
    jobs: &[&Job],
    source: &mut dyn ActivationSource,
    rebuild: &Rebuild<'_>,
    step: &profagent_onnx::progress::Step,
    warnings: &mut Vec<String>,
) -> Result<Reconstruction> {
    let mut out = Reconstruction::default();
    let mut refitted = 0;
    if jobs.is_empty() {
        return Ok(out);
    }
    let Some(dense) = dense_targets(model, jobs, source, &mut out, warnings)? else {
        return Ok(Reconstruction::default());
    };
    let target_of: HashMap<usize, &[f32]> = jobs
        .iter()
        .zip(&dense)
        .map(|(j, t)| (j.node, t.as_slice()))
        .collect();
    for wave in waves(model, jobs)? {
        let pruned = rebuild(&out.deltas)?;
        for pass in passes(&wave) {
            let values = inputs_of(&pass);
            let current = truncated(&pruned, &values)?;
            let mut grams: Vec<Gram> = pass
                .iter()
                .map(|j| Gram::with_targets(j.kept().len(), j.outputs))
                .collect();
            let mut cursors = vec![0usize; pass.len()];
            let mut batches = vec![0usize; values.len()];
            let mut gram_s = 0.0;
            let start = Instant::now();
            let visited = source.visit_values(&current, &values, &mut |vi, dims, data| {
                let t = Instant::now();
                let value = values.get(vi).ok_or("unknown value index")?;
                for (i, job) in pass.iter().enumerate() {
                    if &job.input != value {
                        continue;
                    }
                    let mut sink = Paired {
                        gram: &mut grams[i],
                        targets: target_of[&job.node],
                        m: job.outputs,
                        cursor: cursors[i],
                    };
                    let kept_channels = job.channels - job.removed.len();
                    super::accumulate(job, kept_channels, &mut sink, dims, data, batches[vi])?;
                    cursors[i] = sink.cursor;
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
            for (job, cursor) in pass.iter().zip(&cursors) {
                if cursor * job.outputs != target_of[&job.node].len() {
                    return Err(PruneError::Calibration(format!(
                        "calibration rows of '{}' do not pair up: {cursor} rows in the pruned model, {} in the dense one",
                        job.layer,
                        target_of[&job.node].len() / job.outputs.max(1)
                    )));
                }
            }
            solve_and_record(
                &mut out,
                pass.into_iter().zip(grams).collect(),
                |job, gram| fit_normal(model, job, gram),
                (&mut refitted, step),
                warnings,
            )?;
        }
    }
    Ok(out)
}
