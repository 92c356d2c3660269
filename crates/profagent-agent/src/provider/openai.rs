//! The OpenAI chat-completions protocol (`POST {base}/chat/completions`): OpenAI, vLLM,
//! Ollama (`/v1`), llama.cpp server, LM Studio.
//!
//! Structured output goes as `response_format: {type: "json_schema", ...}`; servers that
//! reject it (HTTP 400/422) are asked again without it, and from then on the schema travels
//! only in the prompt. Tools go as `tools: [{type: "function", ...}]` (`tool_choice: auto`);
//! the model's `tool_calls` come back in `Completion::tool_calls`. A server that rejects a
//! request (400/422) is asked again without the part its error names (`response_format`), else
//! without tools (the optional part), and is not offered that part again.
use serde_json::{json, Value};

use super::http::{post_json, HttpPolicy};
use super::{ApiKey, ChatMessage, ChatRequest, Completion, Provider, ToolCall};
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
    /// Offer tools when a request has them; turned off when the server refuses them.
    pub tools: bool,
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
            tools: true,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }

    fn body(&self, request: &ChatRequest<'_>, structured: bool, tools: bool) -> Value {
        let messages: Vec<Value> = request.messages.iter().map(message).collect();
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
        if tools {
            let offered: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters
                    }})
                })
                .collect();
            body["tools"] = json!(offered);
            body["tool_choice"] = json!("auto");
        }
        body
    }
}

/// One chat turn in the protocol's shape (assistant tool calls and tool results included).
fn message(m: &ChatMessage) -> Value {
    let mut turn = json!({"role": m.role.as_str(), "content": m.content});
    if !m.tool_calls.is_empty() {
        turn["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        turn["tool_call_id"] = json!(id);
    }
    turn
}

/// The tool calls in an answer's `choices[0].message` (none when it answered).
fn tool_calls(message: &Value) -> Vec<ToolCall> {
    message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, call)| {
            let function = &call["function"];
            let name = function["name"].as_str()?.to_string();
            // `arguments` is a JSON text in the protocol; some servers send the object itself.
            let arguments = match &function["arguments"] {
                Value::String(text) => text.clone(),
                Value::Null => "{}".to_string(),
                other => other.to_string(),
            };
            let id = call["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("call_{i}"));
            Some(ToolCall {
                id,
                name,
                arguments,
            })
        })
        .collect()
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
        let tools = self.tools && !request.tools.is_empty();
        let answer = match post_json(
            &url,
            &headers,
            &self.body(request, structured, tools),
            &self.policy,
        ) {
            Err(AgentError::Http {
                status: 400 | 422,
                body,
                ..
            }) if tools || structured => {
                // The server does not take `response_format` (the schema then stays in the
                // prompt only) or tools: the one its error names, else tools first (they are
                // the optional part).
                let body = body.to_lowercase();
                let names_format = body.contains("response_format") || body.contains("json_schema");
                if structured && (names_format || !tools) {
                    self.structured_output = false;
                } else {
                    self.tools = false;
                }
                return self.complete(request);
            }
            other => other?,
        };
        let message = &answer.body["choices"][0]["message"];
        let calls = if tools {
            tool_calls(message)
        } else {
            Vec::new()
        };
        let text = match message["content"].as_str() {
            Some(text) => text.to_string(),
            None if !calls.is_empty() => String::new(),
            None => {
                return Err(AgentError::BadResponse {
                    url: url.clone(),
                    reason: match message["refusal"].as_str() {
                        Some(refusal) => format!("the model refused: {refusal}"),
                        None => "no choices[0].message.content in the answer".to_string(),
                    },
                })
            }
        };
        Ok(Completion {
            text,
            structured,
            attempts: answer.attempts,
            seconds: answer.seconds,
            tool_calls: calls,
        })
    }
}
