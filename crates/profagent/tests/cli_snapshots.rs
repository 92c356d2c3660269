//! Snapshots (insta) of the CLI's human output for rewrites whose text depends on the graph
//! alone (issue 16): `prune` and `quantize` on the bundled example with the output check off,
//! so no runtime number enters the text. Paths and durations are filtered; a change to the
//! wording or the numbers shows up as a snapshot diff to review (`cargo insta review`, or
//! `INSTA_UPDATE=always` and read the .snap diff).
use std::path::{Path, PathBuf};
use std::process::Command;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/resnet20_cifar10.onnx")
}

/// stdout then stderr of a successful run, with the temp dir and durations replaced.
fn human_output(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}\n{stdout}\n{stderr}");
    format!("--- stdout\n{stdout}--- stderr\n{stderr}").replace(&dir.display().to_string(), "[dir]")
}

fn filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"in \d+(\.\d+)? s\b", "in [duration]")]
}

#[test]
fn prune_summary() {
    let dir = tempfile::tempdir().unwrap();
    let model = example();
    let text = human_output(
        &[
            "prune",
            model.to_str().unwrap(),
            "-o",
            "p.onnx",
            "--ratio",
            "0.2",
            "--check-runtime",
            "none",
        ],
        dir.path(),
    );
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!("prune_resnet20_ratio_0_2", text);
    });
}

#[test]
fn quantize_summary_names_the_layers_kept_in_float() {
    let dir = tempfile::tempdir().unwrap();
    let model = example();
    for mode in ["dynamic", "int4"] {
        let text = human_output(
            &[
                "quantize",
                model.to_str().unwrap(),
                "-o",
                "q.onnx",
                "--mode",
                mode,
                "--check-runtime",
                "none",
                // Said in a note; `auto` would name this machine's CPU.
                "--weight-range",
                "reduced",
            ],
            dir.path(),
        );
        insta::with_settings!({filters => filters()}, {
            insta::assert_snapshot!(format!("quantize_resnet20_{mode}"), text);
        });
    }
}
