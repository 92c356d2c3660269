//! The commands in README.md's shell blocks run as written (issue 22: the README's
//! `prune ... --calib DIR` line failed), with the bundled example for the placeholders: every
//! `profagent` line is expanded (each `a|b|c` alternative, optional `[...]` parts included with
//! their first alternative), profile/eval/quantize/prune are run and must exit 0; compress and
//! report, which need minutes or a finished run, must at least parse (`--help` after the
//! flags: clap rejects an unknown flag or a bad value first).
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `profagent` command lines of the README's ```sh blocks, continuation lines joined and
/// comments removed.
fn readme_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut line_so_far = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let code = line.split(" #").next().unwrap_or_default().trim();
        let (code, continues) = match code.strip_suffix('\\') {
            Some(code) => (code.trim(), true),
            None => (code, false),
        };
        line_so_far.push_str(code);
        line_so_far.push(' ');
        if !continues {
            let full = line_so_far.trim().to_string();
            if full.starts_with("profagent ") {
                commands.push(full);
            }
            line_so_far.clear();
        }
    }
    commands
}

/// One command per `a|b|c` alternative outside brackets; `[x | y]` becomes `x`.
fn expand(command: &str) -> Vec<String> {
    let mut text = String::new();
    let mut rest = command;
    while let Some(open) = rest.find('[') {
        let close = rest[open..]
            .find(']')
            .map(|c| open + c)
            .expect("unclosed [");
        text.push_str(&rest[..open]);
        text.push_str(rest[open + 1..close].split(" | ").next().unwrap().trim());
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some(at) = words
        .iter()
        .position(|w| w.contains('|') && !w.starts_with('\''))
    else {
        return vec![words.join(" ")];
    };
    words[at]
        .split('|')
        .map(|choice| {
            let mut w = words.clone();
            w[at] = choice;
            w.join(" ")
        })
        .collect()
}

fn substitute(command: &str, examples: &Path) -> String {
    command
        .replace(
            "model.onnx",
            &examples.join("resnet20_cifar10.onnx").display().to_string(),
        )
        .replace("RUN_DIR", "run")
        .replace(
            " DIR",
            &format!(" {}", examples.join("cifar10-sample").display()),
        )
        .replace(" MS", " 5")
        .replace(" MB", " 0.5")
        .replace("PROVIDER:MODEL", "none")
        .replacen("profagent", env!("CARGO_BIN_EXE_profagent"), 1)
}

#[test]
fn readme_commands_run_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands: Vec<String> = readme_commands(&readme)
        .iter()
        .flat_map(|c| expand(c))
        .collect();
    for verb in ["profile", "eval", "quantize", "prune", "compress", "report"] {
        assert!(
            commands
                .iter()
                .any(|c| c.starts_with(&format!("profagent {verb} "))),
            "README shows no `profagent {verb}` command: {commands:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let examples = root.join("examples");
    for command in &commands {
        let parse_only =
            command.starts_with("profagent compress ") || command.starts_with("profagent report ");
        let mut line = substitute(command, &examples);
        if parse_only {
            line.push_str(" --help");
        }
        let out = Command::new("sh")
            .args(["-c", &line])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README command failed: {command}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn readme_expansion_covers_alternatives_and_options() {
    let expanded = expand("profagent quantize m -o q --mode dynamic|static [--calib DIR]");
    assert_eq!(
        expanded,
        [
            "profagent quantize m -o q --mode dynamic --calib DIR",
            "profagent quantize m -o q --mode static --calib DIR"
        ]
    );
    assert_eq!(
        expand("profagent compress m [--a 1 | --b 2] [--c]"),
        ["profagent compress m --a 1 --c"]
    );
}
