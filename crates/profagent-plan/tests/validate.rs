//! Validation catches every kind of bad decision and names it; good plans resolve exactly.
use profagent_plan::*;

fn context() -> PlanContext {
    let mut context = PlanContext::new();
    for (name, op) in [
        ("conv1", "Conv"),
        ("layer1.0.conv1", "Conv"),
        ("layer1.0.conv2", "Conv"),
        ("blocks.0.attn.qkv", "MatMul"),
        ("blocks.0.mlp.fc1", "MatMul"),
        ("fc", "Gemm"),
        ("Softmax_3", "Softmax"),
    ] {
        context.layers.insert(
            name.into(),
            LayerInfo {
                op_types: vec![op.into()],
                quant_modes: context::quant_modes_for_op(op),
            },
        );
    }
    context.groups.insert(
        "layer1.0.conv1".into(),
        GroupInfo::new(64, vec!["layer1.0.conv1".into(), "layer1.0.conv2".into()]),
    );
    context
        .groups
        .insert("stem".into(), GroupInfo::new(64, vec!["conv1".into()]));
    let mut attention = GroupInfo::new(192, vec!["blocks.0.attn.qkv".into()]);
    attention.heads = Some(3);
    context.groups.insert("blocks.0.attn".into(), attention);
    let mut frozen = GroupInfo::new(768, vec!["blocks.0.mlp.fc1".into()]);
    frozen.not_prunable = Some("feeds a reshape the pruner cannot follow".into());
    context.groups.insert("blocks.0.mlp".into(), frozen);
    context.protected_layers.insert("conv1".into());
    context
}

fn prune(target: &str, ratio: f64) -> PruneDecision {
    PruneDecision {
        target: target.into(),
        ratio,
        keep: None,
        unit: PruneUnit::Channels,
        criterion: ImportanceCriterion::L1,
        round_to: 1,
        rationale: "heavy layer".into(),
    }
}

fn codes(plan: &CompressionPlan) -> Vec<IssueCode> {
    check(plan, &context())
        .into_iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| i.code)
        .collect()
}

#[test]
fn a_good_plan_resolves_groups_and_channel_counts() {
    let mut plan = CompressionPlan::empty("prune the heavy block, quantize statically");
    let mut decision = prune("layer1.0.conv2", 0.3); // a layer name resolves to its group
    decision.round_to = 8;
    plan.pruning.push(decision);
    let mut heads = prune("blocks.0.attn", 0.34);
    heads.unit = PruneUnit::Heads;
    plan.pruning.push(heads);
    plan.quantization = Some(QuantizationPlan {
        default: QuantSetting::new(QuantMode::Static),
        layers: vec![LayerQuantization {
            layer: "fc".into(),
            mode: QuantMode::None,
            per_channel: true,
            signed_weights: true,
            rationale: "classifier is sensitive".into(),
        }],
        rationale: "static int8 is fastest for convs".into(),
    });
    let validated = validate(&plan, &context()).expect("valid");
    assert_eq!(validated.pruning()[0].group, "layer1.0.conv1");
    assert_eq!(
        (validated.pruning()[0].current, validated.pruning()[0].keep),
        (64, 48)
    );
    assert_eq!(
        (validated.pruning()[1].current, validated.pruning()[1].keep),
        (3, 2)
    );
    let quantized: Vec<&str> = validated
        .quantization()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        quantized,
        [
            "blocks.0.attn.qkv",
            "blocks.0.mlp.fc1",
            "conv1",
            "layer1.0.conv1",
            "layer1.0.conv2"
        ]
    );
    assert!(
        validated.warnings().is_empty(),
        "{:?}",
        validated.warnings()
    );
}

#[test]
fn unknown_names_are_errors_with_suggestions() {
    let mut plan = CompressionPlan::empty("x");
    plan.pruning.push(prune("layer1.0.conv", 0.2));
    let issues = check(&plan, &context());
    assert_eq!(issues[0].code, IssueCode::UnknownTarget);
    assert!(
        issues[0].message.contains("did you mean 'layer1.0.conv1'"),
        "{}",
        issues[0].message
    );
    assert_eq!(issues[0].location, "pruning[0]");
}

#[test]
fn ratio_one_and_zero_and_nan_are_out_of_range() {
    for ratio in [1.0, 0.0, -0.1, 0.95, f64::NAN] {
        let mut plan = CompressionPlan::empty("x");
        plan.pruning.push(prune("layer1.0.conv1", ratio));
        assert_eq!(codes(&plan), [IssueCode::RatioOutOfRange], "ratio {ratio}");
    }
}

#[test]
fn protected_unprunable_duplicate_and_heads_mistakes_are_errors() {
    let mut plan = CompressionPlan::empty("x");
    plan.pruning.push(prune("stem", 0.2));
    plan.pruning.push(prune("blocks.0.mlp", 0.2));
    plan.pruning.push(prune("layer1.0.conv1", 0.2));
    plan.pruning.push(prune("layer1.0.conv2", 0.5)); // same group again, through a layer
    let mut heads = prune("layer1.0.conv1", 0.5);
    heads.unit = PruneUnit::Heads;
    plan.pruning.push(heads);
    let mut all_heads = prune("blocks.0.attn", 0.9);
    all_heads.unit = PruneUnit::Heads;
    plan.pruning.push(all_heads);
    assert_eq!(
        codes(&plan),
        [
            IssueCode::Protected,
            IssueCode::NotPrunable,
            IssueCode::DuplicateTarget,
            IssueCode::HeadsUnsupported,
            IssueCode::NothingLeft
        ]
    );
    let err = validate(&plan, &context()).unwrap_err();
    assert!(err.to_string().contains("protected layer 'conv1'"), "{err}");
}

/// Protection follows the pruner (`profagent_prune::prune`): a group may not prune a protected
/// layer's outputs, but a protected layer that only reads the group's channels (a classifier
/// after the last pooled stream) loses inputs and keeps every output, so the group is prunable.
#[test]
fn a_protected_consumer_keeps_the_group_prunable_a_protected_producer_does_not() {
    let mut context = context();
    context.protected_layers.insert("fc".into());
    let mut stream = GroupInfo::new(
        512,
        vec![
            "layer1.0.conv2".into(),
            "layer1.0.conv1".into(),
            "fc".into(),
        ],
    );
    stream.producers = vec!["layer1.0.conv2".into()];
    context
        .groups
        .insert("layer1.0.conv2".into(), stream.clone());
    assert_eq!(context.group_is_protected(&stream), None);
    let mut plan = CompressionPlan::empty("x");
    plan.pruning.push(prune("layer1.0.conv2", 0.5));
    assert!(validate(&plan, &context).is_ok());

    // The same group with the classifier among its producers, and a context written before
    // producers were recorded (every layer counts as one), are refused, naming the layer.
    stream.producers.push("fc".into());
    assert_eq!(context.group_is_protected(&stream), Some("fc"));
    stream.producers.clear();
    assert_eq!(context.group_is_protected(&stream), Some("fc"));
    context.groups.insert("layer1.0.conv2".into(), stream);
    let err = validate(&plan, &context).unwrap_err();
    assert!(
        err.to_string().contains("outputs of protected layer 'fc'"),
        "{err}"
    );
}

#[test]
fn quantization_mistakes_are_errors() {
    let mut context = context();
    context.quant_modes.remove(&QuantMode::Int4);
    let layer = |name: &str, mode| LayerQuantization {
        layer: name.into(),
        mode,
        per_channel: true,
        signed_weights: true,
        rationale: String::new(),
    };
    let plan = CompressionPlan {
        quantization: Some(QuantizationPlan {
            default: QuantSetting::new(QuantMode::Dynamic),
            layers: vec![
                layer("fcc", QuantMode::None),
                layer("Softmax_3", QuantMode::Dynamic),
                layer("blocks.0.attn.qkv", QuantMode::Int4),
                layer("fc", QuantMode::None),
                layer("fc", QuantMode::None),
                layer("conv1", QuantMode::Static),
            ],
            rationale: String::new(),
        }),
        ..CompressionPlan::empty("x")
    };
    let errors: Vec<IssueCode> = check(&plan, &context)
        .into_iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| i.code)
        .collect();
    assert_eq!(
        errors,
        [
            IssueCode::UnknownLayer,
            IssueCode::LayerNotQuantizable,
            IssueCode::ModeUnavailable,
            IssueCode::DuplicateLayer,
            IssueCode::MixedModes
        ]
    );
    context.mixed_quant_modes = true;
    let errors = check(&plan, &context)
        .into_iter()
        .filter(|i| i.severity == Severity::Error)
        .count();
    assert_eq!(errors, 4);
}

#[test]
fn wrong_schema_version_is_rejected_and_no_effect_is_a_warning() {
    let mut plan = CompressionPlan::empty("x");
    plan.schema_version = 2;
    assert_eq!(codes(&plan), [IssueCode::SchemaVersion]);
    let mut plan = CompressionPlan::empty("x");
    let mut tiny = prune("layer1.0.conv1", 0.01);
    tiny.round_to = 16;
    plan.pruning.push(tiny);
    let validated = validate(&plan, &context()).unwrap();
    assert_eq!(validated.warnings()[0].code, IssueCode::NoEffect);
}

#[test]
fn plans_round_trip_through_json() {
    let text = r#"{"schema_version":1,"rationale":"r","pruning":[{"target":"layer1.0.conv1","ratio":0.25,"criterion":"l2","round_to":8,"rationale":"big"}],
                  "quantization":{"default":{"mode":"static","per_channel":true,"signed_weights":true},"layers":[{"layer":"fc","mode":"none"}]}}"#;
    let plan = parse_plan(text).unwrap();
    assert_eq!(plan.pruning[0].criterion, ImportanceCriterion::L2);
    let again = parse_plan(&serde_json::to_string(&plan).unwrap()).unwrap();
    assert_eq!(plan, again);
    validate(&plan, &context()).unwrap();
}

#[test]
fn plans_longer_than_the_schema_bounds_are_errors() {
    let mut plan = CompressionPlan::empty("too long");
    for _ in 0..=profagent_plan::types::MAX_PRUNING_DECISIONS {
        plan.pruning.push(prune("layer1.0.conv1", 0.25));
    }
    assert!(codes(&plan).contains(&IssueCode::TooManyDecisions));
    // The committed schema carries the same bound, so grammar-constrained decoders obey it.
    let schema = profagent_plan::plan_json_schema_text();
    assert!(
        schema.contains(&format!(
            "\"maxItems\": {}",
            profagent_plan::types::MAX_PRUNING_DECISIONS
        )),
        "schema lacks the pruning bound"
    );
}

/// `keep: N` resolves to exactly N units (no rounding), heads included; it cannot be combined
/// with a ratio, exceed the group, or remove more than one round may.
#[test]
fn keep_counts_resolve_exactly_and_bad_counts_are_errors() {
    let mut plan = CompressionPlan::empty("exact counts");
    let mut channels = prune("layer1.0.conv1", 0.0);
    channels.keep = Some(44);
    channels.round_to = 8; // does not apply to an exact count
    plan.pruning.push(channels);
    let mut heads = prune("blocks.0.attn", 0.0);
    heads.unit = PruneUnit::Heads;
    heads.keep = Some(2);
    plan.pruning.push(heads);
    let validated = validate(&plan, &context()).expect("valid");
    let resolved: Vec<(usize, usize, f64)> = validated
        .pruning()
        .iter()
        .map(|r| (r.current, r.keep, r.ratio))
        .collect();
    assert_eq!((resolved[0].0, resolved[0].1), (64, 44));
    assert!((resolved[0].2 - 20.0 / 64.0).abs() < 1e-12);
    assert_eq!((resolved[1].0, resolved[1].1), (3, 2));

    // Parsed from an answer without a ratio.
    let parsed = parse_plan(
        r#"{"schema_version": 1, "rationale": "r", "pruning": [{"target": "layer1.0.conv1", "keep": 48, "rationale": "x"}]}"#,
    )
    .expect("parses");
    let validated = validate(&parsed, &context()).expect("valid");
    assert_eq!(validated.pruning()[0].keep, 48);

    for (ratio, keep) in [(0.25, 48), (0.0, 65), (0.0, 4), (0.0, 0)] {
        let mut plan = CompressionPlan::empty("bad");
        let mut d = prune("layer1.0.conv1", ratio);
        d.keep = Some(keep);
        plan.pruning.push(d);
        assert!(
            !codes(&plan).is_empty(),
            "ratio {ratio} with keep {keep} must be an error"
        );
    }
}
