//! Choosing and configuring the planner's LLM: `--llm PROVIDER:MODEL`, flags, or a TOML file.
//!
//! A registry maps provider names to protocol, default base URL and the environment variable
//! holding the key. API keys come only from the environment; they are never accepted as flags
//! or config values, so they cannot end up in shell history, config files or run records.
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::AgentError;
use crate::provider::anthropic::Anthropic;
use crate::provider::http::HttpPolicy;
use crate::provider::local::LocalProvider;
use crate::provider::openai::OpenAiCompatible;
use crate::provider::{ApiKey, Provider};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    OpenAi,
    Anthropic,
    Local,
}

struct ProviderEntry {
    name: &'static str,
    protocol: Protocol,
    default_base_url: Option<&'static str>,
    key_env: Option<&'static str>,
    key_required: bool,
}

/// Known providers. `openai-compatible` needs `--llm-base-url`.
const PROVIDERS: &[ProviderEntry] = &[
    ProviderEntry {
        name: "openai",
        protocol: Protocol::OpenAi,
        default_base_url: Some("https://api.openai.com/v1"),
        key_env: Some("OPENAI_API_KEY"),
        key_required: true,
    },
    ProviderEntry {
        name: "anthropic",
        protocol: Protocol::Anthropic,
        default_base_url: Some("https://api.anthropic.com"),
        key_env: Some("ANTHROPIC_API_KEY"),
        key_required: true,
    },
    ProviderEntry {
        name: "ollama",
        protocol: Protocol::OpenAi,
        default_base_url: Some("http://127.0.0.1:11434/v1"),
        key_env: None,
        key_required: false,
    },
    ProviderEntry {
        name: "vllm",
        protocol: Protocol::OpenAi,
        default_base_url: Some("http://127.0.0.1:8000/v1"),
        key_env: Some("VLLM_API_KEY"),
        key_required: false,
    },
    ProviderEntry {
        name: "llamacpp",
        protocol: Protocol::OpenAi,
        default_base_url: Some("http://127.0.0.1:8080/v1"),
        key_env: None,
        key_required: false,
    },
    ProviderEntry {
        name: "lmstudio",
        protocol: Protocol::OpenAi,
        default_base_url: Some("http://127.0.0.1:1234/v1"),
        key_env: None,
        key_required: false,
    },
    ProviderEntry {
        name: "openai-compatible",
        protocol: Protocol::OpenAi,
        default_base_url: None,
        key_env: Some("OPENAI_API_KEY"),
        key_required: false,
    },
    ProviderEntry {
        name: "local",
        protocol: Protocol::Local,
        default_base_url: None,
        key_env: None,
        key_required: false,
    },
];

/// Default sampling temperature: low, plans should be stable.
pub const DEFAULT_TEMPERATURE: f32 = 0.2;

/// Everything that selects and tunes the LLM (from flags, a config file, or both).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// `none`, or `PROVIDER:MODEL` (e.g. `openai:gpt-4o`, `ollama:qwen2.5:7b`, `local:PATH.gguf`).
    pub llm: Option<String>,
    pub base_url: Option<String>,
    pub temperature: Option<f32>,
    /// Name of the environment variable with the API key (overrides the provider's default).
    pub api_key_env: Option<String>,
    pub timeout_s: Option<u64>,
    pub retries: Option<usize>,
    /// Send the schema as structured output where the server supports it (default true).
    pub structured_output: Option<bool>,
}

impl LlmSettings {
    /// Reads the `[llm]` table of a TOML file (or the whole file when it has no such table).
    pub fn from_file(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::run_dir(path, e))?;
        let value: toml::Value = toml::from_str(&text)
            .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
        let table = value.get("llm").cloned().unwrap_or(value);
        if table.get("api_key").is_some() {
            return Err(AgentError::Config(format!(
                "{}: 'api_key' is not accepted in config files; put the key in an environment variable and name it with 'api_key_env'",
                path.display()
            )));
        }
        table
            .try_into()
            .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))
    }

    /// `self` with every unset field taken from `fallback` (flags override the file).
    pub fn or(self, fallback: LlmSettings) -> LlmSettings {
        LlmSettings {
            llm: self.llm.or(fallback.llm),
            base_url: self.base_url.or(fallback.base_url),
            temperature: self.temperature.or(fallback.temperature),
            api_key_env: self.api_key_env.or(fallback.api_key_env),
            timeout_s: self.timeout_s.or(fallback.timeout_s),
            retries: self.retries.or(fallback.retries),
            structured_output: self.structured_output.or(fallback.structured_output),
        }
    }

    /// True when the built-in planner is selected (`none` or nothing configured).
    pub fn is_builtin(&self) -> bool {
        matches!(
            self.llm.as_deref().map(str::trim),
            None | Some("") | Some("none") | Some("builtin")
        )
    }

    /// The secret values of this configuration (for redaction in records).
    pub fn secrets(&self) -> Vec<String> {
        let Some((entry, _)) = self.entry().ok().flatten() else {
            return Vec::new();
        };
        let var = self.api_key_env.as_deref().or(entry.key_env);
        var.and_then(|v| std::env::var(v).ok())
            .filter(|v| !v.trim().is_empty())
            .map(|v| vec![v.trim().to_string()])
            .unwrap_or_default()
    }

    fn entry(&self) -> Result<Option<(&'static ProviderEntry, String)>, AgentError> {
        if self.is_builtin() {
            return Ok(None);
        }
        let spec = self.llm.as_deref().unwrap_or_default().trim();
        let (name, model) = spec.split_once(':').ok_or_else(|| {
            AgentError::Config(format!("--llm '{spec}' must be PROVIDER:MODEL (e.g. openai:gpt-4o) or 'none'; providers: {}", provider_names()))
        })?;
        let entry = PROVIDERS.iter().find(|p| p.name == name).ok_or_else(|| {
            AgentError::Config(format!(
                "unknown LLM provider '{name}'; known: {}",
                provider_names()
            ))
        })?;
        if model.trim().is_empty() {
            return Err(AgentError::Config(format!(
                "--llm '{spec}' names no model after '{name}:'"
            )));
        }
        Ok(Some((entry, model.trim().to_string())))
    }

    /// Builds the provider; `None` for the built-in planner.
    pub fn build(&self) -> Result<Option<Box<dyn Provider>>, AgentError> {
        let Some((entry, model)) = self.entry()? else {
            return Ok(None);
        };
        let temperature = self.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(AgentError::Config(format!(
                "temperature {temperature} is out of range 0..2"
            )));
        }
        if entry.protocol == Protocol::Local {
            return Ok(Some(Box::new(LocalProvider::load(&model, temperature)?)));
        }
        let base_url = self
            .base_url
            .clone()
            .or(entry.default_base_url.map(str::to_string))
            .ok_or_else(|| {
                AgentError::Config(format!(
                    "provider '{}' needs --llm-base-url (e.g. http://127.0.0.1:8000/v1)",
                    entry.name
                ))
            })?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(AgentError::Config(format!(
                "base URL '{base_url}' must start with http:// or https://"
            )));
        }
        let key = match self.api_key_env.as_deref().or(entry.key_env) {
            Some(var) => match ApiKey::from_env(var, entry.name) {
                Ok(key) => Some(key),
                Err(e) if entry.key_required || self.api_key_env.is_some() => return Err(e),
                Err(_) => None,
            },
            None => None,
        };
        let mut policy = HttpPolicy::default();
        if let Some(seconds) = self.timeout_s {
            policy.timeout = Duration::from_secs(seconds.max(1));
        }
        if let Some(retries) = self.retries {
            policy.retries = retries;
        }
        let structured = self.structured_output.unwrap_or(true);
        Ok(Some(match entry.protocol {
            Protocol::Anthropic => {
                let mut client = Anthropic::new(&base_url, &model);
                client.api_key = key;
                client.temperature = temperature;
                client.policy = policy;
                client.structured_output = structured;
                Box::new(client)
            }
            _ => {
                let mut client = OpenAiCompatible::new(entry.name, &base_url, &model);
                client.api_key = key;
                client.temperature = temperature;
                client.policy = policy;
                client.structured_output = structured;
                Box::new(client)
            }
        }))
    }
}

fn provider_names() -> String {
    let mut names = vec!["none"];
    names.extend(PROVIDERS.iter().map(|p| p.name));
    names.join(", ")
}
