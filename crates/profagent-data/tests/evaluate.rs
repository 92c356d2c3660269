//! End-to-end evaluation through ONNX Runtime on a CIFAR-10 subset (ignored, with the reason,
//! when ../shared is absent; skipped with a printed reason when the ONNX Runtime library is).
use std::path::{Path, PathBuf};

use profagent_data::{compare, evaluate, Dataset, EvalOptions, Preprocess};
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions};

/// Samples in the CI subset (first 500 of the seed-0 shuffle of cifar10-test).
const SUBSET: usize = 500;
/// Top-1 that Python onnxruntime gives on exactly these 500 images with PIL decoding
/// (crates/profagent-data/scripts/check_preprocess.py): 442/500.
const RESNET20_SUBSET_TOP1: f64 = 0.884;
/// Our pixels are PIL's bit for bit, so only kernel-level float differences between batch
/// sizes could flip a sample: allow one image out of 500.
const SUBSET_TOP1_TOLERANCE: f64 = 1.0 / SUBSET as f64;

/// ../shared (models and data): tests that use it carry `cfg_attr(not(shared_present), ignore)`.
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// ONNX Runtime and the first `n` images of the seed-0 shuffle of cifar10-test (CIFAR
/// preprocessing), or `None` with a printed reason.
fn ort_and_cifar(n: usize) -> Option<(PathBuf, Box<dyn profagent_runtime::Runtime>, Dataset)> {
    let shared = shared();
    let runtime = match open_runtime(RuntimeKind::Ort) {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("skipping: ONNX Runtime unavailable: {err}");
            return None;
        }
    };
    let dataset = Dataset::open(
        &shared.join("data/cifar10-test"),
        &Preprocess::preset("cifar10").unwrap(),
    )
    .unwrap()
    .subset(0, Some(n), Some(0))
    .unwrap();
    Some((shared, runtime, dataset))
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn resnet20_on_a_cifar_subset_matches_python_onnxruntime() {
    let Some((shared, runtime, dataset)) = ort_and_cifar(SUBSET) else {
        return;
    };
    let model = ModelSource::Path(shared.join("models/resnet20_cifar10.onnx"));
    let mut session = runtime.load(&model, &SessionOptions::default()).unwrap();
    let mut reference = runtime.load(&model, &SessionOptions::default()).unwrap();
    let options = EvalOptions {
        latency_batches: vec![1, 16],
        timed_runs: 3,
        warmup_runs: 1,
        ..EvalOptions::default()
    };
    let record = evaluate(
        session.as_mut(),
        Some(reference.as_mut()),
        &dataset,
        &options,
    )
    .unwrap();
    assert_eq!(record.samples, SUBSET);
    let top1 = record.top1.unwrap();
    assert!(
        (top1 - RESNET20_SUBSET_TOP1).abs() <= SUBSET_TOP1_TOLERANCE + 1e-9,
        "top-1 {top1} vs Python {RESNET20_SUBSET_TOP1}"
    );
    assert!(record.top5.unwrap() >= top1);
    // The model against itself: perfect fidelity.
    let fidelity = record.fidelity.unwrap();
    assert_eq!(fidelity.top1_agreement, 1.0);
    assert!(fidelity.mean_kl < 1e-9 && fidelity.mean_cosine > 0.999_999);
    assert_eq!(
        record.latency.iter().map(|p| p.batch).collect::<Vec<_>>(),
        vec![1, 16]
    );
    assert!(record
        .latency
        .iter()
        .all(|p| p.median_ms > 0.0 && p.p90_ms >= p.median_ms));

    let json = serde_json::to_value(&record).unwrap();
    for key in ["top1", "top5", "latency_ms", "model_bytes"] {
        assert!(json.get(key).is_some(), "record JSON lacks {key}");
    }
    assert_eq!(compare(&record, &record).top1_delta_pp, Some(0.0));
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn imagenet_preprocessing_against_a_cifar_model_is_a_shape_error_naming_the_input() {
    let shared = shared();
    let Ok(runtime) = open_runtime(RuntimeKind::Ort) else {
        eprintln!("skipping: ONNX Runtime unavailable");
        return;
    };
    let dataset = Dataset::open(
        &shared.join("data/cifar10-test"),
        &Preprocess::preset("imagenet").unwrap(),
    )
    .unwrap()
    .subset(0, Some(4), None)
    .unwrap();
    let model = ModelSource::Path(shared.join("models/resnet20_cifar10.onnx"));
    let mut session = runtime.load(&model, &SessionOptions::default()).unwrap();
    let err = evaluate(session.as_mut(), None, &dataset, &EvalOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("input") && err.contains("224") && err.contains("32"),
        "{err}"
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn cached_reference_logits_give_the_same_fidelity_as_a_reference_session() {
    let Some((shared, runtime, dataset)) = ort_and_cifar(100) else {
        return;
    };
    let load = |name: &str| {
        runtime
            .load(
                &ModelSource::Path(shared.join("models").join(name)),
                &SessionOptions::default(),
            )
            .unwrap()
    };
    let no_timing = EvalOptions {
        batch_size: 32,
        latency_batches: vec![],
        ..EvalOptions::default()
    };
    // The reference (resnet20) once, keeping its logits.
    let mut reference = load("resnet20_cifar10.onnx");
    let kept = evaluate(
        reference.as_mut(),
        None,
        &dataset,
        &EvalOptions {
            keep_logits: true,
            ..no_timing.clone()
        },
    )
    .unwrap();
    let logits = kept.logits.expect("logits kept");
    assert_eq!(logits.len(), 100 * 10);
    assert!(kept.fidelity.is_none());

    // Another model against the reference session and against the cached logits.
    let mut model = load("resnet18_cifar10.onnx");
    let live = evaluate(
        model.as_mut(),
        Some(reference.as_mut()),
        &dataset,
        &no_timing,
    )
    .unwrap()
    .fidelity
    .unwrap();
    let cached = evaluate(
        model.as_mut(),
        None,
        &dataset,
        &EvalOptions {
            reference_logits: Some(std::sync::Arc::new(logits.clone())),
            ..no_timing.clone()
        },
    )
    .unwrap()
    .fidelity
    .unwrap();
    assert_eq!(live.samples, cached.samples);
    assert_eq!(live.top1_agreement, cached.top1_agreement);
    assert!((live.mean_cosine - cached.mean_cosine).abs() < 1e-12);
    assert!(
        live.top1_agreement < 1.0 && live.mean_cosine < 0.999,
        "two different models"
    );

    // Logits of another slice are refused, not silently compared.
    let short = EvalOptions {
        reference_logits: Some(std::sync::Arc::new(logits[..500].to_vec())),
        ..no_timing
    };
    let err = evaluate(model.as_mut(), None, &dataset, &short).unwrap_err();
    assert!(
        err.to_string().contains("reference logits"),
        "unexpected error: {err}"
    );
}
