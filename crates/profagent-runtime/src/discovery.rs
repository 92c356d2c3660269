//! Finding the ONNX Runtime shared library before `ort` touches it.
//!
//! `ort` with `load-dynamic` panics on dlopen at its first API call when no library is found, so
//! we look for one ourselves, in this order, and hand the path to `ort::init_from`:
//! 1. `ORT_DYLIB_PATH` (a file, or a folder holding `libonnxruntime.so*`);
//! 2. the `onnxruntime` Python package's `capi/` folder (asked through `python3`, without
//!    importing the package, so it costs one interpreter start);
//! 3. `LD_LIBRARY_PATH` and the standard library folders.
//!
//! `PROFAGENT_ORT_NO_DISCOVERY=1` disables steps 2 and 3 (tests use it to simulate a machine
//! without ONNX Runtime).
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable that names the library file (or its folder) explicitly.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";
/// Environment variable that, when set to a non-empty value other than `0`, disables discovery.
pub const NO_DISCOVERY_ENV: &str = "PROFAGENT_ORT_NO_DISCOVERY";

/// Folders searched after the Python package (step 3).
const STANDARD_LIBRARY_DIRS: &[&str] = &[
    "/usr/local/lib",
    "/usr/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/local/lib64",
    "/usr/lib64",
    "/opt/onnxruntime/lib",
];

/// Asks Python where the `onnxruntime` package lives without importing it (importing costs ~0.3 s).
const PYTHON_LOCATE_SCRIPT: &str = "import importlib.util as u\ns=u.find_spec('onnxruntime')\nprint(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";

/// Outcome of the search: the library found, or every place looked at (for the error message).
#[derive(Debug, Clone)]
pub enum Discovery {
    Found { path: PathBuf, how: &'static str },
    NotFound { searched: Vec<String> },
}

/// Looks for the library in the documented order.
pub fn discover_ort_library() -> Discovery {
    let mut searched = Vec::new();
    if let Some(value) = std::env::var_os(ORT_DYLIB_ENV).filter(|v| !v.is_empty()) {
        let candidate = PathBuf::from(&value);
        if let Some(path) = library_in(&candidate) {
            return Discovery::Found {
                path,
                how: "ORT_DYLIB_PATH",
            };
        }
        searched.push(format!(
            "{ORT_DYLIB_ENV}={} (no library there)",
            candidate.display()
        ));
    }
    if discovery_disabled() {
        searched.push(format!("further discovery disabled by {NO_DISCOVERY_ENV}"));
        return Discovery::NotFound { searched };
    }
    for python in ["python3", "python"] {
        match python_package_dir(python) {
            Some(package_dir) => {
                let capi = package_dir.join("capi");
                if let Some(path) = library_in(&capi) {
                    return Discovery::Found {
                        path,
                        how: "the onnxruntime Python package",
                    };
                }
                searched.push(format!("{} (no library there)", capi.display()));
                break;
            }
            None => searched.push(format!("{python}: no onnxruntime package")),
        }
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.extend(STANDARD_LIBRARY_DIRS.iter().map(PathBuf::from));
    for dir in &dirs {
        if let Some(path) = library_in(dir) {
            return Discovery::Found {
                path,
                how: "a standard library folder",
            };
        }
    }
    searched.push("LD_LIBRARY_PATH and standard library folders".to_string());
    Discovery::NotFound { searched }
}

fn discovery_disabled() -> bool {
    std::env::var(NO_DISCOVERY_ENV)
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

fn python_package_dir(python: &str) -> Option<PathBuf> {
    let output = Command::new(python)
        .args(["-c", PYTHON_LOCATE_SCRIPT])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let dir = text.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `path` itself when it is a file, else the best `libonnxruntime` file inside the folder `path`.
fn library_in(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    if !path.is_dir() {
        return None;
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib")
        })
        .filter(|p| p.is_file())
        .collect();
    // Prefer the most specific name (`libonnxruntime.so.1.32.0` over `libonnxruntime.so`): they are
    // usually the same file, and the versioned one is never a dangling development symlink.
    candidates.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    candidates.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_in_picks_versioned_file_from_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libonnxruntime.so.1.32.0"), b"x").unwrap();
        std::fs::write(dir.path().join("libonnxruntime.so"), b"x").unwrap();
        std::fs::write(dir.path().join("other.so"), b"x").unwrap();
        let found = library_in(dir.path()).unwrap();
        assert_eq!(found.file_name().unwrap(), "libonnxruntime.so.1.32.0");
        assert!(library_in(&dir.path().join("missing")).is_none());
    }
}
