//! Grouped convolutions (ResNeXt, RegNet): the channels a grouped Conv reads go a whole conv
//! group at a time, with the matching output channels, and the Conv keeps fewer groups.
//! Outputs are compared in ONNX Runtime.
mod common;

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{attr, tensor, Model};
use profagent_prune::{analyze, prune, GroupKind, GroupOutcome, GroupStatus, PruneSpec, RatioRule};
use profagent_runtime::Tensor;

/// Removing channels whose weights are exactly zero must not change outputs beyond this.
const ZERO_CHANNEL_MAX_ABS_DIFF: f32 = 1e-6;

/// stem conv (protected as the first) → conv (→16) → relu → grouped conv (16→`gout`, 4 groups, 3x3) → relu → conv (→8) → GAP →
/// flatten → gemm.
fn resnext_block(gout: i64) -> Model {
    let mut b = GraphBuilder::new(3);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let stem = b.conv("/stem", &x, 3, 8, 3, 1, 1);
    let stem = b.unary("Relu", "/stem/relu", &stem);
    let c1 = b.conv("/block/conv1", &stem, 8, 16, 1, 1, 1);
    let r1 = b.unary("Relu", "/block/relu1", &c1);
    let g = b.conv("/block/gconv", &r1, 16, gout, 3, 1, 4);
    let r2 = b.unary("Relu", "/block/relu", &g);
    let p = b.conv("/block/proj", &r2, gout, 8, 1, 1, 1);
    let gap = b.node("GlobalAveragePool", "/pool", &[&p], 1, vec![]);
    let flat = b.node(
        "Flatten",
        "/Flatten",
        &[&gap],
        1,
        vec![attr::int("axis", 1)],
    );
    let _ = b.gemm("/fc", &flat, 8, 10);
    b.graph.node.last_mut().unwrap().output[0] = "logits".into();
    b.output("logits", &[-1, 10]);
    b.finish()
}

fn zero_rows(model: &mut Model, tensors: &[&str], rows: std::ops::Range<usize>) {
    for t in model.graph_mut().initializer.iter_mut() {
        if tensors.contains(&t.name()) {
            let mut data = tensor::to_f32(t).unwrap();
            let per = data.len() / t.dims[0] as usize;
            data[rows.start * per..rows.end * per].fill(0.0);
            let dims = t.dims.clone();
            tensor::set_f32(t, &dims, &data);
        }
    }
}

/// Prunes `block.conv1` at `ratio` (`--round-to round_to`): the model and its outcome.
fn prune_conv1(model: &Model, ratio: f64, round_to: usize) -> (Model, GroupOutcome) {
    let mut spec = PruneSpec::uniform(0.0);
    spec.rules = vec![RatioRule {
        pattern: "block\\.conv1".into(),
        ratio,
    }];
    spec.round_to = round_to;
    let (pruned, report) = prune(model, &spec, None).unwrap();
    let outcome = report
        .groups
        .into_iter()
        .find(|g| g.id == "block.conv1")
        .unwrap();
    (pruned, outcome)
}

#[test]
fn a_whole_conv_group_is_removed_without_changing_outputs() {
    let mut model = resnext_block(16);
    let groups = analyze(&model).unwrap();
    let g = groups
        .iter()
        .find(|g| g.id == "block.conv1")
        .expect("conv1 group");
    assert_eq!(g.status, GroupStatus::Prunable, "{g:#?}");
    assert_eq!((g.kind, g.units, g.unit_width), (GroupKind::Channel, 4, 4));
    assert!(
        g.layers.iter().any(|l| l == "block.gconv"),
        "{:?}",
        g.layers
    );
    // Conv group 1 (channels 4-7) reads zeros and writes zeros: removing it is exact.
    zero_rows(
        &mut model,
        &["block.conv1.weight", "block.conv1.bias"],
        4..8,
    );
    zero_rows(
        &mut model,
        &["block.gconv.weight", "block.gconv.bias"],
        4..8,
    );
    let (pruned, outcome) = prune_conv1(&model, 0.25, 1);
    assert_eq!(
        (outcome.units_after, outcome.removed.clone()),
        (3, vec![1]),
        "{outcome:#?}"
    );
    let gconv = pruned
        .graph()
        .node
        .iter()
        .find(|n| n.name() == "/block/gconv/Conv")
        .unwrap();
    assert_eq!(attr::get_int(gconv, "group"), Some(3));
    let weight = pruned
        .graph()
        .initializer
        .iter()
        .find(|t| t.name() == gconv.input[1])
        .unwrap();
    assert_eq!(weight.dims, vec![12, 4, 3, 3]);
    let input = Tensor::f32(
        vec![2, 3, 8, 8],
        GraphBuilder::new(9).rand_vec(2 * 3 * 64, 1.0),
    );
    let diff = common::max_abs_diff(&common::run(&model, &input), &common::run(&pruned, &input));
    assert!(diff <= ZERO_CHANNEL_MAX_ABS_DIFF, "max diff {diff}");
}

#[test]
fn round_to_counts_channels_not_conv_groups() {
    // 4 groups of 4 channels at --round-to 8: an even number of groups stays.
    let model = resnext_block(16);
    let (_, outcome) = prune_conv1(&model, 0.25, 8);
    assert_eq!(
        outcome.units_after, 4,
        "3 groups = 12 channels is not a multiple of 8"
    );
    let (_, outcome) = prune_conv1(&model, 0.5, 8);
    assert_eq!(outcome.units_after, 2);
}

#[test]
fn a_grouped_conv_that_widens_its_groups_is_refused_with_the_reason() {
    // 4 inputs per group but 8 outputs per group: channel c is not output channel c.
    let model = resnext_block(32);
    let groups = analyze(&model).unwrap();
    let g = groups.iter().find(|g| g.id == "block.conv1").unwrap();
    match &g.status {
        GroupStatus::Unprunable { reason } => {
            assert!(
                reason.contains("grouped Conv '/block/gconv/Conv'"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (pruned, outcome) = prune_conv1(&model, 0.3, 1);
    assert_eq!(outcome.action, "unprunable");
    assert!(pruned
        .graph()
        .initializer
        .iter()
        .any(|t| t.name() == "block.conv1.weight" && t.dims[0] == 16));
}
