//! `LocalLlm` when llama.cpp is not compiled in: same API, `load` explains how to enable it.

use std::path::Path;

use crate::{Completion, LocalLlmError, LocalLlmOptions};

/// An embedded GGUF chat model. This build lacks the `llama` feature, so it cannot be created.
#[derive(Debug)]
pub struct LocalLlm {
    never: std::convert::Infallible,
}

impl LocalLlm {
    /// Always [`LocalLlmError::NotCompiledIn`] in this build.
    pub fn load(path: &Path, _options: LocalLlmOptions) -> Result<Self, LocalLlmError> {
        Err(LocalLlmError::NotCompiledIn {
            path: path.to_path_buf(),
        })
    }

    /// Unreachable: no value of this type exists without the `llama` feature.
    pub fn chat(
        &mut self,
        _messages: &[(String, String)],
        _json_schema: Option<&serde_json::Value>,
    ) -> Result<Completion, LocalLlmError> {
        match self.never {}
    }

    /// Unreachable, as [`LocalLlm::chat`].
    pub fn path(&self) -> &Path {
        match self.never {}
    }
}
