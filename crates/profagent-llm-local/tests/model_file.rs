//! File checks that run in every build: missing file, non-GGUF file, pinned sha256 mismatch on a
//! fake file named like the test model, explicit digests, and the not-compiled-in error.

use std::path::Path;

use profagent_llm_local::known::SMOLLM2_135M_INSTRUCT_Q4_1;
use profagent_llm_local::{
    sha256_file, verify_model_file, LocalLlm, LocalLlmError, LocalLlmOptions,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

#[test]
fn missing_file_is_named() {
    let error = verify_model_file(Path::new("/nonexistent/model.gguf"), None).unwrap_err();
    assert!(
        matches!(error, LocalLlmError::ModelMissing { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("/nonexistent/model.gguf"),
        "{error}"
    );
    assert!(error.to_string().contains("ensure-llm-model.sh"), "{error}");
}

#[test]
fn non_gguf_file_is_rejected_by_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "model.gguf", b"{\"not\": \"a model\"}");
    let error = verify_model_file(&path, None).unwrap_err();
    assert!(matches!(error, LocalLlmError::NotGguf { .. }), "{error:?}");
    assert!(error.to_string().contains("model.gguf"), "{error}");
}

#[test]
fn fake_file_under_the_pinned_name_fails_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        SMOLLM2_135M_INSTRUCT_Q4_1.file_name,
        b"GGUFfake",
    );
    match verify_model_file(&path, None).unwrap_err() {
        LocalLlmError::ChecksumMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, SMOLLM2_135M_INSTRUCT_Q4_1.sha256);
            assert_eq!(actual, sha256_file(&path).unwrap());
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    // Loading checks the file before anything else when llama.cpp is compiled in.
    if profagent_llm_local::COMPILED_IN {
        let error = LocalLlm::load(&path, LocalLlmOptions::default()).unwrap_err();
        assert!(
            matches!(error, LocalLlmError::ChecksumMismatch { .. }),
            "{error:?}"
        );
    }
}

#[test]
fn explicit_digest_is_checked_for_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "other.gguf", b"GGUFfake");
    let digest = sha256_file(&path).unwrap();
    assert_eq!(digest.len(), 64);
    verify_model_file(&path, Some(&digest)).unwrap();
    verify_model_file(&path, Some(&digest.to_uppercase())).unwrap();
    // An unknown name without a digest is only checked for its magic.
    verify_model_file(&path, None).unwrap();
    let wrong = "0".repeat(64);
    let error = verify_model_file(&path, Some(&wrong)).unwrap_err();
    assert!(
        matches!(error, LocalLlmError::ChecksumMismatch { .. }),
        "{error:?}"
    );
}

#[test]
fn sha256_matches_a_known_vector() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "abc", b"abc");
    assert_eq!(
        sha256_file(&path).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[cfg(not(feature = "llama"))]
#[test]
fn load_without_llama_feature_explains_how_to_enable_it() {
    let error = LocalLlm::load(Path::new("model.gguf"), LocalLlmOptions::default()).unwrap_err();
    assert!(
        matches!(error, LocalLlmError::NotCompiledIn { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("local LLM support not compiled in"),
        "{message}"
    );
    assert!(message.contains("--features local-llm"), "{message}");
}

#[test]
fn model_spec_resolves_paths_and_reports_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "mine.gguf", b"GGUFfake");
    let spec = path.to_str().unwrap();
    assert_eq!(profagent_llm_local::resolve_model_spec(spec).unwrap(), path);
    let error = profagent_llm_local::resolve_model_spec("no-such-model.gguf").unwrap_err();
    assert!(
        matches!(error, LocalLlmError::ModelMissing { .. }),
        "{error:?}"
    );
}
