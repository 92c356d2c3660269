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
//! Keys are the long flag names. The table of the invoked subcommand is turned into flags that
//! are placed *before* the user's own arguments, so flags given on the command line override
//! the file (clap keeps the last value of a repeated option). The file is `--config PATH`
//! (given before the subcommand), else `./profagent.toml` when it exists.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub const DEFAULT_CONFIG: &str = "profagent.toml";

/// Rewrites `argv` with the config file's defaults inserted after the subcommand name.
pub fn apply(argv: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
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
        None => return Ok(args),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    // The subcommand is the first argument that does not start with '-'.
    let Some(sub_pos) = args
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map(|p| p + 1)
    else {
        return Ok(args);
    };
    let sub = args[sub_pos].to_string_lossy().to_string();
    let Some(section) = table.get(&sub) else {
        return Ok(args);
    };
    let Some(section) = section.as_table() else {
        bail!(
            "{}: [{sub}] must be a table of flag = value",
            path.display()
        );
    };
    let mut injected = Vec::new();
    for (key, value) in section {
        let flag = format!("--{key}");
        match value {
            toml::Value::Boolean(true) => injected.push(OsString::from(flag)),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for item in items {
                    injected.push(OsString::from(&flag));
                    injected.push(OsString::from(scalar(item, &path, key)?));
                }
            }
            other => {
                injected.push(OsString::from(&flag));
                injected.push(OsString::from(scalar(other, &path, key)?));
            }
        }
    }
    args.splice(sub_pos + 1..sub_pos + 1, injected);
    Ok(args)
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
        let out = apply(os(&[
            "profagent",
            "--config",
            file.to_str().unwrap(),
            "compress",
            "m.onnx",
            "--rounds",
            "2",
        ]))
        .unwrap();
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
        let e = apply(os(&[
            "profagent",
            "--config",
            file.to_str().unwrap(),
            "compress",
        ]))
        .unwrap_err();
        assert!(format!("{e:#}").contains("bad.toml"), "{e:#}");
    }
}
