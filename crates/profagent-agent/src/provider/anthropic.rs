//! The Anthropic Messages API (`POST {base}/v1/messages`).
//!
//! Structured output uses a forced tool call: the plan schema is the tool's `input_schema`
//! and `tool_choice` names the tool, so the answer is the tool input, a JSON object.
use serde_json::{json, Value};

use super::http::{post_json, HttpPolicy};
use super::{ApiKey, ChatRequest, Completion, Provider, Role};
use crate::error::AgentError;

/// The Messages API version header this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the API.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

#[derive(Debug, Clone)]
pub struct Anthropic {
    /// e.g. `https://api.anthropic.com`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    pub temperature: f32,
    pub max_tokens: u32,
    pub policy: HttpPolicy,
    pub structured_output: bool,
}

impl Anthropic {
    pub fn new(base_url: &str, model: &str) -> Self {
        Anthropic {
            base_url: base_url.to_string(),
            model: model.to_string(),
            api_key: None,
            temperature: 0.2,
            max_tokens: DEFAULT_MAX_TOKENS,
            policy: HttpPolicy::default(),
            structured_output: true,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/v1/messages", self.base_url.trim_end_matches('/'))
    }
}

impl Provider for Anthropic {
    fn describe(&self) -> String {
        format!("anthropic:{}", self.model)
    }

    fn complete(&mut self, request: &ChatRequest<'_>) -> Result<Completion, AgentError> {
        let url = self.url();
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let messages: Vec<Value> = request
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        let structured = self.structured_output && request.json_schema.is_some();
        if let (true, Some(schema)) = (structured, request.json_schema) {
            body["tools"] = json!([{
                "name": request.schema_name,
                "description": "Submit the answer as this structured object.",
                "input_schema": schema,
            }]);
            body["tool_choice"] = json!({"type": "tool", "name": request.schema_name});
        }
        let key = self.api_key.as_ref().map(|k| k.expose().to_string());
        let mut headers = vec![("anthropic-version", ANTHROPIC_VERSION)];
        if let Some(key) = key.as_deref() {
            headers.push(("x-api-key", key));
        }
        let answer = post_json(&url, &headers, &body, &self.policy)?;
        let blocks = answer.body["content"]
            .as_array()
            .ok_or_else(|| AgentError::BadResponse {
                url: url.clone(),
                reason: "no 'content' array in the answer".to_string(),
            })?;
        let tool_input = blocks
            .iter()
            .find(|b| b["type"] == "tool_use")
            .map(|b| b["input"].to_string());
        let text = tool_input.unwrap_or_else(|| {
            blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        });
        Ok(Completion {
            text,
            structured,
            attempts: answer.attempts,
            seconds: answer.seconds,
            tool_calls: Vec::new(),
        })
    }
}
