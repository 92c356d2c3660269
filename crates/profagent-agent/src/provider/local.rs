//! An embedded GGUF model (`local:PATH_OR_NAME`) through `profagent-llm-local`; without its
//! `llama` feature, loading fails with that crate's "not compiled in" message.
use std::path::Path;

use profagent_llm_local::{LocalLlm, LocalLlmOptions};

use super::{ChatRequest, Completion, Provider};
use crate::error::AgentError;

pub struct LocalProvider {
    llm: LocalLlm,
    spec: String,
}

impl LocalProvider {
    pub fn load(spec: &str, temperature: f32) -> Result<Self, AgentError> {
        let path = profagent_llm_local::resolve_model_spec(spec)
            .map_err(|e| AgentError::Local(e.to_string()))?;
        let options = LocalLlmOptions {
            temperature,
            ..LocalLlmOptions::default()
        };
        let llm = LocalLlm::load(Path::new(&path), options)
            .map_err(|e| AgentError::Local(e.to_string()))?;
        Ok(LocalProvider {
            llm,
            spec: spec.to_string(),
        })
    }
}

impl Provider for LocalProvider {
    fn describe(&self) -> String {
        format!("local:{}", self.spec)
    }

    fn complete(&mut self, request: &ChatRequest<'_>) -> Result<Completion, AgentError> {
        let messages: Vec<(String, String)> = request
            .messages
            .iter()
            .map(|m| (m.role.as_str().to_string(), m.content.clone()))
            .collect();
        let completion = self
            .llm
            .chat(&messages, request.json_schema)
            .map_err(|e| AgentError::Local(e.to_string()))?;
        Ok(Completion {
            text: completion.text,
            structured: request.json_schema.is_some(),
            attempts: completion.attempts,
            seconds: completion.seconds,
            tool_calls: Vec::new(),
        })
    }
}
