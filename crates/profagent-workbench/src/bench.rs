//! The real `Workbench` of `profagent compress`: static profile + pruning analysis for the
//! planner, `profagent-prune` and `profagent-quant` to apply plans, ONNX Runtime and
//! `profagent-data` to evaluate. Glue only: every decision lives in `profagent-agent`.
use std::collections::BTreeMap;
use std::sync::Arc;

use profagent_agent::compressor::{Analysis, Split, Workbench};
use profagent_agent::facts::{Evaluation, GroupFacts, LayerFacts};
use profagent_agent::AgentError;
use profagent_data::{Dataset, EvalOptions};
use profagent_onnx::Model;
use profagent_plan::{
    GroupInfo, ImportanceCriterion, PlanContext, QuantMode, QuantSetting, ResolvedPrune,
};
use profagent_runtime::{ModelSource, Runtime, SessionOptions};

use crate::activations::BatchActivations;

pub struct OrtBench {
    pub runtime: Box<dyn Runtime>,
    pub session: SessionOptions,
    pub feedback: Dataset,
    pub holdout: Dataset,
    pub calibration: Vec<crate::activations::Batch>,
    pub eval: EvalOptions,
    pub runtime_name: String,
    /// The original model's bytes: every evaluation's outputs are compared with its outputs on
    /// the same slice (output cosine, top-1 agreement).
    pub reference: Vec<u8>,
    /// The original model's logits on the feedback and holdout slices, computed once.
    pub reference_logits: [Option<Arc<Vec<f32>>>; 2],
    /// How long and how precisely latency comparisons measure.
    pub compare: profagent_runtime::CompareSettings,
    /// The model's inputs (shapes as given with --input-shape): timed inputs are built for
    /// them from one real sample, at the model's fixed batch when it has one.
    pub inputs: Vec<profagent_runtime::IoInfo>,
    /// The channel block the runtime pads float convolutions to on this machine
    /// (`channel_block`): the analysis marks convolution groups with it, and the built-in
    /// planner keeps their widths multiples of it. `None`: no padding known.
    pub channel_block: Option<u32>,
}

/// The channel block `runtime` pads float convolutions to with `session`
/// (`profagent_runtime::conv_channel_block`), or `None` when it pads nothing or cannot show
/// its graph (the planner then aligns widths by its own rule).
pub fn channel_block(
    runtime: &dyn profagent_runtime::Runtime,
    session: &SessionOptions,
) -> Option<u32> {
    profagent_runtime::conv_channel_block(runtime, session)
        .ok()
        .flatten()
}

/// Marks every group of a float model whose producers are all convolutions with the runtime's
/// channel `block` (`GroupFacts::runtime_block`). A QDQ model runs its convolutions as integer
/// kernels outside the float blocked layout: it is left unmarked.
pub fn mark_channel_blocks(analysis: &mut Analysis, model: &Model, block: u32) {
    let quantized = model
        .graph()
        .node
        .iter()
        .any(|n| n.op_type.as_deref() == Some("DequantizeLinear"));
    if quantized || block <= 1 {
        return;
    }
    let convs: std::collections::BTreeSet<&str> = analysis
        .layers
        .iter()
        .filter(|l| l.op_type == "Conv")
        .map(|l| l.name.as_str())
        .collect();
    for group in &mut analysis.groups {
        let Some(info) = analysis.context.groups.get(&group.id) else {
            continue;
        };
        let producers = if info.producers.is_empty() {
            &info.layers
        } else {
            &info.producers
        };
        // A group counted in whole conv groups of `unit_channels` channels keeps a multiple of
        // the block with `block / gcd(block, unit_channels)` units.
        let units =
            profagent_plan::keep::units_per_multiple(block as usize, info.unit_channels) as u32;
        if group.heads.is_none()
            && units > 1
            && !producers.is_empty()
            && producers.iter().all(|p| convs.contains(p.as_str()))
        {
            group.runtime_block = Some(units);
        }
    }
}

/// The pruner's passes for a validated plan's decisions. The plan resolved every decision to an
/// exact kept count (`ResolvedPrune::keep`): the pruner keeps that count, so the model is the
/// network the plan describes. One pass per importance criterion (the pruner scores a whole
/// spec with one), in the order L1, L2, random, OBS. Protection was decided when the plan was
/// validated (the context's protected layers): the pruner applies the plan as it stands.
pub fn prune_specs(decisions: &[ResolvedPrune]) -> Vec<profagent_prune::PruneSpec> {
    let criteria = [
        (ImportanceCriterion::L1, profagent_prune::Importance::L1),
        (ImportanceCriterion::L2, profagent_prune::Importance::L2),
        (
            ImportanceCriterion::Random,
            profagent_prune::Importance::Random,
        ),
        (ImportanceCriterion::Obs, profagent_prune::Importance::Obs),
    ];
    criteria
        .into_iter()
        .filter_map(|(criterion, importance)| {
            let keep: Vec<profagent_prune::KeepRule> = decisions
                .iter()
                .filter(|d| d.criterion == criterion)
                .map(|d| profagent_prune::KeepRule {
                    group: d.group.clone(),
                    keep: d.keep,
                })
                .collect();
            if keep.is_empty() {
                return None;
            }
            let mut spec = profagent_prune::PruneSpec::uniform(0.0);
            spec.importance = importance;
            spec.keep = keep;
            spec.protect_first_and_last = false;
            Some(spec)
        })
        .collect()
}

/// What a plan for `model` may ask of this workbench, before the groups are added: every
/// quantization mode, mixed per layer (`quantize` below gives the quantizer the plan's mode of
/// every layer: `QuantSpec::layer_modes`), and the layers the pruner protects by default (the first
/// convolution, the layers producing graph outputs: `profagent_prune::default_protected`), so
/// a plan protects what `profagent prune` protects.
pub fn plan_context(model: &Model) -> Result<PlanContext, AgentError> {
    let mut context = PlanContext::from_model(model);
    context.quant_modes = [QuantMode::Dynamic, QuantMode::Static, QuantMode::Int4]
        .into_iter()
        .collect();
    context.mixed_quant_modes = true;
    for layer in
        profagent_prune::default_protected(model).map_err(|e| step("pruning analysis", e))?
    {
        context.protected_layers.insert(layer);
    }
    Ok(context)
}

fn step(step: &str, error: impl std::fmt::Display) -> AgentError {
    AgentError::Step {
        step: step.to_string(),
        reason: error.to_string(),
    }
}

/// What planners know of `model` before anything is measured: its layers (static profile), its
/// prunable groups with the MACs and parameters of the layers each touches, the plan context
/// (group layers, quantizable layers) and the model family.
pub fn analysis(model: &Model) -> Result<Analysis, AgentError> {
    let profile =
        profagent_profile::static_profile(model, &profagent_profile::ProfileOptions::default())
            .map_err(|e| step("profile", e))?;
    let layers: Vec<LayerFacts> = profile
        .layers
        .iter()
        .map(|l| LayerFacts {
            name: l.name.clone(),
            // The op that does the layer's arithmetic names it (an attention block's
            // first op is often a Shape).
            op_type: ["Conv", "ConvTranspose", "Gemm", "MatMul", "Attention"]
                .into_iter()
                .find(|op| l.op_types.iter().any(|t| t == op))
                .map(str::to_string)
                .or_else(|| l.op_types.first().cloned())
                .unwrap_or_default(),
            params: l.params,
            macs: l.macs,
            latency_ms: l.latency_ms,
            latency_scaled: false,
            memory_bytes: Some(l.weight_bytes + l.activation_bytes),
        })
        .collect();
    let layer_macs: BTreeMap<&str, (u64, u64)> = profile
        .layers
        .iter()
        .map(|l| (l.name.as_str(), (l.macs, l.params)))
        .collect();
    let groups = profagent_prune::analyze(model).map_err(|e| step("pruning analysis", e))?;
    let mut context = plan_context(model)?;
    let mut facts = Vec::new();
    for group in &groups {
        let heads = matches!(group.kind, profagent_prune::GroupKind::Heads).then_some(group.units);
        let mut info = GroupInfo::new(group.units, group.layers.clone());
        info.producers = group.producers.clone();
        info.heads = heads;
        let grouped = group.kind.conv_group_width(group.unit_width);
        if let Some(width) = grouped {
            info.unit_channels = width;
        }
        if let profagent_prune::GroupStatus::Unprunable { reason } = &group.status {
            info.not_prunable = Some(reason.clone());
        }
        let (macs, params) = group
            .layers
            .iter()
            .filter_map(|l| layer_macs.get(l.as_str()))
            .fold((0u64, 0u64), |(m, p), (lm, lp)| (m + lm, p + lp));
        facts.push(GroupFacts {
            id: group.id.clone(),
            channels: group.units,
            heads,
            params,
            macs,
            // Measured per-layer latency is joined in by the loop (`Workbench::
            // layer_latencies`, once for the input model).
            latency_ms: None,
            residual: group.residual && group.producers.len() > 1,
            prunable: group.is_prunable() && context.group_is_protected(&info).is_none(),
            note: Some(match grouped {
                Some(width) => format!(
                    "channel, counted in units of {width} channels (whole groups of a grouped convolution)"
                ),
                None => format!("{:?}", group.kind).to_lowercase(),
            }),
            ..GroupFacts::default()
        });
        context.groups.insert(group.id.clone(), info);
    }
    let conv_macs: u64 = profile
        .layers
        .iter()
        .filter(|l| l.op_types.iter().any(|o| o == "Conv"))
        .map(|l| l.macs)
        .sum();
    let total: u64 = profile.layers.iter().map(|l| l.macs).sum::<u64>().max(1);
    let family = model_family(conv_macs as f64 / total as f64);
    Ok(Analysis {
        context,
        layers,
        groups: facts,
        family: family.into(),
    })
}

impl Workbench for OrtBench {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "runtime": self.runtime_name,
            "threads": self.session.threads,
            "conv_channel_block": self.channel_block,
            "machine": serde_json::to_value(profagent_runtime::machine_info()).unwrap_or_default(),
        })
    }

    fn analyze(&mut self, model: &Model) -> Result<Analysis, AgentError> {
        let mut analysis = analysis(model)?;
        if let Some(block) = self.channel_block {
            mark_channel_blocks(&mut analysis, model, block);
        }
        Ok(analysis)
    }

    fn prune(
        &mut self,
        model: &Model,
        decisions: &[ResolvedPrune],
    ) -> Result<(Model, serde_json::Value), AgentError> {
        let mut current = model.clone();
        let mut reports = Vec::new();
        for mut spec in prune_specs(decisions) {
            let mut notes = Vec::new();
            if spec.importance == profagent_prune::Importance::Obs && self.calibration.is_empty() {
                // OBS ranks from calibration statistics; with none, weights decide.
                spec.importance = profagent_prune::Importance::L1;
                notes.push("no calibration data: obs criterion applied as l1".to_string());
            }
            // Bias correction on the calibration slice keeps each pruned layer's expected
            // output: without it a 25 % cut of a residual stage can cost tens of points.
            let mut activations =
                BatchActivations::new(self.runtime.as_ref(), &self.session, &self.calibration);
            let source: Option<&mut dyn profagent_onnx::ActivationSource> =
                if self.calibration.is_empty() {
                    None
                } else {
                    Some(&mut activations)
                };
            let (pruned, mut report) =
                profagent_prune::prune(&current, &spec, source).map_err(|e| step("prune", e))?;
            report.warnings.extend(notes);
            reports.push(serde_json::json!({
                "params_before": report.params_before, "params_after": report.params_after,
                "macs_before": report.macs_before, "macs_after": report.macs_after,
                "groups": report.pruned_groups().map(|g| serde_json::json!({"id": g.id, "before": g.units_before, "after": g.units_after})).collect::<Vec<_>>(),
                "warnings": report.warnings,
            }));
            current = pruned;
        }
        Ok((current, serde_json::Value::Array(reports)))
    }

    fn quantize(
        &mut self,
        model: &Model,
        layers: &BTreeMap<String, QuantSetting>,
    ) -> Result<(Model, serde_json::Value), AgentError> {
        let Some(first) = layers.values().next().copied() else {
            return Ok((model.clone(), serde_json::Value::Null));
        };
        let mode_of = |mode: QuantMode| match mode {
            QuantMode::Dynamic => Some(profagent_quant::Mode::Dynamic),
            QuantMode::Static => Some(profagent_quant::Mode::Static),
            QuantMode::Int4 => Some(profagent_quant::Mode::Int4),
            QuantMode::None => None,
        };
        let Some(mode) = mode_of(first.mode) else {
            return Ok((model.clone(), serde_json::Value::Null));
        };
        // Every layer the plan quantizes, each exactly (not the layers under it), in the
        // first layer's mode unless it has its own: the quantizer runs one pass per mode.
        let mut spec = profagent_quant::QuantSpec::new(mode);
        spec.layers = profagent_quant::Selection {
            include: layers
                .keys()
                .map(|l| profagent_quant::select::exact(l))
                .collect(),
            exclude: Vec::new(),
        };
        spec.layer_modes = layers
            .iter()
            .filter(|(_, s)| s.mode != first.mode)
            .map(|(layer, s)| profagent_quant::LayerMode {
                pattern: profagent_quant::select::exact(layer),
                mode: mode_of(s.mode),
            })
            .collect();
        let uses_static = spec.modes().contains(&profagent_quant::Mode::Static);
        // Int4 blocks its scales; dynamic and static take the plan's choice (per-channel
        // weight scales cost nothing in ONNX Runtime's int8 kernels and can matter a lot for
        // fidelity: random-weight Swin-B keeps cosine 0.9997 per channel, 0.9755 per tensor).
        spec.per_channel = (mode != profagent_quant::Mode::Int4).then_some(first.per_channel);
        spec.signed_weights = first.signed_weights;
        spec.activations = match first.activations {
            profagent_plan::QuantActivations::Uint8 => profagent_quant::ActivationType::Uint8,
            profagent_plan::QuantActivations::Int8 => profagent_quant::ActivationType::Int8,
        };
        spec.calibration = crate::calibration::calibration_method(first.calibration);
        // The range this CPU's int8 kernels can sum without saturating: the loop measures
        // on this machine, so its models are made for it (`weights.rs`).
        let weights = crate::weights::weight_range_for(&profagent_runtime::machine_info());
        spec.weight_range = weights.range;
        // Static ranges stream from the calibration slice within the output budget.
        let mut activations = BatchActivations::for_quantization(
            self.runtime.as_ref(),
            &self.session,
            &self.calibration,
        );
        let calibration: Option<&mut dyn profagent_onnx::ActivationSource> =
            if uses_static && !self.calibration.is_empty() {
                Some(&mut activations)
            } else {
                None
            };
        let (quantized, report) = profagent_quant::quantize(model, &spec, calibration)
            .map_err(|e| step("quantize", e))?;
        let mut report = serde_json::to_value(&report).unwrap_or_default();
        if let Some(object) = report.as_object_mut() {
            object.insert("weight_range".into(), weights.reason.into());
        }
        // Which quantized layers the runtime fuses into int8 kernels (planners see it with the
        // probes); a runtime that cannot tell, or a failure to ask, leaves it out.
        let coverage = profagent_runtime::fusion_coverage(
            self.runtime.as_ref(),
            &ModelSource::Bytes(quantized.to_bytes()),
            quantized.graph(),
            &self.session,
        );
        if let (Ok(Some(fusion)), Some(object)) = (coverage, report.as_object_mut()) {
            if fusion.quantized() > 0 {
                object.insert("int8_kernels".into(), fusion.summary_line().into());
            }
        }
        Ok((quantized, report))
    }

    fn evaluate(&mut self, model: &Model, split: Split) -> Result<Evaluation, AgentError> {
        let options = EvalOptions {
            latency_batches: Vec::new(),
            ..self.eval.clone()
        };
        self.evaluate_with(model, split, &options)
    }

    fn compare_speed(
        &mut self,
        reference: &Model,
        candidate: &Model,
        split: Split,
    ) -> Result<profagent_runtime::SpeedComparison, AgentError> {
        let dataset = match split {
            Split::Feedback => &self.feedback,
            Split::Holdout => &self.holdout,
        };
        let input = self.timing_input(dataset)?;
        profagent_runtime::compare_latency(
            self.runtime.as_ref(),
            &ModelSource::Bytes(reference.to_bytes()),
            &ModelSource::Bytes(candidate.to_bytes()),
            &self.session,
            &input,
            &self.compare,
        )
        .map_err(|e| step("latency comparison", e))
    }

    fn layer_latencies(&mut self, model: &Model) -> Result<Vec<(String, String, f64)>, AgentError> {
        // The same real sample latency comparisons time (shapes as given with --input-shape,
        // the model's fixed batch when it has one), not synthetic inputs of declared shapes.
        let inputs = self.timing_input(&self.feedback)?;
        layer_latencies(self.runtime.as_ref(), model, &self.session, &inputs)
            .map_err(|e| step("per-layer profile", e))
    }
}

/// A model whose convolutions do at least this share of its MACs is called convolutional...
pub const CONVOLUTIONAL_MACS_SHARE: f64 = 0.8;
/// ...and one whose convolutions do at most this share, a transformer; mixed in between. Only a
/// description for planners (the prompt's "family"): no decision of the loop reads it.
pub const TRANSFORMER_MACS_SHARE: f64 = 0.2;

/// "convolutional", "transformer" or "mixed" from the convolutions' share of the MACs.
pub fn model_family(conv_share: f64) -> &'static str {
    if conv_share >= CONVOLUTIONAL_MACS_SHARE {
        "convolutional"
    } else if conv_share <= TRANSFORMER_MACS_SHARE {
        "transformer"
    } else {
        "mixed"
    }
}

/// Timed runs per model for the report's per-layer latency chart.
const LAYER_PROFILE_RUNS: usize = 10;
const LAYER_PROFILE_WARMUP: usize = 3;

/// Median per-layer latency (ms) of `model` on `inputs` from the runtime's profiler, by layer
/// name.
fn layer_latencies(
    runtime: &dyn Runtime,
    model: &Model,
    session: &SessionOptions,
    inputs: &[(String, profagent_runtime::Tensor)],
) -> Result<Vec<(String, String, f64)>, String> {
    use profagent_runtime::{profile_model, ProfileSettings};
    let mut profile =
        profagent_profile::static_profile(model, &profagent_profile::ProfileOptions::default())
            .map_err(|e| e.to_string())?;
    let measured = profile_model(
        runtime,
        &ModelSource::Bytes(model.to_bytes()),
        model,
        session,
        inputs,
        ProfileSettings {
            warmup: LAYER_PROFILE_WARMUP,
            runs: LAYER_PROFILE_RUNS,
        },
    )
    .map_err(|e| e.to_string())?;
    profagent_profile::merge_measured(&mut profile, &measured);
    Ok(profile
        .layers
        .iter()
        .filter_map(|l| {
            let op = l.op_types.first().cloned().unwrap_or_default();
            l.latency_ms.map(|ms| (l.name.clone(), op, ms))
        })
        .collect())
}

impl OrtBench {
    /// One real sample of `dataset` at batch 1 (the model's fixed batch when it has one),
    /// as the timed input of latency comparisons.
    fn timing_input(
        &self,
        dataset: &Dataset,
    ) -> Result<Vec<(String, profagent_runtime::Tensor)>, AgentError> {
        let first = dataset
            .subset(0, Some(1), None)
            .map_err(|e| step("loading a timing sample", e))?;
        profagent_data::calibration_batches(&first, &self.inputs, 1)
            .map_err(|e| step("loading a timing sample", e))?
            .into_iter()
            .next()
            .ok_or_else(|| step("loading a timing sample", "the data slice is empty"))
    }

    fn evaluate_with(
        &mut self,
        model: &Model,
        split: Split,
        options: &EvalOptions,
    ) -> Result<Evaluation, AgentError> {
        let bytes = model.to_bytes();
        let model_bytes = bytes.len() as u64;
        let slot = match split {
            Split::Feedback => 0,
            Split::Holdout => 1,
        };
        // Only needed until this slice's reference logits are cached (then the comparison with
        // them says the same): spares comparing the model's bytes on every evaluation.
        let uncached = self.reference_logits[slot].is_none();
        let is_reference = uncached && bytes == self.reference;
        if uncached && !is_reference {
            // The original's outputs on this slice first (once, untimed).
            let reference = Model::decode(&self.reference, std::path::Path::new("original model"))
                .map_err(|e| step("reference", e))?;
            let untimed = EvalOptions {
                latency_batches: Vec::new(),
                ..self.eval.clone()
            };
            self.evaluate_with(&reference, split, &untimed)?;
        }
        let options = &EvalOptions {
            keep_logits: is_reference,
            reference_logits: self.reference_logits[slot].clone(),
            ..options.clone()
        };
        let mut session = self
            .runtime
            .load(&ModelSource::Bytes(bytes), &self.session)
            .map_err(|e| step("load in the runtime", e))?;
        let dataset = match split {
            Split::Feedback => &self.feedback,
            Split::Holdout => &self.holdout,
        };
        let mut record = profagent_data::evaluate(session.as_mut(), None, dataset, options)
            .map_err(|e| match e {
                // The data itself is unusable: bad input (exit 2), as in `eval`.
                profagent_data::DataError::BadImage { .. }
                | profagent_data::DataError::BadArray { .. }
                | profagent_data::DataError::BadDataset { .. }
                | profagent_data::DataError::LabelOutOfRange { .. }
                | profagent_data::DataError::InputShapeMismatch { .. }
                | profagent_data::DataError::SizeMismatch { .. } => AgentError::BadInput {
                    step: "evaluating".into(),
                    reason: e.to_string(),
                },
                other => step("evaluate", other),
            })?;
        // One process evaluates every candidate: its resident-memory high-water mark only
        // grows and says nothing about this model (the report showed the baseline's peak for
        // every model), so it is left out rather than reported wrong.
        record.peak_rss_bytes = None;
        let (cosine, agreement) = match (&record.fidelity, record.logits.take()) {
            (Some(f), _) => (Some(f.mean_cosine), Some(f.top1_agreement * 100.0)),
            (None, Some(logits)) => {
                self.reference_logits[slot] = Some(Arc::new(logits));
                (Some(1.0), Some(100.0))
            }
            (None, None) => (None, None),
        };
        let worst_cosine = record.fidelity.as_ref().map(|f| f.worst_cosine);
        let costs =
            profagent_profile::static_profile(model, &profagent_profile::ProfileOptions::default())
                .ok()
                .map(|p| (p.model.params, p.model.macs));
        // The largest batch above 1 the evaluator timed (none when only batch 1 was).
        let latency_batch = record
            .latency
            .iter()
            .filter(|point| point.batch > 1)
            .max_by_key(|point| point.batch)
            .map(|point| profagent_agent::facts::LatencyAt {
                batch: point.batch,
                median_ms: point.median_ms,
            });
        Ok(Evaluation {
            top1: record.top1.map(|t| t * 100.0),
            top1_interval: record.top1_interval.map(|i| profagent_stats::Estimate {
                value: i.value * 100.0,
                low: i.low * 100.0,
                high: i.high * 100.0,
                confidence: i.confidence,
            }),
            // Filled by the loop from an interleaved comparison.
            latency_ms: 0.0,
            speed: None,
            accuracy_change: None,
            correct: record.correct.take().map(Arc::new),
            worst_cosine,
            model_bytes,
            images: record.samples,
            loss: record.nll,
            top5: record.top5.map(|t| t * 100.0),
            latency_batch,
            peak_memory_bytes: record.peak_rss_bytes,
            params: costs.map(|(params, _)| params),
            macs: costs.map(|(_, macs)| macs),
            cosine,
            agreement,
            details: serde_json::to_value(&record).unwrap_or_default(),
        })
    }
}
