//! Issue 20: the built-in planner never proposes a pruning round whose own expected drop
//! exceeds its share (`ROUND_BUDGET_SHARE`) of the accuracy budget left, except to finish a
//! target it came within `FINISH_SHARE` of (and never beyond the budget left).
//!
//! Modelled on resnet18_cifar10 with `--target-macs 0.6 --max-acc-drop 1`: its 10 prunable
//! groups (MACs of the layers each touches, from its static profile) with sensitivities like
//! the ones fitted there. Removing 40 % of the MACs within 25 % of each group takes all 10
//! groups at 25 %, an expected drop of 11.14 points: round 1 once proposed exactly that
//! ("expected drop 11.14 of the 1.00 points left") and lost 66 points of top-1.
use profagent_agent::builtin::{
    BuiltinPlanner, FINISH_SHARE, MARGIN_FLOOR, ROUND_BUDGET_SHARE, SENSITIVITY_FLOOR,
};
use profagent_agent::facts::*;
use profagent_plan::{validate, CompressionPlan, GroupInfo, PlanContext};

const BASELINE_MACS: u64 = 555_422_720;
const BASELINE_TOP1: f64 = 93.0;
const PROBED: f64 = 0.25;

/// (group, channels, MACs of the layers it touches, fitted drop at 25 %, measured drop at 25 %
/// on 1,000 images).
const RESNET18: [(&str, usize, u64, f64, f64); 10] = [
    ("layer1.0.conv1", 64, 75_497_472, 0.05, 1.00),
    ("layer1.1.conv1", 64, 75_497_472, 0.34, 1.70),
    ("layer2.0.conv1", 128, 56_623_104, 2.58, 7.40),
    ("layer2.0.conv2", 128, 136_314_880, 4.99, 0.50),
    ("layer2.1.conv1", 128, 75_497_472, 0.12, 0.20),
    ("layer3.0.conv1", 256, 56_623_104, 0.20, 0.10),
    ("layer3.0.conv2", 256, 136_314_880, 0.45, 0.60),
    ("layer3.1.conv1", 256, 75_497_472, 0.60, 0.90),
    ("layer4.0.conv1", 512, 56_623_104, 0.81, 0.30),
    ("layer4.1.conv1", 512, 75_497_472, 1.00, 1.20),
];

/// Feedback images of the evaluations: so many that the confidence margin the loop's bound
/// needs (0.02 points here; tested on its own in
/// `a_round_leaves_the_confidence_margin_the_loops_bound_needs`) leaves the budget as it is.
const IMAGES: usize = 1_000_000;

fn evaluation(top1: f64, macs: u64) -> Evaluation {
    let per_point = IMAGES as f64 / 100.0;
    let right = (top1 * per_point).round() as usize;
    let baseline_right = (BASELINE_TOP1 * per_point).round() as usize;
    Evaluation {
        speed: Some(SpeedComparison::known(10.0, 10.0, 0.02)),
        accuracy_change: Some(PairedAccuracy {
            samples: IMAGES,
            baseline_correct: baseline_right,
            candidate_correct: right,
            only_baseline: baseline_right - right,
            only_candidate: 0,
        }),
        macs: Some(macs),
        ..Evaluation::new(Some(top1), 10.0, 44_000_000, IMAGES)
    }
}

/// The groups with `channels[i]` channels left (MACs scaled by the kept fraction).
fn groups(channels: &[usize]) -> Vec<GroupFacts> {
    RESNET18
        .iter()
        .zip(channels)
        .map(
            |(&(id, original, macs, fitted, measured), &now)| GroupFacts {
                id: id.into(),
                channels: now,
                params: 1000,
                macs: macs * now as u64 / original as u64,
                sensitivity: Some(fitted),
                measured_drop: Some(measured),
                fitted_drop: Some(fitted),
                probed_ratio: Some(PROBED),
                probed_images: Some(1000),
                prunable: true,
                ..Default::default()
            },
        )
        .collect()
}

fn context(groups: &[GroupFacts]) -> PlanContext {
    let mut context = PlanContext::new();
    for g in groups {
        context
            .groups
            .insert(g.id.clone(), GroupInfo::new(g.channels, vec![g.id.clone()]));
    }
    context
}

fn input(
    groups: Vec<GroupFacts>,
    top1: f64,
    budget: Budget,
    history: Vec<RoundSummary>,
) -> PlanningInput {
    let macs = BASELINE_MACS
        - RESNET18
            .iter()
            .zip(&groups)
            .map(|(&(_, original, macs, _, _), g)| {
                // A group's MACs count its producers and its consumers: half of what its
                // removed channels free, for this sketch of the model's total.
                macs * (original - g.channels) as u64 / original as u64 / 2
            })
            .sum::<u64>();
    PlanningInput {
        model_name: "resnet18_cifar10".into(),
        family: "convolutional".into(),
        runtime: "onnxruntime".into(),
        baseline: evaluation(BASELINE_TOP1, BASELINE_MACS),
        current: evaluation(top1, macs),
        current_quantization: "none".into(),
        layers: vec![],
        groups,
        quant_probes: vec![],
        budget,
        history,
        rounds_left: 3,
        patience: 2,
    }
}

fn macs_budget() -> Budget {
    Budget {
        max_acc_drop: 1.0,
        target_latency_ms: None,
        target_memory_bytes: None,
        target_speedup: None,
        target_macs_fraction: Some(0.6),
        min_cosine: None,
        acc_confidence: 0.9,
    }
}

/// The plan's expected drop by the planner's own measure: each group's sensitivity (floored at
/// `SENSITIVITY_FLOOR`) at the probed ratio, growing with `curve(fraction removed / probed)`,
/// counted from the channels it has now to the channels the validated plan keeps.
fn expected_drop(
    plan: &CompressionPlan,
    input: &PlanningInput,
    context: &PlanContext,
    curve: fn(f64) -> f64,
) -> f64 {
    let validated = validate(plan, context).expect("the planner's plan validates");
    validated
        .pruning()
        .iter()
        .map(|p| {
            let (_, original, _, _, _) = RESNET18.iter().find(|g| g.0 == p.group).unwrap();
            let g = input.groups.iter().find(|g| g.id == p.group).unwrap();
            let s = g.sensitivity.unwrap().max(SENSITIVITY_FLOOR);
            let at = |kept: usize| s * curve((original - kept) as f64 / *original as f64 / PROBED);
            at(p.keep) - at(p.current)
        })
        .sum()
}

fn quadratic(x: f64) -> f64 {
    x * x
}

/// The number right after `marker` in the plan's rationale.
fn number_after(plan: &CompressionPlan, marker: &str) -> f64 {
    let (_, rest) = plan
        .rationale
        .split_once(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in: {}", plan.rationale));
    rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {marker:?} in: {}", plan.rationale))
}

/// The number after "expected drop " in the rationale.
fn stated_drop(plan: &CompressionPlan) -> f64 {
    number_after(plan, "expected drop ")
}

/// Asserts the plan prunes and that its expected drop (its groups' sensitivities times
/// `calibration`, the factor the planner learnt from measured rounds) is within the round's
/// share of `left`, as its rationale states.
fn assert_within_share(
    plan: &CompressionPlan,
    input: &PlanningInput,
    context: &PlanContext,
    left: f64,
    calibration: f64,
) {
    assert!(!plan.pruning.is_empty(), "{}", plan.rationale);
    let expected = calibration * expected_drop(plan, input, context, quadratic);
    assert!(
        expected <= ROUND_BUDGET_SHARE * left + 1e-9,
        "expected drop {expected:.2} of {left:.2} left: {}",
        plan.rationale
    );
    let stated = stated_drop(plan);
    assert!(
        stated <= ROUND_BUDGET_SHARE * left + 0.005,
        "stated {stated} of {left:.2} left: {}",
        plan.rationale
    );
    assert!(
        (stated - expected).abs() < 0.01,
        "{stated} vs {expected:.3}"
    );
}

#[test]
fn issue_20_a_macs_target_round_stays_within_its_share_of_the_budget_left() {
    let full: Vec<usize> = RESNET18.iter().map(|g| g.1).collect();
    let first = input(groups(&full), BASELINE_TOP1, macs_budget(), vec![]);
    let first_context = context(&first.groups);
    let mut planner = BuiltinPlanner::new();

    // Round 1: a part of the missing MACs, where it is cheapest, within 0.6 of the 1.00 left.
    let plan = planner.plan(&first, &first_context);
    assert_within_share(&plan, &first, &first_context, 1.0, 1.0);
    assert!(
        plan.pruning.len() < RESNET18.len(),
        "not every group by 25 %: {}",
        plan.rationale
    );
    assert!(
        plan.pruning.iter().all(|d| d.target != "layer2.0.conv2"),
        "the most sensitive group is the last to touch: {}",
        plan.rationale
    );

    // Round 2 after round 1 was rejected (rolled back): a smaller round, still within share.
    // It lost 7.00 points on the feedback images (70 of 1,000 images), as on the real model:
    // single-group sensitivities underestimate a many-group round.
    let rejected = RoundSummary {
        top1: Some(86.0),
        accuracy_change: Some(PairedAccuracy {
            samples: 1000,
            baseline_correct: 930,
            candidate_correct: 860,
            only_baseline: 70,
            only_candidate: 0,
        }),
        note: "rolled back".into(),
        ..rejected_summary()
    };
    let before = expected_drop(&plan, &first, &first_context, quadratic);
    let calibration = 7.0 / before;
    let second = input(groups(&full), BASELINE_TOP1, macs_budget(), vec![rejected]);
    let retry = planner.plan(&second, &first_context);
    assert!(
        retry.rationale.contains("own estimates x"),
        "{}",
        retry.rationale
    );
    assert_within_share(&retry, &second, &first_context, 1.0, calibration);
    // Not the rejected round again: half the step, half the share, and the estimates scaled
    // by what round 1 measured.
    let after = calibration * expected_drop(&retry, &second, &first_context, quadratic);
    assert!(
        after <= ROUND_BUDGET_SHARE / 2.0 + 1e-6,
        "retry {after:.2} after {before:.2}: {}",
        retry.rationale
    );

    // Round 2 after round 1 was accepted at a 0.40-point drop: from the pruned model, counted
    // from the channels each group has now, within 0.6 of the 0.60 points left.
    let mut accepted_planner = BuiltinPlanner::new();
    let round1 = accepted_planner.plan(&first, &first_context);
    let kept = validate(&round1, &first_context).unwrap();
    let now = channels_after(&kept);
    let accepted = RoundSummary {
        accepted: true,
        top1: Some(BASELINE_TOP1 - 0.4),
        note: "accepted".into(),
        ..rejected_summary()
    };
    let third = input(
        groups(&now),
        BASELINE_TOP1 - 0.4,
        macs_budget(),
        vec![accepted],
    );
    let third_context = context(&third.groups);
    let next = accepted_planner.plan(&third, &third_context);
    if !next.pruning.is_empty() {
        assert_within_share(&next, &third, &third_context, 0.6, 1.0);
    }
}

/// Each resnet18 group's channels after `plan` (the input's where it does not prune it).
fn channels_after(plan: &profagent_plan::ValidatedPlan) -> Vec<usize> {
    RESNET18
        .iter()
        .map(|g| {
            plan.pruning()
                .iter()
                .find(|p| p.group == g.0)
                .map_or(g.1, |p| p.keep)
        })
        .collect()
}

fn rejected_summary() -> RoundSummary {
    RoundSummary {
        round: 1,
        plan: "round 1".into(),
        top1: None,
        latency_ms: None,
        model_bytes: None,
        accepted: false,
        note: String::new(),
        ..Default::default()
    }
}

/// The resnet18 groups on the quantized model, with measured latency where layer4.1.conv1
/// dominates (40 of 44.5 ms); at 25 % it is expected to cost 0.90 of the 1.00 points (within
/// the budget, beyond the round's 0.60 share).
fn one_slow_group(budget: Budget) -> PlanningInput {
    let full: Vec<usize> = RESNET18.iter().map(|g| g.1).collect();
    let mut groups = groups(&full);
    for g in &mut groups {
        g.latency_ms = Some(if g.id == "layer4.1.conv1" { 40.0 } else { 0.5 });
        if g.id == "layer4.1.conv1" {
            g.sensitivity = Some(0.9);
        }
    }
    let mut input = input(groups, BASELINE_TOP1, budget, vec![]);
    input.current_quantization = "static (20 layers)".into();
    input
}

/// Without a MACs or speed target (here a size target, which pruning serves step by step):
/// the group with the best cost per sensitivity is expected to cost more than the round's
/// share at the full step; it is taken at a smaller step that fits instead of whole (the first
/// group of a round used to be taken whatever it cost).
#[test]
fn a_group_that_does_not_fit_the_round_whole_is_taken_at_a_smaller_step() {
    let speed = one_slow_group(Budget {
        target_macs_fraction: None,
        target_memory_bytes: Some(1),
        ..macs_budget()
    });
    let context = context(&speed.groups);
    let plan = BuiltinPlanner::new().plan(&speed, &context);
    assert!(
        plan.pruning.iter().any(|d| d.target == "layer4.1.conv1"),
        "{}",
        plan.rationale
    );
    let big = plan
        .pruning
        .iter()
        .find(|d| d.target == "layer4.1.conv1")
        .unwrap();
    assert!(big.ratio < PROBED, "{}", plan.rationale);
    // This path scales the sensitivity linearly with the step.
    let expected = expected_drop(&plan, &speed, &context, |x| x);
    assert!(
        expected <= ROUND_BUDGET_SHARE + 1e-9,
        "expected drop {expected:.2}: {}",
        plan.rationale
    );
    assert!(
        stated_drop(&plan) <= ROUND_BUDGET_SHARE + 0.005,
        "{}",
        plan.rationale
    );
}

/// Issue 19 item 3: a speed target is allocated like a MACs target, in measured milliseconds.
/// Measured 1.6x against the input (interval 1.568-1.632x) with 2.0x asked, judged on the lower
/// bound as the loop judges it: 2.0 / 1.568 = 1.28x, 21.6 % of the current latency (9.61 of the
/// 44.5 profiled ms) is missing; layer4.1.conv1 holds 40 of them, so it is cut first, as deep
/// as the round's share of the budget allows (quadratic cost: about 20 % of it), and the rest
/// comes from the next cheapest per ms.
#[test]
fn a_speed_target_is_allocated_by_measured_milliseconds() {
    let mut speed = one_slow_group(Budget {
        target_macs_fraction: None,
        target_speedup: Some(2.0),
        ..macs_budget()
    });
    speed.current.speed = Some(SpeedComparison::known(16.0, 10.0, 0.02));
    // The per-layer profile: one layer per group here (each group's own MACs and ms).
    speed.layers = speed
        .groups
        .iter()
        .map(|g| LayerFacts {
            name: g.id.clone(),
            op_type: "Conv".into(),
            macs: g.macs,
            latency_ms: g.latency_ms,
            ..Default::default()
        })
        .collect();
    let context = context(&speed.groups);
    let plan = BuiltinPlanner::new().plan(&speed, &context);
    assert!(
        plan.rationale.starts_with(
            "speed target: 1.28x beyond the measured lower bound now, 22 % of the current latency to remove: remove "
        ),
        "{}",
        plan.rationale
    );
    assert!(
        plan.rationale
            .contains("of the 9.61 ms of the per-layer profile"),
        "{}",
        plan.rationale
    );
    let big = plan
        .pruning
        .iter()
        .find(|d| d.target == "layer4.1.conv1")
        .unwrap_or_else(|| panic!("{}", plan.rationale));
    assert!(big.ratio > 0.1 && big.ratio < PROBED, "{}", plan.rationale);
    assert_within_share(&plan, &speed, &context, 1.0, 1.0);
}

/// Issue 20 item 3: a group measured again at a deeper ratio may be cut to that depth in one
/// round (its cost between the two ratios is measured); without the deeper probe the planner
/// stays within the probed 25 %. layer1.0.conv1 is the cheapest per MAC (0.05 points at 25 %).
#[test]
fn a_deeper_probe_extends_how_far_a_group_is_cut() {
    let shallow = removed_from_cheapest(None, None);
    assert!(
        shallow > 0 && shallow <= 16,
        "{shallow} of 64 without a deeper probe"
    );
    let deep = removed_from_cheapest(
        Some(DeeperProbe {
            ratio: 0.5,
            sensitivity: Some(0.15),
            measured_drop: Some(0.2),
            fitted_drop: Some(0.15),
            fidelity_loss: None,
        }),
        None,
    );
    assert!(deep > 16 && deep <= 32, "{deep} of 64 with a probe at 50 %");
}

/// Channels of layer1.0.conv1 (64; the cheapest per MAC, 0.05 points at 25 %) the built-in
/// planner's first round removes on resnet18 with a MACs budget, given its deeper probes.
fn removed_from_cheapest(deeper: Option<DeeperProbe>, deepest: Option<DeeperProbe>) -> usize {
    let full: Vec<usize> = RESNET18.iter().map(|g| g.1).collect();
    let mut facts = groups(&full);
    facts[0].deeper = deeper;
    facts[0].deepest = deepest;
    let first = input(facts, BASELINE_TOP1, macs_budget(), vec![]);
    let first_context = context(&first.groups);
    let plan = BuiltinPlanner::new().plan(&first, &first_context);
    let validated = validate(&plan, &first_context).unwrap();
    validated
        .pruning()
        .iter()
        .find(|p| p.group == "layer1.0.conv1")
        .map_or(0, |p| p.current - p.keep)
}

/// The measured curve: quadratic up to the first probe, linear to the deeper one, at least
/// proportional growth between them, quadratic beyond.
#[test]
fn the_cost_curve_goes_through_both_probes() {
    let mut g = GroupFacts {
        sensitivity: Some(0.4),
        probed_ratio: Some(0.25),
        ..Default::default()
    };
    let at = |g: &GroupFacts, x: f64| g.expected_drop_at(x, 0.0).unwrap();
    assert!((at(&g, 0.125) - 0.1).abs() < 1e-12);
    assert!((at(&g, 0.5) - 1.6).abs() < 1e-12, "quadratic extrapolation");
    g.deeper = Some(DeeperProbe {
        ratio: 0.5,
        sensitivity: Some(1.0),
        ..Default::default()
    });
    assert!((at(&g, 0.25) - 0.4).abs() < 1e-12);
    assert!(
        (at(&g, 0.375) - 0.7).abs() < 1e-12,
        "linear between the probes"
    );
    assert!((at(&g, 0.5) - 1.0).abs() < 1e-12, "measured, not 1.6");
    assert!((at(&g, 1.0) - 4.0).abs() < 1e-12);
    assert_eq!(g.measured_range(), Some(0.5));
    // A deeper drop below proportional growth is noise: taken as 0.8 at 50 %.
    g.deeper.as_mut().unwrap().sensitivity = Some(0.1);
    assert!((at(&g, 0.5) - 0.8).abs() < 1e-12);
    assert_eq!(GroupFacts::default().expected_drop_at(0.3, 0.0), None);
}

/// A third probe (`deepest`) extends the measured curve: linear from the deeper probe to it,
/// quadratic beyond; the measured range reaches it, and the built-in planner may cut the
/// cheapest group to that depth in one round (it stops at 50 % without it).
#[test]
fn a_deepest_probe_extends_the_curve_and_the_cut() {
    let mut g = GroupFacts {
        sensitivity: Some(0.4),
        probed_ratio: Some(0.25),
        deeper: Some(DeeperProbe {
            ratio: 0.5,
            sensitivity: Some(1.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let at = |g: &GroupFacts, x: f64| g.expected_drop_at(x, 0.0).unwrap();
    assert!((at(&g, 0.75) - 2.25).abs() < 1e-12, "quadratic beyond 50 %");
    g.deepest = Some(DeeperProbe {
        ratio: 0.75,
        sensitivity: Some(1.6),
        ..Default::default()
    });
    assert!(
        (at(&g, 0.5) - 1.0).abs() < 1e-12,
        "the deeper probe still counts"
    );
    assert!(
        (at(&g, 0.625) - 1.3).abs() < 1e-12,
        "linear from 50 to 75 %"
    );
    assert!((at(&g, 0.75) - 1.6).abs() < 1e-12);
    assert!((at(&g, 1.0) - 1.6 * (1.0f64 / 0.75).powi(2)).abs() < 1e-12);
    assert_eq!(g.measured_range(), Some(0.75));
    // Below proportional growth over the deeper probe: noise, taken as 1.5 at 75 %.
    g.deepest.as_mut().unwrap().sensitivity = Some(0.2);
    assert!((at(&g, 0.75) - 1.5).abs() < 1e-12);

    let at_50 = || {
        Some(DeeperProbe {
            ratio: 0.5,
            sensitivity: Some(0.06),
            ..Default::default()
        })
    };
    let two = removed_from_cheapest(at_50(), None);
    assert!(two > 16 && two <= 32, "{two} of 64 with probes up to 50 %");
    let three = removed_from_cheapest(
        at_50(),
        Some(DeeperProbe {
            ratio: 0.75,
            sensitivity: Some(0.08),
            ..Default::default()
        }),
    );
    assert!(
        three > 32 && three <= 48,
        "{three} of 64 with a probe at 75 %"
    );
}

/// `input` measured on `images` feedback images (the baseline, the current model and its
/// paired comparison).
fn on_images(mut input: PlanningInput, images: usize) -> PlanningInput {
    for e in [&mut input.baseline, &mut input.current] {
        e.images = images;
        if let Some(p) = &mut e.accuracy_change {
            p.samples = images;
        }
    }
    input
}

/// A round measured on the feedback images: `disagree` of them changed their answer against
/// the input, `drop` points net.
fn measured_round(drop: f64, disagree: f64, images: usize) -> RoundSummary {
    let n = images as f64;
    let only_baseline = ((disagree + drop / 100.0) / 2.0 * n).round() as usize;
    let only_candidate = ((disagree - drop / 100.0) / 2.0 * n).round() as usize;
    RoundSummary {
        accuracy_change: Some(PairedAccuracy {
            samples: images,
            baseline_correct: images,
            candidate_correct: images + only_candidate - only_baseline,
            only_baseline,
            only_candidate,
        }),
        accepted: true,
        ..rejected_summary()
    }
}

/// The loop accepts a round only when the 90 % upper bound of its paired drop is within the
/// budget, and that bound sits a margin above the measured drop that shrinks with the feedback
/// images: on 1,000 images a round measured at the whole budget left is rejected. The planner
/// plans for the budget left less that margin (from the input's error rate until a round has
/// measured how many answers change, then from the most any round within the budget changed),
/// and for a quarter of the budget left when the margin leaves less, naming the margin and the
/// option that narrows it.
#[test]
fn a_round_leaves_the_confidence_margin_the_loops_bound_needs() {
    use profagent_agent::estimate::{confidence_margin, PRIOR_DISAGREEMENT_PER_ERROR};
    let full: Vec<usize> = RESNET18.iter().map(|g| g.1).collect();
    let plan_on = |images: usize, history: Vec<RoundSummary>| {
        let input = on_images(
            input(groups(&full), BASELINE_TOP1, macs_budget(), history),
            images,
        );
        let context = context(&input.groups);
        let plan = BuiltinPlanner::new().plan(&input, &context);
        (plan, confidence_margin(&input))
    };

    // Before any round: a share of the input's 7 % error rate changes.
    let (few, margin) = plan_on(1_000, vec![]);
    let margin = margin.expect("labels, so a margin");
    let prior = PRIOR_DISAGREEMENT_PER_ERROR * 0.07;
    assert!(!margin.measured);
    assert!((margin.disagreement - prior).abs() < 1e-9);
    assert!((margin.points - 1.2816 * 100.0 * (prior / 1000.0).sqrt()).abs() < 1e-3);
    let (many, wide) = plan_on(20_000, vec![]);
    assert!(wide.unwrap().points < 0.2);
    assert!(
        stated_drop(&few) < stated_drop(&many),
        "1,000 images: {}; 20,000: {}",
        few.rationale,
        many.rationale
    );
    assert!(
        few.rationale
            .contains(&format!("confidence margin of {:.2} points", margin.points)),
        "{}",
        few.rationale
    );
    assert!(
        stated_drop(&few) <= ROUND_BUDGET_SHARE * (1.0 - margin.points) + 0.005,
        "{}",
        few.rationale
    );

    // A round within the budget changed 8 % of 1,000 answers: the margin (1.15 points) would
    // leave nothing of a 1-point budget; the round plans for a quarter of what is left instead
    // (measured drops move both ways), and says why. A round that lost 30 points says nothing
    // about candidates near the bound and is not counted.
    let rounds = |images| {
        vec![
            measured_round(0.4, 0.08, images),
            measured_round(30.0, 0.32, images),
        ]
    };
    let (small, margin) = plan_on(1_000, rounds(1_000));
    let margin = margin.unwrap();
    assert!(margin.measured && (margin.disagreement - 0.08).abs() < 1e-9);
    assert!(!small.pruning.is_empty(), "{}", small.rationale);
    assert!(
        stated_drop(&small) <= ROUND_BUDGET_SHARE * MARGIN_FLOOR * 1.0 + 0.005,
        "{}",
        small.rationale
    );
    assert!(
        small.rationale.contains("confidence margin")
            && small.rationale.contains("--feedback-samples"),
        "{}",
        small.rationale
    );
    // The same rounds on 20,000 images leave more room.
    let (go, _) = plan_on(20_000, rounds(20_000));
    assert!(stated_drop(&go) > stated_drop(&small), "{}", go.rationale);
}

/// The MMACs a plan's rationale says it removes ("remove X of the Y MMACs").
fn stated_removal(plan: &CompressionPlan) -> f64 {
    number_after(plan, ": remove ")
}

/// A round 1 for a MACs target `missing` MMACs below the input, budget 1 point.
fn round_one_for(missing_mmacs: f64) -> CompressionPlan {
    let full: Vec<usize> = RESNET18.iter().map(|g| g.1).collect();
    let budget = Budget {
        target_macs_fraction: Some(1.0 - missing_mmacs * 1e6 / BASELINE_MACS as f64),
        ..macs_budget()
    };
    let first = input(groups(&full), BASELINE_TOP1, budget, vec![]);
    let context = context(&first.groups);
    BuiltinPlanner::new().plan(&first, &context)
}

/// A full step that its share of the budget leaves within `FINISH_SHARE` of the target finishes
/// it from the budget left (vit_tiny stopped at 0.6016 of the MACs with 0.60 asked, and the
/// 0.07 points left could not pay for another round); further from the target the round stays
/// within its share.
#[test]
fn a_round_within_reach_of_the_target_finishes_it_from_the_budget_left() {
    // Far from the target: the share binds, and says how much it buys.
    let far = round_one_for(300.0);
    let bought = stated_removal(&far);
    assert!(
        stated_drop(&far) <= ROUND_BUDGET_SHARE + 0.005,
        "{}",
        far.rationale
    );
    assert!(bought > 10.0 && bought < 300.0, "{}", far.rationale);

    // 5 % short of a nearer target: finished, beyond the share, within the budget left.
    let near = round_one_for(bought / 0.95);
    assert!(
        near.rationale.contains("to finish the target"),
        "{}",
        near.rationale
    );
    assert!(
        stated_removal(&near) >= bought / 0.95 - 0.1,
        "{}",
        near.rationale
    );
    let spent = stated_drop(&near);
    assert!(
        spent > stated_drop(&far) && spent <= 1.0 + 0.005,
        "{}",
        near.rationale
    );

    // 25 % short: no finishing, the round stays within its share.
    let short = round_one_for(bought / 0.75);
    assert!(
        !short.rationale.contains("to finish"),
        "{}",
        short.rationale
    );
    assert!(
        stated_drop(&short) <= ROUND_BUDGET_SHARE + 0.005,
        "{}",
        short.rationale
    );
    const { assert!(FINISH_SHARE < 0.25) };
}

/// A measured round against the input model: `drop` points lost on the feedback images.
fn measured(round: usize, accepted: bool, drop: f64) -> RoundSummary {
    let lost = (drop * IMAGES as f64 / 100.0).round() as usize;
    let right = (BASELINE_TOP1 * IMAGES as f64 / 100.0).round() as usize;
    RoundSummary {
        round,
        accepted,
        top1: Some(BASELINE_TOP1 - drop),
        accuracy_change: Some(PairedAccuracy {
            samples: IMAGES,
            baseline_correct: right,
            candidate_correct: right - lost,
            only_baseline: lost,
            only_candidate: 0,
        }),
        note: if accepted { "accepted" } else { "rolled back" }.into(),
        ..rejected_summary()
    }
}

/// resnet20's run (`--target-macs 0.8`): round 1 lost 2.5 times what it expected and was
/// rolled back; the half-size retry was accepted at no measured drop. The planner learns from
/// both rounds, not from the first alone (it used to keep round 1's factor for the rest of the
/// run and stay at half steps, so rounds 3-6 removed about 1 % of the MACs each): its factor
/// is the pooled ratio (2.5 e1 / (e1 + e2)) and its next round is a full step again, with the
/// full share of the budget left.
#[test]
fn the_planner_learns_from_every_measured_round_and_grows_its_step_back() {
    let full: Vec<usize> = RESNET18.iter().map(|g| g.1).collect();
    let first = input(groups(&full), BASELINE_TOP1, macs_budget(), vec![]);
    let first_context = context(&first.groups);
    let mut planner = BuiltinPlanner::new();
    let round1 = planner.plan(&first, &first_context);
    let e1 = expected_drop(&round1, &first, &first_context, quadratic);
    let rejected = measured(1, false, 2.5 * e1);

    let second = input(
        groups(&full),
        BASELINE_TOP1,
        macs_budget(),
        vec![rejected.clone()],
    );
    let round2 = planner.plan(&second, &first_context);
    assert!(
        round2
            .rationale
            .contains("own estimates x 2.5: round 1 lost"),
        "{}",
        round2.rationale
    );
    assert!(
        round2
            .rationale
            .contains(&format!("within {:.0} % of", ROUND_BUDGET_SHARE * 50.0)),
        "after a rejection, half the share: {}",
        round2.rationale
    );
    let e2 = expected_drop(&round2, &second, &first_context, quadratic);

    // Round 2 accepted at no measured drop: the model now has round 2's channels.
    let kept = validate(&round2, &first_context).unwrap();
    let now = channels_after(&kept);
    let third = input(
        groups(&now),
        BASELINE_TOP1,
        macs_budget(),
        vec![rejected, measured(2, true, 0.0)],
    );
    let third_context = context(&third.groups);
    let round3 = planner.plan(&third, &third_context);
    let pooled = 2.5 * e1 / (e1 + e2);
    assert!(
        pooled < 2.45,
        "the retry is not negligible: {e1:.3} then {e2:.3}"
    );
    if pooled > 1.05 {
        assert!(
            round3.rationale.contains(&format!(
                "own estimates x {pooled:.1}: the 2 pruning rounds so far lost"
            )),
            "pooled {pooled:.2}: {}",
            round3.rationale
        );
    } else {
        assert!(
            !round3.rationale.contains("own estimates"),
            "{}",
            round3.rationale
        );
    }
    assert!(
        round3
            .rationale
            .contains(&format!("within {:.0} % of", ROUND_BUDGET_SHARE * 100.0))
            || round3.rationale.contains("to finish the target"),
        "an accepted round grows the step back to the full share: {}",
        round3.rationale
    );
    assert_within_share(&round3, &third, &third_context, 1.0, pooled.max(1.0));
}
