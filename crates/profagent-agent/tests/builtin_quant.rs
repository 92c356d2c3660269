//! The built-in planner's choice of quantization mode from measured probes, with accuracy and
//! fidelity bounds: a mode that meets the whole budget alone first, then the best within half
//! the bounds (room for pruning), then the best within the bounds at all, never one outside.
use profagent_agent::builtin::BuiltinPlanner;
use profagent_agent::facts::*;
use profagent_plan::{PlanContext, QuantActivations, QuantCalibration, QuantMode};

fn evaluation() -> Evaluation {
    Evaluation {
        top5: None,
        latency_batch: None,
        peak_memory_bytes: None,
        params: None,
        top1: Some(80.0),
        top1_interval: None,
        latency_ms: 100.0,
        speed: Some(SpeedComparison::known(100.0, 100.0, 0.02)),
        accuracy_change: Some(same_images()),
        correct: None,
        worst_cosine: None,
        model_bytes: 100_000_000,
        images: 64,
        loss: None,
        macs: Some(1_000_000),
        cosine: Some(1.0),
        agreement: Some(100.0),
        details: serde_json::Value::Null,
    }
}

/// Top-1 unchanged on 5,000 images (no image flips).
fn same_images() -> PairedAccuracy {
    PairedAccuracy {
        samples: 5000,
        baseline_correct: 4000,
        candidate_correct: 4000,
        only_baseline: 0,
        only_candidate: 0,
    }
}

fn probe(mode: QuantMode, speedup: f64, cosine: f64) -> QuantProbe {
    QuantProbe {
        mode,
        activations: None,
        latency_ms: 100.0 / speedup,
        speedup,
        speed: Some(SpeedComparison::known(100.0, 100.0 / speedup, 0.02)),
        model_bytes: 26_000_000,
        top1: Some(80.0),
        accuracy_change: Some(same_images()),
        cosine: Some(cosine),
        error: None,
        kernels: None,
        layers: Vec::new(),
        calibration: None,
        calibration_trials: Vec::new(),
    }
}

fn input(target_speedup: f64, probes: Vec<QuantProbe>) -> PlanningInput {
    PlanningInput {
        model_name: "vit".into(),
        family: "transformer".into(),
        runtime: "ort".into(),
        baseline: evaluation(),
        current: evaluation(),
        current_quantization: "none".into(),
        layers: vec![],
        groups: vec![],
        quant_probes: probes,
        budget: Budget {
            max_acc_drop: 1.0,
            target_latency_ms: None,
            target_memory_bytes: None,
            target_speedup: Some(target_speedup),
            target_macs_fraction: None,
            min_cosine: Some(0.999),
            acc_confidence: 0.9,
        },
        history: vec![],
        rounds_left: 3,
        patience: 2,
    }
}

/// (mode, rationale) of the planner's first round.
fn choice(input: &PlanningInput) -> (Option<QuantMode>, String) {
    let plan = BuiltinPlanner::new().plan(input, &PlanContext::new());
    (
        plan.quantization.as_ref().map(|q| q.default.mode),
        plan.rationale,
    )
}

#[test]
fn a_mode_that_meets_the_whole_budget_is_taken_even_beyond_half_the_fidelity_budget() {
    // Dynamic int8 keeps cosine 0.99941: 59 % of the 0.001 fidelity budget, and 2.9x faster.
    let probes = vec![
        probe(QuantMode::Dynamic, 2.9, 0.99941),
        probe(QuantMode::Static, 1.4, 0.9988),
    ];
    let (mode, why) = choice(&input(2.0, probes));
    assert_eq!(mode, Some(QuantMode::Dynamic), "{why}");
    assert!(why.contains("meets the whole budget"), "{why}");
}

#[test]
fn within_half_the_bounds_is_preferred_when_no_mode_meets_the_budget() {
    let probes = vec![
        probe(QuantMode::Dynamic, 2.9, 0.99941),
        probe(QuantMode::Static, 1.4, 0.99981),
    ];
    // Neither reaches 4x: static leaves most of the fidelity budget to pruning.
    let (mode, why) = choice(&input(4.0, probes.clone()));
    assert_eq!(mode, Some(QuantMode::Static), "{why}");
    assert!(why.contains("then prune"), "{why}");
    // Without a mode within half the bounds, the best within the bounds at all.
    let (mode, why) = choice(&input(4.0, vec![probes[0].clone()]));
    assert_eq!(mode, Some(QuantMode::Dynamic), "{why}");
    assert!(why.contains("more than half"), "{why}");
}

#[test]
fn a_mode_outside_the_fidelity_bound_is_never_taken() {
    // Int4 is fast here but moves the outputs beyond the bound.
    let probes = vec![probe(QuantMode::Int4, 3.5, 0.983)];
    let (mode, why) = choice(&input(2.0, probes));
    assert_eq!(mode, None, "{why}");
}

/// Issue 18: static quantization is probed with uint8 and int8 activations; the plan takes the
/// activation type of the faster probe (ONNX Runtime fuses the two differently per model).
#[test]
fn the_plan_takes_the_activation_type_of_the_faster_static_probe() {
    let with = |activations, speedup| QuantProbe {
        activations: Some(activations),
        ..probe(QuantMode::Static, speedup, 0.99981)
    };
    for (uint8, int8, expected) in [
        (3.0, 1.1, QuantActivations::Uint8),
        (1.2, 1.9, QuantActivations::Int8),
    ] {
        let input = input(
            4.0,
            vec![
                with(QuantActivations::Uint8, uint8),
                with(QuantActivations::Int8, int8),
            ],
        );
        let plan = BuiltinPlanner::new().plan(&input, &PlanContext::new());
        let default = plan.quantization.as_ref().expect("a static plan").default;
        assert_eq!(default.mode, QuantMode::Static, "{}", plan.rationale);
        assert_eq!(default.activations, expected, "{}", plan.rationale);
        assert!(
            plan.rationale
                .contains(&format!("{} activations", expected.as_str())),
            "{}",
            plan.rationale
        );
    }
}

/// Issue 18 item 1: the calibration method the static probe kept (measured on the feedback
/// slice) is the one the plan asks for, and the rationale names it.
#[test]
fn the_plan_takes_the_calibration_the_static_probe_kept() {
    for calibration in [
        None,
        Some(QuantCalibration::Entropy),
        Some(QuantCalibration::Mse),
    ] {
        let probe = QuantProbe {
            activations: Some(QuantActivations::Uint8),
            calibration,
            ..probe(QuantMode::Static, 3.0, 0.9999)
        };
        let plan = BuiltinPlanner::new().plan(&input(4.0, vec![probe]), &PlanContext::new());
        let default = plan.quantization.as_ref().expect("a static plan").default;
        assert_eq!(default.calibration, calibration.unwrap_or_default());
        let named = format!("{} calibration", default.calibration.as_str());
        assert_eq!(
            plan.rationale.contains(&named),
            calibration.is_some_and(|c| c != QuantCalibration::Minmax),
            "{}",
            plan.rationale
        );
    }
}

/// Issue 18 item 4: a mixed probe (dynamic MatMuls, static convolutions) chosen on its
/// measurement becomes a plan whose per-layer list reproduces exactly the modes probed.
#[test]
fn a_mixed_probe_is_planned_with_its_per_layer_modes() {
    let conv = profagent_plan::LayerQuantization {
        layer: "patch_embed.proj".into(),
        mode: QuantMode::Static,
        per_channel: true,
        signed_weights: true,
        rationale: "convolution".into(),
    };
    let mixed = QuantProbe {
        activations: Some(QuantActivations::Uint8),
        layers: vec![conv.clone()],
        ..probe(QuantMode::Dynamic, 2.4, 0.99985)
    };
    let probes = vec![
        probe(QuantMode::Dynamic, 2.0, 0.99985),
        probe(QuantMode::Static, 0.8, 0.9999),
        mixed,
    ];
    let plan = BuiltinPlanner::new().plan(&input(4.0, probes), &PlanContext::new());
    let quantization = plan.quantization.expect("a quantization plan");
    assert_eq!(quantization.default.mode, QuantMode::Dynamic);
    assert_eq!(quantization.layers, vec![conv]);
    assert!(
        plan.rationale.starts_with("mixed: dynamic"),
        "{}",
        plan.rationale
    );
}
