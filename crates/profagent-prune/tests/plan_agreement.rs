//! Issue 16: the validated plan is the only description of what is applied.
//!
//! For many drawn (units, ratio, round_to) combinations over the real groups of models (CNNs
//! and transformers built in code with random widths, the bundled resnet20 example, and the
//! ../shared models when present), a plan is validated, applied the way `profagent compress`
//! applies it (the plan's exact kept counts as `PruneSpec::keep`), and every tensor each
//! group slices must have the plan's count in the written ONNX model. The ratio path
//! (`profagent prune --ratio/--layers` with `--round-to`) must keep the same counts.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::proto::GraphProto;
use profagent_onnx::{Model, ShapeFacts, ShapeOptions};
use profagent_plan::{
    check, validate, CompressionPlan, GroupInfo, ImportanceCriterion, PlanContext, PruneDecision,
    PruneUnit, Severity, ValidatedPlan,
};
use profagent_prune::{analyze, prune, Group, GroupKind, KeepRule, PruneSpec, RatioRule};

/// The `round_to` values drawn (1 = none; 3 is deliberately not a power of two).
const ROUND_TOS: [u32; 6] = [1, 2, 3, 4, 8, 16];

/// SplitMix64: a seeded, dependency-free source of draws (failures print the seed).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }
    /// A ratio in [0.01, 0.90], with the issue's 0.35 and exact halves drawn often.
    fn ratio(&mut self) -> f64 {
        match self.below(8) {
            0 => 0.35,
            1 => 0.5,
            2 => 0.25,
            _ => (1 + self.below(90)) as f64 / 100.0,
        }
    }
    fn round_to(&mut self) -> u32 {
        ROUND_TOS[self.below(ROUND_TOS.len() as u64) as usize]
    }
}

/// stem conv → conv → conv (+ 1x1 shortcut, residual Add) → expand → depthwise → project →
/// GAP → Flatten → Gemm (MLP) → classifier, with the given widths.
fn cnn(seed: u64, widths: [i64; 5]) -> Model {
    let [stem, a, b, expand, hidden] = widths;
    let mut g = GraphBuilder::new(seed);
    let x = g.input("input", &[-1, 3, 8, 8]);
    let c = g.conv("/conv1", &x, 3, stem, 3, 1, 1);
    let r0 = g.unary("Relu", "/relu", &c);
    let c = g.conv("/layer1/conv1", &r0, stem, a, 3, 1, 1);
    let c = g.unary("Relu", "/layer1/relu", &c);
    let c = g.conv("/layer1/conv2", &c, a, b, 3, 1, 1);
    let shortcut = g.conv("/layer1/shortcut", &r0, stem, b, 1, 1, 1);
    let c = g.binary("Add", "/layer1", &c, &shortcut);
    let c = g.unary("Relu", "/layer1/relu_1", &c);
    let c = g.conv("/layer2/expand", &c, b, expand, 1, 1, 1);
    let c = g.unary("Relu", "/layer2/relu", &c);
    let c = g.conv("/layer2/dw", &c, expand, expand, 3, 1, expand);
    let c = g.unary("Relu", "/layer2/relu_1", &c);
    let c = g.conv("/layer2/project", &c, expand, b, 1, 1, 1);
    let c = g.node(
        "GlobalAveragePool",
        "/pool/GlobalAveragePool",
        &[&c],
        1,
        vec![],
    );
    let c = g.node(
        "Flatten",
        "/Flatten",
        &[&c],
        1,
        vec![profagent_onnx::attr::int("axis", 1)],
    );
    let c = g.gemm("/head/fc1", &c, b, hidden);
    let c = g.unary("Relu", "/head/relu", &c);
    let _ = g.gemm("/fc", &c, hidden, 10);
    if let Some(last) = g.graph.node.last_mut() {
        last.output[0] = "logits".into();
    }
    g.output("logits", &[-1, 10]);
    g.finish()
}

/// One pre-norm transformer block (attention with `heads` heads, MLP of width `mlp`).
fn transformer(seed: u64, heads: i64, head_dim: i64, mlp: i64) -> Model {
    let dim = heads * head_dim;
    let mut g = GraphBuilder::new(seed);
    let x = g.input("input", &[-1, 5, dim]);
    let n = g.layernorm("/blocks.0/norm1", &x, dim);
    let a = g.attention("/blocks.0/attn", &n, dim, heads);
    let r = g.binary("Add", "/blocks.0", &x, &a);
    let n = g.layernorm("/blocks.0/norm2", &r, dim);
    let h = g.linear("/blocks.0/mlp/fc1", &n, dim, mlp);
    let h = g.unary("Tanh", "/blocks.0/mlp/act", &h);
    let h = g.linear("/blocks.0/mlp/fc2", &h, mlp, dim);
    let out = g.binary("Add", "/blocks.0_1", &r, &h);
    let _ = g.node("Identity", "/out", &[&out], 1, vec![]);
    if let Some(last) = g.graph.node.last_mut() {
        last.output[0] = "logits".into();
    }
    g.output("logits", &[-1, 5, dim]);
    g.finish()
}

/// The planner's view of `groups`, built the way compress's workbench builds it; the first
/// Conv and the producers of graph outputs are protected (as the pruner would protect them).
fn context(model: &Model, groups: &[Group]) -> PlanContext {
    let mut context = PlanContext::from_model(model);
    let graph = model.graph();
    let first_conv = graph
        .node
        .iter()
        .enumerate()
        .find(|(_, n)| n.op_type() == "Conv");
    if let Some((i, n)) = first_conv {
        let layer = profagent_onnx::layer_of_node(n.name(), n.op_type(), i);
        context.protected_layers.insert(layer);
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name()).collect();
    for (i, n) in graph.node.iter().enumerate() {
        if n.output.iter().any(|o| outputs.contains(&o.as_str())) {
            let layer = profagent_onnx::layer_of_node(n.name(), n.op_type(), i);
            context.protected_layers.insert(layer);
        }
    }
    for g in groups {
        let mut info = GroupInfo::new(g.units, g.layers.clone());
        info.producers = g.producers.clone();
        if g.kind == GroupKind::Heads {
            info.heads = Some(g.units);
        }
        if let profagent_prune::GroupStatus::Unprunable { reason } = &g.status {
            info.not_prunable = Some(reason.clone());
        }
        context.groups.insert(g.id.clone(), info);
    }
    context
}

/// One drawn decision per group the plan may prune; decisions the validator refuses alone
/// (a ratio that leaves fewer units than the minimum) are redrawn a few times, then dropped.
fn draw_plan(context: &PlanContext, draw: &mut Draw, limit: usize) -> ValidatedPlan {
    let mut plan = CompressionPlan::empty("plan/model agreement");
    for (id, info) in &context.groups {
        if plan.pruning.len() == limit {
            break;
        }
        if !context.may_prune(id) {
            continue;
        }
        for _ in 0..4 {
            let decision = PruneDecision {
                target: id.clone(),
                ratio: draw.ratio(),
                keep: None,
                unit: if info.heads.is_some() {
                    PruneUnit::Heads
                } else {
                    PruneUnit::Channels
                },
                criterion: ImportanceCriterion::L1,
                round_to: draw.round_to(),
                rationale: "drawn".into(),
            };
            let mut single = CompressionPlan::empty("one decision");
            single.pruning.push(decision.clone());
            let refused = check(&single, context)
                .iter()
                .any(|i| i.severity == Severity::Error);
            if !refused {
                plan.pruning.push(decision);
                break;
            }
        }
    }
    validate(&plan, context).expect("every decision was validated alone")
}

fn initializer_dims(graph: &GraphProto, name: &str) -> Option<Vec<i64>> {
    graph
        .initializer
        .iter()
        .find(|t| t.name() == name)
        .map(|t| t.dims.clone())
}

/// Asserts that in `pruned` every tensor a group of `original` slices has lost exactly the
/// units the plan removes (`expected`: group id → (units before, kept)), found through the
/// node that reads it (pruned copies of shared tensors are renamed), and that the pruned
/// model still passes shape inference with the original output shapes.
fn assert_shapes(
    original: &Model,
    groups: &[Group],
    pruned: &Model,
    expected: &BTreeMap<String, (usize, usize)>,
    label: &str,
) {
    let before = original.graph();
    let after = pruned.graph();
    for (id, &(units, keep)) in expected {
        let group = groups
            .iter()
            .find(|g| &g.id == id)
            .unwrap_or_else(|| panic!("{label}: the plan names group '{id}' the model lacks"));
        assert_eq!(group.units, units, "{label}: group '{id}'");
        for slice in &group.slices {
            let node = &before.node[slice.node];
            let slot = node
                .input
                .iter()
                .position(|i| *i == slice.tensor)
                .unwrap_or_else(|| panic!("{label}: '{}' not read", slice.tensor));
            let Some(dims) = initializer_dims(before, &slice.tensor) else {
                continue; // a Constant node's value (shape constants are checked by inference)
            };
            let per_unit = slice.map.blocks * slice.map.unit_len;
            let want = dims[slice.axis] - ((units - keep) * per_unit) as i64;
            let new_node = after
                .node
                .iter()
                .find(|n| n.name() == node.name())
                .unwrap_or_else(|| panic!("{label}: node '{}' is gone", node.name()));
            let new_dims = initializer_dims(after, &new_node.input[slot]).unwrap_or_else(|| {
                panic!("{label}: '{}' is not an initializer", new_node.input[slot])
            });
            assert_eq!(
                new_dims[slice.axis],
                want,
                "{label}: group '{id}' keeps {keep} of {units} units in the plan, but tensor '{}' \
                 (read by '{}') has {:?} on axis {} (was {dims:?})",
                slice.tensor,
                node.name(),
                new_dims,
                slice.axis
            );
        }
    }
    let facts = ShapeFacts::for_model(pruned, &ShapeOptions::default())
        .unwrap_or_else(|e| panic!("{label}: shape inference of the pruned model: {e}"));
    let original_facts = ShapeFacts::for_model(original, &ShapeOptions::default())
        .unwrap_or_else(|e| panic!("{label}: shape inference of the original: {e}"));
    for output in &after.output {
        assert_eq!(
            facts.known_dims(output.name()),
            original_facts.known_dims(output.name()),
            "{label}: output '{}' changed shape",
            output.name()
        );
    }
}

/// Validates a drawn plan on `model`, applies it by exact counts and by ratios, and checks
/// both models' shapes against the plan. Returns the kinds of the groups checked, one per
/// decision.
fn check_model(model: &Model, draw: &mut Draw, limit: usize, label: &str) -> Vec<GroupKind> {
    let groups = analyze(model).unwrap_or_else(|e| panic!("{label}: analyze: {e}"));
    let context = context(model, &groups);
    let plan = draw_plan(&context, draw, limit);
    let expected: BTreeMap<String, (usize, usize)> = plan
        .pruning()
        .iter()
        .map(|p| (p.group.clone(), (p.current, p.keep)))
        .collect();
    let described: Vec<String> = plan
        .pruning()
        .iter()
        .map(|p| {
            format!(
                "{} {} r={} round_to={} → {}",
                p.group, p.current, p.ratio, p.round_to, p.keep
            )
        })
        .collect();
    let label = format!("{label} [{}]", described.join("; "));

    // The plan path, as compress applies it: exact kept counts, protection already decided.
    let mut spec = PruneSpec::uniform(0.0);
    spec.protect_first_and_last = false;
    spec.keep = plan
        .pruning()
        .iter()
        .map(|p| KeepRule {
            group: p.group.clone(),
            keep: p.keep,
        })
        .collect();
    let (pruned, report) =
        prune(model, &spec, None).unwrap_or_else(|e| panic!("{label}: keep path: {e}"));
    for (id, &(_, keep)) in &expected {
        let outcome = report.groups.iter().find(|g| &g.id == id).unwrap();
        assert_eq!(outcome.units_after, keep, "{label}: report of '{id}'");
    }
    assert_shapes(model, &groups, &pruned, &expected, &label);
    // Groups outside the plan are untouched.
    for outcome in report
        .groups
        .iter()
        .filter(|g| !expected.contains_key(&g.id))
    {
        assert_eq!(outcome.units_after, outcome.units_before, "{label}");
    }

    // The ratio path (`profagent prune --layers 'ID=R' --round-to N`): one run per round_to,
    // since a spec has one; each must keep the plan's counts.
    let mut by_round_to: BTreeMap<u32, Vec<&profagent_plan::ResolvedPrune>> = BTreeMap::new();
    for p in plan.pruning() {
        by_round_to.entry(p.round_to).or_default().push(p);
    }
    for (round_to, decisions) in by_round_to {
        let mut spec = PruneSpec::uniform(0.0);
        spec.protect_first_and_last = false;
        spec.round_to = round_to as usize;
        spec.rules = decisions
            .iter()
            .map(|p| RatioRule {
                pattern: regex::escape(&p.group),
                ratio: p.ratio,
            })
            .collect();
        let (pruned, report) = prune(model, &spec, None)
            .unwrap_or_else(|e| panic!("{label}: ratio path, round_to {round_to}: {e}"));
        let subset: BTreeMap<String, (usize, usize)> = decisions
            .iter()
            .map(|p| (p.group.clone(), (p.current, p.keep)))
            .collect();
        for (id, &(_, keep)) in &subset {
            let outcome = report.groups.iter().find(|g| &g.id == id).unwrap();
            assert_eq!(
                outcome.units_after, keep,
                "{label}: `prune --layers {id}=R --round-to {round_to}` disagrees with the plan"
            );
        }
        assert_shapes(model, &groups, &pruned, &subset, &label);
    }
    groups
        .iter()
        .filter(|g| expected.contains_key(&g.id))
        .map(|g| g.kind)
        .collect()
}

#[test]
fn issue_16_64_channels_at_035_round_to_8_keep_48_in_plan_and_model() {
    let model = cnn(3, [16, 64, 32, 32, 24]);
    let groups = analyze(&model).unwrap();
    let context = context(&model, &groups);
    let mut plan = CompressionPlan::empty("the issue's case");
    plan.pruning.push(PruneDecision {
        target: "layer1.conv1".into(),
        ratio: 0.35,
        keep: None,
        unit: PruneUnit::Channels,
        criterion: ImportanceCriterion::L1,
        round_to: 8,
        rationale: "issue 16".into(),
    });
    let plan = validate(&plan, &context).unwrap();
    assert_eq!(
        (plan.pruning()[0].current, plan.pruning()[0].keep),
        (64, 48)
    );
    let mut spec = PruneSpec::uniform(0.0);
    spec.keep = vec![KeepRule {
        group: "layer1.conv1".into(),
        keep: 48,
    }];
    let (pruned, _) = prune(&model, &spec, None).unwrap();
    let conv = pruned
        .graph()
        .node
        .iter()
        .find(|n| n.name() == "/layer1/conv1/Conv")
        .or_else(|| {
            pruned
                .graph()
                .node
                .iter()
                .find(|n| n.name().starts_with("/layer1/conv1"))
        })
        .unwrap();
    assert_eq!(
        initializer_dims(pruned.graph(), &conv.input[1]).unwrap()[0],
        48
    );
    let expected = BTreeMap::from([("layer1.conv1".to_string(), (64, 48))]);
    assert_shapes(&model, &groups, &pruned, &expected, "issue 16 case");
}

#[test]
fn drawn_plans_on_synthetic_cnns_are_applied_exactly() {
    let mut draw = Draw(0x1616);
    let mut checked = Vec::new();
    for trial in 0..40 {
        let widths = [
            draw.range(4, 24),
            draw.range(2, 80),
            draw.range(2, 80),
            draw.range(2, 80),
            draw.range(2, 130),
        ];
        let model = cnn(trial, widths);
        let label = format!("cnn {widths:?}");
        checked.extend(check_model(&model, &mut draw, usize::MAX, &label));
    }
    assert!(checked.len() >= 120, "only {} decisions", checked.len());
    // (head.fc1's group reads into the protected classifier: MLP and heads are drawn below.)
    assert!(checked.contains(&GroupKind::Channel));
}

#[test]
fn drawn_plans_on_synthetic_transformers_are_applied_exactly() {
    let mut draw = Draw(0x0716);
    let mut checked = Vec::new();
    for trial in 0..25 {
        let heads = draw.range(2, 8);
        let head_dim = draw.range(1, 3) * 4;
        let mlp = draw.range(3, 100);
        let model = transformer(trial, heads, head_dim, mlp);
        let label = format!("transformer heads {heads}×{head_dim}, mlp {mlp}");
        checked.extend(check_model(&model, &mut draw, usize::MAX, &label));
    }
    assert!(checked.len() >= 40, "only {} decisions", checked.len());
    for kind in [GroupKind::Heads, GroupKind::Mlp] {
        assert!(checked.contains(&kind), "no {kind:?} group was drawn");
    }
}

#[test]
fn drawn_plans_on_the_bundled_resnet20_are_applied_exactly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/resnet20_cifar10.onnx");
    let model = Model::load(&path).unwrap();
    let mut draw = Draw(0x20);
    for trial in 0..4 {
        let label = format!("resnet20 trial {trial}");
        assert!(
            !check_model(&model, &mut draw, 8, &label).is_empty(),
            "{label}"
        );
    }
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn drawn_plans_on_shared_mobilenet_and_vit_are_applied_exactly() {
    let shared = common::shared_dir();
    let mut draw = Draw(0x5A);
    for name in ["mobilenet_v2_imagenet.onnx", "vit_tiny_cifar10.onnx"] {
        let model = Model::load(shared.join("models").join(name)).unwrap();
        for trial in 0..2 {
            let label = format!("{name} trial {trial}");
            assert!(
                !check_model(&model, &mut draw, 6, &label).is_empty(),
                "{label}"
            );
        }
    }
}

/// A keep rule is an explicit request: what cannot be applied exactly is an error naming the
/// group, never a silent skip (which would make the model differ from the plan again).
#[test]
fn keep_rules_that_cannot_be_applied_are_errors_naming_the_group() {
    let model = cnn(5, [8, 16, 16, 16, 12]);
    let attempt = |rules: Vec<(&str, usize)>, protect: bool| {
        let mut spec = PruneSpec::uniform(0.0);
        spec.protect_first_and_last = protect;
        spec.keep = rules
            .into_iter()
            .map(|(group, keep)| KeepRule {
                group: group.into(),
                keep,
            })
            .collect();
        prune(&model, &spec, None).map(|(_, report)| report)
    };
    let message = |rules, protect| match attempt(rules, protect) {
        Ok(_) => panic!("applied"),
        Err(e) => e.to_string(),
    };
    let unknown = message(vec![("layer9.conv1", 4)], true);
    assert!(
        unknown.contains("'layer9.conv1'") && unknown.contains("--list"),
        "{unknown}"
    );
    let too_many = message(vec![("layer1.conv1", 17)], true);
    assert!(
        too_many.contains("'layer1.conv1' has 16 units"),
        "{too_many}"
    );
    let none = message(vec![("layer1.conv1", 0)], true);
    assert!(none.contains("keeping 0"), "{none}");
    let twice = message(vec![("layer1.conv1", 8), ("layer1.conv1", 12)], true);
    assert!(twice.contains("two keep rules"), "{twice}");
    let protected = message(vec![("conv1", 4)], true);
    assert!(
        protected.contains("'conv1'") && protected.contains("protected"),
        "{protected}"
    );
    let unprunable = message(vec![("fc", 5)], false);
    assert!(
        unprunable.contains("'fc'") && unprunable.contains("cannot be pruned"),
        "{unprunable}"
    );
    // Keeping every unit is allowed and changes nothing.
    let report = attempt(vec![("layer1.conv1", 16)], true).unwrap();
    assert_eq!(report.pruned_groups().count(), 0);
}

/// On the ratio path a ratio that leaves no unit is refused (as the plan validator refuses
/// it), instead of silently keeping one.
#[test]
fn a_ratio_that_leaves_nothing_is_an_error_naming_the_group() {
    let model = transformer(9, 3, 4, 8);
    let groups = analyze(&model).unwrap();
    let heads = groups.iter().find(|g| g.kind == GroupKind::Heads).unwrap();
    let mut spec = PruneSpec::uniform(0.0);
    // 3 heads × 0.1 = 0.3 of a head left: nothing.
    spec.rules = vec![RatioRule {
        pattern: regex::escape(&heads.id),
        ratio: 0.9,
    }];
    let err = prune(&model, &spec, None).unwrap_err().to_string();
    assert!(
        err.contains(&format!("'{}'", heads.id)) && err.contains("leaves no unit of the 3"),
        "{err}"
    );
}
