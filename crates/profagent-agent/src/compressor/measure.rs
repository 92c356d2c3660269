//! Measurements taken on the feedback slice: the input model (baseline), each candidate, and
//! what each quantization mode does to the input model on this runtime (probes: speed
//! interleaved against the input, top-1 paired against it, size, fidelity); the input's
//! per-layer latency for later analyses. Pruning sensitivity is `sensitivity.rs`. Failures are
//! recorded, not fatal: a mode the runtime cannot run is information for the planner.
use std::collections::BTreeMap;

use profagent_onnx::Model;
use profagent_plan::{LayerQuantization, QuantActivations, QuantMode, QuantSetting};

use super::{Analysis, Kept, Progress, Split, Workbench};
use crate::error::AgentError;
use crate::facts::{Evaluation, QuantProbe, SpeedComparison};

/// The input model on the feedback slice: accuracy, and its latency from timing it against
/// itself (an A/A comparison: its interval shows how noisy the machine is right now).
pub(super) fn baseline<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    progress: &mut dyn Progress,
) -> Result<Evaluation, AgentError> {
    let _step = profagent_onnx::progress::step("baseline", None, "");
    progress.line("evaluating the baseline on the feedback slice");
    let mut baseline = bench.evaluate(input, Split::Feedback)?;
    baseline.pair_with_itself();
    progress.line("timing the baseline against itself (how noisy is this machine now?)");
    let noise = bench.compare_speed(input, input, Split::Feedback)?;
    baseline.latency_ms = noise.reference_ms;
    progress.line(&format!(
        "baseline: {}, {:.2} ms; against itself {}; {:.2} MB",
        match (baseline.top1, baseline.top1_interval) {
            (Some(t), Some(i)) => format!(
                "top-1 {t:.2} % (95 % interval {:.2}–{:.2}, {} images)",
                i.low, i.high, baseline.images
            ),
            (Some(t), None) => format!("top-1 {t:.2} % ({} images)", baseline.images),
            (None, _) => format!("no labels ({} images): fidelity only", baseline.images),
        },
        baseline.latency_ms,
        noise.describe(),
        baseline.model_bytes as f64 / 1e6
    ));
    baseline.speed = Some(noise);
    Ok(baseline)
}

/// A candidate on the feedback slice: accuracy paired with the baseline, speed against the
/// input model and, when the current best is not the input, against the current best (both
/// interleaved).
pub(super) fn candidate<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    baseline: &Evaluation,
    best: Kept<'_>,
    candidate: &Model,
) -> Result<(Evaluation, Option<SpeedComparison>), AgentError> {
    let mut evaluation = bench.evaluate(candidate, Split::Feedback)?;
    evaluation.pair_with(baseline);
    let speed = bench.compare_speed(input, candidate, Split::Feedback)?;
    evaluation.latency_ms = speed.candidate_ms.value;
    evaluation.speed = Some(speed);
    let vs_best = if best.round == 0 {
        None
    } else {
        Some(bench.compare_speed(best.model, candidate, Split::Feedback)?)
    };
    Ok((evaluation, vs_best))
}

/// Quantizes the baseline with every available mode and measures it; failures are recorded,
/// not fatal (a mode the runtime cannot run is information for the planner).
pub(super) fn probe_quantization<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    analysis: &Analysis,
    baseline: &Evaluation,
    progress: &mut dyn Progress,
) -> Vec<QuantProbe> {
    let mut probes = Vec::new();
    let modes: Vec<QuantMode> = [QuantMode::Dynamic, QuantMode::Static, QuantMode::Int4]
        .into_iter()
        .filter(|mode| analysis.context.quant_modes.contains(mode))
        .collect();
    let step =
        profagent_onnx::progress::step("quantization probes", Some(modes.len() as u64), "modes");
    for (done, mode) in modes.into_iter().enumerate() {
        step.set(done as u64);
        if progress.stop_requested() {
            break;
        }
        // Static quantization is probed with both activation types: ONNX Runtime fuses
        // uint8 and int8 QDQ graphs differently, and which is faster is measured per model.
        let variants: &[QuantActivations] = match mode {
            QuantMode::Static => &[QuantActivations::Uint8, QuantActivations::Int8],
            _ => &[QuantActivations::Uint8],
        };
        for &activations in variants {
            let setting = QuantSetting {
                activations,
                ..QuantSetting::new(mode)
            };
            probes.extend(probe_one(
                bench, input, analysis, baseline, progress, setting,
            ));
        }
    }
    if !progress.stop_requested() {
        super::calibration::try_calibrations(
            bench,
            input,
            analysis,
            baseline,
            progress,
            &mut probes,
        );
    }
    if let Some((setting, layers, overrides)) = mixed_setting(analysis, &probes) {
        if !progress.stop_requested() {
            probes.extend(probe_layers(
                bench, input, baseline, progress, setting, layers, overrides,
            ));
        }
    }
    probes
}

/// At most one mixed probe, only where measurement says it can pay: a model with
/// convolutions that static mode quantizes and MatMul/Gemm layers whose dynamic probe was
/// measurably faster than the input (a conv + transformer model such as a ViT with its patch
/// embedding) gets static convolutions, with the static probe's faster activation type, and
/// dynamic MatMuls. Any other model gets no extra probe.
type Mixed = (
    QuantSetting,
    BTreeMap<String, QuantSetting>,
    Vec<LayerQuantization>,
);

fn mixed_setting(analysis: &Analysis, probes: &[QuantProbe]) -> Option<Mixed> {
    use profagent_stats::SpeedVerdict;
    let ok = |mode: QuantMode| {
        probes
            .iter()
            .filter(move |p| p.mode == mode && p.error.is_none() && p.layers.is_empty())
    };
    ok(QuantMode::Dynamic).find(|p| p.verdict() == Some(SpeedVerdict::Faster))?;
    let fastest = ok(QuantMode::Static).max_by(|a, b| a.speedup.total_cmp(&b.speedup))?;
    let activations = fastest.activations.unwrap_or_default();
    let calibration = fastest.calibration.unwrap_or_default();
    let setting = QuantSetting {
        activations,
        calibration,
        ..QuantSetting::new(QuantMode::Dynamic)
    };
    let mut layers = BTreeMap::new();
    let mut overrides = Vec::new();
    for (name, info) in &analysis.context.layers {
        let conv = info.op_types.iter().any(|op| op == "Conv");
        if conv && info.quant_modes.contains(&QuantMode::Static) {
            layers.insert(
                name.clone(),
                QuantSetting {
                    activations,
                    calibration,
                    ..QuantSetting::new(QuantMode::Static)
                },
            );
            overrides.push(LayerQuantization {
                layer: name.clone(),
                mode: QuantMode::Static,
                per_channel: true,
                signed_weights: true,
                rationale: "convolution: static int8 (dynamic mode leaves convolutions in float)"
                    .into(),
            });
        } else if info.quant_modes.contains(&QuantMode::Dynamic) {
            layers.insert(name.clone(), setting);
        }
    }
    let dynamic = layers.len() - overrides.len();
    (!overrides.is_empty() && dynamic > 0).then_some((setting, layers, overrides))
}

/// Probes one setting on every layer it applies to (`None` when it applies to none).
fn probe_one<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    analysis: &Analysis,
    baseline: &Evaluation,
    progress: &mut dyn Progress,
    setting: QuantSetting,
) -> Option<QuantProbe> {
    let layers = layers_for(analysis, setting);
    if layers.is_empty() {
        return None;
    }
    probe_layers(
        bench,
        input,
        baseline,
        progress,
        setting,
        layers,
        Vec::new(),
    )
}

/// Every layer `setting`'s mode applies to, each with `setting`.
pub(super) fn layers_for(
    analysis: &Analysis,
    setting: QuantSetting,
) -> BTreeMap<String, QuantSetting> {
    analysis
        .context
        .layers
        .iter()
        .filter(|(_, info)| info.quant_modes.contains(&setting.mode))
        .map(|(name, _)| (name.clone(), setting))
        .collect()
}

/// Probes `layers` (the plan's resolved per-layer settings); `overrides` are the layers whose
/// mode differs from `setting`'s, recorded on the probe so a plan can reproduce it.
fn probe_layers<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    baseline: &Evaluation,
    progress: &mut dyn Progress,
    setting: QuantSetting,
    layers: BTreeMap<String, QuantSetting>,
    overrides: Vec<LayerQuantization>,
) -> Option<QuantProbe> {
    let mode = setting.mode;
    let activations =
        (mode == QuantMode::Static || !overrides.is_empty()).then_some(setting.activations);
    let failed = |error: String| QuantProbe {
        mode,
        activations,
        latency_ms: 0.0,
        speedup: 0.0,
        speed: None,
        model_bytes: 0,
        top1: None,
        accuracy_change: None,
        cosine: None,
        error: Some(error),
        kernels: None,
        layers: overrides.clone(),
        calibration: None,
        calibration_trials: Vec::new(),
    };
    progress.line(&format!(
        "probing {} quantization",
        failed(String::new()).label()
    ));
    let p = match probe(bench, input, &layers, baseline) {
        Ok(p) => QuantProbe {
            mode,
            activations,
            layers: overrides.clone(),
            ..p
        },
        Err(e) => failed(e.to_string()),
    };
    let label = p.label();
    if let Some(kernels) = &p.kernels {
        progress.line(&format!("  {label}: {kernels}"));
    }
    progress.line(&match (&p.error, &p.speed) {
        (Some(e), _) => format!("  {label}: failed: {e}"),
        (None, speed) => format!(
            "  {label}: {}, {:.2} MB, {}",
            speed
                .as_ref()
                .map(|s| s.describe())
                .unwrap_or_else(|| "speed not measured".into()),
            p.model_bytes as f64 / 1e6,
            match p.accuracy_change {
                Some(change) => format!(
                    "top-1 {:.2} % (drop {:.2} on {} images)",
                    p.top1.unwrap_or_default(),
                    change.drop_points(),
                    change.samples
                ),
                None => p
                    .cosine
                    .map(|c| format!("output cosine {c:.5}"))
                    .unwrap_or_default(),
            }
        ),
    });
    Some(p)
}

/// One probe: quantize, evaluate (paired with the baseline), time against the input.
fn probe<B: Workbench + ?Sized>(
    bench: &mut B,
    input: &Model,
    layers: &BTreeMap<String, QuantSetting>,
    baseline: &Evaluation,
) -> Result<QuantProbe, AgentError> {
    let mode = layers
        .values()
        .next()
        .map(|s| s.mode)
        .unwrap_or(QuantMode::None);
    let (model, report) = bench.quantize(input, layers)?;
    let mut evaluation = bench.evaluate(&model, Split::Feedback)?;
    evaluation.pair_with(baseline);
    let speed = bench.compare_speed(input, &model, Split::Feedback)?;
    Ok(QuantProbe {
        mode,
        activations: None,
        latency_ms: speed.candidate_ms.value,
        speedup: speed.speedup.value,
        speed: Some(speed),
        model_bytes: evaluation.model_bytes,
        top1: evaluation.top1,
        accuracy_change: evaluation.accuracy_change,
        cosine: evaluation.cosine,
        error: None,
        // The workbench adds the runtime's fusion coverage to its report when it can.
        kernels: report
            .get("int8_kernels")
            .and_then(|k| k.as_str())
            .map(str::to_string),
        layers: Vec::new(),
        calibration: None,
        calibration_trials: Vec::new(),
    })
}

/// Per-layer latency of the input model on the target runtime, measured once
/// (`Workbench::layer_latencies`), with each layer's MACs at the time: every later analysis
/// reuses it, scaled by how much pruning has shrunk each layer's MACs since.
#[derive(Debug, Clone, Default)]
pub(super) struct InputLatency {
    /// Layer name → (median ms, MACs of the layer in the input model).
    layers: BTreeMap<String, (f64, u64)>,
}

impl InputLatency {
    /// Joins the profiler's `(layer, op type, ms)` rows with the input's analysis (for MACs).
    pub(super) fn new(measured: &[(String, String, f64)], input: &Analysis) -> Self {
        let macs: BTreeMap<&str, u64> = input
            .layers
            .iter()
            .map(|l| (l.name.as_str(), l.macs))
            .collect();
        InputLatency {
            layers: measured
                .iter()
                .filter(|(_, _, ms)| ms.is_finite() && *ms >= 0.0)
                .map(|(name, _, ms)| {
                    (
                        name.clone(),
                        (*ms, macs.get(name.as_str()).copied().unwrap_or(0)),
                    )
                })
                .collect(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Fills `latency_ms` of every layer measured on the input (scaled by MACs now / MACs then
    /// when pruning changed them, flagged `latency_scaled`) and of every group (the sum over
    /// the layers it touches that have a latency). Layers and groups without a measured layer
    /// keep what the workbench gave them.
    pub(super) fn apply(&self, analysis: &mut Analysis) {
        if self.is_empty() {
            return;
        }
        for layer in &mut analysis.layers {
            if let Some(&(ms, macs_then)) = self.layers.get(&layer.name) {
                let scaled = macs_then > 0 && layer.macs != macs_then;
                layer.latency_ms = Some(if scaled {
                    ms * layer.macs as f64 / macs_then as f64
                } else {
                    ms
                });
                layer.latency_scaled = scaled;
            }
        }
        let by_layer: BTreeMap<&str, f64> = analysis
            .layers
            .iter()
            .filter_map(|l| Some((l.name.as_str(), l.latency_ms?)))
            .collect();
        for group in &mut analysis.groups {
            let Some(info) = analysis.context.groups.get(&group.id) else {
                continue;
            };
            let times: Vec<f64> = info
                .layers
                .iter()
                .filter_map(|l| by_layer.get(l.as_str()).copied())
                .collect();
            if !times.is_empty() {
                group.latency_ms = Some(times.iter().sum());
            }
        }
    }
}
