//! LLM providers behind one small trait.
//!
//! `Provider::complete` takes a chat (system + user/assistant turns) and an optional JSON
//! Schema for structured output, and returns the raw answer text. Implementations:
//! `openai` (the OpenAI chat-completions protocol: OpenAI, vLLM, Ollama, llama.cpp server,
//! LM Studio), `anthropic` (Messages API), `local` (an embedded GGUF model through
//! `profagent-llm-local`), and `replay` (recorded answers, no network). Adding a provider
//! means implementing this trait and registering a name in `config::PROVIDERS`.
pub mod anthropic;
pub mod http;
pub mod local;
pub mod openai;
pub mod replay;

use serde::{Deserialize, Serialize};

use crate::error::AgentError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// One request to a chat model.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    pub messages: &'a [ChatMessage],
    /// JSON Schema the answer must follow, used for structured output where supported.
    pub json_schema: Option<&'a serde_json::Value>,
    /// Name given to the schema (OpenAI `json_schema.name`, Anthropic tool name).
    pub schema_name: &'a str,
}

/// The answer and how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    /// True when the server enforced the schema (structured output), false when the schema
    /// was only in the prompt.
    pub structured: bool,
    /// HTTP attempts used (retries included); 1 for non-HTTP providers.
    pub attempts: usize,
    pub seconds: f64,
}

/// A chat model.
pub trait Provider {
    /// `provider:model` as the user would write it (for logs and reports).
    fn describe(&self) -> String;
    fn complete(&mut self, request: &ChatRequest<'_>) -> Result<Completion, AgentError>;
}

/// An API key. Its `Debug` never shows the value, so keys cannot leak through `{:?}` logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Reads the key from environment variable `var`.
    pub fn from_env(var: &str, provider: &str) -> Result<Self, AgentError> {
        match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Ok(ApiKey(value.trim().to_string())),
            _ => Err(AgentError::MissingKey {
                var: var.to_string(),
                provider: provider.to_string(),
            }),
        }
    }
    pub fn new(value: impl Into<String>) -> Self {
        ApiKey(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}
