//! `profagent profile` with no ONNX Runtime library to be found: the default build fails with
//! exit 3 and the install hint; a build with the `tract` feature falls back to tract with a
//! one-line notice and still measures (issue 3). CI runs this file in both builds.
use std::path::PathBuf;
use std::process::Command;

#[test]
fn missing_onnxruntime_gives_the_hint_or_falls_back_to_tract() {
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/resnet20_cifar10.onnx");
    assert!(
        model.is_file(),
        "bundled example missing: {}",
        model.display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args([
            "profile",
            model.to_str().unwrap(),
            "--runs",
            "3",
            "--json",
            "-",
        ])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .env("PROFAGENT_ORT_NO_DISCOVERY", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "tract") {
        assert!(out.status.success(), "{stderr}");
        let notes: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note:")).collect();
        assert_eq!(notes.len(), 1, "{stderr}");
        assert!(notes[0].contains("using tract instead"), "{stderr}");
        assert!(notes[0].contains("pip install onnxruntime"), "{stderr}");
        let profile: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(profile["measurement"]["runtime"], "tract");
        assert!(profile["model"]["latency_ms"].as_f64().unwrap() > 0.0);
    } else {
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("pip install onnxruntime==1.32.0"),
            "{stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{stderr}"
        );
    }
}
