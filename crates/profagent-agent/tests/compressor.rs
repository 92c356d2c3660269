//! The loop with the built-in planner against a scripted workbench: quantization first (the
//! mode measured fastest), pruning with back-off after an accuracy collapse, rollback, a
//! report with every round, and a replay that rebuilds the same model byte for byte.
use std::collections::BTreeMap;

use profagent_agent::builtin::BuiltinPlanner;
use profagent_agent::compressor::{
    compress, replay, Analysis, CompressOptions, ReplayScript, Split, Workbench,
};
use profagent_agent::facts::*;
use profagent_agent::report::RunReport;
use profagent_agent::rundir::RunDir;
use profagent_agent::AgentError;
use profagent_onnx::proto::{GraphProto, ModelProto};
use profagent_onnx::Model;
use profagent_plan::{
    GroupInfo, LayerInfo, PlanContext, QuantActivations, QuantCalibration, QuantMode, QuantSetting,
    ResolvedPrune,
};

/// A fake model is its edit log: the workbench reads accuracy and speed from it.
fn tag(model: &Model) -> String {
    model.graph().doc_string.clone().unwrap_or_default()
}

fn with_tag(model: &Model, extra: &str) -> Model {
    let mut out = model.clone();
    out.graph_mut().doc_string = Some(format!("{}{extra}", tag(model)));
    out
}

const GROUPS: [(&str, usize, u64); 5] = [
    ("g0", 256, 900),
    ("g1", 256, 800),
    ("fragile", 128, 700),
    ("g3", 128, 600),
    ("g4", 64, 100),
];

struct FakeBench {
    evaluations: usize,
    /// The models `layer_latencies` profiled (their edit logs), in order.
    profiled: Vec<String>,
    /// A layer the profiler measures 100x slower than its MACs say.
    slow_layer: Option<&'static str>,
    /// Static quantization with entropy calibration keeps 0.3 points more than min-max,
    /// percentile loses 0.2 (otherwise every method scores alike).
    calibration_matters: bool,
    /// The channel block the runtime pads every group to (`GroupFacts::runtime_block`).
    block: Option<u32>,
}

fn fake_bench() -> FakeBench {
    FakeBench {
        evaluations: 0,
        profiled: Vec::new(),
        slow_layer: None,
        calibration_matters: false,
        block: None,
    }
}

impl FakeBench {
    fn channels(model: &Model, group: &str, initial: usize) -> usize {
        tag(model)
            .split(';')
            .filter_map(|e| e.strip_prefix(&format!("p{group}=")))
            .filter_map(|v| v.parse().ok())
            .next_back()
            .unwrap_or(initial)
    }
}

impl Workbench for FakeBench {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"runtime": "fake"})
    }
    fn analyze(&mut self, model: &Model) -> Result<Analysis, AgentError> {
        let mut context = PlanContext::new();
        context.layers.insert(
            "conv".into(),
            LayerInfo {
                op_types: vec!["Conv".into()],
                quant_modes: [QuantMode::Dynamic, QuantMode::Static].into(),
            },
        );
        let mut groups = Vec::new();
        let mut layers = Vec::new();
        for (id, initial, macs) in GROUPS {
            let channels = Self::channels(model, id, initial);
            // One layer per group, named like it, its MACs shrinking with its channels.
            layers.push(LayerFacts {
                name: id.into(),
                op_type: "Conv".into(),
                params: 1000,
                macs: macs * channels as u64,
                ..Default::default()
            });
            context
                .groups
                .insert(id.into(), GroupInfo::new(channels, vec![id.into()]));
            groups.push(GroupFacts {
                id: id.into(),
                channels,
                heads: None,
                params: 1000,
                macs: macs * channels as u64,
                latency_ms: None,
                sensitivity: None,
                fidelity_loss: None,
                prunable: true,
                note: None,
                runtime_block: self.block,
                ..Default::default()
            });
        }
        Ok(Analysis {
            context,
            layers,
            groups,
            family: "convolutional".into(),
        })
    }
    fn prune(
        &mut self,
        model: &Model,
        decisions: &[ResolvedPrune],
    ) -> Result<(Model, serde_json::Value), AgentError> {
        let extra: String = decisions
            .iter()
            .map(|d| format!("p{}={};", d.group, d.keep))
            .collect();
        Ok((
            with_tag(model, &extra),
            serde_json::json!({"groups": decisions.len()}),
        ))
    }
    fn quantize(
        &mut self,
        model: &Model,
        layers: &BTreeMap<String, QuantSetting>,
    ) -> Result<(Model, serde_json::Value), AgentError> {
        let setting = layers.values().next().unwrap();
        let (mode, calibration) = (setting.mode, setting.calibration.as_str());
        Ok((
            with_tag(model, &format!("q{mode}:{calibration};")),
            serde_json::json!({"layers": layers.len()}),
        ))
    }
    fn compare_speed(
        &mut self,
        reference: &Model,
        candidate: &Model,
        _split: Split,
    ) -> Result<SpeedComparison, AgentError> {
        let reference = self.evaluate(reference, Split::Feedback)?;
        let candidate = self.evaluate(candidate, Split::Feedback)?;
        Ok(SpeedComparison::known(
            reference.latency_ms,
            candidate.latency_ms,
            0.02,
        ))
    }

    /// The runtime's per-layer profile: a group's layer takes (MACs per channel) / 100 ms
    /// times the fraction of channels left, as in `evaluate`'s latency.
    fn layer_latencies(&mut self, model: &Model) -> Result<Vec<(String, String, f64)>, AgentError> {
        self.profiled.push(tag(model));
        Ok(GROUPS
            .iter()
            .map(|&(id, initial, macs)| {
                let fraction = Self::channels(model, id, initial) as f64 / initial as f64;
                let slow = if self.slow_layer == Some(id) {
                    100.0
                } else {
                    1.0
                };
                (
                    id.to_string(),
                    "Conv".to_string(),
                    slow * macs as f64 * fraction / 100.0,
                )
            })
            .collect())
    }

    fn evaluate(&mut self, model: &Model, split: Split) -> Result<Evaluation, AgentError> {
        self.evaluations += 1;
        let t = tag(model);
        let mut latency = 0.0;
        let mut macs_total = 0u64;
        let mut top1: f64 = if split == Split::Holdout { 90.5 } else { 90.0 };
        let mut cosine = 1.0;
        for (id, initial, macs) in GROUPS {
            let fraction = Self::channels(model, id, initial) as f64 / initial as f64;
            latency += macs as f64 * fraction / 100.0;
            macs_total += (macs as f64 * Self::channels(model, id, initial) as f64) as u64;
            if fraction < 1.0 {
                top1 -= if id == "fragile" { 5.0 } else { 0.1 };
            }
            // Output drift per 25 % pruned: g0 is cheap in top-1 but moves the outputs.
            let drift = match id {
                "g0" => 0.003,
                "fragile" => 0.0005,
                _ => 0.0001,
            };
            cosine -= drift * (1.0 - fraction) / 0.25;
        }
        let (speed, size) = if t.contains("qstatic") {
            (4.0, 4)
        } else if t.contains("qdynamic") {
            (0.3, 4)
        } else {
            (1.0, 1)
        };
        if t.contains("qstatic") {
            top1 -= 0.1;
            cosine -= 0.0002;
            if self.calibration_matters && t.contains("qstatic:entropy") {
                top1 += 0.3;
            } else if self.calibration_matters && t.contains("qstatic:percentile") {
                top1 -= 0.2;
            }
        }
        // 1,000 images: the first `top1 × 10` right, so a drop of d points is d × 10 images
        // the baseline gets right and the candidate wrong (paired).
        let right = (top1 * 10.0).round() as usize;
        Ok(Evaluation {
            top5: None,
            latency_batch: None,
            peak_memory_bytes: None,
            params: None,
            top1: Some(top1),
            top1_interval: None,
            latency_ms: latency / speed,
            speed: None,
            accuracy_change: None,
            correct: Some(std::sync::Arc::new((0..1000).map(|i| i < right).collect())),
            worst_cosine: None,
            model_bytes: 40_000_000 / size,
            images: 1000,
            loss: Some((100.0 - top1) / 20.0),
            macs: Some(macs_total),
            cosine: Some(cosine),
            agreement: None,
            details: serde_json::Value::Null,
        })
    }
}

fn options() -> CompressOptions {
    CompressOptions {
        budget: Budget {
            max_acc_drop: 1.0,
            target_latency_ms: None,
            target_memory_bytes: None,
            target_speedup: Some(8.0),
            target_macs_fraction: None,
            min_cosine: None,
            acc_confidence: 0.9,
        },
        rounds: 6,
        patience: 3,
        probe_quantization: true,
        sensitivity_groups: 0,
        model_name: "fake".into(),
        model_path: "fake.onnx".into(),
        runtime: "fake".into(),
        data: serde_json::Value::Null,
    }
}

fn input_model() -> Model {
    Model::from_proto(ModelProto {
        ir_version: Some(8),
        graph: Some(GraphProto {
            name: Some("fake".into()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[test]
fn builtin_loop_quantizes_prunes_backs_off_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let run_dir = RunDir::create(&run_path, vec![]).unwrap();
    let mut bench = fake_bench();
    let mut lines = Vec::new();
    let report = compress(
        &input_model(),
        &options(),
        &mut BuiltinPlanner::new(),
        &mut bench,
        &run_dir,
        &mut |l: &str| lines.push(l.to_string()),
    )
    .unwrap()
    .report;

    // Probes: dynamic is slower here, static faster (probed with uint8 and with int8
    // activations); the planner takes static first.
    assert_eq!(report.quant_probes.len(), 3);
    let activations: Vec<_> = report
        .quant_probes
        .iter()
        .map(|p| (p.mode, p.activations))
        .collect();
    assert_eq!(
        activations,
        vec![
            (QuantMode::Dynamic, None),
            (QuantMode::Static, Some(QuantActivations::Uint8)),
            (QuantMode::Static, Some(QuantActivations::Int8)),
        ]
    );
    let first = &report.rounds[0];
    assert_eq!(
        first
            .plan
            .as_ref()
            .unwrap()
            .quantization
            .as_ref()
            .unwrap()
            .default
            .mode,
        QuantMode::Static
    );
    assert!(first.accepted, "{}", first.verdict);
    // Round 2 prunes the 4 heaviest groups, fragile among them: rejected and rolled back.
    let second = &report.rounds[1];
    assert_eq!(second.resolved_pruning.len(), 4);
    assert!(
        !second.accepted && second.verdict.contains("rolled back"),
        "{}",
        second.verdict
    );
    // Round 3 backs off: half the step, half the groups, not the fragile one.
    let third = &report.rounds[2];
    assert_eq!(third.resolved_pruning.len(), 2);
    assert!(third.resolved_pruning.iter().all(|p| p.group != "fragile"));
    assert!(third.accepted, "{}", third.verdict);
    let final_result = report.final_result.as_ref().unwrap();
    assert!(final_result.acc_drop.unwrap() <= 1.0);
    assert!(final_result.speedup.unwrap() > 4.0);
    assert!(final_result.holdout_final.is_some() && final_result.holdout_baseline.is_some());
    let on_disk = RunReport::read(&run_path.join("report.json")).unwrap();
    assert_eq!(on_disk.rounds.len(), report.rounds.len());
    assert!(run_path.join("model.onnx").is_file());
    assert!(run_path.join("rounds/round-02/plan.json").is_file());

    // Replay into a new directory: no evaluations, same final model.
    let replay_path = dir.path().join("replay");
    let replay_dir = RunDir::create(&replay_path, vec![]).unwrap();
    let mut replay_bench = fake_bench();
    let script = ReplayScript {
        source: on_disk,
        source_dir: run_path.display().to_string(),
    };
    let replayed = replay(
        &input_model(),
        &options(),
        &script,
        &mut replay_bench,
        &replay_dir,
        &mut |_: &str| {},
    )
    .unwrap()
    .report;
    assert_eq!(replay_bench.evaluations, 0);
    assert!(replayed.replay.as_ref().unwrap().identical);
    assert_eq!(
        std::fs::read(run_path.join("model.onnx")).unwrap(),
        std::fs::read(replay_path.join("model.onnx")).unwrap()
    );

    // Running again into the first directory keeps the first run under history/.
    let again = RunDir::create(&run_path, vec![]).unwrap();
    drop(again);
    let archived: Vec<_> = std::fs::read_dir(run_path.join("history"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(archived.len(), 1);
    assert!(archived[0].path().join("report.json").is_file());
    assert!(!run_path.join("report.json").exists());
}

#[test]
fn measured_sensitivity_keeps_the_fragile_group_out_of_the_first_pruning_round() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let run_dir = RunDir::create(&run_path, vec![]).unwrap();
    let mut bench = fake_bench();
    let mut opts = options();
    opts.sensitivity_groups = GROUPS.len();
    let report = compress(
        &input_model(),
        &opts,
        &mut BuiltinPlanner::new(),
        &mut bench,
        &run_dir,
        &mut |_: &str| {},
    )
    .unwrap()
    .report;

    // Every group was pruned alone by 25 % and measured; "fragile" costs 5 points. The third
    // cheapest per MAC (g0 and g1: 0.1 points for the most MACs) were measured again at 50 %.
    let at = |ratio: f64| -> Vec<&str> {
        let mut groups: Vec<&str> = report
            .sensitivity
            .iter()
            .filter(|s| (s.ratio - ratio).abs() < 1e-9)
            .map(|s| s.group.as_str())
            .collect();
        groups.sort_unstable();
        groups
    };
    assert_eq!(at(0.25), ["fragile", "g0", "g1", "g3", "g4"]);
    assert_eq!(at(0.5), ["g0", "g1"]);
    let deeper = report.sensitivity.iter().find(|s| s.ratio == 0.5).unwrap();
    assert_eq!((deeper.current, deeper.keep), (256, 128));
    let fragile = report
        .sensitivity
        .iter()
        .find(|s| s.group == "fragile")
        .unwrap();
    assert!((fragile.drop.unwrap() - 5.0).abs() < 1e-9, "{fragile:?}");
    assert_eq!((fragile.current, fragile.keep), (128, 96));
    for s in report.sensitivity.iter().filter(|s| s.group != "fragile") {
        assert!((s.drop.unwrap() - 0.1).abs() < 1e-9, "{s:?}");
    }
    // The fake's loss moves 1/20 nat per point, so the fitted slope reproduces every drop.
    for s in &report.sensitivity {
        assert!(
            (s.loss_increase.unwrap() * 20.0 - s.drop.unwrap()).abs() < 1e-9,
            "{s:?}"
        );
        assert!(
            (s.expected_drop.unwrap() - s.drop.unwrap()).abs() < 1e-9,
            "{s:?}"
        );
    }
    // The first pruning round leaves "fragile" out and is accepted at once (no rollback).
    let pruning_rounds: Vec<_> = report
        .rounds
        .iter()
        .filter(|r| !r.resolved_pruning.is_empty())
        .collect();
    let first = pruning_rounds.first().expect("a pruning round");
    assert!(first.resolved_pruning.iter().all(|p| p.group != "fragile"));
    assert!(first.accepted, "{}", first.verdict);
    assert!(report
        .rounds
        .iter()
        .flat_map(|r| &r.resolved_pruning)
        .all(|p| p.group != "fragile"));

    // A replay takes the recorded sensitivities instead of measuring again.
    let on_disk = RunReport::read(&run_path.join("report.json")).unwrap();
    assert_eq!(on_disk.sensitivity, report.sensitivity);
    let replay_path = dir.path().join("replay");
    let replay_dir = RunDir::create(&replay_path, vec![]).unwrap();
    let mut replay_bench = fake_bench();
    let script = ReplayScript {
        source: on_disk,
        source_dir: run_path.display().to_string(),
    };
    let mut replay_options = options();
    replay_options.sensitivity_groups = GROUPS.len();
    let replayed = replay(
        &input_model(),
        &replay_options,
        &script,
        &mut replay_bench,
        &replay_dir,
        &mut |_: &str| {},
    )
    .unwrap()
    .report;
    assert_eq!(replay_bench.evaluations, 0);
    assert!(replayed.replay.as_ref().unwrap().identical);
}

/// The loop with the built-in planner on the fake workbench, in a throw-away run directory.
fn run_builtin(opts: &CompressOptions) -> RunReport {
    run_builtin_on(&mut fake_bench(), opts)
}

/// `run_builtin` on a given (configured) fake workbench.
fn run_builtin_on(bench: &mut FakeBench, opts: &CompressOptions) -> RunReport {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::create(&dir.path().join("run"), vec![]).unwrap();
    compress(
        &input_model(),
        opts,
        &mut BuiltinPlanner::new(),
        bench,
        &run_dir,
        &mut |_: &str| {},
    )
    .unwrap()
    .report
}

#[test]
fn a_macs_target_is_met_by_pruning_alone() {
    let mut opts = options();
    opts.sensitivity_groups = GROUPS.len();
    opts.budget.target_speedup = None;
    opts.budget.target_macs_fraction = Some(0.8);
    let report = run_builtin(&opts);
    // Quantization keeps MACs: never proposed; pruning rounds until 80 % of the MACs.
    assert!(report
        .rounds
        .iter()
        .all(|r| r.plan.as_ref().is_none_or(|p| p.quantization.is_none())));
    let final_result = report.final_result.as_ref().unwrap();
    assert!(final_result.budget_met, "{}", final_result.stop_reason);
    let base = report.baseline.macs.unwrap() as f64;
    assert!(final_result.feedback.macs.unwrap() as f64 <= 0.8 * base);
    assert!(final_result.acc_drop.unwrap() <= 1.0);
    // Sensitivity is re-measured after every accepted pruning round that leaves the budget
    // missing (the next round plans from it), and not after the one that meets it.
    let accepted: Vec<_> = report.rounds.iter().filter(|r| r.accepted).collect();
    let (last, earlier) = accepted.split_last().expect("an accepted round");
    assert!(
        last.sensitivity.is_empty(),
        "re-measured after the budget was met"
    );
    assert!(
        !earlier.is_empty(),
        "the budget takes more than one round here"
    );
    assert!(earlier.iter().all(|r| !r.sensitivity.is_empty()));
}

/// Where the runtime pads every group to a block of 128 channels, the sensitivity probes and
/// every pruned width are multiples of it: the 128-channel groups (one block short of two) are
/// neither probed nor pruned, the 256-channel ones are probed and cut by whole blocks.
#[test]
fn pruned_widths_and_probes_follow_the_runtimes_channel_block() {
    let mut opts = options();
    opts.sensitivity_groups = GROUPS.len();
    opts.budget.target_speedup = None;
    opts.budget.target_macs_fraction = Some(0.8);
    let mut bench = FakeBench {
        block: Some(128),
        ..fake_bench()
    };
    let report = run_builtin_on(&mut bench, &opts);
    let probed: Vec<(&str, usize)> = report
        .sensitivity
        .iter()
        .map(|s| (s.group.as_str(), s.keep))
        .collect();
    assert!(!probed.is_empty());
    assert!(
        probed
            .iter()
            .all(|(g, keep)| keep % 128 == 0 && ["g0", "g1"].contains(g)),
        "{probed:?}"
    );
    let pruned: Vec<(&str, usize)> = report
        .rounds
        .iter()
        .flat_map(|r| &r.resolved_pruning)
        .map(|p| (p.group.as_str(), p.keep))
        .collect();
    assert!(!pruned.is_empty(), "{:?}", report.final_result);
    assert!(pruned.iter().all(|(_, keep)| keep % 128 == 0), "{pruned:?}");
    // Without the block the same run probes and cuts widths that are not multiples of 128.
    let plain = run_builtin(&opts);
    assert!(plain
        .rounds
        .iter()
        .flat_map(|r| &r.resolved_pruning)
        .any(|p| p.keep % 128 != 0));
}

/// With a fidelity bound the planner spends the measured output drift like top-1 points: the
/// group that is cheap in top-1 but moves the outputs (g0) stays whole, and every accepted
/// model keeps the bound. Without the bound the same run prunes g0 and ends below it.
#[test]
fn a_fidelity_bound_steers_pruning_away_from_groups_that_move_the_outputs() {
    let run = |min_cosine: Option<f64>| {
        let mut opts = options();
        opts.sensitivity_groups = GROUPS.len();
        opts.budget.min_cosine = min_cosine;
        run_builtin(&opts)
    };
    let pruned_g0 = |report: &RunReport| {
        report
            .rounds
            .iter()
            .filter(|r| r.accepted)
            .flat_map(|r| &r.resolved_pruning)
            .any(|p| p.group == "g0")
    };

    let free = run(None);
    let free_final = free.final_result.as_ref().unwrap();
    assert!(
        pruned_g0(&free),
        "without a bound g0 (heaviest, cheap in top-1) is pruned"
    );
    assert!(free_final.feedback.cosine.unwrap() < 0.999);

    let bounded = run(Some(0.999));
    // Measured per group: g0 loses 0.003 of cosine at 25 %.
    let g0 = bounded
        .sensitivity
        .iter()
        .find(|s| s.group == "g0")
        .unwrap();
    assert!((g0.cosine_loss.unwrap() - 0.003).abs() < 1e-9, "{g0:?}");
    assert!(!pruned_g0(&bounded));
    for round in bounded.rounds.iter().filter(|r| r.accepted) {
        let cosine = round.evaluation.as_ref().unwrap().cosine.unwrap();
        assert!(
            cosine >= 0.999,
            "round {} accepted at {cosine}",
            round.round
        );
    }
    let bounded_final = bounded.final_result.as_ref().unwrap();
    assert!(bounded_final.feedback.cosine.unwrap() >= 0.999);
    // It still compresses: quantization plus pruning of the groups that keep the outputs.
    assert!(bounded
        .rounds
        .iter()
        .any(|r| r.accepted && !r.resolved_pruning.is_empty()));
    assert!(bounded_final.speedup.unwrap() > 4.0);
}

#[test]
fn a_candidate_below_the_fidelity_bound_is_rolled_back() {
    use profagent_agent::judge::judge;
    let evaluation = |latency_ms: f64, cosine: Option<f64>| Evaluation {
        top5: None,
        latency_batch: None,
        peak_memory_bytes: None,
        params: None,
        top1: Some(90.0),
        top1_interval: None,
        latency_ms,
        speed: Some(SpeedComparison::known(10.0, latency_ms, 0.02)),
        accuracy_change: Some(PairedAccuracy {
            samples: 1000,
            baseline_correct: 900,
            candidate_correct: 900,
            only_baseline: 0,
            only_candidate: 0,
        }),
        correct: None,
        worst_cosine: None,
        model_bytes: 1000,
        images: 1000,
        loss: None,
        macs: None,
        cosine,
        agreement: None,
        details: serde_json::Value::Null,
    };
    let mut budget = options().budget;
    budget.min_cosine = Some(0.999);
    let baseline = evaluation(10.0, Some(1.0));
    let j = judge(&budget, &baseline, &evaluation(5.0, Some(0.998)), None);
    assert!(
        !j.decision.accepted() && j.reason.contains("cosine"),
        "{}",
        j.reason
    );
    // Not measured: the bound cannot be checked, so it is not kept.
    let j = judge(&budget, &baseline, &evaluation(5.0, None), None);
    assert!(!j.decision.accepted());
    let j = judge(&budget, &baseline, &evaluation(5.0, Some(0.9995)), None);
    assert!(j.decision.accepted(), "{}", j.reason);
}

/// A MACs-target verdict names the share of MACs removed as a plain fraction: 558 to 358 MMACs
/// is 35.8 % fewer (it once printed the log ratio, 44.4 %).
#[test]
fn a_macs_verdict_states_the_fraction_of_macs_removed() {
    use profagent_agent::judge::{judge, Decision};
    let evaluation = |macs: u64| Evaluation {
        macs: Some(macs),
        accuracy_change: Some(PairedAccuracy {
            samples: 1000,
            baseline_correct: 900,
            candidate_correct: 900,
            only_baseline: 0,
            only_candidate: 0,
        }),
        ..Evaluation::new(Some(90.0), 10.0, 1000, 1000)
    };
    let mut budget = options().budget;
    budget.target_speedup = None;
    budget.target_macs_fraction = Some(0.5);
    let j = judge(
        &budget,
        &evaluation(558_000_000),
        &evaluation(358_000_000),
        None,
    );
    assert_eq!(j.decision, Decision::Accepted, "{}", j.reason);
    assert!(
        j.reason
            .ends_with("35.8 % fewer MACs than the current best"),
        "{}",
        j.reason
    );
    let j = judge(
        &budget,
        &evaluation(558_000_000),
        &evaluation(560_000_000),
        None,
    );
    assert_eq!(j.decision, Decision::NoGain, "{}", j.reason);
    assert!(
        j.reason.contains("MACs +0.4 % against the current best"),
        "{}",
        j.reason
    );
}

/// Issue 20: planners rank by measured cost. The input model's per-layer latency is measured
/// once (the workbench's runtime profile) and reaches every round's planning input: layers and
/// groups as measured before pruning, scaled by MACs (and flagged) after it; the prompt shows
/// the ms instead of "-".
#[test]
fn measured_layer_latency_reaches_every_round_and_is_measured_once() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let run_dir = RunDir::create(&run_path, vec![]).unwrap();
    let mut fake = fake_bench();
    let mut opts = options();
    opts.sensitivity_groups = GROUPS.len();
    opts.probe_quantization = false;
    opts.budget.target_speedup = None;
    // Far enough that the first pruning round (which may cut the cheap groups to 75 %) does
    // not meet it: a round follows.
    opts.budget.target_macs_fraction = Some(0.4);
    let report = compress(
        &input_model(),
        &opts,
        &mut BuiltinPlanner::new(),
        &mut fake,
        &run_dir,
        &mut |_: &str| {},
    )
    .unwrap()
    .report;
    // Once for the planners, then input and final model side by side for the report.
    assert_eq!(fake.profiled.len(), 3, "{:?}", fake.profiled);
    assert_eq!(fake.profiled[0], "", "the input model is profiled first");
    let read = |round: usize| -> PlanningInput {
        let path = run_path.join(format!("rounds/round-{round:02}/input.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let first = read(1);
    for (id, _, macs) in GROUPS {
        let layer = first.layers.iter().find(|l| l.name == id).unwrap();
        assert_eq!(layer.latency_ms, Some(macs as f64 / 100.0), "{layer:?}");
        assert!(!layer.latency_scaled);
        // One layer per group here: the group's ms is its layer's.
        let group = first.groups.iter().find(|g| g.id == id).unwrap();
        assert_eq!(group.latency_ms, layer.latency_ms, "{group:?}");
    }
    let prompt = profagent_agent::prompt::build_prompt(&first);
    assert!(
        prompt.contains("measured on the input model by the runtime's profiler"),
        "{prompt}"
    );
    assert!(
        prompt.contains("| 9.000 |"),
        "g0's 9 ms in the table: {prompt}"
    );

    // After the first accepted pruning round: the pruned groups' ms are the input's scaled by
    // their MACs, and say so.
    let pruned_round = report
        .rounds
        .iter()
        .find(|r| r.accepted && !r.resolved_pruning.is_empty())
        .expect("an accepted pruning round");
    assert!(
        report.rounds.len() > pruned_round.round,
        "a round after the pruning one"
    );
    let next = read(pruned_round.round + 1);
    for p in &pruned_round.resolved_pruning {
        let (_, initial, macs) = GROUPS.iter().find(|g| g.0 == p.group).unwrap();
        let layer = next.layers.iter().find(|l| l.name == p.group).unwrap();
        let expected = *macs as f64 / 100.0 * p.keep as f64 / *initial as f64;
        assert!(
            (layer.latency_ms.unwrap() - expected).abs() < 1e-9 && layer.latency_scaled,
            "{layer:?}, expected {expected}"
        );
        let group = next.groups.iter().find(|g| g.id == p.group).unwrap();
        assert_eq!(group.latency_ms, layer.latency_ms);
    }
    assert!(profagent_agent::prompt::build_prompt(&next).contains("scaled by"));
    // The history the planner sees carries the paired change and the speed comparison.
    let earlier = next
        .history
        .iter()
        .find(|h| h.round == pruned_round.round)
        .unwrap();
    assert!(earlier.accuracy_change.is_some() && earlier.speed.is_some() && earlier.macs.is_some());
}

/// Progress that asks the loop to stop (Ctrl-C) once a line starting with `after` was shown.
struct StopAfter {
    after: &'static str,
    lines: Vec<String>,
}

impl profagent_agent::compressor::Progress for StopAfter {
    fn line(&mut self, text: &str) {
        self.lines.push(text.to_string());
    }
    fn stop_requested(&mut self) -> bool {
        self.lines.iter().any(|l| l.starts_with(self.after))
    }
}

#[test]
fn a_stop_request_ends_the_loop_as_interrupted_without_the_final_check() {
    // (stop after, rounds, quantization probes, calibration trials: the three methods
    // other than min-max on the fastest static probe)
    for (after, rounds, probes, trials) in
        [("evaluating the baseline", 0, 0, 0), ("round 1: ", 1, 3, 3)]
    {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::create(&dir.path().join("run"), vec![]).unwrap();
        let mut bench = fake_bench();
        let mut progress = StopAfter {
            after,
            lines: Vec::new(),
        };
        let report = compress(
            &input_model(),
            &options(),
            &mut BuiltinPlanner::new(),
            &mut bench,
            &run_dir,
            &mut progress,
        )
        .unwrap()
        .report;
        assert_eq!(report.rounds.len(), rounds, "stop after '{after}'");
        assert_eq!(report.quant_probes.len(), probes, "stop after '{after}'");
        let result = report.final_result.as_ref().unwrap();
        assert_eq!(
            result.stop,
            Some(profagent_agent::compressor::StopReason::Interrupted {
                after_round: rounds
            })
        );
        assert_eq!(
            result.stop_reason,
            format!("interrupted (Ctrl-C) after round {rounds}")
        );
        assert!(!result.budget_met);
        assert!(result.holdout_final.is_none() && result.holdout_baseline.is_none());
        assert_eq!(result.chosen_round, Some(rounds), "the last accepted round");
        assert!(
            result.fallback[0].contains("the holdout check was not run"),
            "{:?}",
            result.fallback
        );
        // The baseline, each probe and each round: one evaluation and one speed comparison
        // (two more in this workbench) each; each calibration trial one evaluation (the
        // graph is the same, so no timing); none on the holdout.
        assert_eq!(bench.evaluations, 3 * (1 + probes + rounds) + trials);
        assert!(
            bench.profiled.len() <= 1,
            "no per-layer profile of the final model"
        );
        let on_disk = RunReport::read(&run_dir.path("report.json")).unwrap();
        assert_eq!(on_disk.final_result.unwrap().stop, result.stop);
        assert!(run_dir.path("model.onnx").is_file());
    }
}

/// With a MACs-only budget the groups whose sensitivity is measured are the heaviest by MACs,
/// not by measured latency (which moves with timing noise between two runs of one seed); with a
/// speed target the measured latency ranks them.
#[test]
fn a_macs_budget_probes_the_heaviest_groups_by_macs_not_by_timing() {
    let probed = |budget: Budget| {
        let mut bench = fake_bench();
        bench.slow_layer = Some("g4"); // the fewest MACs, but timed slowest
        let mut opts = options();
        opts.sensitivity_groups = 2;
        opts.rounds = 1;
        opts.budget = budget;
        let report = run_builtin_on(&mut bench, &opts);
        let mut groups: Vec<String> = report.sensitivity.iter().map(|s| s.group.clone()).collect();
        groups.sort();
        groups.dedup(); // a group probed at two ratios
        groups
    };
    let mut macs_only = options().budget;
    macs_only.target_speedup = None;
    macs_only.target_macs_fraction = Some(0.5);
    assert_eq!(probed(macs_only), ["g0", "g1"]);
    let mut speed = options().budget;
    speed.max_acc_drop = 0.05; // no quantization probe alone meets it: sensitivity is measured
    assert!(probed(speed).contains(&"g4".to_string()));
}

/// What `ToolCallingModel` saw: the tools offered in each request, and the tool results sent.
#[derive(Default)]
struct ToolLog {
    offered: Vec<Vec<String>>,
    results: Vec<String>,
}

/// A chat model that calls each of `calls` (tool name, arguments) in its first turn, then
/// answers `answer`; it logs what it was offered and sent.
struct ToolCallingModel {
    calls: Vec<(&'static str, String)>,
    answer: String,
    log: std::rc::Rc<std::cell::RefCell<ToolLog>>,
}

impl profagent_agent::Provider for ToolCallingModel {
    fn describe(&self) -> String {
        "scripted:tools".into()
    }
    fn complete(
        &mut self,
        request: &profagent_agent::provider::ChatRequest<'_>,
    ) -> Result<profagent_agent::provider::Completion, AgentError> {
        use profagent_agent::provider::{Completion, Role, ToolCall};
        let mut log = self.log.borrow_mut();
        log.offered
            .push(request.tools.iter().map(|t| t.name.to_string()).collect());
        log.results = request
            .messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .map(|m| m.content.clone())
            .collect();
        let calls: Vec<ToolCall> = std::mem::take(&mut self.calls)
            .into_iter()
            .enumerate()
            .map(|(i, (name, arguments))| ToolCall {
                id: format!("call_{i}"),
                name: name.into(),
                arguments,
            })
            .collect();
        Ok(Completion {
            text: if calls.is_empty() {
                self.answer.clone()
            } else {
                String::new()
            },
            structured: true,
            attempts: 1,
            seconds: 0.0,
            tool_calls: calls,
        })
    }
}

/// Issue 20 item 3: an LLM planner asks for a measurement without spending a round: the
/// `probe_group` tool prunes the group alone on the current model and evaluates it (the fake
/// says "fragile" costs 5 points), an unknown group gets a reason, and the answer comes in the
/// same round.
#[test]
fn a_planner_can_ask_for_a_probe_without_spending_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let run_dir = RunDir::create(&run_path, vec![]).unwrap();
    let mut bench = fake_bench();
    let mut opts = options();
    opts.sensitivity_groups = 0;
    opts.rounds = 1;
    let log = std::rc::Rc::new(std::cell::RefCell::new(ToolLog::default()));
    let model = ToolCallingModel {
        calls: vec![
            ("probe_group", r#"{"group":"fragile","ratio":0.25}"#.into()),
            (
                "probe_group",
                r#"{"group":"no_such_group","ratio":0.25}"#.into(),
            ),
        ],
        answer: r#"{"schema_version":1,"rationale":"fragile costs too much","pruning":[]}"#.into(),
        log: log.clone(),
    };
    let mut planner = profagent_agent::planner::AnalysisAgent::new(Box::new(model));
    let report = compress(
        &input_model(),
        &opts,
        &mut planner,
        &mut bench,
        &run_dir,
        &mut |_: &str| {},
    )
    .unwrap()
    .report;
    assert_eq!(report.rounds.len(), 1);
    assert_eq!(
        report.rounds[0].verdict,
        "the planner proposes no further change"
    );
    let log = log.borrow();
    assert_eq!(log.offered[0], ["estimate_plan", "probe_group"]);
    assert_eq!(log.results.len(), 2);
    let probe: serde_json::Value = serde_json::from_str(&log.results[0]).unwrap();
    assert_eq!(probe["top1_drop_points"], 5.0, "{probe}");
    assert_eq!(probe["units"], "128 -> 96");
    let unknown: serde_json::Value = serde_json::from_str(&log.results[1]).unwrap();
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("'no_such_group' is not a prunable group"),
        "{unknown}"
    );
    let transcript = profagent_agent::rundir::read_transcript(&run_path).unwrap();
    assert_eq!(transcript[0].verdict, "tool_call");
    assert_eq!(transcript[0].tool_calls.len(), 2);
}

/// Issue 18 item 1: static quantization's calibration method is chosen per model on the
/// feedback slice. Every method is tried on the fastest static probe; the probe reports the
/// most accurate (entropy here), the built-in plan asks for it, the applied model is the
/// entropy-calibrated one, and a replay rebuilds it byte for byte. Where every method scores
/// alike, min-max is kept.
#[test]
fn static_calibration_is_chosen_on_the_feedback_slice_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let run_dir = RunDir::create(&run_path, vec![]).unwrap();
    let mut bench = FakeBench {
        calibration_matters: true,
        ..fake_bench()
    };
    let mut lines = Vec::new();
    let compressed = compress(
        &input_model(),
        &options(),
        &mut BuiltinPlanner::new(),
        &mut bench,
        &run_dir,
        &mut |l: &str| lines.push(l.to_string()),
    )
    .unwrap();
    let report = compressed.report;
    let tried: Vec<_> = report
        .quant_probes
        .iter()
        .filter(|p| !p.calibration_trials.is_empty())
        .collect();
    assert_eq!(
        tried.len(),
        1,
        "only the fastest static probe is re-calibrated"
    );
    let probe = tried[0];
    assert_eq!(probe.mode, QuantMode::Static);
    assert_eq!(probe.calibration, Some(QuantCalibration::Entropy));
    let methods: Vec<_> = probe.calibration_trials.iter().map(|t| t.method).collect();
    assert_eq!(methods, QuantCalibration::ALL.to_vec());
    let top1 = |m: QuantCalibration| {
        probe
            .calibration_trials
            .iter()
            .find(|t| t.method == m)
            .and_then(|t| t.top1)
            .unwrap()
    };
    assert!((top1(QuantCalibration::Entropy) - top1(QuantCalibration::Minmax) - 0.3).abs() < 1e-9);
    assert_eq!(probe.top1, Some(top1(QuantCalibration::Entropy)));
    assert!(
        lines.iter().any(|l| l.contains("entropy calibration kept")),
        "{lines:#?}"
    );
    // The plan asks for it, and the model carries it.
    let plan = report.rounds[0].plan.as_ref().unwrap();
    let quantization = plan.quantization.as_ref().unwrap();
    assert_eq!(quantization.default.calibration, QuantCalibration::Entropy);
    assert!(
        tag(&compressed.model).contains("qstatic:entropy;"),
        "{}",
        tag(&compressed.model)
    );
    // The plan file says so (and a min-max plan would not spell it at all).
    let plan_json = std::fs::read_to_string(run_path.join("rounds/round-01/plan.json")).unwrap();
    assert!(
        plan_json.contains("\"calibration\": \"entropy\""),
        "{plan_json}"
    );

    let on_disk = RunReport::read(&run_path.join("report.json")).unwrap();
    assert_eq!(on_disk.quant_probes, report.quant_probes);
    let replay_path = dir.path().join("replay");
    let replay_dir = RunDir::create(&replay_path, vec![]).unwrap();
    let mut replay_bench = fake_bench();
    let replayed = replay(
        &input_model(),
        &options(),
        &ReplayScript {
            source: on_disk,
            source_dir: run_path.display().to_string(),
        },
        &mut replay_bench,
        &replay_dir,
        &mut |_: &str| {},
    )
    .unwrap();
    assert_eq!(replay_bench.evaluations, 0);
    assert!(replayed.report.replay.as_ref().unwrap().identical);
    assert_eq!(tag(&replayed.model), tag(&compressed.model));

    // Where the methods score alike, the probe keeps min-max and the plan does not name one.
    let alike = run_builtin(&options());
    let probe = alike
        .quant_probes
        .iter()
        .find(|p| !p.calibration_trials.is_empty())
        .unwrap();
    assert_eq!(probe.calibration, Some(QuantCalibration::Minmax));
    let plan = alike.rounds[0].plan.as_ref().unwrap();
    assert_eq!(
        plan.quantization.as_ref().unwrap().default.calibration,
        QuantCalibration::Minmax
    );
}

/// The built-in planner behind an LLM-like failure: its first call times out.
struct FlakyPlanner {
    inner: BuiltinPlanner,
    error: fn() -> AgentError,
    calls: usize,
}

impl profagent_agent::planner::Planner for FlakyPlanner {
    fn describe(&self) -> String {
        "flaky".into()
    }
    fn propose(
        &mut self,
        round: usize,
        input: &PlanningInput,
        context: &PlanContext,
        record: &mut profagent_agent::planner::Recorder<'_>,
        measure: &mut dyn profagent_agent::planner::Measure,
    ) -> Result<profagent_agent::planner::Proposal, AgentError> {
        self.calls += 1;
        if self.calls == 1 {
            return Err((self.error)());
        }
        self.inner.propose(round, input, context, record, measure)
    }
}

/// A failed LLM call (here a timeout, also without the guardrail) is a round without a plan,
/// named in the report, and the run goes on; a setup error (a missing key) ends it.
#[test]
fn a_failed_llm_call_is_a_round_without_a_plan_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::create(&dir.path().join("run"), vec![]).unwrap();
    let mut planner = FlakyPlanner {
        inner: BuiltinPlanner::new(),
        error: || AgentError::Timeout {
            url: "http://127.0.0.1:9/v1".into(),
            seconds: 60,
            attempts: 3,
        },
        calls: 0,
    };
    let report = compress(
        &input_model(),
        &options(),
        &mut planner,
        &mut fake_bench(),
        &run_dir,
        &mut |_: &str| {},
    )
    .expect("the run goes on")
    .report;
    let first = &report.rounds[0];
    assert!(first.plan.is_none());
    assert!(
        first
            .failure
            .as_deref()
            .is_some_and(|f| f.starts_with("the LLM call failed: the LLM endpoint")),
        "{:?}",
        first.failure
    );
    assert!(report.rounds.iter().skip(1).any(|r| r.accepted));

    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::create(&dir.path().join("run"), vec![]).unwrap();
    let mut planner = FlakyPlanner {
        inner: BuiltinPlanner::new(),
        error: || AgentError::MissingKey {
            var: "OPENAI_API_KEY".into(),
            provider: "openai".into(),
        },
        calls: 0,
    };
    let error = compress(
        &input_model(),
        &options(),
        &mut planner,
        &mut fake_bench(),
        &run_dir,
        &mut |_: &str| {},
    )
    .map(|_| ())
    .expect_err("a setup error ends the run");
    assert!(matches!(error, AgentError::MissingKey { .. }), "{error}");
}

/// The cheapest third per MAC is probed again at 50 %, and those still as cheap per MAC there
/// at 75 % (`DEEPEST_RATIO`), so planners may cut them that far; the fragile group gets its
/// first probe only. The round's plan may then take the cheapest group past 50 %.
#[test]
fn cheap_groups_are_probed_at_three_depths() {
    let mut opts = options();
    opts.sensitivity_groups = GROUPS.len();
    opts.budget.target_speedup = None;
    opts.budget.target_macs_fraction = Some(0.5);
    // On 1,000 images of a 90 % model the round has to leave a confidence margin of about
    // 0.7 points (`estimate::confidence_margin`): a 2-point budget leaves it the 1.3 points
    // this test's single deep round needs.
    opts.budget.max_acc_drop = 2.0;
    opts.rounds = 1;
    let report = run_builtin(&opts);
    let ratios = |id: &str| -> Vec<f64> {
        report
            .sensitivity
            .iter()
            .filter(|s| s.group == id && s.error.is_none())
            .map(|s| s.ratio)
            .collect()
    };
    assert_eq!(ratios("g0"), [0.25, 0.5, 0.75]);
    assert_eq!(ratios("fragile"), [0.25]);
    let first = &report.rounds[0];
    let g0 = first
        .resolved_pruning
        .iter()
        .find(|p| p.group == "g0")
        .expect("the cheapest group is pruned");
    assert!(
        g0.keep < g0.current / 2,
        "{} of {} kept",
        g0.keep,
        g0.current
    );
}
