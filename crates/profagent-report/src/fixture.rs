//! An example `RunReport` shaped like a real `profagent compress` run on ResNet-20 / CIFAR-10
//! (baseline 88 % top-1, three rounds: one rolled back for its accuracy drop, two accepted,
//! 22 layers with measured latency). Tests and the documentation render it; it is never used
//! as a result.
use std::collections::BTreeMap;

use profagent_plan::{
    CompressionPlan, ImportanceCriterion, IssueCode, LayerQuantization, PlanIssue, PruneDecision,
    PruneUnit, QuantCalibration, QuantMode, QuantSetting, QuantizationPlan, ResolvedPrune,
    Severity, PLAN_SCHEMA_VERSION,
};
use serde_json::json;

use profagent_record::{
    Budget, CalibrationTrial, Decision, Estimate, Evaluation, FinalResult, GroupSensitivity,
    LatencyAt, LayerRow, ModelInfo, QuantProbe, RoundRecord, RunReport, SpeedComparison,
    StopReason, REPORT_FORMAT,
};

/// Layers of ResNet-20 with their median batch-1 latency in the input and in the final model (ms).
const LAYERS: [(&str, &str, f64, f64); 22] = [
    ("conv1", "Conv", 0.031, 0.030),
    ("layer1.0.conv1", "Conv", 0.046, 0.022),
    ("layer1.0.conv2", "Conv", 0.045, 0.022),
    ("layer1.1.conv1", "Conv", 0.045, 0.021),
    ("layer1.1.conv2", "Conv", 0.046, 0.022),
    ("layer1.2.conv1", "Conv", 0.045, 0.021),
    ("layer1.2.conv2", "Conv", 0.045, 0.022),
    ("layer2.0.conv1", "Conv", 0.041, 0.016),
    ("layer2.0.conv2", "Conv", 0.039, 0.017),
    ("layer2.0.downsample.0", "Conv", 0.012, 0.007),
    ("layer2.1.conv1", "Conv", 0.038, 0.015),
    ("layer2.1.conv2", "Conv", 0.039, 0.017),
    ("layer2.2.conv1", "Conv", 0.038, 0.015),
    ("layer2.2.conv2", "Conv", 0.038, 0.017),
    ("layer3.0.conv1", "Conv", 0.037, 0.013),
    ("layer3.0.conv2", "Conv", 0.036, 0.016),
    ("layer3.0.downsample.0", "Conv", 0.010, 0.006),
    ("layer3.1.conv1", "Conv", 0.036, 0.012),
    ("layer3.1.conv2", "Conv", 0.036, 0.016),
    ("layer3.2.conv1", "Conv", 0.036, 0.012),
    ("layer3.2.conv2", "Conv", 0.036, 0.016),
    ("fc", "Gemm", 0.004, 0.004),
];

/// Layers the accepted plans kept in float (first and last layers are the most sensitive).
const FLOAT_LAYERS: [&str; 2] = ["conv1", "fc"];

fn evaluation(
    top1: f64,
    top5: f64,
    latency_ms: f64,
    batch_ms: f64,
    bytes: u64,
    params: u64,
    macs: u64,
) -> Evaluation {
    Evaluation {
        top5: Some(top5),
        latency_batch: Some(LatencyAt {
            batch: 32,
            median_ms: batch_ms,
        }),
        peak_memory_bytes: Some(58_200_000 + bytes * 3),
        params: Some(params),
        macs: Some(macs),
        ..Evaluation::new(Some(top1), latency_ms, bytes, 2000)
    }
}

fn prune(target: &str, ratio: f64, rationale: &str) -> PruneDecision {
    PruneDecision {
        target: target.into(),
        ratio,
        keep: None,
        unit: PruneUnit::Channels,
        criterion: ImportanceCriterion::L1,
        round_to: 1,
        rationale: rationale.into(),
    }
}

fn resolved(group: &str, ratio: f64, current: usize, keep: usize) -> ResolvedPrune {
    ResolvedPrune {
        group: group.into(),
        unit: PruneUnit::Channels,
        criterion: ImportanceCriterion::L1,
        ratio,
        round_to: 1,
        current,
        keep,
        unit_channels: 1,
    }
}

fn static_int8(rationale: &str) -> QuantizationPlan {
    QuantizationPlan {
        default: QuantSetting::new(QuantMode::Static),
        layers: FLOAT_LAYERS
            .iter()
            .map(|layer| LayerQuantization {
                layer: layer.to_string(),
                mode: QuantMode::None,
                per_channel: true,
                signed_weights: true,
                rationale: "first/last layer: most sensitive, and too small to gain from int8"
                    .into(),
            })
            .collect(),
        rationale: rationale.into(),
    }
}

/// Static int8 on every layer but the float ones.
fn quantized_layers() -> BTreeMap<String, String> {
    LAYERS
        .iter()
        .filter(|(name, ..)| !FLOAT_LAYERS.contains(name))
        .map(|(name, ..)| (name.to_string(), "static".to_string()))
        .collect()
}

fn plan(
    rationale: &str,
    pruning: Vec<PruneDecision>,
    quantization: QuantizationPlan,
) -> CompressionPlan {
    CompressionPlan {
        schema_version: PLAN_SCHEMA_VERSION,
        rationale: rationale.into(),
        pruning,
        quantization: Some(quantization),
    }
}

fn round_one() -> RoundRecord {
    let decisions = [
        "layer2.0.conv1",
        "layer2.1.conv1",
        "layer3.0.conv1",
        "layer3.1.conv1",
    ];
    RoundRecord {
        speed_vs_best: None,
        decision: Some(Decision::AccuracyAtRisk),
        round: 1,
        planner: "builtin".into(),
        attempts: 2,
        plan: Some(plan(
            "The block-internal convolutions of layer2 and layer3 take 38 % of the latency and \
             their L1 norms are spread out; halve them and quantize to static int8, which the \
             probe measured at 1.71x on this CPU.",
            decisions
                .iter()
                .map(|d| prune(d, 0.5, "inner conv of a residual block: its width is free to change"))
                .collect(),
            static_int8("static int8 (QDQ) is the fastest mode the probe measured; Conv has no dynamic kernel"),
        )),
        resolved_pruning: decisions
            .iter()
            .map(|d| if d.starts_with("layer2") { resolved(d, 0.5, 32, 16) } else { resolved(d, 0.5, 64, 32) })
            .collect(),
        quantization: quantized_layers(),
        warnings: vec![],
        rejected_issues: vec![PlanIssue {
            severity: Severity::Error,
            code: IssueCode::UnknownTarget,
            location: "pruning[3]".into(),
            message: "'layer3.1.conv3' is not a prunable group or layer; closest: layer3.1.conv1, layer3.1.conv2".into(),
        }],
        failure: None,
        apply: serde_json::Value::Null,
        evaluation: Some(evaluation(84.85, 99.20, 0.41, 6.02, 292_880, 205_930, 28_410_000)),
        acc_drop: Some(3.15),
        accepted: false,
        verdict: "rolled back: top-1 drop 3.15 pp exceeds the budget of 1.00 pp".into(),
        sensitivity: Vec::new(),
        seconds: 41.7,
    }
}

fn round_two() -> RoundRecord {
    let decisions = ["layer3.0.conv1", "layer3.1.conv1", "layer3.2.conv1"];
    RoundRecord {
        speed_vs_best: None,
        decision: Some(Decision::Accepted),
        round: 2,
        planner: "builtin".into(),
        attempts: 1,
        plan: Some(plan(
            "Round 1 lost 3.15 pp, most of it from layer2. Prune only layer3's inner convolutions \
             by a quarter (their sensitivity was the lowest) and keep static int8.",
            decisions
                .iter()
                .map(|d| prune(d, 0.25, "lowest measured sensitivity (0.1-0.2 pp at 25 %)"))
                .collect(),
            static_int8("static int8 held top-1 within 0.3 pp on its own"),
        )),
        resolved_pruning: decisions
            .iter()
            .map(|d| resolved(d, 0.25, 64, 48))
            .collect(),
        quantization: quantized_layers(),
        warnings: vec![PlanIssue {
            severity: Severity::Warning,
            code: IssueCode::MissingRationale,
            location: "quantization.layers[1]".into(),
            message: "no rationale given for keeping 'fc' in float".into(),
        }],
        rejected_issues: vec![],
        failure: None,
        apply: serde_json::Value::Null,
        evaluation: Some(evaluation(
            87.60, 99.55, 0.49, 7.35, 318_448, 245_530, 36_190_000,
        )),
        acc_drop: Some(0.40),
        accepted: true,
        verdict: "accepted: top-1 drop 0.40 pp within 1.00 pp; 1.88x faster".into(),
        sensitivity: Vec::new(),
        seconds: 38.2,
    }
}

fn round_three() -> RoundRecord {
    let decisions = ["layer2.1.conv1", "layer2.2.conv1"];
    RoundRecord {
        speed_vs_best: None,
        decision: Some(Decision::Accepted),
        round: 3,
        planner: "builtin".into(),
        attempts: 1,
        plan: Some(plan(
            "0.60 pp of budget left. Take a quarter of two layer2 inner convolutions, the next \
             least sensitive groups; keep the quantization.",
            decisions
                .iter()
                .map(|d| prune(d, 0.25, "next lowest sensitivity (0.3-0.4 pp at 25 %)"))
                .collect(),
            static_int8("unchanged from round 2"),
        )),
        resolved_pruning: decisions
            .iter()
            .map(|d| resolved(d, 0.25, 32, 24))
            .collect(),
        quantization: quantized_layers(),
        warnings: vec![],
        rejected_issues: vec![],
        failure: None,
        apply: serde_json::Value::Null,
        evaluation: Some(evaluation(
            87.25, 99.45, 0.46, 6.88, 311_536, 240_890, 34_340_000,
        )),
        acc_drop: Some(0.75),
        accepted: true,
        verdict: "accepted: top-1 drop 0.75 pp within 1.00 pp; 2.00x faster; budget met, stopping"
            .into(),
        sensitivity: Vec::new(),
        seconds: 36.9,
    }
}

/// The example report (see the module documentation).
pub fn example_report() -> RunReport {
    let baseline = evaluation(88.00, 99.65, 0.92, 14.10, 1_096_544, 272_474, 40_810_000);
    let rounds = vec![round_one(), round_two(), round_three()];
    let chosen = rounds[2].evaluation.clone();
    let holdout_baseline = Evaluation {
        images: 5000,
        ..evaluation(88.12, 99.66, 0.92, 14.10, 1_096_544, 272_474, 40_810_000)
    };
    let holdout_final = Evaluation {
        images: 5000,
        ..evaluation(87.46, 99.48, 0.46, 6.88, 311_536, 240_890, 34_340_000)
    };
    RunReport {
        format: REPORT_FORMAT.into(),
        tool_version: "0.1.0".into(),
        planner: "builtin".into(),
        model: ModelInfo {
            path: "models/resnet20_cifar10.onnx".into(),
            sha256: "5f0c3a2e9b7d41c8a6e2f1d0b9c8a7e6f5d4c3b2a1908f7e6d5c4b3a29180f7e".into(),
            bytes: 1_096_544,
        },
        data: json!({
            "dataset": "cifar10-test",
            "calibration": "256 images",
            "feedback": "2000 images",
            "holdout": "5000 images (never seen by calibration or planning)",
        }),
        machine: json!({
            "runtime": "onnxruntime 1.32.0",
            "threads": 1,
            "cpu": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
            "logical_cores": 2,
            "int8": "AVX-512 VNNI, AMX-INT8",
            "os": "linux x86_64",
        }),
        budget: Budget {
            max_acc_drop: 1.0,
            target_latency_ms: None,
            target_memory_bytes: None,
            target_speedup: Some(1.8),
            target_macs_fraction: None,
            min_cosine: None,
            acc_confidence: 0.9,
        },
        baseline,
        quant_probes: vec![
            QuantProbe {
                mode: QuantMode::Dynamic,
                activations: None,
                kernels: None,
                layers: Vec::new(),
                latency_ms: 0.95,
                speedup: 0.97,
                model_bytes: 1_096_544,
                top1: Some(88.00),
                error: None,
                speed: None,
                accuracy_change: None,
                cosine: None,
                calibration: None,
                calibration_trials: Vec::new(),
            },
            QuantProbe {
                mode: QuantMode::Static,
                activations: None,
                kernels: None,
                layers: Vec::new(),
                latency_ms: 0.54,
                speedup: 1.71,
                model_bytes: 369_812,
                top1: Some(87.70),
                error: None,
                speed: None,
                accuracy_change: None,
                cosine: None,
                calibration: Some(QuantCalibration::Entropy),
                calibration_trials: [
                    (QuantCalibration::Minmax, 87.50),
                    (QuantCalibration::Percentile, 87.60),
                    (QuantCalibration::Entropy, 87.70),
                    (QuantCalibration::Mse, 87.60),
                ]
                .into_iter()
                .map(|(method, top1)| CalibrationTrial {
                    method,
                    top1: Some(top1),
                    accuracy_change: None,
                    cosine: None,
                    model_bytes: 369_812,
                    error: None,
                })
                .collect(),
            },
            QuantProbe {
                mode: QuantMode::Int4,
                activations: None,
                kernels: None,
                layers: Vec::new(),
                latency_ms: 0.92,
                speedup: 1.0,
                model_bytes: 1_096_544,
                top1: None,
                error: Some("int4 is weight-only for MatMul; this model has none".into()),
                speed: None,
                accuracy_change: None,
                cosine: None,
                calibration: None,
                calibration_trials: Vec::new(),
            },
        ],
        sensitivity: [
            ("layer3.0.conv1", 64, 48, 0.20),
            ("layer3.1.conv1", 64, 48, 0.10),
            ("layer3.2.conv1", 64, 48, 0.20),
            ("layer2.1.conv1", 32, 24, 0.40),
            ("layer2.2.conv1", 32, 24, 0.30),
            ("layer2.0.downsample.0", 32, 24, 2.60),
        ]
        .into_iter()
        .map(|(group, current, keep, drop)| GroupSensitivity {
            group: group.into(),
            ratio: 0.25,
            current,
            keep,
            top1: Some(88.0 - drop),
            drop: Some(drop),
            loss_increase: Some(drop / 25.0),
            expected_drop: Some(drop),
            cosine_loss: None,
            images: None,
            points_per_nat: None,
            error: None,
        })
        .collect(),
        rounds,
        final_result: Some(FinalResult {
            model_path: "runs/resnet20/model.onnx".into(),
            sha256: "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
            feedback: chosen.unwrap_or_else(|| evaluation(0.0, 0.0, 0.0, 0.0, 0, 0, 0)),
            holdout_baseline: Some(holdout_baseline),
            holdout_final: Some(holdout_final),
            acc_drop: Some(0.66),
            drop_interval: Some(Estimate {
                value: 0.66,
                low: 0.21,
                high: 1.11,
                confidence: 0.95,
            }),
            speedup: Some(2.0),
            speed: Some(SpeedComparison {
                speedup: Estimate {
                    value: 2.0,
                    low: 1.93,
                    high: 2.08,
                    confidence: 0.96,
                },
                reference_ms: 0.92,
                candidate_ms: Estimate {
                    value: 0.46,
                    low: 0.45,
                    high: 0.48,
                    confidence: 0.96,
                },
                pairs: 12,
                runs_per_block: 40,
                stopped: "interval within ±3 %".into(),
                seconds: 4.2,
                batch: 1,
                load: None,
            }),
            fallback: Vec::new(),
            size_reduction: Some(0.716),
            budget_met: true,
            stop_reason: "speedup target reached in round 3 with 0.25 pp of accuracy budget left"
                .into(),
            stop: Some(StopReason::BudgetMet { after_round: 3 }),
            accepted_rounds: vec![2, 3],
            chosen_round: Some(3),
        }),
        replay: None,
        seconds: 161.4,
        layers: LAYERS
            .iter()
            .map(|(layer, op, before, after)| LayerRow {
                layer: layer.to_string(),
                op_type: op.to_string(),
                before_ms: Some(*before),
                after_ms: Some(*after),
            })
            .collect(),
    }
}
