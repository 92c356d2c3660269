//! Pruning small graphs built in code: identity at ratio 0, exact removal of zero channels,
//! residual/BN/depthwise/MLP/attention groups, and refusal of patterns the pruner does not
//! understand. Outputs are compared in ONNX Runtime.
mod common;

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{tensor, Model};
use profagent_prune::{analyze, prune, GroupKind, GroupStatus, PruneSpec};
use profagent_runtime::Tensor;

/// Removing channels whose weights are exactly zero must not change outputs beyond this.
const ZERO_CHANNEL_MAX_ABS_DIFF: f32 = 1e-6;

/// conv → BN → relu → conv (+ residual from a 1x1) → relu → depthwise → conv → GAP → flatten → gemm.
fn cnn(with_bn: bool) -> Model {
    let mut b = GraphBuilder::new(7);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c1 = b.conv("/conv1", &x, 3, 8, 3, 1, 1);
    let c1 = if with_bn {
        b.batchnorm("/bn1", &c1, 8)
    } else {
        c1
    };
    let r1 = b.unary("Relu", "/relu1", &c1);
    let c2 = b.conv("/layer1/conv1", &r1, 8, 16, 3, 1, 1);
    let c2 = if with_bn {
        b.batchnorm("/layer1/bn1", &c2, 16)
    } else {
        c2
    };
    let r2 = b.unary("Relu", "/layer1/relu", &c2);
    let c3 = b.conv("/layer1/conv2", &r2, 16, 16, 3, 1, 1);
    let sc = b.conv("/layer1/shortcut", &r1, 8, 16, 1, 1, 1);
    let add = b.binary("Add", "/layer1", &c3, &sc);
    let r3 = b.unary("Relu", "/layer1/relu_1", &add);
    let e = b.conv("/layer2/expand", &r3, 16, 32, 1, 1, 1);
    let e = b.unary("Relu", "/layer2/relu", &e);
    let dw = b.conv("/layer2/dw", &e, 32, 32, 3, 1, 32);
    let dw = b.unary("Relu", "/layer2/relu_1", &dw);
    let p = b.conv("/layer2/project", &dw, 32, 16, 1, 1, 1);
    let gap = b.node(
        "GlobalAveragePool",
        "/pool/GlobalAveragePool",
        &[&p],
        1,
        vec![],
    );
    let flat = b.node(
        "Flatten",
        "/Flatten",
        &[&gap],
        1,
        vec![profagent_onnx::attr::int("axis", 1)],
    );
    let fc1 = b.gemm("/head/fc1", &flat, 16, 24);
    let fc1 = b.unary("Relu", "/head/relu", &fc1);
    let fc2 = b.gemm("/fc", &fc1, 24, 10);
    b.graph.node.last_mut().unwrap().output[0] = "logits".into();
    let _ = fc2;
    b.output("logits", &[-1, 10]);
    b.finish()
}

fn transformer() -> Model {
    let mut b = GraphBuilder::new(11);
    let x = b.input("input", &[-1, 5, 32]);
    let ln = b.layernorm("/blocks.0/norm1", &x, 32);
    let att = b.attention("/blocks.0/attn", &ln, 32, 4);
    let res = b.binary("Add", "/blocks.0", &x, &att);
    let ln2 = b.layernorm("/blocks.0/norm2", &res, 32);
    let h = b.linear("/blocks.0/mlp/fc1", &ln2, 32, 64);
    let h = b.unary("Tanh", "/blocks.0/mlp/act", &h);
    let h = b.linear("/blocks.0/mlp/fc2", &h, 64, 32);
    let out = b.binary("Add", "/blocks.0_1", &res, &h);
    let id = b.node("Identity", "/out", &[&out], 1, vec![]);
    b.graph.node.last_mut().unwrap().output[0] = "logits".into();
    let _ = id;
    b.output("logits", &[-1, 5, 32]);
    b.finish()
}

fn image_input(batch: usize, seed: u64) -> Tensor {
    let mut b = GraphBuilder::new(seed);
    Tensor::f32(vec![batch, 3, 8, 8], b.rand_vec(batch * 3 * 64, 1.0))
}

fn token_input(seed: u64) -> Tensor {
    let mut b = GraphBuilder::new(seed);
    Tensor::f32(vec![2, 5, 32], b.rand_vec(2 * 5 * 32, 1.0))
}

#[test]
fn groups_of_a_cnn() {
    let groups = analyze(&cnn(true)).unwrap();
    let by_id = |id: &str| {
        groups
            .iter()
            .find(|g| g.id == id)
            .unwrap_or_else(|| panic!("no group {id}: {groups:#?}"))
    };
    // conv1's channels reach conv2 and the shortcut; the residual couples conv2/shortcut.
    let residual = by_id("layer1.conv2");
    assert!(
        residual.producers.contains(&"layer1.shortcut".to_string()),
        "{residual:?}"
    );
    assert!(residual.is_prunable());
    // Issue 20: planners are told which groups are residual streams (an Add of two tensors
    // laid out in the group's channels); a conv whose channels only feed the next conv is not.
    assert!(residual.residual, "{residual:?}");
    assert!(!by_id("conv1").residual && !by_id("layer2.expand").residual);
    // The depthwise conv travels with the expand conv.
    let expand = by_id("layer2.expand");
    assert!(expand.layers.contains(&"layer2.dw".to_string()));
    assert!(expand.is_prunable());
    assert!(by_id("conv1").layers.contains(&"bn1".to_string()));
    assert!(
        !by_id("fc").is_prunable(),
        "classifier output is the graph output"
    );
    assert!(by_id("head.fc1").kind == GroupKind::Mlp && by_id("head.fc1").is_prunable());
}

#[test]
fn ratio_zero_is_bit_identical() {
    for model in [cnn(true), cnn(false)] {
        let (pruned, report) = prune(&model, &PruneSpec::uniform(0.0), None).unwrap();
        assert_eq!(report.pruned_groups().count(), 0);
        let input = image_input(2, 3);
        assert_eq!(common::run(&model, &input), common::run(&pruned, &input));
    }
    let model = transformer();
    let (pruned, _) = prune(&model, &PruneSpec::uniform(0.0), None).unwrap();
    let input = token_input(5);
    assert_eq!(common::run(&model, &input), common::run(&pruned, &input));
}

/// Zeroes `channels` of the output of a producer (weight rows and bias).
fn zero_out(model: &mut Model, weight: &str, bias: &str, channels: &[usize]) {
    for t in model.graph_mut().initializer.iter_mut() {
        if t.name() == weight || t.name() == bias {
            let mut data = tensor::to_f32(t).unwrap();
            let per = data.len() / t.dims[0] as usize;
            for &c in channels {
                data[c * per..(c + 1) * per]
                    .iter_mut()
                    .for_each(|v| *v = 0.0);
            }
            let dims = t.dims.clone();
            tensor::set_f32(t, &dims, &data);
        }
    }
}

#[test]
fn zero_channels_are_removed_without_changing_outputs() {
    let mut model = cnn(false);
    // 4 of layer2.expand's 32 channels and 6 of head.fc1's 24 are exactly zero.
    // The depthwise conv between expand and project travels with the group: zero it too.
    zero_out(
        &mut model,
        "layer2.expand.weight",
        "layer2.expand.bias",
        &[1, 5, 9, 30],
    );
    zero_out(
        &mut model,
        "layer2.dw.weight",
        "layer2.dw.bias",
        &[1, 5, 9, 30],
    );
    zero_out(
        &mut model,
        "head.fc1.weight",
        "head.fc1.bias",
        &[0, 3, 4, 10, 11, 23],
    );
    let mut spec = PruneSpec::uniform(0.0);
    spec.rules = vec![
        profagent_prune::RatioRule {
            pattern: "layer2\\.expand".into(),
            ratio: 4.0 / 32.0,
        },
        profagent_prune::RatioRule {
            pattern: "head\\.fc1".into(),
            ratio: 6.0 / 24.0,
        },
    ];
    let (pruned, report) = prune(&model, &spec, None).unwrap();
    let expand = report
        .groups
        .iter()
        .find(|g| g.id == "layer2.expand")
        .unwrap();
    assert_eq!(expand.removed, vec![1, 5, 9, 30]);
    let fc1 = report.groups.iter().find(|g| g.id == "head.fc1").unwrap();
    assert_eq!(fc1.removed, vec![0, 3, 4, 10, 11, 23]);
    let input = image_input(3, 9);
    let (a, b) = (common::run(&model, &input), common::run(&pruned, &input));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff <= ZERO_CHANNEL_MAX_ABS_DIFF, "max diff {diff}");
    assert!(report.params_after < report.params_before);
    assert!(report.macs_after < report.macs_before);
}

#[test]
fn predicted_cost_matches_the_profile_of_the_result() {
    for (model, input) in [
        (cnn(true), image_input(1, 1)),
        (transformer(), token_input(2)),
    ] {
        let mut spec = PruneSpec::uniform(0.5);
        spec.protect_first_and_last = false;
        let (pruned, report) = prune(&model, &spec, None).unwrap();
        assert!(report.pruned_groups().count() > 0);
        let profile = profagent_profile::static_profile(&pruned, &Default::default()).unwrap();
        assert_eq!(profile.model.params, report.params_after);
        assert_eq!(profile.model.macs, report.macs_after);
        // Still runs, with the same output shape.
        let out = common::run_all(&pruned, &input);
        assert_eq!(out[0].1.shape, common::run_all(&model, &input)[0].1.shape);
    }
}

#[test]
fn attention_heads_are_pruned_whole() {
    let model = transformer();
    let groups = analyze(&model).unwrap();
    let heads = groups
        .iter()
        .find(|g| g.kind == GroupKind::Heads)
        .expect("heads group");
    assert!(heads.is_prunable(), "{heads:?}");
    assert_eq!((heads.units, heads.unit_width), (4, 8));
    let mlp = groups.iter().find(|g| g.id == "blocks.0.mlp.fc1").unwrap();
    assert!(mlp.is_prunable() && mlp.kind == GroupKind::Mlp);
    // Zero head 2 in the projection: removing it must keep outputs.
    let mut model = model;
    for t in model.graph_mut().initializer.iter_mut() {
        let is_proj = t.dims == [32, 32];
        if is_proj {
            let mut data = tensor::to_f32(t).unwrap();
            data[2 * 8 * 32..3 * 8 * 32]
                .iter_mut()
                .for_each(|v| *v = 0.0);
            tensor::set_f32(t, &[32, 32], &data);
        }
    }
    let mut spec = PruneSpec::uniform(0.0);
    spec.rules = vec![profagent_prune::RatioRule {
        pattern: ".*#heads".into(),
        ratio: 0.25,
    }];
    let (pruned, report) = prune(&model, &spec, None).unwrap();
    let g = report.pruned_groups().next().unwrap();
    assert_eq!(g.removed, vec![2]);
    let input = token_input(4);
    let (a, b) = (common::run(&model, &input), common::run(&pruned, &input));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff <= ZERO_CHANNEL_MAX_ABS_DIFF, "max diff {diff}");
}

#[test]
fn unknown_ops_block_their_group_and_leave_it_untouched() {
    let mut b = GraphBuilder::new(3);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c1 = b.conv("/conv0", &x, 3, 8, 3, 1, 1);
    let c1 = b.conv("/conv1", &c1, 8, 16, 3, 1, 1);
    let s = b.node(
        "Softmax",
        "/mix/Softmax",
        &[&c1],
        1,
        vec![profagent_onnx::attr::int("axis", 1)],
    );
    let c2 = b.conv("/conv2", &s, 16, 16, 3, 1, 1);
    let c3 = b.conv("/conv3", &c2, 16, 4, 1, 1, 1);
    b.graph.node.last_mut().unwrap().output[0] = "logits".into();
    let _ = c3;
    b.output("logits", &[-1, 4, 8, 8]);
    let model = b.finish();
    let groups = analyze(&model).unwrap();
    let g = groups.iter().find(|g| g.id == "conv1").unwrap();
    match &g.status {
        GroupStatus::Unprunable { reason } => assert!(reason.contains("/mix/Softmax"), "{reason}"),
        other => panic!("expected unprunable, got {other:?}"),
    }
    let (pruned, report) = prune(&model, &PruneSpec::uniform(0.5), None).unwrap();
    let outcome = report.groups.iter().find(|g| g.id == "conv1").unwrap();
    assert_eq!(outcome.action, "unprunable");
    let w = |m: &Model, name: &str| {
        m.graph()
            .initializer
            .iter()
            .find(|t| t.name() == name)
            .unwrap()
            .dims
            .clone()
    };
    assert_eq!(w(&pruned, "conv1.weight"), vec![16, 8, 3, 3]);
    assert_eq!(
        w(&pruned, "conv2.weight")[0],
        8,
        "conv2 is pruned: {report:#?}"
    );
    common::run(&pruned, &image_input(1, 2));
}

#[test]
fn batchnorm_importance_and_recalibration() {
    let model = cnn(true);
    let mut spec = PruneSpec::uniform(0.25);
    spec.importance = profagent_prune::Importance::Bn;
    // Groups without BN cannot use bn importance: restrict to the ones that have it.
    spec.global_ratio = 0.0;
    spec.rules = vec![profagent_prune::RatioRule {
        pattern: "layer1\\.conv1".into(),
        ratio: 0.25,
    }];
    spec.recalibrate_bn = true;
    let mut calib = common::OrtCalibration {
        batch: image_input(16, 8),
    };
    let (pruned, report) = prune(&model, &spec, Some(&mut calib)).unwrap();
    assert_eq!(report.pruned_groups().count(), 1);
    assert!(report.bn_recalibrated >= 2, "{report:#?}");
    common::run(&pruned, &image_input(2, 2));
    // bn importance on a folded group is a clear error.
    spec.rules[0].pattern = "head\\.fc1".into();
    let err = prune(&model, &spec, None).unwrap_err().to_string();
    assert!(err.contains("BatchNormalization"), "{err}");
}

#[test]
fn bad_specs_are_clear_errors() {
    let model = cnn(false);
    let mut spec = PruneSpec::uniform(1.5);
    assert!(prune(&model, &spec, None)
        .unwrap_err()
        .to_string()
        .contains("[0, 1)"));
    spec.global_ratio = 0.1;
    spec.rules = vec![profagent_prune::RatioRule {
        pattern: "nothing_like_this".into(),
        ratio: 0.2,
    }];
    assert!(prune(&model, &spec, None)
        .unwrap_err()
        .to_string()
        .contains("matches no"));
    spec.rules.clear();
    spec.importance = profagent_prune::Importance::Activation;
    assert!(prune(&model, &spec, None)
        .unwrap_err()
        .to_string()
        .contains("calib"));
}
