//! `--quiet` (issue 22), a global flag: no progress, "preprocessing: ..." or "wrote ..." lines
//! on stderr, while results still reach stdout; also as `quiet = true` in profagent.toml.
use std::path::PathBuf;
use std::process::Command;

#[test]
fn quiet_leaves_stderr_empty_and_keeps_the_results() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let model = examples.join("resnet20_cifar10.onnx");
    let model = model.to_str().unwrap();
    let data = examples.join("cifar10-sample");
    let data = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_profagent"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let eval = [
        "eval",
        model,
        "--data",
        data,
        "--preprocess",
        "cifar10",
        "--samples",
        "8",
        "--latency-runs",
        "0",
        "--json",
        "eval.json",
    ];
    let (code, _, loud) = run(&eval);
    assert_eq!(code, Some(0), "{loud}");
    assert!(
        loud.contains("preprocessing:") && loud.contains("wrote"),
        "{loud}"
    );
    // The flag works before or after the subcommand, and from profagent.toml.
    for quiet in [&["-q"][..], &["--quiet"][..]] {
        let (code, stdout, stderr) = run(&[quiet, &eval[..]].concat());
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stderr, "", "{quiet:?}");
        assert!(stdout.contains("top-1"), "{stdout}");
        let (code, _, stderr) = run(&[&eval[..], quiet].concat());
        assert_eq!((code, stderr.as_str()), (Some(0), ""));
    }
    std::fs::write(dir.path().join("profagent.toml"), "[eval]\nquiet = true\n").unwrap();
    let (code, _, stderr) = run(&eval);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    std::fs::remove_file(dir.path().join("profagent.toml")).unwrap();

    let (code, stdout, stderr) = run(&[
        "compress",
        model,
        "--data",
        data,
        "--out",
        "run",
        "--preprocess",
        "cifar10",
        "--max-acc-drop",
        "60",
        "--target-macs",
        "0.8",
        "--no-probe",
        "--sensitivity-groups",
        "0",
        "--rounds",
        "1",
        "--calib-samples",
        "16",
        "--feedback-samples",
        "32",
        "--holdout-samples",
        "16",
        "--compare-seconds",
        "1",
        "--quiet",
    ]);
    assert!(matches!(code, Some(0 | 1)), "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("note:") || l.starts_with("warning:")),
        "{stderr}"
    );
    assert!(stdout.contains("budget "), "{stdout}");
}

/// In a terminal (util-linux `script` gives the command one) eval of the 300 bundled images
/// draws a progress bar with a rate people read (issue 22: it read `305.9126/s`, and only
/// from 2,000 samples); `--quiet` hides it, and so does a pipe.
#[test]
fn eval_draws_a_progress_bar_in_a_terminal_only() {
    let has_script = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let command = format!(
        "{} eval {} --data {} --preprocess cifar10 --latency-runs 0",
        env!("CARGO_BIN_EXE_profagent"),
        examples.join("resnet20_cifar10.onnx").display(),
        examples.join("cifar10-sample").display()
    );
    let in_terminal = |extra: &str| {
        let out = Command::new("script")
            .args(["-qfec", &format!("{command} {extra}"), "/dev/null"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = in_terminal("");
    assert!(text.contains("/300 samples ("), "{text}");
    let rates: Vec<&str> = text
        .split(" samples/s")
        .filter_map(|before| before.rsplit('(').next())
        .take_while(|rate| rate.len() < 12)
        .collect();
    assert!(!rates.is_empty(), "{text}");
    // Whole numbers from 10 per second, one decimal below.
    for rate in rates {
        let whole = rate.parse::<u64>().is_ok_and(|r| r >= 10);
        let decimal = rate.parse::<f64>().is_ok_and(|r| r < 10.0)
            && rate.split_once('.').is_some_and(|(_, d)| d.len() == 1);
        assert!(whole || decimal, "rate {rate:?} in {text}");
    }
    assert!(!in_terminal("--quiet").contains("samples/s"));
    let piped = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args(command.split(' ').skip(1))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("samples/s"));
}
