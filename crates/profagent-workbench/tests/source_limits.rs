//! Size limits of the code that glues ProfAgent together (issue 16): no file over
//! `MAX_FILE_LINES` and no function over `MAX_FN_LINES` in the CLI (`crates/profagent/src`), the
//! workbench (`crates/profagent-workbench/src`) and the compression loop
//! (`crates/profagent-agent/src/compressor`). A function is counted from its `fn` line to the
//! first line holding only `}` at the same indent (rustfmt's layout).
//! All three fail the test.
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 150;

/// Checked and failing.
const ENFORCED: &[&str] = &[
    "crates/profagent/src",
    "crates/profagent-workbench/src",
    "crates/profagent-agent/src/compressor",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The name of the function a line declares, and the line's indent.
fn declared_fn(line: &str) -> Option<(&str, usize)> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let mut rest = trimmed;
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    (end > 0).then(|| (&name[..end], indent))
}

/// Functions longer than `limit` lines in `text`: (name, first line, lines).
fn long_functions(text: &str, limit: usize) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some((name, indent)) = declared_fn(line) else {
            continue;
        };
        // The line that opens the body (a declaration without one ends with `;`).
        let Some(open) = (start..lines.len()).find(|&i| {
            let l = lines[i].trim_end();
            l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
        }) else {
            continue;
        };
        let opened = lines[open].trim_end();
        if !opened.ends_with('{') {
            continue; // a declaration, or a body on one line
        }
        let close = format!("{}}}", " ".repeat(indent));
        let Some(end) = (open..lines.len()).find(|&i| lines[i].trim_end() == close) else {
            continue;
        };
        let length = end - start + 1;
        if length > limit {
            out.push((name.to_string(), start + 1, length));
        }
    }
    out
}

/// Every file over the limit and every function over the limit under `dirs`.
fn offenders(dirs: &[&str]) -> Vec<String> {
    let root = repo_root();
    let mut found = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        assert!(!files.is_empty(), "no Rust files under {dir}");
        for file in files {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            let shown = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            let lines = text.lines().count();
            if lines > MAX_FILE_LINES {
                found.push(format!("{shown}: {lines} lines (at most {MAX_FILE_LINES})"));
            }
            for (name, at, length) in long_functions(&text, MAX_FN_LINES) {
                found.push(format!(
                    "{shown}:{at}: fn {name} is {length} lines (at most {MAX_FN_LINES})"
                ));
            }
        }
    }
    found
}

#[test]
fn the_cli_the_workbench_and_the_loop_keep_files_and_functions_short() {
    let found = offenders(ENFORCED);
    assert!(found.is_empty(), "split these:\n{}", found.join("\n"));
}

#[test]
fn the_scan_counts_from_fn_to_its_closing_brace() {
    let body = "    let x = 1;\n".repeat(5);
    let text = format!(
        "/// Doc.\npub fn short() -> u8 {{ 1 }}\n\nfn declared();\n\npub(crate) fn long(\n    a: u8,\n) -> u8 {{\n{body}    a\n}}\n\nimpl X {{\n    fn inner(&self) {{\n{body}    }}\n}}\n"
    );
    let found = long_functions(&text, 3);
    assert_eq!(
        found,
        [("long".to_string(), 6, 10), ("inner".to_string(), 18, 7)]
    );
    assert!(long_functions(&text, 10).is_empty());
}
