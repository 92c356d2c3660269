//! The OpenAI chat-completions protocol (`POST {base}/chat/completions`): OpenAI, vLLM,
//! Ollama (`/v1`), llama.cpp server, LM Studio.
//!
//! Structured output goes as `response_format: {type: "json_schema", ...}`; servers that
//! reject it (HTTP 400/422) are asked again without it, and from then on the schema travels
//! only in the prompt.
use serde_json::{json, Value};

use super::http::{post_json, HttpPolicy};
use super::{ApiKey, ChatRequest, Completion, Provider};
use crate::error::AgentError;

#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    /// Name used in descriptions: "openai", "ollama", "vllm", ...
    pub label: String,
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    pub temperature: f32,
    pub max_tokens: Option<u32>,
    pub policy: HttpPolicy,
    /// Ask for server-enforced JSON Schema output; turned off when the server refuses it.
    pub structured_output: bool,
}

impl OpenAiCompatible {
    pub fn new(label: &str, base_url: &str, model: &str) -> Self {
        OpenAiCompatible {
            label: label.to_string(),
            base_url: base_url.to_string(),
            model: model.to_string(),
            api_key: None,
            temperature: 0.2,
            max_tokens: None,
            policy: HttpPolicy::default(),
            structured_output: true,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }

    fn body(&self, request: &ChatRequest<'_>, structured: bool) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
        });
        if let Some(max_tokens) = self.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        if let (true, Some(schema)) = (structured, request.json_schema) {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": schema, "strict": false}
            });
        }
        body
    }
}

impl Provider for OpenAiCompatible {
    fn describe(&self) -> String {
        format!("{}:{}", self.label, self.model)
    }

    fn complete(&mut self, request: &ChatRequest<'_>) -> Result<Completion, AgentError> {
        let url = self.url();
        let authorization = self
            .api_key
            .as_ref()
            .map(|k| format!("Bearer {}", k.expose()));
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|v| vec![("authorization", v)])
            .unwrap_or_default();
        let structured = self.structured_output && request.json_schema.is_some();
        let answer = match post_json(
            &url,
            &headers,
            &self.body(request, structured),
            &self.policy,
        ) {
            Err(AgentError::Http {
                status: 400 | 422, ..
            }) if structured => {
                // The server does not take `response_format`: keep the schema in the prompt only.
                self.structured_output = false;
                return self.complete(request);
            }
            other => other?,
        };
        let text = answer.body["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| AgentError::BadResponse {
                url: url.clone(),
                reason: match answer.body["choices"][0]["message"]["refusal"].as_str() {
                    Some(refusal) => format!("the model refused: {refusal}"),
                    None => "no choices[0].message.content in the answer".to_string(),
                },
            })?;
        Ok(Completion {
            text,
            structured,
            attempts: answer.attempts,
            seconds: answer.seconds,
        })
    }
}
