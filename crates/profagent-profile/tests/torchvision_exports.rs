//! Published MACs of torchvision exports, made by `scripts/export_models.py` into the folder
//! named by `PROFAGENT_EXPORT_DIR` (the files are 100-350 MB, so they are not in the repo).
//! Skips with a printed reason when the variable or a file is absent.
use profagent_onnx::Model;
use profagent_profile::{static_profile, ProfileOptions};

/// Published MAC counts are rounded; ours must agree within this relative error.
const MACS_REL_TOLERANCE: f64 = 0.03;

/// Parameters are not compared: the exporter folds BatchNorm and rewrites some weights, so the
/// ONNX file's counts differ from torchvision's by design.
fn check(file: &str, macs: f64) {
    let Some(dir) = std::env::var_os("PROFAGENT_EXPORT_DIR") else {
        eprintln!(
            "skipping {file}: PROFAGENT_EXPORT_DIR is not set (see scripts/export_models.py)"
        );
        return;
    };
    let path = std::path::Path::new(&dir).join(file);
    if !path.exists() {
        eprintln!("skipping: {} not present", path.display());
        return;
    }
    let model = Model::load(&path).expect("export loads");
    let started = std::time::Instant::now();
    let profile = static_profile(&model, &ProfileOptions { batch: 1 }).expect("profiles");
    // Printed, never asserted: timings do not belong in pass/fail tests.
    println!(
        "{file}: params {} MACs {} (static profile took {:?} after loading)",
        profile.model.params,
        profile.model.macs,
        started.elapsed()
    );
    assert!(profile.is_complete(), "{file}: {:?}", profile.coverage);
    let rel = (profile.model.macs as f64 - macs).abs() / macs;
    assert!(
        rel <= MACS_REL_TOLERANCE,
        "{file}: {} MACs vs {macs}",
        profile.model.macs
    );
}

#[test]
fn torchvision_resnet50() {
    check("resnet50.onnx", 4.09e9);
}

#[test]
fn torchvision_vit_b_16() {
    check("vit_b_16.onnx", 17.56e9);
}
