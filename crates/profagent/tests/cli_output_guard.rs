//! Issue 21, end to end: no command writes over, moves or hangs on its input. Every case runs
//! on a copy of the bundled example in a temp folder, checks the exit code (2, bad input), a
//! one-line error naming the paths, and that the input's bytes did not change.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use profagent_onnx::{ExternalData, Model};

/// A command that has not finished after this long is a hang.
const HANG_LIMIT: Duration = Duration::from_secs(60);

fn profagent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_profagent"));
    command.env("NO_COLOR", "1");
    command
}

fn example_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A copy of the example model in a fresh temp folder.
fn copied_model() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("in.onnx");
    std::fs::copy(example_root().join("resnet20_cifar10.onnx"), &model).unwrap();
    (dir, model)
}

/// Runs `command`, killing it (and failing) if it outlives `HANG_LIMIT`.
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > HANG_LIMIT {
            let _ = child.kill();
            panic!("{command:?} still running after {HANG_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Exit 2 and a one-line `error:` naming each of `names`.
fn assert_refused(output: &Output, names: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for name in names {
        assert!(errors[0].contains(name), "'{name}' not named: {stderr}");
    }
}

fn unchanged(path: &Path, before: &[u8]) {
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "{} was modified",
        path.display()
    );
}

#[test]
fn quantize_onto_the_input_spelled_absolutely_or_through_a_symlink_is_refused() {
    let (dir, model) = copied_model();
    let before = std::fs::read(&model).unwrap();
    let absolute = dir.path().join(".").join("in.onnx");
    let link = dir.path().join("link.onnx");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    for output in [&model, &absolute, &link] {
        let result = run(profagent()
            .arg("quantize")
            .arg(&model)
            .arg("-o")
            .arg(output)
            .args(["--mode", "dynamic"]));
        assert_refused(&result, &["in.onnx"]);
        unchanged(&model, &before);
    }
    let result = run(profagent()
        .arg("prune")
        .arg(&model)
        .arg("-o")
        .arg(&link)
        .args(["--ratio", "0.1"]));
    assert_refused(&result, &["link.onnx", "in.onnx"]);
    unchanged(&model, &before);
}

#[test]
fn json_pointed_at_the_input_is_refused_by_every_command() {
    let (dir, model) = copied_model();
    let before = std::fs::read(&model).unwrap();
    let data = example_root().join("cifar10-sample");
    let out = dir.path().join("out.onnx");
    let commands: Vec<Vec<std::ffi::OsString>> = vec![
        vec![
            "profile".into(),
            model.clone().into(),
            "--runs".into(),
            "0".into(),
        ],
        vec![
            "eval".into(),
            model.clone().into(),
            "--data".into(),
            data.clone().into(),
        ],
        vec![
            "quantize".into(),
            model.clone().into(),
            "-o".into(),
            out.clone().into(),
            "--mode".into(),
            "dynamic".into(),
        ],
        vec![
            "prune".into(),
            model.clone().into(),
            "-o".into(),
            out.clone().into(),
            "--ratio".into(),
            "0.1".into(),
        ],
        vec!["prune".into(), model.clone().into(), "--list".into()],
        vec![
            "compress".into(),
            model.clone().into(),
            "--data".into(),
            data.clone().into(),
            "--out".into(),
            dir.path().join("run").into(),
            "--max-acc-drop".into(),
            "1".into(),
        ],
    ];
    for args in commands {
        let result = run(profagent().args(&args).arg("--json").arg(&model));
        assert_refused(&result, &["in.onnx"]);
        unchanged(&model, &before);
        assert!(!out.exists(), "{args:?} wrote its model before refusing");
    }
}

#[test]
fn output_whose_external_data_file_is_the_inputs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(example_root().join("resnet20_cifar10.onnx")).unwrap();
    // The input's weights live in `shared.onnx.data`: writing `shared.onnx` would replace it.
    let shared = dir.path().join("shared.onnx");
    model.save(&shared, ExternalData::Always).unwrap();
    let input = dir.path().join("in.onnx");
    std::fs::rename(&shared, &input).unwrap();
    let data = dir.path().join("shared.onnx.data");
    let before = std::fs::read(&data).unwrap();
    let result = run(profagent()
        .arg("quantize")
        .arg(&input)
        .arg("-o")
        .arg(&shared)
        .args(["--mode", "dynamic", "--check-runtime", "none"]));
    assert_refused(&result, &["shared.onnx.data"]);
    unchanged(&data, &before);
    assert!(Model::load(&input).is_ok());
}

#[test]
fn compress_into_the_inputs_folder_is_refused_and_moves_nothing() {
    let (dir, model) = copied_model();
    let before = std::fs::read(&model).unwrap();
    for out in [dir.path().to_path_buf(), dir.path().join("..")] {
        let result = run(profagent()
            .arg("compress")
            .arg(&model)
            .arg("--data")
            .arg(example_root().join("cifar10-sample"))
            .arg("--out")
            .arg(&out)
            .args(["--max-acc-drop", "1"]));
        assert_refused(&result, &["in.onnx", "history/"]);
        unchanged(&model, &before);
        assert!(!dir.path().join("history").exists());
    }
}

#[test]
fn compress_into_a_run_folder_another_live_run_holds_is_refused() {
    let (dir, model) = copied_model();
    let out = dir.path().join("run");
    std::fs::create_dir(&out).unwrap();
    let earlier = out.join("report.json");
    std::fs::write(&earlier, b"{}").unwrap();
    // The test process is alive: the folder is held by "another run".
    let lock = out.join(".profagent.lock");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let result = run(profagent()
        .arg("compress")
        .arg(&model)
        .arg("--data")
        .arg(example_root().join("cifar10-sample"))
        .arg("--out")
        .arg(&out)
        .args(["--max-acc-drop", "1", "--rounds", "1", "--no-probe"])
        .args(["--sensitivity-groups", "0", "--feedback-images", "8"]));
    assert_refused(&result, &["in use", &std::process::id().to_string()]);
    // The earlier run's files were not moved aside, and the other run's lock stays.
    assert!(earlier.exists() && lock.exists());
    assert!(!out.join("history").exists());
}

#[test]
fn external_data_that_is_a_fifo_is_refused_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(example_root().join("resnet20_cifar10.onnx")).unwrap();
    let path = dir.path().join("m.onnx");
    model.save(&path, ExternalData::Always).unwrap();
    let data = dir.path().join("m.onnx.data");
    std::fs::remove_file(&data).unwrap();
    let made = Command::new("mkfifo").arg(&data).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipping: mkfifo not available");
        return;
    }
    let out = dir.path().join("q.onnx");
    let data = example_root().join("cifar10-sample");
    for args in [
        vec!["profile", "--runs", "0"],
        vec!["quantize", "--mode", "dynamic", "-o", out.to_str().unwrap()],
        vec!["prune", "--ratio", "0.1", "-o", out.to_str().unwrap()],
        vec![
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--preset",
            "cifar10",
        ],
    ] {
        let result = run(profagent().arg(args[0]).arg(&path).args(&args[1..]));
        assert_refused(&result, &["m.onnx.data", "not a regular file"]);
    }
}

#[test]
fn fixed_batch_too_large_to_allocate_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::load(example_root().join("resnet20_cifar10.onnx")).unwrap();
    use profagent_onnx::proto::{tensor_shape_proto::dimension::Value, type_proto};
    let input = &mut model.graph_mut().input[0];
    if let Some(type_proto::Value::TensorType(t)) =
        input.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape.as_mut().unwrap().dim[0].value = Some(Value::DimValue(1 << 62));
    }
    let path = dir.path().join("huge_batch.onnx");
    model.save(&path, ExternalData::Never).unwrap();
    let result = run(profagent()
        .arg("eval")
        .arg(&path)
        .arg("--data")
        .arg(example_root().join("cifar10-sample"))
        .args(["--preset", "cifar10", "--latency-runs", "0"]));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(matches!(result.status.code(), Some(2 | 3)), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("elements"), "{stderr}");
}

#[test]
fn absurd_threads_and_batch_are_refused() {
    let (_dir, model) = copied_model();
    for args in [["--threads", "100000"], ["--batch", "4611686018427387904"]] {
        let result = run(profagent()
            .arg("profile")
            .arg(&model)
            .args(["--runs", "0"])
            .args(args));
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(args[0]), "{stderr}");
    }
}

#[test]
fn report_json_pointed_at_the_runs_report_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    std::fs::write(&report, b"{\"format\": \"profagent-run/1\"}").unwrap();
    let before = std::fs::read(&report).unwrap();
    let result = run(profagent()
        .arg("report")
        .arg(dir.path())
        .arg("--json")
        .arg(&report));
    assert_refused(&result, &["report.json"]);
    unchanged(&report, &before);
}
