//! Issue 20: estimates before applying and the guardrail for weak planners. A plan's predicted
//! MACs and top-1 drop come from the measured sensitivities (`estimate`); an LLM plan predicted
//! to break the accuracy budget goes back to the LLM while repairs are left; and the guarded
//! planner applies the built-in proposal instead of an LLM plan that is predicted to break the
//! budget, does clearly less, or is missing, and says so.
use profagent_agent::estimate::{
    estimate, estimate_tool, expected_group_drop, over_budget, round_budget,
};
use profagent_agent::facts::*;
use profagent_agent::guard::{prefer_builtin, GuardedPlanner};
use profagent_agent::planner::{AnalysisAgent, NoMeasure, Planner};
use profagent_agent::provider::replay::ReplayProvider;
use profagent_plan::{validate, CompressionPlan, GroupInfo, PlanContext, ValidatedPlan};

/// Feedback images of the sketch's evaluations: enough that the loop's confidence margin
/// (`estimate::confidence_margin`) is negligible, so the budget left is what plans may spend.
const IMAGES: usize = 1_000_000;

fn evaluation(top1: f64, macs: u64) -> Evaluation {
    Evaluation {
        macs: Some(macs),
        ..Evaluation::new(Some(top1), 10.0, 1_000_000, IMAGES)
    }
}

/// Three 128-channel groups of 100 MMACs each: "cheap" costs 0.2 points at 25 %, "dear" 4.0,
/// "unmeasured" has no measurement.
fn input() -> PlanningInput {
    let group = |id: &str, drop: Option<f64>| GroupFacts {
        id: id.into(),
        channels: 128,
        params: 10_000,
        macs: 100_000_000,
        latency_ms: Some(1.0),
        sensitivity: drop,
        measured_drop: drop,
        probed_ratio: drop.map(|_| 0.25),
        probed_from: drop.map(|_| 128),
        measured_round: drop.map(|_| 0),
        probed_images: Some(IMAGES),
        prunable: true,
        ..Default::default()
    };
    PlanningInput {
        model_name: "sketch".into(),
        family: "convolutional".into(),
        runtime: "onnxruntime".into(),
        baseline: evaluation(90.0, 400_000_000),
        current: evaluation(90.0, 400_000_000),
        current_quantization: "none".into(),
        layers: vec![],
        groups: vec![
            group("cheap", Some(0.2)),
            group("dear", Some(4.0)),
            group("unmeasured", None),
        ],
        quant_probes: vec![],
        budget: Budget {
            max_acc_drop: 1.0,
            target_latency_ms: None,
            target_memory_bytes: None,
            target_speedup: None,
            target_macs_fraction: Some(0.6),
            min_cosine: None,
            acc_confidence: 0.9,
        },
        history: vec![],
        rounds_left: 3,
        patience: 2,
    }
}

fn context(input: &PlanningInput) -> PlanContext {
    let mut context = PlanContext::new();
    for g in &input.groups {
        context
            .groups
            .insert(g.id.clone(), GroupInfo::new(g.channels, vec![g.id.clone()]));
    }
    context
}

fn plan(decisions: &[(&str, usize)], input: &PlanningInput) -> ValidatedPlan {
    let text = serde_json::json!({
        "schema_version": 1,
        "rationale": "test",
        "pruning": decisions.iter().map(|(g, keep)| serde_json::json!({
            "target": g, "keep": keep, "rationale": "test"})).collect::<Vec<_>>()
    });
    let plan: CompressionPlan = serde_json::from_value(text).unwrap();
    validate(&plan, &context(input)).unwrap()
}

#[test]
fn estimates_follow_the_measured_curve_and_name_unmeasured_groups() {
    let input = input();
    // 32 of 128 is the probed 25 %: exactly the measured drop; 64 is twice the range: 4x.
    assert!((expected_group_drop(&input.groups[0], 32).unwrap() - 0.2).abs() < 1e-12);
    assert!((expected_group_drop(&input.groups[0], 64).unwrap() - 0.8).abs() < 1e-12);
    assert_eq!(expected_group_drop(&input.groups[2], 32), None);
    let e = estimate(
        &plan(&[("cheap", 96), ("dear", 112), ("unmeasured", 64)], &input),
        &input,
        &context(&input),
    );
    // 25 % + 12.5 % + 50 % of 100 MMACs each.
    assert_eq!(e.macs_removed, 87_500_000);
    assert_eq!(e.macs_after, Some(312_500_000));
    assert!((e.macs_fraction_after.unwrap() - 0.78125).abs() < 1e-12);
    assert!((e.latency_saved_ms.unwrap() - 0.875).abs() < 1e-12);
    assert!((e.expected_drop - (0.2 + 1.0)).abs() < 1e-12, "{e:?}");
    assert_eq!(e.unmeasured, vec!["unmeasured".to_string()]);
    assert!(e
        .describe()
        .contains("not measured, so not counted: unmeasured"));
    // A group pruned since its measurement continues along its curve.
    let mut pruned = input.groups[0].clone();
    pruned.channels = 96;
    assert!((expected_group_drop(&pruned, 32).unwrap() - (0.8 - 0.2)).abs() < 1e-12);
    // Over budget: 1.2 points expected, 1.0 left.
    assert!(over_budget(&e, &input).is_some());
    let fits = estimate(&plan(&[("cheap", 96)], &input), &input, &context(&input));
    assert_eq!(over_budget(&fits, &input), None);
}

#[test]
fn the_guard_prefers_a_fitting_builtin_plan_and_says_why() {
    let input = input();
    let builtin = plan(&[("cheap", 80)], &input); // 0.45 expected, 37.5 MMACs
                                                  // The LLM's plan is predicted to break the budget: replaced.
    let greedy = plan(&[("dear", 64)], &input); // 16 expected
    let why = prefer_builtin(Some(&greedy), &builtin, &input, &context(&input)).expect("replaced");
    assert!(
        why.contains("beyond the 0.98 points of accuracy budget left beyond the confidence margin"),
        "{why}"
    );
    // Both fit, the LLM's does far less: replaced; within the margin: kept.
    let timid = plan(&[("cheap", 120)], &input);
    assert!(prefer_builtin(Some(&timid), &builtin, &input, &context(&input)).is_some());
    let close = plan(&[("cheap", 82)], &input);
    assert_eq!(
        prefer_builtin(Some(&close), &builtin, &input, &context(&input)),
        None
    );
    // A fitting LLM plan that does more than the built-in one stands.
    let bold = plan(&[("cheap", 72)], &input);
    assert_eq!(
        prefer_builtin(Some(&bold), &builtin, &input, &context(&input)),
        None
    );
    // Stopping early while the built-in plan fits, or no valid plan: replaced.
    let stop = validate(&CompressionPlan::empty("stop"), &context(&input)).unwrap();
    assert!(prefer_builtin(Some(&stop), &builtin, &input, &context(&input)).is_some());
    assert!(prefer_builtin(None, &builtin, &input, &context(&input)).is_some());
    // An LLM plan on an unmeasured group is not second-guessed by estimate.
    let unknown = plan(&[("unmeasured", 120)], &input);
    assert_eq!(
        prefer_builtin(Some(&unknown), &builtin, &input, &context(&input)),
        None
    );
}

/// On 1,000 feedback images a round measured at the whole budget left would be rejected by the
/// loop's 90 % bound: the guard holds plans to the budget left less that confidence margin
/// (0.70 points from a 10 % error rate, so 0.30 of the 1.00 left), the same budget the built-in
/// planner sizes its rounds for; the estimate tool reports both. At 50 % there is no margin.
#[test]
fn plans_are_held_to_the_budget_beyond_the_confidence_margin() {
    let mut input = input();
    input.baseline.images = 1000;
    input.current.images = 1000;
    let budget = round_budget(&input);
    assert!((budget.left - 1.0).abs() < 1e-12);
    assert!((budget.points - 0.30).abs() < 0.01, "{budget:?}");
    // 0.45 expected: within the 1.00 left, beyond the 0.30 this round may spend.
    let cut = plan(&[("cheap", 80)], &input);
    let why = over_budget(&estimate(&cut, &input, &context(&input)), &input)
        .expect("over this round's budget");
    assert!(
        why.contains("more than the 0.30 points of accuracy budget left beyond the confidence margin of 0.70 points"),
        "{why}"
    );
    assert_eq!(
        over_budget(
            &estimate(&plan(&[("cheap", 112)], &input), &input, &context(&input)),
            &input
        ),
        None
    );
    // The LLM's 0.45-point plan loses to a built-in plan that fits the 0.30.
    let small = plan(&[("cheap", 104)], &input);
    let why = prefer_builtin(Some(&cut), &small, &input, &context(&input)).expect("replaced");
    assert!(why.contains("beyond the 0.30 points of"), "{why}");
    let answer: serde_json::Value = serde_json::from_str(&estimate_tool(
        &serde_json::json!({"schema_version": 1, "rationale": "r",
            "pruning": [{"target": "cheap", "keep": 80, "rationale": "r"}]})
        .to_string(),
        &input,
        &context(&input),
    ))
    .unwrap();
    assert_eq!(answer["within_budget"], false);
    assert_eq!(answer["accuracy_budget_left_points"], 1.0);
    assert!((answer["round_budget_points"].as_f64().unwrap() - 0.30).abs() < 0.01);
    // At --acc-confidence 0.5 the loop accepts on the measured drop: no margin, the whole
    // budget left may be spent, and the same plan fits.
    input.budget.acc_confidence = 0.5;
    let budget = round_budget(&input);
    assert!((budget.points - 1.0).abs() < 1e-12, "{budget:?}");
    assert_eq!(
        over_budget(&estimate(&cut, &input, &context(&input)), &input),
        None
    );
}

/// An over-budget answer goes back once with the estimate; the repaired answer is used; the
/// guarded planner applies the LLM's plan when it is good and records whose plan it used.
#[test]
fn an_over_budget_answer_is_repaired_before_it_is_applied() {
    let input = input();
    let context = context(&input);
    let answer = |group: &str, keep: usize| {
        serde_json::json!({"schema_version": 1, "rationale": "r",
            "pruning": [{"target": group, "keep": keep, "rationale": "r"}]})
        .to_string()
    };
    let provider = ReplayProvider::new("scripted", vec![answer("dear", 64), answer("cheap", 72)]);
    let mut agent = GuardedPlanner::new(Box::new(AnalysisAgent::new(Box::new(provider))));
    let mut transcript = Vec::new();
    let proposal = agent
        .propose(
            1,
            &input,
            &context,
            &mut |e| {
                transcript.push(e.clone());
                Ok(())
            },
            &mut NoMeasure,
        )
        .unwrap();
    assert_eq!(proposal.attempts, 2);
    assert_eq!(transcript[0].verdict, "over_budget");
    assert!(transcript[1]
        .messages
        .last()
        .unwrap()
        .content
        .contains("expected top-1 drop 16.00 points"));
    let plan = proposal.plan.expect("a plan");
    assert_eq!(plan.pruning()[0].group, "cheap");
    assert_eq!(plan.pruning()[0].keep, 72);
    assert_eq!(proposal.used, None, "the LLM's own plan was used");
    assert!(agent.describe().ends_with("(guarded by builtin)"));

    // An LLM that insists on the over-budget plan: after the repairs it is the built-in plan
    // that gets applied, named as such.
    let provider = ReplayProvider::new("scripted", vec![answer("dear", 64); 3]);
    let mut agent = GuardedPlanner::new(Box::new(AnalysisAgent::new(Box::new(provider))));
    let proposal = agent
        .propose(1, &input, &context, &mut |_| Ok(()), &mut NoMeasure)
        .unwrap();
    let used = proposal.used.expect("the guard replaced the plan");
    assert!(used.starts_with("builtin (guardrail:"), "{used}");
    assert!(proposal
        .plan
        .unwrap()
        .pruning()
        .iter()
        .all(|p| p.group != "dear" || p.keep > 64));
}

/// A provider that fails every call with the error its function builds.
struct Failing(fn() -> profagent_agent::AgentError);

impl profagent_agent::provider::Provider for Failing {
    fn describe(&self) -> String {
        "failing".into()
    }
    fn complete(
        &mut self,
        _: &profagent_agent::provider::ChatRequest<'_>,
    ) -> Result<profagent_agent::provider::Completion, profagent_agent::AgentError> {
        Err((self.0)())
    }
}

/// A failed LLM call (here a local model whose context cannot hold the prompt) is a round
/// planned by the built-in planner, named with the failure, not the end of the run; the
/// transcript keeps the failure, and a replay of that transcript fails the call again and
/// falls back the same way. Setup errors (a missing key) still end the run.
#[test]
fn a_failed_llm_call_is_a_builtin_round_and_replays_as_one() {
    let input = input();
    let context = context(&input);
    let dir = tempfile::tempdir().unwrap();
    let run_dir = profagent_agent::rundir::RunDir::create(dir.path(), vec![]).unwrap();
    let llm = Failing(|| {
        profagent_agent::AgentError::Local(
            "prompt is 3259 tokens but the context holds 4096 (with 1024 reserved for the answer)"
                .into(),
        )
    });
    let mut agent = GuardedPlanner::new(Box::new(AnalysisAgent::new(Box::new(llm))));
    let proposal = agent
        .propose(
            1,
            &input,
            &context,
            &mut |e| run_dir.record(e),
            &mut NoMeasure,
        )
        .expect("the round goes on with the built-in plan");
    let used = proposal.used.expect("the guard used the built-in plan");
    assert!(
        used.starts_with("builtin (guardrail: the LLM gave no valid plan: the LLM call failed: local model: prompt is 3259 tokens"),
        "{used}"
    );
    let applied = proposal.plan.expect("the built-in plan");
    assert!(!applied.plan().is_noop());
    let transcript = profagent_agent::rundir::read_transcript(dir.path()).unwrap();
    assert_eq!(transcript.len(), 1);
    assert_eq!(transcript[0].verdict, "provider_error");

    // Replayed: the recorded failure fails again, and the same built-in plan is applied.
    let replayed = profagent_agent::planner::replay_planner(dir.path()).unwrap();
    let mut agent = GuardedPlanner::new(Box::new(replayed));
    let again = agent
        .propose(1, &input, &context, &mut |_| Ok(()), &mut NoMeasure)
        .unwrap();
    assert_eq!(again.plan.unwrap().plan(), applied.plan());
    assert!(again.used.unwrap().contains("prompt is 3259 tokens"));

    // A setup error ends the run.
    let llm = Failing(|| profagent_agent::AgentError::MissingKey {
        var: "OPENAI_API_KEY".into(),
        provider: "openai".into(),
    });
    let mut agent = GuardedPlanner::new(Box::new(AnalysisAgent::new(Box::new(llm))));
    let error = agent
        .propose(1, &input, &context, &mut |_| Ok(()), &mut NoMeasure)
        .unwrap_err();
    assert!(matches!(
        error,
        profagent_agent::AgentError::MissingKey { .. }
    ));
}
