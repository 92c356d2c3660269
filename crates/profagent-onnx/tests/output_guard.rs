//! Issue 21 regressions: no output may resolve to an input, temp files are unpredictable and
//! exclusive, a run folder has one writer, external data is read from regular files only.
use std::path::{Path, PathBuf};
use std::time::Duration;

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::output::{LOCK_FILE, TEMP_SUFFIX};
use profagent_onnx::{write_atomic, ExternalData, Model, OnnxError, OutputGuard, RunLock};

/// A pid no process has (Linux pids stay below 2^22).
const DEAD_PID: u32 = 4_000_000_000;

fn small_model() -> Model {
    let mut b = GraphBuilder::new(1);
    let x = b.input("input", &[1, 3, 8, 8]);
    let y = b.conv("/conv1", &x, 3, 16, 3, 1, 1);
    let y = b.unary("Relu", "/relu", &y);
    b.output(&y, &[1, 16, 8, 8]);
    b.finish()
}

/// `dir/name` saved with external data in `dir/name.data`.
fn external_model(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    small_model().save(&path, ExternalData::Always).unwrap();
    assert!(dir.join(format!("{name}.data")).is_file());
    path
}

fn refused(result: profagent_onnx::Result<&OutputGuard>) -> String {
    match result {
        Err(e @ (OnnxError::OutputIsInput { .. } | OnnxError::OutputDirHoldsInput { .. })) => {
            e.to_string()
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("output accepted"),
    }
}

#[test]
fn output_spelled_differently_symlinked_or_hard_linked_to_the_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.onnx");
    small_model().save(&input, ExternalData::Never).unwrap();
    let guard = OutputGuard::of_model(&input);

    let message = refused(guard.output_model(input.as_path()));
    assert!(
        message.contains("in.onnx") && !message.contains('\n'),
        "{message}"
    );
    let dotted = tmp.path().join(".").join("in.onnx");
    refused(guard.output_model(dotted.as_path()));
    let link = tmp.path().join("link.onnx");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    refused(guard.output_model(link.as_path()));
    let hard = tmp.path().join("hard.onnx");
    std::fs::hard_link(&input, &hard).unwrap();
    refused(guard.output_file(hard.as_path()));

    // Other files, and stdout, are fine.
    guard
        .output_model(tmp.path().join("out.onnx").as_path())
        .unwrap();
    guard.output_file(Path::new("-")).unwrap();
    guard.output_file(None).unwrap();
}

#[test]
fn output_whose_external_data_is_the_inputs_data_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // The input keeps its weights in `shared.onnx.data`; writing `shared.onnx` elsewhere
    // spelled the same way would replace that file.
    let input = external_model(tmp.path(), "shared.onnx");
    let renamed = tmp.path().join("in.onnx");
    std::fs::rename(&input, &renamed).unwrap();
    let guard = OutputGuard::of_model(&renamed);
    let message = refused(guard.output_model(input.as_path()));
    assert!(message.contains("shared.onnx.data"), "{message}");
    // A JSON report written over the data file is refused too.
    refused(guard.output_file(tmp.path().join("shared.onnx.data").as_path()));
}

#[test]
fn output_whose_data_file_would_be_the_input_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("q.onnx.data");
    small_model().save(&input, ExternalData::Never).unwrap();
    let guard = OutputGuard::of_model(&input);
    refused(guard.output_model(tmp.path().join("q.onnx").as_path()));
}

#[test]
fn output_folder_holding_the_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let input = models.join("in.onnx");
    small_model().save(&input, ExternalData::Never).unwrap();
    let guard = OutputGuard::of_model(&input).input(Some(tmp.path().join("data").as_path()));
    let message = refused(guard.output_dir(models.as_path()));
    assert!(message.contains("history/"), "{message}");
    refused(guard.output_dir(tmp.path()));
    // A folder below the input's, or beside it, holds no input.
    guard.output_dir(models.join("run").as_path()).unwrap();
    guard.output_dir(tmp.path().join("runs").as_path()).unwrap();
}

#[test]
fn write_atomic_ignores_a_planted_symlink_and_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    // The name the old writer used for `q.onnx` in this process.
    let planted = tmp
        .path()
        .join(format!(".q.onnx.{}{TEMP_SUFFIX}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let target = tmp.path().join("q.onnx");
    write_atomic(&target, b"model").unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&target).unwrap(), b"model");
    let temps = temp_files(tmp.path());
    assert_eq!(temps, vec![planted.file_name().unwrap().to_owned()]);

    // A failed rename (the target is a folder) removes the temp file.
    let folder = tmp.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("inside"), b"x").unwrap();
    assert!(write_atomic(&folder, b"x").is_err());
    assert_eq!(temp_files(tmp.path()).len(), 1);
}

#[test]
fn temp_file_left_by_a_killed_writer_is_removed_by_the_next_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dead = tmp.path().join(format!(
        ".report.json.{DEAD_PID}.0123456789abcdef{TEMP_SUFFIX}"
    ));
    std::fs::write(&dead, b"half").unwrap();
    let live = tmp.path().join(format!(
        ".report.json.{}.0123456789abcdef{TEMP_SUFFIX}",
        std::process::id()
    ));
    std::fs::write(&live, b"being written").unwrap();
    write_atomic(&tmp.path().join("report.json"), b"{}").unwrap();
    assert!(!dead.exists(), "a dead writer's temp file is left behind");
    assert!(live.exists(), "a live writer's temp file was removed");
}

fn temp_files(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(TEMP_SUFFIX))
        .collect()
}

#[test]
fn run_folder_lock_stops_a_second_writer_and_takes_over_a_dead_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = RunLock::acquire(tmp.path()).unwrap();
    // Another process holds it: pretend by writing our parent's pid (alive while we run).
    drop(lock);
    assert!(!tmp.path().join(LOCK_FILE).exists(), "lock not removed");
    let parent = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    if let Some(parent) = parent {
        std::fs::write(tmp.path().join(LOCK_FILE), format!("{parent}\n")).unwrap();
        match RunLock::acquire(tmp.path()) {
            Err(e @ OnnxError::Locked { .. }) => {
                let message = e.to_string();
                assert!(message.contains(&parent.to_string()), "{message}");
            }
            other => panic!("second writer not stopped: {other:?}"),
        }
    }
    std::fs::write(tmp.path().join(LOCK_FILE), format!("{DEAD_PID}\n")).unwrap();
    let lock = RunLock::acquire(tmp.path()).expect("a dead process's lock is taken over");
    assert_eq!(
        std::fs::read_to_string(lock.path()).unwrap().trim(),
        std::process::id().to_string()
    );
}

/// Runs `f` on a thread and fails the test (instead of hanging it) after `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    receiver
        .recv_timeout(limit)
        .expect("did not finish in time (hung?)")
}

#[test]
fn external_data_location_that_is_a_fifo_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let path = external_model(tmp.path(), "m.onnx");
    let data = tmp.path().join("m.onnx.data");
    std::fs::remove_file(&data).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&data).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipping: mkfifo not available");
        return;
    }
    let result = within(Duration::from_secs(20), move || Model::load(&path));
    match result {
        Err(e @ OnnxError::ExternalDataNotFile { .. }) => {
            assert!(e.to_string().contains("m.onnx.data"), "{e}")
        }
        other => panic!("FIFO not refused: {other:?}"),
    }
}

#[test]
fn external_data_of_many_tensors_in_one_file_loads_each_tensor() {
    let mut b = GraphBuilder::new(1);
    let x = b.input("input", &[1, 3, 8, 8]);
    let mut y = b.conv("/conv1", &x, 3, 16, 3, 1, 1);
    for i in 2..6 {
        y = b.conv(&format!("/conv{i}"), &y, 16, 16, 3, 1, 1);
    }
    b.output(&y, &[1, 16, 8, 8]);
    let model = b.finish();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("deep.onnx");
    model.save(&path, ExternalData::Always).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.graph().initializer, model.graph().initializer);
    assert!(loaded.external_tensors.len() >= 5);
}

#[test]
fn duplicate_initializers_and_graph_outputs_are_refused_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = small_model();
    let first = model.graph().initializer[0].clone();
    model.graph_mut().initializer.push(first.clone());
    let path = tmp.path().join("dup_init.onnx");
    std::fs::write(&path, model.to_bytes()).unwrap();
    let message = Model::load(&path).unwrap_err().to_string();
    assert!(
        message.contains(first.name()) && message.contains("twice"),
        "{message}"
    );

    let mut model = small_model();
    let output = model.graph().output[0].clone();
    model.graph_mut().output.push(output.clone());
    let path = tmp.path().join("dup_output.onnx");
    std::fs::write(&path, model.to_bytes()).unwrap();
    let message = Model::load(&path).unwrap_err().to_string();
    assert!(
        message.contains(output.name()) && message.contains("twice"),
        "{message}"
    );
}
