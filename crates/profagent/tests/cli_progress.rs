//! Progress bars (issue 22 item 5, must-show): in a terminal, every command that runs for more
//! than a couple of seconds on the bundled example draws an indicatif bar naming its step;
//! with stderr piped there is none (no carriage returns, no escape codes).
//!
//! The terminal is a pseudo-terminal from util-linux `script`; the test is skipped, saying so,
//! where `script` is missing.
use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// The commands, each with a step label its bar must show.
fn commands() -> Vec<(Vec<String>, &'static str)> {
    let model = example("resnet20_cifar10.onnx");
    let data = example("cifar10-sample");
    let with_data = |verb: &str, extra: &[&str]| -> Vec<String> {
        [verb, model.as_str(), "--preprocess", "cifar10"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    vec![
        (vec!["profile".into(), model.clone()], "profiling per layer"),
        (
            with_data(
                "quantize",
                &["-o", "q.onnx", "--mode", "static", "--calib", &data],
            ),
            "calibrating static quantization",
        ),
        (
            with_data(
                "prune",
                &["-o", "p.onnx", "--ratio", "0.2", "--calib", &data],
            ),
            "reconstructing pruned layers",
        ),
        (with_data("eval", &["--data", &data]), "evaluating"),
        (
            with_data(
                "compress",
                &[
                    "--data",
                    &data,
                    "--out",
                    "run",
                    "--max-acc-drop",
                    "1",
                    "--rounds",
                    "1",
                    "--sensitivity-groups",
                    "2",
                    "--compare-seconds",
                    "1",
                ],
            ),
            "quantization probes",
        ),
    ]
}

/// Runs `args` in a pseudo-terminal 120 columns wide; returns what the terminal showed.
fn in_terminal(dir: &Path, args: &[String]) -> (Option<i32>, String) {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_profagent").to_string())
        .chain(args.iter().cloned())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let line = format!("stty cols 120 rows 40; exec {}", quoted.join(" "));
    let out = Command::new("script")
        .current_dir(dir)
        .args(["-qefc", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// A drawn bar: `[`, then `=`, `>` or spaces only, then `]`, at least 10 wide (a step that
/// ends between two redraws on a busy machine may only ever be drawn empty, "0/13 runs").
fn has_bar(text: &str) -> bool {
    text.match_indices('[').any(|(at, _)| {
        let rest = &text[at + 1..];
        rest.find(']').is_some_and(|end| {
            end >= 10 && rest[..end].chars().all(|c| matches!(c, '=' | '>' | ' '))
        })
    })
}

#[test]
fn a_terminal_shows_a_bar_for_every_long_command_and_a_pipe_none() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (args, label) in commands() {
        let (code, shown) = in_terminal(dir.path(), &args);
        assert!(
            matches!(code, Some(0 | 1)),
            "{args:?}: exit {code:?}\n{shown}"
        );
        let bars: Vec<&str> = shown
            .split(['\r', '\n'])
            .filter(|l| l.contains(label) && has_bar(l))
            .collect();
        assert!(
            !bars.is_empty(),
            "{args:?}: no bar for '{label}' in\n{shown}"
        );
        // A bar counts its step's units, e.g. "150/300 samples".
        assert!(
            bars.iter().any(|l| l.contains('/')),
            "{args:?}: no count in {bars:?}"
        );
        if args[0] == "compress" {
            // The steps of the loop are named: the baseline, then the round inside which
            // the evaluation runs.
            for step in ["baseline (", "round 1/1 ("] {
                assert!(shown.contains(step), "{args:?}: no '{step}' in\n{shown}");
            }
        }

        let piped = Command::new(env!("CARGO_BIN_EXE_profagent"))
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&piped.stderr);
        assert!(
            !stderr.contains('\r') && !stderr.contains('\u{1b}') && !has_bar(&stderr),
            "{args:?}: progress drawn into a pipe:\n{stderr}"
        );
    }
}
