//! The fixed rules the workbench applies for the loop: one pruning pass per importance
//! criterion with the plan's exact kept counts, the protected layers of the pruner, and the
//! model-family description from the convolutions' share of MACs.
use profagent_onnx::builder::GraphBuilder;
use profagent_plan::{ImportanceCriterion, PruneUnit, ResolvedPrune};
use profagent_prune::Importance;
use profagent_workbench::bench::{model_family, prune_specs};

fn decision(group: &str, criterion: ImportanceCriterion, keep: usize) -> ResolvedPrune {
    ResolvedPrune {
        group: group.into(),
        unit: PruneUnit::Channels,
        criterion,
        ratio: 0.5,
        round_to: 1,
        current: 16,
        keep,
        unit_channels: 1,
    }
}

#[test]
fn one_pass_per_criterion_carrying_the_plans_kept_counts() {
    let decisions = [
        decision("b", ImportanceCriterion::Random, 3),
        decision("a", ImportanceCriterion::L1, 8),
        decision("c", ImportanceCriterion::L1, 5),
    ];
    let specs = prune_specs(&decisions);
    assert_eq!(specs.len(), 2, "L1 and random; no empty L2 pass");
    assert_eq!(specs[0].importance, Importance::L1);
    let kept: Vec<(&str, usize)> = specs[0]
        .keep
        .iter()
        .map(|k| (k.group.as_str(), k.keep))
        .collect();
    assert_eq!(kept, [("a", 8), ("c", 5)]);
    assert_eq!(specs[1].importance, Importance::Random);
    assert_eq!(specs[1].keep.len(), 1);
    for spec in &specs {
        assert_eq!(spec.global_ratio, 0.0, "only the kept counts prune");
        assert!(spec.rules.is_empty());
        assert!(
            !spec.protect_first_and_last,
            "protection was decided when the plan was validated"
        );
    }
    assert!(prune_specs(&[]).is_empty());
}

#[test]
fn the_family_follows_the_convolution_share_of_macs() {
    assert_eq!(model_family(1.0), "convolutional");
    assert_eq!(model_family(0.8), "convolutional");
    assert_eq!(model_family(0.79), "mixed");
    assert_eq!(model_family(0.21), "mixed");
    assert_eq!(model_family(0.2), "transformer");
    assert_eq!(model_family(0.0), "transformer");
}

#[test]
fn the_plan_protects_the_layers_the_pruner_protects() {
    // x → Conv(stem) → Relu → Conv → Relu → GlobalAveragePool → Flatten → Gemm(head).
    let mut b = GraphBuilder::new(3);
    let x = b.input("input", &[1, 3, 8, 8]);
    let c = b.conv("/stem", &x, 3, 8, 3, 1, 1);
    let r = b.unary("Relu", "/stem_relu", &c);
    let c = b.conv("/layer1/conv", &r, 8, 8, 3, 1, 1);
    let r = b.unary("Relu", "/layer1/relu", &c);
    let p = b.unary("GlobalAveragePool", "/pool", &r);
    let f = b.node(
        "Flatten",
        "/flatten",
        &[&p],
        1,
        vec![profagent_onnx::attr::int("axis", 1)],
    );
    b.gemm("/head", &f, 8, 10);
    b.graph.node.last_mut().expect("a node").output[0] = "logits".into();
    b.output("logits", &[1, 10]);
    let model = b.finish();
    let protected = profagent_prune::default_protected(&model).expect("a valid graph");
    let mut context = profagent_workbench::bench::plan_context(&model).expect("analyzes");
    for layer in &protected {
        assert!(context.protected_layers.remove(layer), "{layer} protected");
    }
    assert!(
        context.protected_layers.is_empty(),
        "{:?}",
        context.protected_layers
    );
    assert_eq!(protected.len(), 2, "{protected:?}");
}
