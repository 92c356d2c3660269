//! Layer-wise reconstruction on the shared CIFAR-10 models: uniform pruning with and without
//! reconstruction (both with bias correction, the previous default), calibrated on
//! `CALIBRATION` test images and scored on `EVALUATION` *other* test images. Reconstruction
//! must lose at least `MIN_GAIN_POINTS` fewer top-1 points than pruning without it. Both
//! numbers are printed. Ignored (with the reason) when ../shared is absent.
mod common;

use profagent_onnx::Model;
use profagent_prune::{prune, PruneSpec};
use profagent_runtime::Tensor;

/// Calibration images (every 5th of the subset).
const CALIBRATION: usize = 256;
/// Held-out images scored (the rest of the subset).
const EVALUATION: usize = 1024;
/// Reconstruction must recover at least this many top-1 points over pruning without it.
const MIN_GAIN_POINTS: f64 = 2.0;

struct Case {
    dense: f64,
    without: f64,
    with: f64,
}

fn run_case(name: &str, spec: &PruneSpec) -> Case {
    let shared = common::shared_dir();
    let model = Model::load(shared.join("models").join(format!("{name}.onnx"))).unwrap();
    let (images, labels) = common::cifar_subset(&shared, CALIBRATION + EVALUATION);
    let per = 3 * 32 * 32;
    let (mut calib, mut eval, mut eval_labels) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (img, &label)) in images.chunks(per).zip(&labels).enumerate() {
        if i % 5 == 0 && calib.len() < CALIBRATION * per {
            calib.extend_from_slice(img);
        } else {
            eval.extend_from_slice(img);
            eval_labels.push(label);
        }
    }
    let calib = Tensor::f32(vec![calib.len() / per, 3, 32, 32], calib);
    assert!(
        eval_labels.len() >= 1000,
        "{} images scored",
        eval_labels.len()
    );
    let dense = common::accuracy(&model, &eval, &eval_labels, &[3, 32, 32]);
    let score = |reconstruct: bool| {
        let mut spec = spec.clone();
        spec.reconstruct = reconstruct;
        let mut source = common::OrtCalibration {
            batch: calib.clone(),
        };
        let started = std::time::Instant::now();
        let (pruned, report) = prune(&model, &spec, Some(&mut source)).unwrap();
        assert_eq!(
            report.reconstructed.is_empty(),
            !reconstruct,
            "{:?}",
            report.warnings
        );
        let top1 = common::accuracy(&pruned, &eval, &eval_labels, &[3, 32, 32]);
        eprintln!(
            "{name}: reconstruct {reconstruct}: {} layers refitted, MACs {} -> {} ({:.3}), top-1 {:.2}% (prune took {:.1} s); warnings {:?}",
            report.reconstructed.len(),
            report.macs_before,
            report.macs_after,
            report.macs_after as f64 / report.macs_before as f64,
            top1 * 100.0,
            started.elapsed().as_secs_f64(),
            report.warnings
        );
        top1
    };
    let without = score(false);
    let with = score(true);
    eprintln!(
        "{name}: top-1 on {} held-out images: dense {:.2}%, pruned without reconstruction {:.2}% ({:+.2} points), with {:.2}% ({:+.2} points)",
        eval_labels.len(),
        dense * 100.0,
        without * 100.0,
        (without - dense) * 100.0,
        with * 100.0,
        (with - dense) * 100.0
    );
    Case {
        dense,
        without,
        with,
    }
}

fn assert_gain(name: &str, case: &Case) {
    let gain = (case.with - case.without) * 100.0;
    assert!(
        gain >= MIN_GAIN_POINTS,
        "{name}: reconstruction recovered {gain:.2} points (dense {:.2}%, without {:.2}%, with {:.2}%), expected at least {MIN_GAIN_POINTS}",
        case.dense * 100.0,
        case.without * 100.0,
        case.with * 100.0
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn resnet20_cifar10_uniform_20_percent_with_reconstruction() {
    let case = run_case("resnet20_cifar10", &PruneSpec::uniform(0.2));
    assert_gain("resnet20_cifar10", &case);
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn vit_tiny_cifar10_uniform_20_percent_with_reconstruction() {
    let case = run_case("vit_tiny_cifar10", &PruneSpec::uniform(0.2));
    assert_gain("vit_tiny_cifar10", &case);
}
