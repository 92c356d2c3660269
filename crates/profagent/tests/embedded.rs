//! `profagent::run_embedded`, the seam the Python package calls (issue 23): the same command
//! code as the binary, with the error line the binary prints returned instead, the exit code
//! as a number, and the `--json` document identical in its static fields.
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn argv(args: &[&str]) -> Vec<OsString> {
    std::iter::once("profagent")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect()
}

#[test]
fn an_error_is_the_binarys_line_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.onnx");
    let missing = missing.to_str().unwrap();
    let binary = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args(["profile", missing])
        .output()
        .unwrap();
    let outcome = profagent::run_embedded(argv(&["profile", missing]));
    assert_eq!(Some(i32::from(outcome.code)), binary.status.code());
    assert_eq!(outcome.code, profagent::exit::BAD_INPUT);
    let line = outcome.error.expect("an error line");
    assert_eq!(
        String::from_utf8_lossy(&binary.stderr).trim(),
        format!("error: {line}")
    );
}

#[test]
fn a_bad_flag_value_is_bad_input_on_one_line() {
    let model = example("resnet20_cifar10.onnx");
    let outcome = profagent::run_embedded(argv(&[
        "quantize",
        model.to_str().unwrap(),
        "-o",
        "never-written.onnx",
        "--mode",
        "int3",
    ]));
    assert_eq!(outcome.code, profagent::exit::BAD_INPUT);
    let line = outcome.error.expect("an error line");
    assert!(line.contains("int3") && !line.contains('\n'), "{line}");
    assert!(!PathBuf::from("never-written.onnx").exists());
}

#[test]
fn profile_json_has_the_binarys_static_costs() {
    let dir = tempfile::tempdir().unwrap();
    let model = example("resnet20_cifar10.onnx");
    let model = model.to_str().unwrap();
    let [ours, theirs] = ["ours.json", "theirs.json"].map(|f| dir.path().join(f));
    let flags = ["--runs", "2", "--warmup", "1", "--threads", "1", "--json"];
    let outcome = profagent::run_embedded(argv(
        &[&["profile", model][..], &flags, &[ours.to_str().unwrap()]].concat(),
    ));
    assert_eq!(
        outcome,
        profagent::Outcome {
            code: 0,
            error: None
        }
    );
    let binary = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args(["profile", model])
        .args(flags)
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(binary.status.success());
    let read = |path: &PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (ours, theirs) = (read(&ours), read(&theirs));
    for key in [
        "params",
        "macs",
        "weight_bytes",
        "activation_bytes",
        "layer_count",
    ] {
        assert_eq!(ours["model"][key], theirs["model"][key], "{key}");
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        let mut rows: Vec<String> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| format!("{} {} {}", l["name"], l["macs"], l["params"]))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(names(&ours), names(&theirs));
    assert!(ours["model"]["macs"].as_u64().unwrap() > 0);
}
