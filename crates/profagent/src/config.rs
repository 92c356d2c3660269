//! `profagent.toml`: defaults for every flag, per subcommand.
//!
//! ```toml
//! [compress]
//! max-acc-drop = 1.0
//! rounds = 4
//! llm = "ollama:qwen2.5:7b"
//! [profile]
//! runs = 20
//! ```
//! Keys are the long flag names (an older spelling of a flag works too). The table of the
//! invoked subcommand is turned into flags that are placed *before* the user's own arguments,
//! so flags given on the command line override the file (clap keeps the last value of a
//! repeated option). The file is `--config PATH` (given before the subcommand), else
//! `./profagent.toml` when it exists.
//!
//! Mistakes in the file are reported naming the file, the table and the key: a table that is
//! no subcommand, a key that is no flag of it (with the nearest flag name), a switch given a
//! value or a flag given `true`, and (through [`Applied::explain`]) a value the flag's parser
//! rejects.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub const DEFAULT_CONFIG: &str = "profagent.toml";

/// Tables that are not subcommands but may share the file: `[llm]`, read by
/// `compress --llm-config` (one file can serve both).
const OTHER_TABLES: [&str; 1] = ["llm"];

/// The argument list with the config file's defaults in it, and where each came from.
#[derive(Debug, Default)]
pub struct Applied {
    pub argv: Vec<OsString>,
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// The subcommand table the defaults came from.
    pub table: String,
    /// (key, canonical long flag name, value as passed) of every injected flag.
    pub injected: Vec<(String, String, Option<String>)>,
}

impl Applied {
    /// For a parse error caused by a value from the file (clap names the flag and the value it
    /// rejected), the error as one line naming the file and the key; `None` for errors in
    /// the user's own arguments.
    pub fn explain(&self, err: &clap::Error) -> Option<String> {
        use clap::error::{ContextKind, ContextValue};
        let path = self.path.as_ref()?;
        let arg = match err.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) => arg.clone(),
            _ => return None,
        };
        let value = match err.get(ContextKind::InvalidValue) {
            Some(ContextValue::String(value)) => Some(value.clone()),
            _ => None,
        };
        // "--rounds <N>" -> "rounds"
        let flag = arg
            .trim_start_matches('-')
            .split([' ', '=', '<'])
            .next()
            .unwrap_or_default()
            .to_string();
        let (key, _, given) = self
            .injected
            .iter()
            .find(|(_, long, given)| *long == flag && (value.is_none() || *given == value))?;
        let rendered = err.to_string();
        let reason = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        Some(format!(
            "{}: [{}] {key} = {}: {reason}",
            path.display(),
            self.table,
            given
                .as_deref()
                .map(|v| format!("'{v}'"))
                .unwrap_or_else(|| "true".into())
        ))
    }
}

/// Rewrites `argv` with the config file's defaults inserted after the subcommand name,
/// checking every key against `command`'s subcommands and their flags.
pub fn apply(argv: Vec<OsString>, command: &clap::Command) -> anyhow::Result<Applied> {
    let mut args = argv;
    let mut explicit: Option<PathBuf> = None;
    if let Some(pos) = args.iter().position(|a| a == "--config") {
        let Some(path) = args.get(pos + 1).cloned() else {
            bail!("--config needs a file path");
        };
        explicit = Some(PathBuf::from(path));
        args.drain(pos..=pos + 1);
    }
    let path = match explicit {
        Some(p) => p,
        None if Path::new(DEFAULT_CONFIG).is_file() => PathBuf::from(DEFAULT_CONFIG),
        None => {
            return Ok(Applied {
                argv: args,
                ..Applied::default()
            })
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let subcommands: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
    for name in table.keys() {
        if !subcommands.contains(&name.as_str()) && !OTHER_TABLES.contains(&name.as_str()) {
            bail!(
                "{}: [{name}] is not a subcommand{}; tables are named after subcommands ({}) or [llm]",
                path.display(),
                nearest(name, subcommands.iter().copied())
                    .map(|n| format!(" (did you mean [{n}]?)"))
                    .unwrap_or_default(),
                subcommands.join(", ")
            );
        }
    }
    let mut applied = Applied {
        path: Some(path.clone()),
        ..Applied::default()
    };
    // The subcommand is the first argument that does not start with '-'.
    let Some(sub_pos) = args
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map(|p| p + 1)
    else {
        applied.argv = args;
        return Ok(applied);
    };
    let sub = args[sub_pos].to_string_lossy().to_string();
    let (Some(section), Some(subcommand)) = (table.get(&sub), command.find_subcommand(&sub)) else {
        applied.argv = args;
        return Ok(applied);
    };
    let Some(section) = section.as_table() else {
        bail!(
            "{}: [{sub}] must be a table of flag = value",
            path.display()
        );
    };
    let mut injected = Vec::new();
    for (key, value) in section {
        let arg = flag_of(subcommand, key).ok_or_else(|| {
            // Older spellings are candidates too: a file may be written in them.
            let names = subcommand
                .get_arguments()
                .filter(|a| !a.is_hide_set())
                .flat_map(|a| a.get_long().into_iter().chain(a.get_all_aliases().unwrap_or_default()));
            let hint = nearest(key, names)
                .map(|n| format!(" (did you mean '{n}'?)"))
                .unwrap_or_default();
            anyhow::anyhow!(
                "{}: [{sub}] has no key '{key}': `profagent {sub}` has no flag --{key}{hint}; keys are the long flag names of `profagent {sub} --help`",
                path.display()
            )
        })?;
        let long = arg.get_long().unwrap_or(key).to_string();
        let flag = format!("--{key}");
        let takes_value = arg.get_action().takes_values();
        match value {
            toml::Value::Boolean(_) if takes_value => bail!(
                "{}: [{sub}] {key} takes a value (--{key} {}), not true/false",
                path.display(),
                arg.get_value_names()
                    .and_then(|v| v.first())
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "VALUE".into())
            ),
            toml::Value::Boolean(true) => {
                injected.push(OsString::from(flag));
                applied.injected.push((key.clone(), long, None));
            }
            toml::Value::Boolean(false) => {}
            _ if !takes_value => bail!(
                "{}: [{sub}] {key} is a switch: write {key} = true or false",
                path.display()
            ),
            toml::Value::Array(items) => {
                for item in items {
                    let text = scalar(item, &path, key)?;
                    injected.push(OsString::from(&flag));
                    injected.push(OsString::from(&text));
                    applied
                        .injected
                        .push((key.clone(), long.clone(), Some(text)));
                }
            }
            other => {
                let text = scalar(other, &path, key)?;
                injected.push(OsString::from(&flag));
                injected.push(OsString::from(&text));
                applied.injected.push((key.clone(), long, Some(text)));
            }
        }
    }
    args.splice(sub_pos + 1..sub_pos + 1, injected);
    applied.argv = args;
    applied.table = sub;
    Ok(applied)
}

/// The argument of `command` whose long name or alias (hidden ones too) is `key`.
fn flag_of<'c>(command: &'c clap::Command, key: &str) -> Option<&'c clap::Arg> {
    command.get_arguments().find(|arg| {
        arg.get_long() == Some(key)
            || arg
                .get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&key))
    })
}

/// The candidate closest to `word` in edit distance, when it is close enough to be a typo.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn scalar(value: &toml::Value, path: &Path, key: &str) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => bail!(
            "{}: '{key}' must be a string, number, boolean or a list of them",
            path.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn config_values_come_before_user_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            "[compress]\nmax-acc-drop = 0.5\nrounds = 4\nno-probe = true\n[profile]\nruns = 3\n",
        )
        .unwrap();
        let out = apply(
            os(&[
                "profagent",
                "--config",
                file.to_str().unwrap(),
                "compress",
                "m.onnx",
                "--rounds",
                "2",
            ]),
            &crate::command(),
        )
        .unwrap()
        .argv;
        let out: Vec<String> = out.iter().map(|s| s.to_string_lossy().into()).collect();
        assert_eq!(out[0], "profagent");
        assert_eq!(out[1], "compress");
        let rounds_config = out.iter().position(|a| a == "4").unwrap();
        let rounds_user = out.iter().position(|a| a == "2").unwrap();
        assert!(rounds_config < rounds_user, "{out:?}");
        assert!(out.contains(&"--no-probe".to_string()));
        assert!(out.contains(&"0.5".to_string()));
        assert!(
            !out.contains(&"3".to_string()),
            "other sections stay out: {out:?}"
        );
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[compress\n").unwrap();
        let e = apply(
            os(&["profagent", "--config", file.to_str().unwrap(), "compress"]),
            &crate::command(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("bad.toml"), "{e:#}");
    }

    #[test]
    fn unknown_keys_and_tables_are_named_and_llm_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        let run = |text: &str| {
            std::fs::write(&file, text).unwrap();
            apply(
                os(&["profagent", "--config", file.to_str().unwrap(), "compress"]),
                &crate::command(),
            )
            .map(|a| a.argv.len())
            .map_err(|e| format!("{e:#}"))
        };
        let e = run("[compress]
max-acc-dorp = 1
")
        .unwrap_err();
        assert!(
            e.contains("p.toml") && e.contains("'max-acc-dorp'") && e.contains("'max-acc-drop'"),
            "{e}"
        );
        let e = run("[compres]
rounds = 1
")
        .unwrap_err();
        assert!(e.contains("[compres]") && e.contains("[compress]"), "{e}");
        // Older spellings, [llm] and the global --quiet are fine.
        assert_eq!(
            run("[llm]
llm = \"none\"\n[compress]\ncalibration-images = 8\nquiet = true\n"),
            Ok(5)
        );
    }
}
