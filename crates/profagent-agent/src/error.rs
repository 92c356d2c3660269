//! The error type of the agent crate: provider failures (network, HTTP, configuration) and
//! run-directory problems, each naming the endpoint, file or round at fault.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot reach the LLM endpoint {url}: {reason}. Is the server running, and is the base URL right (--llm-base-url)?")]
    Unreachable { url: String, reason: String },
    #[error("the LLM endpoint {url} did not answer within {seconds} s ({attempts} attempt(s)); raise --llm-timeout or use a smaller model")]
    Timeout {
        url: String,
        seconds: u64,
        attempts: usize,
    },
    #[error("the LLM endpoint {url} answered HTTP {status} after {attempts} attempt(s): {body}")]
    Http {
        url: String,
        status: u16,
        attempts: usize,
        body: String,
    },
    #[error("the LLM endpoint {url} sent an answer this tool cannot read: {reason}")]
    BadResponse { url: String, reason: String },
    #[error("LLM configuration: {0}")]
    Config(String),
    #[error("environment variable {var} is not set; it must hold the API key for {provider} (keys are read only from the environment)")]
    MissingKey { var: String, provider: String },
    #[error("replay: {0}")]
    Replay(String),
    /// A replayed LLM call that failed in the recorded run (the replay fails it the same way).
    #[error("the recorded run's LLM call failed here: {0}")]
    RecordedFailure(String),
    #[error("{0}")]
    Record(#[from] profagent_record::RecordError),
    #[error("{path}: {reason}")]
    RunDir { path: PathBuf, reason: String },
    #[error("{0}")]
    Locked(profagent_onnx::OnnxError),
    #[error("local model: {0}")]
    Local(String),
    #[error("{0}")]
    Plan(#[from] profagent_plan::PlanError),
    #[error("compression step '{step}' failed: {reason}")]
    Step { step: String, reason: String },
    /// The user's data or model is unusable (an image that does not decode, a label out of
    /// range, a model the runtime refuses): bad input, not a failure of the run.
    #[error("{step}: {reason}")]
    BadInput { step: String, reason: String },
}

impl AgentError {
    /// A failure of one LLM call that says nothing about the setup (a timeout, a server
    /// error or rate limit, an unreadable answer, a local model's prompt or inference
    /// failure): the guardrail plans that round with the built-in planner instead of ending a
    /// run whose measurements are already paid for. Configuration errors (missing key, bad
    /// URL, an endpoint that refuses the request) still end the run.
    pub fn is_llm_call_failure(&self) -> bool {
        match self {
            AgentError::Timeout { .. }
            | AgentError::BadResponse { .. }
            | AgentError::Local(_)
            | AgentError::RecordedFailure(_) => true,
            AgentError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    pub fn run_dir(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        AgentError::RunDir {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
