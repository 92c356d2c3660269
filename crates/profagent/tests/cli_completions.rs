//! `profagent completions SHELL` (issue 22 item 4): a completion script for each shell that
//! names every subcommand and their flags, generated from the clap definitions.
use std::process::Command;

fn completions(shell: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .args(["completions", shell])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

const SUBCOMMANDS: [&str; 8] = [
    "profile",
    "eval",
    "quantize",
    "prune",
    "compress",
    "report",
    "compare",
    "completions",
];

#[test]
fn every_shell_gets_a_script_naming_the_subcommands_and_flags() {
    for (shell, marker) in [
        ("bash", "complete -F _profagent"),
        ("zsh", "#compdef profagent"),
        ("fish", "complete -c profagent"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (code, script, stderr) = completions(shell);
        assert_eq!(code, Some(0), "{shell}: {stderr}");
        assert!(stderr.is_empty(), "{shell}: {stderr}");
        assert!(script.contains(marker), "{shell}: no '{marker}'");
        for name in SUBCOMMANDS {
            assert!(script.contains(name), "{shell}: no subcommand {name}");
        }
        for flag in ["max-acc-drop", "calib-samples", "preprocess", "quiet"] {
            assert!(script.contains(flag), "{shell}: no flag {flag}");
        }
    }
}

#[test]
fn the_bash_script_parses_and_completes_a_subcommand() {
    let (_, script, _) = completions("bash");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profagent.bash");
    std::fs::write(&path, script).unwrap();
    // Source it and ask for the completions of `profagent comp`.
    let probe = format!(
        "source '{}' && COMP_WORDS=(profagent comp) COMP_CWORD=1 COMP_LINE='profagent comp' \
         COMP_POINT=14 && _profagent profagent comp profagent && echo \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words: Vec<&str> = stdout.split_whitespace().collect();
    words.sort();
    assert_eq!(words, ["compare", "completions", "compress"]);
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let (code, _, stderr) = completions("tcsh");
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("bash") && stderr.contains("powershell"),
        "{stderr}"
    );
}
