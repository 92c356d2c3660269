//! Issue 21: one exit-code policy. The same bad input (a model with an op no runtime knows, a
//! file that is not a model, a missing file) gets exit 2 and one `error:` line from every
//! command, never 3, a panic, or ONNX Runtime's own log lines first.
use std::path::{Path, PathBuf};
use std::process::Command;

use profagent_onnx::{ExternalData, Model};

fn example_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn commands(model: &Path, out: &Path) -> Vec<Vec<std::ffi::OsString>> {
    let data = example_root().join("cifar10-sample");
    let args = |list: &[&std::ffi::OsStr]| list.iter().map(|a| a.to_os_string()).collect();
    vec![
        args(&[
            "profile".as_ref(),
            model.as_ref(),
            "--runs".as_ref(),
            "1".as_ref(),
        ]),
        args(&[
            "eval".as_ref(),
            model.as_ref(),
            "--data".as_ref(),
            data.as_ref(),
            "--preset".as_ref(),
            "cifar10".as_ref(),
        ]),
        args(&[
            "quantize".as_ref(),
            model.as_ref(),
            "-o".as_ref(),
            out.as_ref(),
            "--mode".as_ref(),
            "dynamic".as_ref(),
        ]),
        args(&[
            "prune".as_ref(),
            model.as_ref(),
            "-o".as_ref(),
            out.as_ref(),
            "--ratio".as_ref(),
            "0.1".as_ref(),
        ]),
    ]
}

#[test]
fn bad_models_get_exit_2_and_one_error_line_from_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut unknown = Model::load(example_root().join("resnet20_cifar10.onnx")).unwrap();
    let node = unknown
        .graph_mut()
        .node
        .iter_mut()
        .find(|n| n.op_type() == "Relu")
        .unwrap();
    node.op_type = Some("NoSuchOp".into());
    let unknown_op = dir.path().join("unknown_op.onnx");
    unknown.save(&unknown_op, ExternalData::Never).unwrap();
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf").unwrap();
    let missing = dir.path().join("missing.onnx");
    let out = dir.path().join("out.onnx");

    for model in [&unknown_op, &garbage, &missing] {
        for args in commands(model, &out) {
            let run = Command::new(env!("CARGO_BIN_EXE_profagent"))
                .args(&args)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&run.stderr);
            let case = format!("{args:?}: {stderr}");
            assert_eq!(run.status.code(), Some(2), "{case}");
            assert!(!stderr.contains("panicked"), "{case}");
            let first = stderr
                .lines()
                // The preprocessing announcement comes before the model is run.
                .find(|l| {
                    !l.starts_with("note:")
                        && !l.starts_with("warning:")
                        && !l.starts_with("preprocessing:")
                })
                .unwrap_or_default();
            assert!(first.starts_with("error:"), "{case}");
            assert_eq!(
                stderr.lines().filter(|l| l.starts_with("error:")).count(),
                1,
                "{case}"
            );
            let name = model.file_name().unwrap().to_str().unwrap();
            assert!(first.contains(name), "{case}");
            assert!(!out.exists(), "{case}");
        }
    }
}

#[test]
fn os_errors_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args(["profile", "--runs", "0"])
        .arg(dir.path().join("missing.onnx"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

/// A corrupt image in the data is bad input for `compress` as it is for `eval`: exit 2 and one
/// `error:` line naming the image, not a runtime failure (exit 3).
#[test]
fn a_corrupt_image_is_bad_input_for_compress() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for class in std::fs::read_dir(example_root().join("cifar10-sample")).unwrap() {
        let class = class.unwrap().path();
        let target = data.join(class.file_name().unwrap());
        std::fs::create_dir_all(&target).unwrap();
        for image in std::fs::read_dir(&class).unwrap().take(12) {
            let image = image.unwrap().path();
            std::fs::copy(&image, target.join(image.file_name().unwrap())).unwrap();
        }
    }
    let broken = data.join("airplane").join("zz_broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .arg("compress")
        .arg(example_root().join("resnet20_cifar10.onnx"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("run"))
        .args([
            "--preset",
            "cifar10",
            "--max-acc-drop",
            "1",
            "--rounds",
            "1",
        ])
        .args([
            "--no-probe",
            "--sensitivity-groups",
            "0",
            "--compare-seconds",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("zz_broken.jpg"), "{stderr}");
}

/// A reader that goes away (`profagent eval ... 2>&1 | head -c 20`, a parent that died) ends
/// the run quietly with the shell's SIGPIPE status, never a panic (exit 101) on the next
/// progress line.
#[test]
fn a_closed_output_pipe_ends_the_run_without_a_panic() {
    let root = example_root();
    let mut child = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .arg("eval")
        .arg(root.join("resnet20_cifar10.onnx"))
        .arg("--data")
        .arg(root.join("cifar10-sample"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads: both pipes are closed at once.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "{status:?}");
}
