//! Mistakes in profagent.toml are reported naming the file, the table and the key (issue 22:
//! a typo read `unexpected argument '--presett'`), with exit 2 and one line; keys spelled the
//! old way keep working.
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// `profagent eval` on the bundled example in a folder whose profagent.toml is `config`.
fn eval_with_config(dir: &Path, config: &str) -> std::process::Output {
    std::fs::write(dir.join("profagent.toml"), config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_profagent"))
        .current_dir(dir)
        .arg("eval")
        .arg(examples().join("resnet20_cifar10.onnx"))
        .arg("--data")
        .arg(examples().join("cifar10-sample"))
        .args(["--latency-runs", "0", "--json", "-"])
        .output()
        .unwrap()
}

#[test]
fn config_mistakes_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[eval]\npresett = \"cifar10\"\n",
            &[
                "profagent.toml",
                "[eval]",
                "'presett'",
                "did you mean 'preset'",
            ][..],
        ),
        (
            "[evl]\npreprocess = \"cifar10\"\n",
            &[
                "profagent.toml",
                "[evl] is not a subcommand",
                "did you mean [eval]",
            ][..],
        ),
        (
            "[eval]\npreprocess = \"cifar10\"\nlatency-runs = \"often\"\n",
            &[
                "profagent.toml",
                "[eval] latency-runs = 'often'",
                "invalid value",
            ][..],
        ),
        (
            "[eval]\npreprocess = \"cifar10\"\nskip-bad = \"yes\"\n",
            &["profagent.toml", "skip-bad is a switch"][..],
        ),
        (
            "[eval]\npreprocess = true\n",
            &["profagent.toml", "preprocess takes a value"][..],
        ),
    ];
    for (config, needles) in cases {
        let out = eval_with_config(dir.path(), config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{config}: no {needle:?} in {stderr}"
            );
        }
        assert!(out.stdout.is_empty(), "nothing ran: {config}");
    }
}

#[test]
fn config_keys_in_new_and_old_spellings_both_work() {
    let dir = tempfile::tempdir().unwrap();
    let old = eval_with_config(dir.path(), "[eval]\npreset = \"cifar10\"\nlimit = 16\n");
    let new = eval_with_config(
        dir.path(),
        "[eval]\npreprocess = \"cifar10\"\nsamples = 16\n",
    );
    for out in [&old, &new] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let samples = |out: &std::process::Output| {
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["samples"].clone()
    };
    assert_eq!(samples(&old), 16);
    assert_eq!(samples(&new), 16);
}
