//! The shared models pruned at 10 % uniform L1 (20 % for resnet20 with round_to 8): valid graphs that run in ONNX Runtime, cost
//! predictions that match the static profile of the result, kept counts that respect
//! `round_to`, and top-1 on a CIFAR-10 subset before/after (printed; a floor is asserted).
//! Ignored (with the reason) when ../shared is absent. Full-size accuracies: see the crate README command.
mod common;

use std::path::Path;

use profagent_onnx::Model;
use profagent_prune::{analyze, prune, PruneReport, PruneSpec};
use profagent_runtime::Tensor;

/// Images of the CIFAR-10 test set used in CI (every 20th image).
const CIFAR_SUBSET: usize = 500;
/// Pruning 10 % without fine-tuning may cost accuracy, but not collapse it: the pruned model
/// keeps at least this fraction of the original top-1 on the subset.
const MIN_KEPT_ACCURACY_FRACTION: f64 = 0.5;

fn load(shared: &Path, name: &str) -> Model {
    Model::load(shared.join("models").join(format!("{name}.onnx"))).unwrap()
}

fn check_cost(pruned: &Model, report: &PruneReport) {
    let profile = profagent_profile::static_profile(pruned, &Default::default()).unwrap();
    assert_eq!(
        profile.model.params, report.params_after,
        "predicted params"
    );
    assert_eq!(profile.model.macs, report.macs_after, "predicted MACs");
    assert!(report.params_after < report.params_before);
    assert!(report.macs_after < report.macs_before);
}

fn cifar_case(name: &str, ratio: f64, round_to: usize) {
    let shared = common::shared_dir();
    let model = load(&shared, name);
    let mut spec = PruneSpec::uniform(ratio);
    spec.round_to = round_to;
    let (pruned, report) = prune(&model, &spec, None).unwrap();
    assert!(report.pruned_groups().count() > 0, "{name}: nothing pruned");
    check_cost(&pruned, &report);
    let (images, labels) = common::cifar_subset(&shared, CIFAR_SUBSET);
    let before = common::accuracy(&model, &images, &labels, &[3, 32, 32]);
    let after = common::accuracy(&pruned, &images, &labels, &[3, 32, 32]);
    eprintln!(
        "{name} {ratio} L1 round_to {round_to}: top-1 {:.2}% -> {:.2}% on {CIFAR_SUBSET} images; params {} -> {}, MACs {} -> {}",
        before * 100.0,
        after * 100.0,
        report.params_before,
        report.params_after,
        report.macs_before,
        report.macs_after
    );
    assert!(
        after >= before * MIN_KEPT_ACCURACY_FRACTION,
        "{name}: {before} -> {after}"
    );
    if round_to > 1 {
        for g in &report.groups {
            if g.action == "pruned" && g.kind != profagent_prune::GroupKind::Heads {
                assert_eq!(
                    g.units_after % round_to,
                    0,
                    "{}: {} kept",
                    g.id,
                    g.units_after
                );
            }
        }
        // Every Conv in the result keeps a multiple of round_to output channels where the
        // original did.
        for node in pruned.graph().node.iter().filter(|n| n.op_type() == "Conv") {
            let w = pruned
                .graph()
                .initializer
                .iter()
                .find(|t| t.name() == node.input[1])
                .unwrap();
            let orig = model
                .graph()
                .node
                .iter()
                .find(|n| n.name() == node.name())
                .unwrap();
            let w0 = model
                .graph()
                .initializer
                .iter()
                .find(|t| t.name() == orig.input[1])
                .unwrap();
            if (w0.dims[0] as usize).is_multiple_of(round_to) {
                assert_eq!(w.dims[0] as usize % round_to, 0, "{}", node.name());
            }
        }
    }
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn resnet20_cifar10_at_10_percent() {
    cifar_case("resnet20_cifar10", 0.1, 1);
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn resnet20_cifar10_round_to_8() {
    // Kept counts round up: at 0.1, 16/32/64 channels would all round back to whole groups.
    cifar_case("resnet20_cifar10", 0.2, 8);
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn resnet18_cifar10_at_10_percent() {
    cifar_case("resnet18_cifar10", 0.1, 8);
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn vit_tiny_cifar10_at_10_percent() {
    cifar_case("vit_tiny_cifar10", 0.1, 1);
    let shared = common::shared_dir();
    // Whole heads: 1 of 3 heads per block at 34 %, still a valid model.
    let model = load(&shared, "vit_tiny_cifar10");
    let mut spec = PruneSpec::uniform(0.0);
    spec.rules = vec![profagent_prune::RatioRule {
        pattern: "blocks\\.[0-8]\\.attn\\.qkv#heads".into(),
        ratio: 0.34,
    }];
    let (pruned, report) = prune(&model, &spec, None).unwrap();
    assert_eq!(report.pruned_groups().count(), 9);
    assert!(report.pruned_groups().all(|g| g.units_after == 2));
    check_cost(&pruned, &report);
    let (images, labels) = common::cifar_subset(&shared, 100);
    let after = common::accuracy(&pruned, &images, &labels, &[3, 32, 32]);
    eprintln!(
        "vit_tiny_cifar10 with 2 of 3 heads per block: top-1 {:.1}% on 100 images",
        after * 100.0
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn resnet20_bn_keeps_bn_and_recalibrates() {
    let shared = common::shared_dir();
    let model = load(&shared, "resnet20_cifar10_bn");
    let groups = analyze(&model).unwrap();
    let unprunable: Vec<_> = groups
        .iter()
        .filter(|g| !g.is_prunable())
        .map(|g| (&g.id, &g.status))
        .collect();
    assert_eq!(unprunable.len(), 1, "only the classifier: {unprunable:#?}");
    let (images, labels) = common::cifar_subset(&shared, CIFAR_SUBSET);
    // Calibration must cover every class: the subset is in class order, so take a stride.
    let per = 3 * 32 * 32;
    let calib_images: Vec<f32> = images
        .chunks(per)
        .step_by(5)
        .flat_map(|c| c.to_vec())
        .collect();
    let count = calib_images.len() / per;
    let mut calib = common::OrtCalibration {
        batch: Tensor::f32(vec![count, 3, 32, 32], calib_images),
    };
    let mut spec = PruneSpec::uniform(0.1);
    spec.importance = profagent_prune::Importance::Bn;
    spec.bias_correction = false;
    let (pruned, report) = prune(&model, &spec, None).unwrap();
    check_cost(&pruned, &report);
    let before = common::accuracy(&model, &images, &labels, &[3, 32, 32]);
    let after = common::accuracy(&pruned, &images, &labels, &[3, 32, 32]);
    assert!(
        after >= before * MIN_KEPT_ACCURACY_FRACTION,
        "{before} -> {after}"
    );
    // Opt-in BN re-estimation runs and gives a valid model (its accuracy is reported only).
    spec.recalibrate_bn = true;
    let (recalibrated, report) = prune(&model, &spec, Some(&mut calib)).unwrap();
    assert_eq!(report.bn_recalibrated, 21);
    let with_bn = common::accuracy(&recalibrated, &images, &labels, &[3, 32, 32]);
    eprintln!(
        "resnet20_cifar10_bn 10% bn-importance: {:.2}% -> {:.2}% ({:.2}% with BN re-estimation on 100 images)",
        before * 100.0,
        after * 100.0,
        with_bn * 100.0
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn resnet20_bias_correction_with_calibration() {
    let shared = common::shared_dir();
    let model = load(&shared, "resnet20_cifar10");
    let (images, labels) = common::cifar_subset(&shared, CIFAR_SUBSET);
    let per = 3 * 32 * 32;
    let calib_images: Vec<f32> = images
        .chunks(per)
        .step_by(5)
        .flat_map(|c| c.to_vec())
        .collect();
    let count = calib_images.len() / per;
    let mut calib = common::OrtCalibration {
        batch: Tensor::f32(vec![count, 3, 32, 32], calib_images),
    };
    let (pruned, report) = prune(&model, &PruneSpec::uniform(0.1), Some(&mut calib)).unwrap();
    assert!(report.biases_corrected > 0, "{:?}", report.warnings);
    check_cost(&pruned, &report);
    let (plain, _) = prune(&model, &PruneSpec::uniform(0.1), None).unwrap();
    let with = common::accuracy(&pruned, &images, &labels, &[3, 32, 32]);
    let without = common::accuracy(&plain, &images, &labels, &[3, 32, 32]);
    eprintln!(
        "resnet20_cifar10 10% L1: top-1 {:.2}% without, {:.2}% with bias correction",
        without * 100.0,
        with * 100.0
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn mobilenet_v2_at_10_percent_is_valid() {
    let shared = common::shared_dir();
    let model = load(&shared, "mobilenet_v2_imagenet");
    let (pruned, report) = prune(&model, &PruneSpec::uniform(0.1), None).unwrap();
    assert!(report.pruned_groups().count() > 20);
    check_cost(&pruned, &report);
    let mut b = profagent_onnx::builder::GraphBuilder::new(1);
    let input = Tensor::f32(vec![1, 3, 224, 224], b.rand_vec(3 * 224 * 224, 1.0));
    let (a, p) = (common::run(&model, &input), common::run(&pruned, &input));
    assert_eq!(a.len(), p.len());
    assert!(p.iter().all(|v| v.is_finite()));
}
