//! The crate's single error type: every failure names the file or the option at fault and what
//! to do about it.

use std::path::PathBuf;

/// Everything that can go wrong loading or running the embedded model.
#[derive(Debug, thiserror::Error)]
pub enum LocalLlmError {
    /// The crate was built without the `llama` feature, so llama.cpp is not linked in.
    #[error(
        "local LLM support not compiled in; rebuild with --features local-llm \
         (or `-p profagent-llm-local --features llama`) to run {path} in-process"
    )]
    NotCompiledIn { path: PathBuf },

    /// The GGUF path does not exist or is not a regular file.
    #[error("local LLM model {path} not found; for the test model run scripts/ensure-llm-model.sh, which installs it and prints its path")]
    ModelMissing { path: PathBuf },

    /// The file exists but is not a GGUF file (wrong magic bytes).
    #[error("{path} is not a GGUF model file (expected the magic bytes \"GGUF\", found {found:?}); pass a .gguf file such as SmolLM2-135M-Instruct.Q4_1.gguf")]
    NotGguf { path: PathBuf, found: String },

    /// The file's sha256 differs from the pinned digest of a known model (corrupt or substituted).
    #[error("{path} has sha256 {actual}, expected {expected} for {model}; the file is corrupt or not the pinned release: reinstall it (scripts/ensure-llm-model.sh)")]
    ChecksumMismatch {
        path: PathBuf,
        model: String,
        expected: String,
        actual: String,
    },

    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An option is out of its valid range.
    #[error("invalid local LLM option {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },

    /// llama.cpp refused to load the model (truncated file, unsupported architecture, ...).
    #[error("llama.cpp could not load {path}: {reason}; the GGUF file may be truncated or of an architecture this llama.cpp build does not know")]
    Load { path: PathBuf, reason: String },

    /// The model has no usable chat template, or applying it failed.
    #[error("chat template of {path} unusable: {reason}")]
    ChatTemplate { path: PathBuf, reason: String },

    /// The JSON schema could not be turned into a llama.cpp grammar.
    #[error("JSON schema not supported for constrained decoding: {reason}")]
    Schema { reason: String },

    /// The prompt does not fit the context window.
    #[error("prompt is {prompt_tokens} tokens but the context holds {context} (with {max_tokens} reserved for the answer); shorten the prompt or raise `context`")]
    PromptTooLong {
        prompt_tokens: usize,
        context: usize,
        max_tokens: usize,
    },

    /// Generation hit `max_tokens` before the JSON answer was complete.
    #[error("the model used all {max_tokens} answer tokens before finishing its JSON answer; raise max_tokens or ask for shorter fields (maxLength in the schema)")]
    TokenLimit { max_tokens: usize, partial: String },

    /// The answer is JSON of the schema's shape but breaks a rule the grammar cannot enforce
    /// (numeric ranges), on every attempt.
    #[error("after {attempts} attempts the answer still breaks the schema: {}", violations.join("; "))]
    SchemaViolation {
        attempts: usize,
        violations: Vec<String>,
        text: String,
    },

    /// Decoding failed inside llama.cpp.
    #[error("llama.cpp inference failed: {reason}")]
    Inference { reason: String },
}
