//! Shared by the planner tests of this crate: a model's planning input as the loop builds it
//! before anything is measured.
#![allow(dead_code)]
use profagent_agent::compressor::Analysis;
use profagent_agent::facts::{Budget, Evaluation, PlanningInput};
use profagent_onnx::Model;
use profagent_plan::PlanContext;

/// The model's MACs and parameters (static profile).
pub fn costs(model: &Model) -> (u64, u64) {
    let p = profagent_profile::static_profile(model, &profagent_profile::ProfileOptions::default())
        .unwrap();
    (p.model.macs, p.model.params)
}

/// The planning input of `model` from its `analysis`, baseline and current alike (top-1
/// `top1`), with a MACs target of `target_macs` within 1 point.
pub fn planning_input(
    model: &Model,
    analysis: Analysis,
    top1: Option<f64>,
    target_macs: f64,
) -> (PlanningInput, PlanContext) {
    let (macs, params) = costs(model);
    let evaluation = Evaluation {
        macs: Some(macs),
        params: Some(params),
        ..Evaluation::new(top1, 1.0, 1, 100_000)
    };
    let input = PlanningInput {
        model_name: "m".into(),
        family: analysis.family,
        runtime: "onnxruntime".into(),
        baseline: evaluation.clone(),
        current: evaluation,
        current_quantization: "none".into(),
        layers: analysis.layers,
        groups: analysis.groups,
        quant_probes: vec![],
        budget: Budget {
            max_acc_drop: 1.0,
            target_latency_ms: None,
            target_memory_bytes: None,
            target_speedup: None,
            target_macs_fraction: Some(target_macs),
            min_cosine: None,
            acc_confidence: 0.9,
        },
        history: vec![],
        rounds_left: 3,
        patience: 2,
    };
    (input, analysis.context)
}
