//! Pruned widths the runtime runs faster: where ONNX Runtime pads float convolutions to a
//! channel block (NCHWc: 8 channels with AVX2, 16 with AVX-512), the analysis marks the
//! convolution groups with the block and the built-in planner keeps their widths multiples of
//! it. On resnet20_cifar10 (AVX2) three 16-channel groups cut to 12 ran at 1.00x of the dense
//! model, cut to 8 at 1.14x; a compress result with 9-, 12- and 28-channel groups ran at 0.95x.
mod support;

use std::path::Path;

use profagent_agent::builtin::BuiltinPlanner;
use profagent_agent::facts::PlanningInput;
use profagent_onnx::Model;
use profagent_plan::{validate, PlanContext, ValidatedPlan};
use profagent_workbench::bench::{analysis, mark_channel_blocks, prune_specs};

fn resnet20() -> Model {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Model::load(root.join("examples/resnet20_cifar10.onnx")).unwrap()
}

/// The planning input of `model` with every group measured alike (the allocation is then
/// driven by MACs, cutting deep and wide), groups marked with `block` when given.
fn input(model: &Model, block: Option<u32>) -> (PlanningInput, PlanContext) {
    let mut a = analysis(model).unwrap();
    if let Some(block) = block {
        mark_channel_blocks(&mut a, model, block);
    }
    let (mut input, context) = support::planning_input(model, a, Some(90.0), 0.7);
    for g in &mut input.groups {
        g.sensitivity = Some(0.01);
        g.measured_drop = Some(0.01);
        g.probed_ratio = Some(0.5);
        g.probed_images = Some(1000);
    }
    (input, context)
}

fn plan(model: &Model, block: Option<u32>) -> ValidatedPlan {
    let (input, context) = input(model, block);
    let plan = BuiltinPlanner::new().plan(&input, &context);
    validate(&plan, &context).unwrap()
}

fn kept(plan: &ValidatedPlan) -> Vec<(String, usize)> {
    plan.pruning()
        .iter()
        .map(|p| (p.group.clone(), p.keep))
        .collect()
}

#[test]
fn convolution_groups_are_marked_and_transformer_or_quantized_ones_are_not() {
    let model = resnet20();
    let mut a = analysis(&model).unwrap();
    mark_channel_blocks(&mut a, &model, 8);
    let prunable: Vec<_> = a.groups.iter().filter(|g| g.prunable).collect();
    assert!(prunable.len() >= 10);
    assert!(
        prunable.iter().all(|g| g.runtime_block == Some(8)),
        "{:?}",
        prunable
            .iter()
            .map(|g| (&g.id, g.runtime_block))
            .collect::<Vec<_>>()
    );
    // A QDQ model runs its convolutions as integer kernels: no float blocked layout.
    let mut quantized = model.clone();
    let mut a = analysis(&quantized).unwrap();
    let graph = quantized.proto.graph.as_mut().unwrap();
    graph.node.push(profagent_onnx::attr::node(
        "DequantizeLinear",
        "dq",
        &["a", "b"],
        &["c"],
        vec![],
    ));
    mark_channel_blocks(&mut a, &quantized, 8);
    assert!(a.groups.iter().all(|g| g.runtime_block.is_none()));
}

#[test]
fn marked_groups_keep_widths_that_are_multiples_of_the_block() {
    let model = resnet20();
    // Without the block the planner cuts 16-channel groups in steps of 4 (kept 12): the case
    // this guards against.
    let plain = kept(&plan(&model, None));
    assert!(
        plain.iter().any(|(_, keep)| keep % 8 != 0),
        "the unmarked plan already keeps multiples of 8: {plain:?}"
    );
    for block in [8u32, 16] {
        let aligned = kept(&plan(&model, Some(block)));
        assert!(!aligned.is_empty(), "block {block}: nothing pruned");
        for (group, keep) in &aligned {
            assert_eq!(
                keep % block as usize,
                0,
                "block {block}: {group} keeps {keep}: {aligned:?}"
            );
        }
    }
}

/// On this machine's ONNX Runtime: every convolution of the aligned pruned model stays in the
/// blocked layout without padding (its weights in the optimised graph have the pruned
/// model's channel counts), where the unaligned plan's model is padded or falls out of it.
#[test]
fn the_runtime_runs_the_aligned_model_without_padding() {
    let Ok(runtime) = profagent_runtime::open_runtime(profagent_runtime::RuntimeKind::Ort) else {
        eprintln!("skipping: ONNX Runtime not found");
        return;
    };
    let session = profagent_runtime::SessionOptions::default();
    let Some(block) = profagent_workbench::bench::channel_block(runtime.as_ref(), &session) else {
        eprintln!("skipping: this runtime pads no convolution channels here");
        return;
    };
    let model = resnet20();
    let padded = |plan: &ValidatedPlan| {
        let mut pruned = model.clone();
        for mut spec in prune_specs(plan.pruning()) {
            spec.importance = profagent_prune::Importance::L1;
            pruned = profagent_prune::prune(&pruned, &spec, None).unwrap().0;
        }
        let bytes = runtime
            .optimized_model(
                &profagent_runtime::ModelSource::Bytes(pruned.to_bytes()),
                &session,
            )
            .unwrap()
            .unwrap();
        let optimized = Model::decode(&bytes, Path::new("optimized")).unwrap();
        let graph = optimized.graph();
        let channels = |m: &Model| -> Vec<i64> {
            let g = m.graph();
            g.node
                .iter()
                .filter(|n| n.op_type.as_deref() == Some("Conv"))
                .filter_map(|n| {
                    let w = n.input.get(1)?;
                    let t = g
                        .initializer
                        .iter()
                        .find(|t| t.name.as_deref() == Some(w.as_str()))?;
                    t.dims.first().copied()
                })
                .collect()
        };
        let blocked = graph
            .node
            .iter()
            .filter(|n| n.domain.as_deref().is_some_and(|d| d.ends_with("nchwc")))
            .filter(|n| n.op_type.as_deref() == Some("Conv"))
            .count();
        let mut before = channels(&pruned);
        let mut after = channels(&optimized);
        before.sort();
        after.sort();
        // Padded: some output width grew; fallen out: fewer convolutions in the layout.
        (before != after || blocked < before.len(), before, after)
    };
    let (aligned_padded, before, after) = padded(&plan(&model, Some(block)));
    assert!(
        !aligned_padded,
        "block {block}: pruned widths {before:?}, runtime widths {after:?}"
    );
    if block > 4 {
        let (plain_padded, ..) = padded(&plan(&model, None));
        assert!(
            plain_padded,
            "the unaligned plan is not padded at block {block}"
        );
    }
}
