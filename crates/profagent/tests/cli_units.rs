//! One unit convention for sizes (issue 22: the same file read 320.4 KiB in `quantize` and
//! 328.10 KB in the report): every command prints decimal KB/MB through
//! `profagent_onnx::units::bytes`, never KiB/MiB.
use std::path::PathBuf;
use std::process::Command;

#[test]
fn every_command_prints_sizes_in_decimal_units() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let model = examples.join("resnet20_cifar10.onnx");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_profagent"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let model_arg = model.to_str().unwrap();
    let data = examples.join("cifar10-sample");
    let outputs = [
        run(&["profile", model_arg, "--runs", "0"]),
        run(&["quantize", model_arg, "-o", "q.onnx", "--mode", "dynamic"]),
        run(&[
            "eval",
            model_arg,
            "--data",
            data.to_str().unwrap(),
            "--preprocess",
            "cifar10",
            "--samples",
            "8",
            "--latency-runs",
            "0",
        ]),
    ];
    for text in &outputs {
        for binary in ["KiB", "MiB", "GiB"] {
            assert!(!text.contains(binary), "{binary} printed:\n{text}");
        }
    }
    // The input's size reads the same in quantize's summary and eval's as in the report.
    let size = profagent_onnx::units::bytes(std::fs::metadata(&model).unwrap().len());
    assert_eq!(size, "1.10 MB");
    assert!(outputs[1].contains(&size), "{}", outputs[1]);
    assert!(outputs[2].contains(&size), "{}", outputs[2]);
    assert!(
        outputs[0].contains(" KB") || outputs[0].contains(" MB"),
        "{}",
        outputs[0]
    );
}
