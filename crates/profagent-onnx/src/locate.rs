//! Where a MODEL argument points. Users name a model three ways:
//! - an `.onnx` file;
//! - a folder as optimum exports it (`model.onnx` beside `config.json`, `tokenizer.json`,
//!   `preprocessor_config.json`), or a Hugging Face repository folder (`onnx/model.onnx`);
//! - `hf:ORG/NAME`, a model already in the local Hugging Face cache
//!   (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
//!   `~/.cache/huggingface/hub`; `models--ORG--NAME/snapshots/<revision>/`). Nothing is ever
//!   downloaded: a model missing from the cache is an error saying how to get it.
//!
//! The files beside the located `.onnx` (tokenizer, preprocessing) are found by the commands'
//! usual "beside the model" lookups.
use std::path::{Path, PathBuf};

/// The prefix naming a model in the local Hugging Face cache.
pub const HF_PREFIX: &str = "hf:";
/// Model files looked for in a folder, in this order.
const FOLDER_MODEL_FILES: &[&str] = &["model.onnx", "onnx/model.onnx"];

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("model '{path}' does not exist (give an .onnx file, a folder holding model.onnx, or hf:ORG/NAME from the local Hugging Face cache)")]
    NotFound { path: PathBuf },
    #[error("folder '{folder}' holds no model.onnx (nor onnx/model.onnx, nor any .onnx file): give the .onnx file itself")]
    NoModelInFolder { folder: PathBuf },
    #[error("folder '{folder}' holds several models ({names}) and no model.onnx: give the .onnx file itself")]
    SeveralModels { folder: PathBuf, names: String },
    #[error("'{id}' is not a Hugging Face model id: write hf:ORG/NAME (e.g. hf:sentence-transformers/all-MiniLM-L6-v2)")]
    BadId { id: String },
    #[error("hf:{id} is not in the local Hugging Face cache (looked for {looked}); profagent never downloads: fetch it first (e.g. `huggingface-cli download {id}`) or give the model folder")]
    NotCached { id: String, looked: PathBuf },
    #[error("hf:{id}: the cache entry {folder} has no snapshot; download the model again")]
    NoSnapshot { id: String, folder: PathBuf },
    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A located model: the `.onnx` file, and what the user named when that was not the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedModel {
    pub file: PathBuf,
    /// `Some` when the argument was a folder or `hf:` id (for the "model:" line).
    pub named_as: Option<String>,
}

/// Resolves a MODEL argument (see the module docs). A path that does not exist is returned
/// as it is when it ends in `.onnx`, so the loader's own error names it.
pub fn locate_model(argument: &Path) -> Result<LocatedModel, LocateError> {
    let text = argument.to_string_lossy();
    if let Some(id) = text.strip_prefix(HF_PREFIX) {
        let folder = hf_snapshot(id, &hf_cache_dir())?;
        let file = model_in_folder(&folder)?;
        return Ok(LocatedModel {
            file,
            named_as: Some(text.into_owned()),
        });
    }
    if argument.is_dir() {
        return Ok(LocatedModel {
            file: model_in_folder(argument)?,
            named_as: Some(argument.display().to_string()),
        });
    }
    Ok(LocatedModel {
        file: argument.to_path_buf(),
        named_as: None,
    })
}

/// The model file of a folder: `model.onnx`, `onnx/model.onnx`, else the only `.onnx` file
/// in the folder or its `onnx/` sub-folder.
pub fn model_in_folder(folder: &Path) -> Result<PathBuf, LocateError> {
    if let Some(file) = FOLDER_MODEL_FILES
        .iter()
        .map(|name| folder.join(name))
        .find(|p| p.is_file())
    {
        return Ok(file);
    }
    let mut found = Vec::new();
    for dir in [folder.to_path_buf(), folder.join("onnx")] {
        if !dir.is_dir() {
            continue;
        }
        let entries = std::fs::read_dir(&dir).map_err(|source| LocateError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "onnx") {
                found.push(path);
            }
        }
    }
    found.sort();
    match found.len() {
        0 => Err(LocateError::NoModelInFolder {
            folder: folder.to_path_buf(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(LocateError::SeveralModels {
            folder: folder.to_path_buf(),
            names: found
                .iter()
                .filter_map(|p| p.strip_prefix(folder).ok())
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The Hugging Face hub cache folder from the environment (see the module docs).
pub fn hf_cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(cache) = var("HF_HUB_CACHE") {
        return PathBuf::from(cache);
    }
    if let Some(home) = var("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("huggingface").join("hub")
}

/// The snapshot folder of `id` (`ORG/NAME`) in `cache`: the revision `refs/main` names, else
/// the only snapshot, else the most recently modified one.
pub fn hf_snapshot(id: &str, cache: &Path) -> Result<PathBuf, LocateError> {
    let valid_part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let parts: Vec<&str> = id.split('/').collect();
    if parts.is_empty() || parts.len() > 2 || !parts.iter().all(|p| valid_part(p)) {
        return Err(LocateError::BadId { id: id.to_string() });
    }
    let repo = cache.join(format!("models--{}", parts.join("--")));
    if !repo.is_dir() {
        return Err(LocateError::NotCached {
            id: id.to_string(),
            looked: repo,
        });
    }
    let snapshots = repo.join("snapshots");
    let pinned = std::fs::read_to_string(repo.join("refs").join("main"))
        .ok()
        .map(|r| snapshots.join(r.trim()))
        .filter(|p| p.is_dir());
    if let Some(folder) = pinned {
        return Ok(folder);
    }
    let mut all: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snapshots)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| {
                    let modified = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    (modified, e.path())
                })
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all.pop()
        .map(|(_, path)| path)
        .ok_or_else(|| LocateError::NoSnapshot {
            id: id.to_string(),
            folder: repo,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn folders_prefer_model_onnx_then_the_only_onnx_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(matches!(
            model_in_folder(root),
            Err(LocateError::NoModelInFolder { .. })
        ));
        touch(&root.join("onnx/model_quantized.onnx"));
        assert_eq!(
            model_in_folder(root).unwrap(),
            root.join("onnx/model_quantized.onnx")
        );
        touch(&root.join("other.onnx"));
        let err = model_in_folder(root).unwrap_err().to_string();
        assert!(
            err.contains("onnx/model_quantized.onnx, other.onnx"),
            "{err}"
        );
        touch(&root.join("onnx/model.onnx"));
        assert_eq!(model_in_folder(root).unwrap(), root.join("onnx/model.onnx"));
        touch(&root.join("model.onnx"));
        assert_eq!(model_in_folder(root).unwrap(), root.join("model.onnx"));
    }

    #[test]
    fn hf_ids_resolve_to_the_pinned_snapshot_and_never_download() {
        let cache = tempfile::tempdir().unwrap();
        let err = hf_snapshot("org/name", cache.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not in the local Hugging Face cache")
                && err.contains("models--org--name"),
            "{err}"
        );
        let repo = cache.path().join("models--org--name");
        touch(&repo.join("snapshots/aaa/model.onnx"));
        touch(&repo.join("snapshots/bbb/model.onnx"));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "aaa\n").unwrap();
        assert_eq!(
            hf_snapshot("org/name", cache.path()).unwrap(),
            repo.join("snapshots/aaa")
        );
        for bad in ["", "a/b/c", "../x", "org/na me"] {
            assert!(
                matches!(
                    hf_snapshot(bad, cache.path()),
                    Err(LocateError::BadId { .. })
                ),
                "{bad}"
            );
        }
    }
}
