//! One vocabulary for flags across subcommands (issue 22): the same idea has the same name in
//! every `--help` (sample counts, seeds, preprocessing), and the older spellings still parse
//! as hidden aliases so scripts and profagent.toml files keep working.
use std::collections::BTreeSet;
use std::process::Command;

fn profagent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_profagent"))
}

/// The long flags a subcommand's `--help` lists.
fn long_flags(subcommand: &str) -> BTreeSet<String> {
    let out = profagent().args([subcommand, "--help"]).output().unwrap();
    assert!(out.status.success(), "{subcommand} --help");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("-o, ").unwrap_or(line);
            let flag = line.strip_prefix("--")?;
            let name: String = flag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[test]
fn help_texts_share_flag_names_for_the_same_concepts() {
    let commands = ["eval", "quantize", "prune", "compress"];
    let flags: Vec<(&str, BTreeSet<String>)> =
        commands.iter().map(|c| (*c, long_flags(c))).collect();
    for (command, names) in &flags {
        for common in [
            "preprocess",
            "seed",
            "json",
            "input-shape",
            "tokenizer",
            "seq-len",
        ] {
            assert!(
                names.contains(common),
                "{command} lacks --{common}: {names:?}"
            );
        }
        // The older spellings are hidden: one name per idea in --help.
        for old in [
            "preset",
            "limit",
            "calib-count",
            "calibration-images",
            "feedback-images",
            "holdout-images",
            "calib-seed",
            "split-seed",
        ] {
            assert!(!names.contains(old), "{command} --help still shows --{old}");
        }
    }
    for (command, names) in flags.iter().filter(|(c, _)| *c != "eval") {
        assert!(
            names.contains("calib-samples"),
            "{command} lacks --calib-samples: {names:?}"
        );
    }
    for (command, names) in flags
        .iter()
        .filter(|(c, _)| ["quantize", "prune"].contains(c))
    {
        assert!(
            names.contains("check-samples") && names.contains("check-runtime"),
            "{command}: {names:?}"
        );
    }
    for command in ["prune", "compress"] {
        let names = &flags.iter().find(|(c, _)| *c == command).unwrap().1;
        assert!(names.contains("min-cosine"), "{command}: {names:?}");
    }
    assert!(long_flags("eval").contains("samples"));
    assert!(long_flags("profile").contains("preprocess"));
}

#[test]
fn older_flag_spellings_still_parse() {
    // clap rejects an unknown flag before it prints --help, so `... OLD VALUE --help`
    // exiting 0 shows that OLD is still accepted.
    let cases: [(&str, &[&str]); 4] = [
        ("eval", &["--limit", "5", "--preset", "cifar10"]),
        (
            "quantize",
            &[
                "--calib-count",
                "5",
                "--calib-seed",
                "1",
                "--preset",
                "cifar10",
            ],
        ),
        (
            "prune",
            &[
                "--calib-count",
                "5",
                "--calib-seed",
                "1",
                "--preset",
                "cifar10",
            ],
        ),
        (
            "compress",
            &[
                "--calibration-images",
                "5",
                "--feedback-images",
                "5",
                "--holdout-images",
                "5",
                "--split-seed",
                "1",
                "--preset",
                "cifar10",
            ],
        ),
    ];
    for (command, old) in cases {
        let out = profagent()
            .arg(command)
            .args(old)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command} {old:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And a real run under the old names gives what the new names give.
    let examples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let eval = |flags: &[&str]| {
        let out = profagent()
            .arg("eval")
            .arg(examples.join("resnet20_cifar10.onnx"))
            .arg("--data")
            .arg(examples.join("cifar10-sample"))
            .args(["--latency-runs", "0", "--json", "-"])
            .args(flags)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{flags:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (record["samples"].clone(), record["top1"].clone())
    };
    assert_eq!(
        eval(&["--limit", "24", "--preset", "cifar10", "--seed", "3"]),
        eval(&["--samples", "24", "--preprocess", "cifar10", "--seed", "3"])
    );
}
