//! LLM providers behind one small trait.
//!
//! `Provider::complete` takes a chat (system + user/assistant/tool turns), an optional JSON
//! Schema for structured output and the tools the model may call, and returns the raw answer
//! text or the tool calls the model made instead (tools are offered where the protocol has tool
//! calling, `openai`; the other providers ignore them and always answer). Implementations:
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
    /// A tool's result, answering one of the assistant's tool calls.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// The tools an assistant turn called (its `content` is then usually empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `Tool` turn answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// An assistant turn that called tools.
    pub fn tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        ChatMessage {
            tool_calls: calls,
            ..ChatMessage::new(Role::Assistant, content)
        }
    }

    /// A tool's result for call `id`.
    pub fn tool_result(id: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            tool_call_id: Some(id.to_string()),
            ..ChatMessage::new(Role::Tool, content)
        }
    }
}

/// A model's call of a tool: `arguments` is the JSON text the model wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A tool offered to the model: its name, what it does, and a JSON Schema of its arguments.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: serde_json::Value,
}

/// One request to a chat model.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    pub messages: &'a [ChatMessage],
    /// JSON Schema the answer must follow, used for structured output where supported.
    pub json_schema: Option<&'a serde_json::Value>,
    /// Name given to the schema (OpenAI `json_schema.name`, Anthropic tool name).
    pub schema_name: &'a str,
    /// Tools the model may call instead of answering (empty: it must answer).
    pub tools: &'a [ToolSpec],
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
    /// The tools the model called instead of answering (then `text` is not an answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
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
