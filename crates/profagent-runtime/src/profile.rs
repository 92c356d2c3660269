//! Dynamic profiling: measured end-to-end latency, per-ONNX-node and per-layer latency, and
//! memory, for one model on one runtime.
//!
//! End-to-end latency comes from a plain session at the user's optimisation level. Per-node
//! latency comes from a second session with the runtime's profiler on, at the *same* level (so
//! the kernels are the ones that really run), its kernels mapped back to ONNX nodes by
//! `attribution`. The two sessions run one after the other, never both alive (an idle ONNX
//! Runtime thread pool next to a running one made runs 30-60 % noisier on 2 cores).
//!
//! Profiler overhead: ONNX Runtime's profiler slows the kernels it times (it records every
//! kernel, and with several threads every parallel task): measured here, vit_tiny's kernels sum
//! to 1.1-1.5x the unprofiled run. When the kernels' medians add up to more than the unprofiled
//! end-to-end median, they are all scaled by `end-to-end median / their sum` (the overhead
//! charged in proportion to time), so per-layer latencies describe the run that ships; the
//! factor and the raw sum are reported (`profiler_scale`, `layer_sum_raw_ms`). Where they add up
//! to less, nothing is scaled and the layer sum shows the time spent between kernels (the
//! 15 % check then measures how much of the run the attribution covers).
use std::collections::{BTreeMap, HashMap};

use profagent_onnx::Model;

use crate::attribution::{attribute, AttributionMethod};
use crate::latency::{quantile, LatencyStats, NOISY_CV};
use crate::machine::{machine_info, MachineInfo};
use crate::memory::{reset_peak_rss, rss, thread_scheduler_times};
use crate::{ModelSource, OptLevel, Result, Runtime, RuntimeKind, SessionOptions, Tensor};

/// Layer latencies must add up to end-to-end latency within this fraction (issue 3).
pub const LAYER_SUM_TOLERANCE: f64 = 0.15;
/// When the measuring thread spent more than this share of the timed runs waiting for a CPU,
/// the machine is oversubscribed: latencies (and medians of small kernels versus the whole run)
/// are distorted.
pub const MAX_CPU_WAIT_FRACTION: f64 = 0.05;
/// A block of end-to-end runs more spread out than this (CV) was disturbed: measure again.
pub const REMEASURE_CV: f64 = 0.10;
/// At most this many blocks of end-to-end runs.
pub const MAX_E2E_BLOCKS: usize = 3;
/// Fewer timed runs than this give unreliable spreads.
pub const MIN_RUNS_FOR_SPREAD: usize = 5;
/// Layer name for kernels the runtime inserted that could not be charged to any ONNX node.
pub const RUNTIME_INTERNAL_LAYER: &str = "(runtime internal)";

/// How many runs to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProfileSettings {
    pub warmup: usize,
    pub runs: usize,
}

impl Default for ProfileSettings {
    fn default() -> Self {
        ProfileSettings {
            warmup: 3,
            runs: 10,
        }
    }
}

/// Median and spread of a timing over the recorded runs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spread {
    pub median_ms: f64,
    pub iqr_ms: f64,
    pub cv: f64,
}

impl Spread {
    fn of(samples: &[f64]) -> Self {
        let stats = LatencyStats::from_samples(samples.to_vec());
        Spread {
            median_ms: stats.median_ms,
            iqr_ms: stats.iqr_ms,
            cv: stats.cv,
        }
    }
}

/// Measured latency of one ONNX node (its kernels, fused neighbours included).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeLatency {
    /// ONNX node name (or the runtime kernel's name when unattributed).
    pub node: String,
    pub node_index: Option<usize>,
    pub op_type: String,
    pub layer: String,
    /// Runtime kernels charged to this node.
    pub kernels: Vec<String>,
    /// Other ONNX nodes fused into those kernels.
    pub fused: Vec<String>,
    pub attribution: AttributionMethod,
    #[serde(flatten)]
    pub latency: Spread,
    /// Share of the summed node medians.
    pub share: f64,
    pub output_bytes: Option<u64>,
}

/// Measured latency of one layer (module path), summed over its nodes per run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerLatency {
    pub layer: String,
    #[serde(flatten)]
    pub latency: Spread,
    pub share: f64,
    /// Bytes of the outputs of the layer's kernels (activations it writes).
    pub activation_bytes: u64,
}

/// Memory facts of the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemoryProfile {
    /// Bytes of the model's initializers.
    pub weight_bytes: u64,
    /// Process peak RSS while the plain session loaded and ran (VmHWM).
    pub peak_rss_bytes: Option<u64>,
    /// That peak minus the RSS before loading: the session's own footprint, when the peak could
    /// be reset first (`peak_reset`).
    pub session_rss_bytes: Option<u64>,
    pub peak_reset: bool,
    /// Peak bytes of the runtime's activation arena in the profiled runs, when reported.
    pub peak_activation_bytes: Option<u64>,
}

/// Attribution summary: how kernels were mapped back to ONNX nodes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttributionSummary {
    /// Optimisation level of the profiled session (None: tract, which always optimises).
    pub profiled_opt_level: Option<OptLevel>,
    pub kernels: usize,
    pub by_name: usize,
    pub by_tensor: usize,
    pub by_position: usize,
    pub unattributed: usize,
    pub description: String,
}

/// The measured side of a profile.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DynamicProfile {
    pub runtime: RuntimeKind,
    pub runtime_version: String,
    pub machine: MachineInfo,
    pub threads: usize,
    pub opt_level: OptLevel,
    pub batch: usize,
    pub settings: ProfileSettings,
    /// Plain-session wall time per run.
    pub end_to_end: LatencyStats,
    /// With one thread: the calling thread's on-CPU time per plain run, which excludes waits for
    /// a CPU (what the wall time would be on an idle machine).
    pub end_to_end_on_cpu: Option<LatencyStats>,
    /// The runtime's own whole-run time in the profiled runs (profiler overhead included).
    pub profiled_run: Spread,
    pub nodes: Vec<NodeLatency>,
    pub layers: Vec<LayerLatency>,
    /// Sum of the layer medians, and its ratio to the end-to-end median.
    pub layer_sum_ms: f64,
    pub layer_sum_ratio: f64,
    /// Sum of the kernels' medians as the profiler timed them (before `profiler_scale`).
    pub layer_sum_raw_ms: f64,
    /// Factor applied to the profiled kernel times to remove the profiler's overhead (1: none
    /// applied; see the module docs).
    pub profiler_scale: f64,
    /// Share of the timed runs' wall time the measuring thread waited for a CPU (other load).
    pub cpu_wait_fraction: Option<f64>,
    /// Blocks of end-to-end runs measured (more than one: load disturbed the first); the fastest
    /// block is kept.
    pub end_to_end_blocks: usize,
    pub attribution: AttributionSummary,
    pub memory: MemoryProfile,
    pub warnings: Vec<String>,
}

impl DynamicProfile {
    /// Layers by descending median latency.
    pub fn top_layers(&self, count: usize) -> Vec<&LayerLatency> {
        let mut layers: Vec<&LayerLatency> = self.layers.iter().collect();
        layers.sort_by(|a, b| b.latency.median_ms.total_cmp(&a.latency.median_ms));
        layers.truncate(count);
        layers
    }
}

/// Profiles `model` (also given decoded, for attribution and weights) with `inputs`.
pub fn profile_model(
    runtime: &dyn Runtime,
    source: &ModelSource,
    model: &Model,
    options: &SessionOptions,
    inputs: &[(String, Tensor)],
    settings: ProfileSettings,
) -> Result<DynamicProfile> {
    let runs = settings.runs.max(1);
    // Memory first, with only the plain session alive.
    let before = rss();
    let peak_reset = reset_peak_rss();
    let mut plain = runtime.load(source, options)?;
    for _ in 0..settings.warmup.max(1) {
        plain.run(inputs)?;
    }
    let after = rss();
    let memory_peak = after.peak_bytes;
    let session_rss = match (peak_reset, before.current_bytes, memory_peak) {
        (true, Some(start), Some(peak)) => Some(peak.saturating_sub(start)),
        _ => None,
    };

    // The plain runs first, then the profiled ones, never two sessions alive at once: each
    // session has its own thread pool, and on a small machine an idle pool next to a running
    // one made the runs 30-60 % noisier, and alternating runs between them doubled ResNet-18's
    // measured latency on 2 cores. A block disturbed by other load (CV above
    // `REMEASURE_CV`) is measured again, up to `MAX_E2E_BLOCKS` blocks, and one more block runs
    // after the profiled runs when those were clearly faster; the block with the lowest median
    // is kept (load only adds time).
    let mut best: Option<Block> = None;
    let mut blocks = 0;
    while blocks < MAX_E2E_BLOCKS {
        let (block, cv) = end_to_end_block(plain.as_mut(), inputs, runs)?;
        blocks += 1;
        keep_fastest(&mut best, block);
        if cv <= REMEASURE_CV || runs < MIN_RUNS_FOR_SPREAD {
            break;
        }
    }
    drop(plain);
    let mut profiling = runtime.load_profiling(source, options)?;
    let step = profagent_onnx::progress::step(
        "profiling per layer",
        Some((settings.warmup + runs) as u64),
        "runs",
    );
    for run in 0..settings.warmup + runs {
        profiling.run(inputs)?;
        step.set(run as u64 + 1);
    }
    drop(step);
    let trace = profiling.finish(settings.warmup)?;
    // When the profiled runs (profiler overhead included) were faster than the plain ones
    // by more than the layer-sum tolerance, the machine had a slow spell during the plain
    // block: measure one more block after the profiled runs and keep the faster one.
    let plain_so_far = best
        .as_ref()
        .map_or(0.0, |b| LatencyStats::from_samples(b.0.clone()).median_ms);
    let profiled_median = LatencyStats::from_samples(trace.run_totals_ms.clone()).median_ms;
    if profiled_median > 0.0 && profiled_median < plain_so_far * (1.0 - LAYER_SUM_TOLERANCE) {
        let mut plain = runtime.load(source, options)?;
        for _ in 0..settings.warmup.max(1) {
            plain.run(inputs)?;
        }
        let (block, _) = end_to_end_block(plain.as_mut(), inputs, runs)?;
        blocks += 1;
        keep_fastest(&mut best, block);
    }
    let (end_to_end, on_cpu, cpu_wait_fraction) = best.unwrap_or_default();

    let graph = model.graph();
    let attributions = attribute(graph, &trace.kernels);
    let mut nodes: Vec<NodeLatency> = Vec::new();
    let mut node_samples: Vec<Vec<f64>> = Vec::new();
    let mut slot_of: HashMap<String, usize> = HashMap::new();
    for (kernel, attribution) in trace.kernels.iter().zip(&attributions) {
        let (key, name, op_type, layer) = match attribution.node {
            Some(index) => {
                let node = &graph.node[index];
                let name = profagent_onnx::index::node_label(node, index);
                let layer = profagent_onnx::layer_of_node(node.name(), node.op_type(), index);
                (name.clone(), name, node.op_type().to_string(), layer)
            }
            None => (
                format!("kernel:{}", kernel.name),
                kernel.name.clone(),
                kernel.op_type.clone(),
                RUNTIME_INTERNAL_LAYER.to_string(),
            ),
        };
        let slot = *slot_of.entry(key).or_insert_with(|| {
            nodes.push(NodeLatency {
                node: name,
                node_index: attribution.node,
                op_type,
                layer,
                kernels: Vec::new(),
                fused: Vec::new(),
                attribution: attribution.method,
                latency: Spread::of(&[]),
                share: 0.0,
                output_bytes: None,
            });
            node_samples.push(vec![0.0; kernel.samples_ms.len()]);
            nodes.len() - 1
        });
        let entry = &mut nodes[slot];
        entry.kernels.push(kernel.name.clone());
        for &covered in attribution.covers.iter().skip(1) {
            let label = profagent_onnx::index::node_label(&graph.node[covered], covered);
            if !entry.fused.contains(&label) {
                entry.fused.push(label);
            }
        }
        if attribution.method == AttributionMethod::Name
            || attribution.method == AttributionMethod::Tensor
        {
            entry.attribution = attribution.method;
        }
        if let Some(bytes) = kernel.output_bytes {
            entry.output_bytes = Some(entry.output_bytes.unwrap_or(0) + bytes);
        }
        for (total, sample) in node_samples[slot].iter_mut().zip(&kernel.samples_ms) {
            *total += sample;
        }
    }
    // Profiler overhead (see the module docs): when the kernels' medians add up to more than
    // the unprofiled end-to-end median, scale them all down to it by one factor. One factor, not
    // one per run: a burst of load in one layer of one run must not shrink the other layers.
    let plain_median = LatencyStats::from_samples(end_to_end.clone()).median_ms;
    let raw_medians: Vec<f64> = node_samples
        .iter()
        .map(|samples| Spread::of(samples).median_ms)
        .collect();
    let layer_sum_raw_ms: f64 = raw_medians.iter().sum();
    let profiler_scale = if layer_sum_raw_ms > plain_median && plain_median > 0.0 {
        plain_median / layer_sum_raw_ms
    } else {
        1.0
    };
    for samples in &mut node_samples {
        for sample in samples.iter_mut() {
            *sample *= profiler_scale;
        }
    }
    for (node, samples) in nodes.iter_mut().zip(&node_samples) {
        node.latency = Spread::of(samples);
    }
    let node_total: f64 = nodes.iter().map(|n| n.latency.median_ms).sum();
    for node in &mut nodes {
        node.share = share(node.latency.median_ms, node_total);
    }

    // Layers: per-run sums over their nodes, in first-execution order.
    let mut layer_runs: BTreeMap<usize, (String, Vec<f64>, u64)> = BTreeMap::new();
    let mut layer_slot: HashMap<String, usize> = HashMap::new();
    for (node, samples) in nodes.iter().zip(&node_samples) {
        let next = layer_slot.len();
        let slot = *layer_slot.entry(node.layer.clone()).or_insert(next);
        let entry = layer_runs
            .entry(slot)
            .or_insert_with(|| (node.layer.clone(), vec![0.0; samples.len()], 0));
        for (total, sample) in entry.1.iter_mut().zip(samples) {
            *total += sample;
        }
        entry.2 += node.output_bytes.unwrap_or(0);
    }
    let mut layers: Vec<LayerLatency> = layer_runs
        .into_values()
        .map(|(layer, samples, activation_bytes)| LayerLatency {
            layer,
            latency: Spread::of(&samples),
            share: 0.0,
            activation_bytes,
        })
        .collect();
    let layer_sum_ms: f64 = layers.iter().map(|l| l.latency.median_ms).sum();
    for layer in &mut layers {
        layer.share = share(layer.latency.median_ms, layer_sum_ms);
    }

    let end_to_end = LatencyStats::from_samples(end_to_end);
    // Only meaningful when all compute happens on this thread.
    let end_to_end_on_cpu =
        (options.threads == 1 && on_cpu.len() == runs).then(|| LatencyStats::from_samples(on_cpu));
    let layer_sum_ratio = share(layer_sum_ms, end_to_end.median_ms);
    let attribution = summarise_attribution(&trace, &attributions);
    let batch = inputs
        .first()
        .and_then(|(_, t)| t.shape.first().copied())
        .unwrap_or(1);
    let mut profile = DynamicProfile {
        runtime: runtime.kind(),
        runtime_version: runtime.version(),
        machine: machine_info(),
        threads: options.threads,
        opt_level: options.opt_level,
        batch,
        settings: ProfileSettings {
            warmup: settings.warmup,
            runs,
        },
        profiled_run: Spread::of(&trace.run_totals_ms),
        end_to_end,
        end_to_end_on_cpu,
        nodes,
        layers,
        layer_sum_ms,
        layer_sum_ratio,
        layer_sum_raw_ms,
        profiler_scale,
        cpu_wait_fraction,
        end_to_end_blocks: blocks,
        attribution,
        memory: MemoryProfile {
            weight_bytes: weight_bytes(model),
            peak_rss_bytes: memory_peak,
            session_rss_bytes: session_rss,
            peak_reset,
            peak_activation_bytes: trace.peak_activation_bytes,
        },
        warnings: Vec::new(),
    };
    profile.warnings = warnings(&profile);
    Ok(profile)
}

/// End-to-end times, on-CPU times and CPU-wait fraction of one block of plain runs.
type Block = (Vec<f64>, Vec<f64>, Option<f64>);

/// One block of `runs` timed plain runs; also returns its CV.
fn end_to_end_block(
    plain: &mut dyn crate::Session,
    inputs: &[(String, Tensor)],
    runs: usize,
) -> Result<(Block, f64)> {
    let mut times = Vec::with_capacity(runs);
    let mut on_cpu = Vec::with_capacity(runs);
    let scheduler_before = thread_scheduler_times();
    let wall_start = std::time::Instant::now();
    let step = profagent_onnx::progress::step("timing end to end", Some(runs as u64), "runs");
    for run in 0..runs {
        let cpu_start = thread_scheduler_times();
        let start = std::time::Instant::now();
        plain.run(inputs)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        if let (Some(before), Some(after)) = (cpu_start, thread_scheduler_times()) {
            on_cpu.push(after.on_cpu_ns.saturating_sub(before.on_cpu_ns) as f64 / 1e6);
        }
        step.set(run as u64 + 1);
    }
    drop(step);
    let wall_ns = wall_start.elapsed().as_nanos() as f64;
    let wait = match (scheduler_before, thread_scheduler_times()) {
        (Some(before), Some(after)) if wall_ns > 0.0 => {
            Some(after.waiting_ns.saturating_sub(before.waiting_ns) as f64 / wall_ns)
        }
        _ => None,
    };
    let cv = LatencyStats::from_samples(times.clone()).cv;
    Ok(((times, on_cpu, wait), cv))
}

/// Keeps the block with the lower median (load only ever adds time).
fn keep_fastest(best: &mut Option<Block>, block: Block) {
    let median = |b: &Block| LatencyStats::from_samples(b.0.clone()).median_ms;
    if best
        .as_ref()
        .is_none_or(|kept| median(&block) < median(kept))
    {
        *best = Some(block);
    }
}

fn share(part: f64, total: f64) -> f64 {
    if total > 0.0 {
        part / total
    } else {
        0.0
    }
}

fn summarise_attribution(
    trace: &crate::trace::KernelTrace,
    attributions: &[crate::attribution::Attribution],
) -> AttributionSummary {
    let count = |method| attributions.iter().filter(|a| a.method == method).count();
    let (by_name, by_tensor, by_position, unattributed) = (
        count(AttributionMethod::Name),
        count(AttributionMethod::Tensor),
        count(AttributionMethod::Position),
        count(AttributionMethod::Unattributed),
    );
    let level = match trace.opt_level {
        Some(level) => format!("at the session's own optimisation level ({level:?})"),
        None => "as tract optimises the graph".to_string(),
    };
    AttributionSummary {
        profiled_opt_level: trace.opt_level,
        kernels: attributions.len(),
        by_name,
        by_tensor,
        by_position,
        unattributed,
        description: format!(
            "{} kernels profiled {level}; mapped back to ONNX nodes: {by_name} by node name, \
             {by_tensor} by output tensor (fused kernels, time charged to the fused group's \
             anchor op), {by_position} runtime-inserted kernels charged to the preceding node, \
             {unattributed} unattributed",
            attributions.len()
        ),
    }
}

/// Bytes of all initializers.
pub fn weight_bytes(model: &Model) -> u64 {
    model
        .graph()
        .initializer
        .iter()
        .map(|t| {
            (profagent_onnx::tensor::element_count(t)
                * profagent_onnx::tensor::elem_size(t.data_type())) as u64
        })
        .sum()
}

fn warnings(profile: &DynamicProfile) -> Vec<String> {
    let mut warnings = Vec::new();
    if profile.settings.runs < MIN_RUNS_FOR_SPREAD {
        warnings.push(format!(
            "only {} timed runs: spreads (IQR, CV) need at least {MIN_RUNS_FOR_SPREAD} to mean much",
            profile.settings.runs
        ));
    }
    if let Some(wait) = profile
        .cpu_wait_fraction
        .filter(|w| *w > MAX_CPU_WAIT_FRACTION)
    {
        warnings.push(format!(
            "the measuring thread waited for a CPU during {:.0}% of the timed runs: other \
             processes compete for the cores, so end-to-end latency includes that wait while \
             per-layer medians mostly exclude it; re-run on an idle machine",
            wait * 100.0
        ));
    }
    if profile.end_to_end_blocks > 1 {
        warnings.push(format!(
            "end-to-end runs were disturbed by other load (CV above {:.0}%): measured {} blocks \
             of {} runs and kept the fastest",
            REMEASURE_CV * 100.0,
            profile.end_to_end_blocks,
            profile.settings.runs
        ));
    }
    if profile.end_to_end.is_noisy() {
        warnings.push(format!(
            "end-to-end latency varies by {:.0}% (CV) between runs: the machine is busy or \
             throttling; treat the latencies as noise-prone and re-run with more --runs",
            profile.end_to_end.cv * 100.0
        ));
    }
    let noisy_top: Vec<&str> = profile
        .top_layers(5)
        .into_iter()
        .filter(|l| l.latency.cv > NOISY_CV)
        .map(|l| l.layer.as_str())
        .collect();
    if !noisy_top.is_empty() {
        warnings.push(format!(
            "per-layer timings of {} vary by more than {:.0}% (CV): their ranking is noise-prone",
            noisy_top.join(", "),
            NOISY_CV * 100.0
        ));
    }
    if (profile.layer_sum_ratio - 1.0).abs() > LAYER_SUM_TOLERANCE {
        warnings.push(format!(
            "per-layer latencies add up to {:.1}% of the end-to-end latency (expected within \
             {:.0}%): per-layer numbers are skewed by profiler overhead or noise",
            profile.layer_sum_ratio * 100.0,
            LAYER_SUM_TOLERANCE * 100.0
        ));
    }
    if profile.attribution.unattributed > 0 {
        warnings.push(format!(
            "{} runtime kernels could not be mapped to ONNX nodes; their time is listed under '{RUNTIME_INTERNAL_LAYER}'",
            profile.attribution.unattributed
        ));
    }
    warnings
}

/// Inputs for a timing run: every declared input at `batch` (first dynamic dim), f32 inputs
/// filled with a fixed pattern in [-1, 1) (timing does not depend on values for these
/// models, and a fixed pattern keeps runs comparable), integer inputs with zeros. Any other
/// dynamic dim is an error naming the input.
pub fn synthetic_inputs(declared: &[crate::IoInfo], batch: usize) -> Result<Vec<(String, Tensor)>> {
    declared
        .iter()
        .map(|input| {
            let mut shape = Vec::with_capacity(input.shape.len());
            for (axis, dim) in input.shape.iter().enumerate() {
                match (dim, axis) {
                    (Some(size), _) => shape.push(*size),
                    (None, 0) => shape.push(batch),
                    (None, _) => {
                        return Err(crate::RuntimeError::BadInput {
                            name: input.name.clone(),
                            reason: format!(
                                "dimension {axis} is dynamic; only the batch (first) dimension can be chosen for profiling"
                            ),
                        })
                    }
                }
            }
            let count = crate::checked_elements(&input.name, &shape)?;
            let tensor = match input.elem_type.as_str() {
                "float" => Tensor::f32(
                    shape,
                    (0..count as u64)
                        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                        .collect(),
                ),
                "int64" => Tensor::i64(shape, vec![0; count]),
                other => {
                    return Err(crate::RuntimeError::BadInput {
                        name: input.name.clone(),
                        reason: format!("element type {other} cannot be synthesised (f32 and i64 only)"),
                    })
                }
            };
            Ok((input.name.clone(), tensor))
        })
        .collect()
}

/// Median of the per-run sums, exposed for tests comparing against per-layer sums.
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}
