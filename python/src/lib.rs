//! `profagent._native`: the extension module under the `profagent` Python package.
//!
//! Two entry points, both the CLI's own code (`profagent::main_with`, `profagent::run_embedded`),
//! so a Python call and the `profagent` command cannot drift apart:
//! - `main(argv)`: the `profagent` console script (the binary's behaviour: errors printed,
//!   exit codes, Ctrl-C as the binary handles it).
//! - `run(argv)`: one command for `profagent.<verb>(...)`, on a worker thread while the calling
//!   thread waits without the GIL and checks Python's signals every `SIGNAL_POLL`. The first
//!   Ctrl-C asks the command to stop (`compress` finishes its step and records what it did);
//!   any other command, or a second Ctrl-C, raises `KeyboardInterrupt` at once and leaves the
//!   worker to finish its (atomic) write alone.
use std::ffi::OsString;
use std::sync::mpsc;
use std::time::Duration;

use pyo3::prelude::*;

/// How often the waiting thread takes the GIL to look for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Runs the `profagent` command line (`argv[0]` is the program name) as the binary does and
/// returns its exit code.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> u8 {
    let argv: Vec<OsString> = argv.into_iter().map(OsString::from).collect();
    profagent::code_value(py.allow_threads(|| profagent::main_with(argv)))
}

/// Runs one command (`argv` without the program name, e.g. `["profile", "m.onnx"]`) and
/// returns `(exit_code, error_line)`; `error_line` is `None` unless the command failed. Raises
/// `KeyboardInterrupt` when interrupted (see the module doc).
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<String>) -> PyResult<(u8, Option<String>)> {
    let stops_between_steps = argv.iter().any(|a| a == "compress");
    let argv: Vec<OsString> = std::iter::once("profagent".to_string())
        .chain(argv)
        .map(OsString::from)
        .collect();
    profagent_onnx::progress::clear_stop();
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("profagent".into())
        .spawn(move || {
            let _ = sender.send(profagent::run_embedded(argv));
        })
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start a thread: {e}"))
        })?;
    let mut interrupt: Option<PyErr> = None;
    let mut receiver = receiver;
    loop {
        // The receiver travels into the GIL-free closure and back (it is Send, not Sync).
        let (back, received) = py.allow_threads(move || {
            let received = receiver.recv_timeout(SIGNAL_POLL);
            (receiver, received)
        });
        receiver = back;
        match received {
            Ok(outcome) => {
                return match interrupt {
                    // Stopped by Ctrl-C: what was done is recorded; Python sees the interrupt.
                    Some(err) => Err(err),
                    None => Ok((outcome.code, outcome.error)),
                };
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "profagent: the command's thread ended without a result",
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Err(err) = py.check_signals() {
            if stops_between_steps && interrupt.is_none() {
                profagent_onnx::progress::request_stop();
                eprintln!("interrupted: finishing the current step, then writing the report of what was done (Ctrl-C again quits at once)");
                interrupt = Some(err);
            } else {
                profagent_onnx::progress::request_stop();
                return Err(err);
            }
        }
    }
}

/// The exit codes of the CLI, as Python constants.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add("OK", profagent::exit::OK)?;
    m.add("BUDGET_NOT_MET", profagent::exit::BUDGET_NOT_MET)?;
    m.add("BAD_INPUT", profagent::exit::BAD_INPUT)?;
    m.add("RUNTIME_FAILURE", profagent::exit::RUNTIME_FAILURE)?;
    m.add("INTERRUPTED", profagent::exit::INTERRUPTED)?;
    Ok(())
}
