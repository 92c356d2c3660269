//! Under the `tract` feature: tract must reproduce ONNX Runtime's outputs on every shared model
//! (1e-4 relative to the output scale), and tract profiling must attribute its nodes.
#![cfg(feature = "tract")]
mod common;

use profagent_runtime::{
    check_fidelity, open_runtime, profile_model, synthetic_inputs, ModelSource, ProfileSettings,
    RuntimeKind, SessionOptions,
};

/// Outputs must match ONNX Runtime within this relative error (issue 3).
const TRACT_MAX_RELATIVE_ERROR: f64 = 1e-4;

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn tract_matches_onnxruntime_on_shared_models() {
    let models = common::shared_models();
    let Some(ort) = common::ort_runtime() else {
        return;
    };
    let tract = open_runtime(RuntimeKind::Tract).unwrap();
    let options = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    let mut files: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    files.sort();
    for path in files {
        let source = ModelSource::Path(path.clone());
        let mut reference_session = ort.load(&source, &options).unwrap();
        let inputs = synthetic_inputs(&reference_session.inputs(), 2).unwrap();
        let reference = reference_session.run(&inputs).unwrap();
        let outputs = tract.load(&source, &options).unwrap().run(&inputs).unwrap();
        let report = check_fidelity(&reference, &outputs).unwrap();
        eprintln!("{}: {report:?}", path.display());
        assert!(
            report.within(TRACT_MAX_RELATIVE_ERROR),
            "{}: {report:?}",
            path.display()
        );
        assert_eq!(report.top1_agreement, Some(1.0));
    }
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn tract_profile_attributes_nodes() {
    let models = common::shared_models();
    let path = models.join("resnet20_cifar10.onnx");
    let model = profagent_onnx::Model::load(&path).unwrap();
    let tract = open_runtime(RuntimeKind::Tract).unwrap();
    let inputs = vec![(
        "input".to_string(),
        common::deterministic_input(&[1, 3, 32, 32]),
    )];
    let profile = profile_model(
        tract.as_ref(),
        &ModelSource::Path(path),
        &model,
        &SessionOptions::default(),
        &inputs,
        ProfileSettings { warmup: 1, runs: 3 },
    )
    .unwrap();
    eprintln!("{}", profile.attribution.description);
    assert!(profile.layers.len() > 10);
    assert!(profile.attribution.by_name > 0);
    assert!(profile.layers.iter().any(|l| l.layer.contains("layer1")));
}
