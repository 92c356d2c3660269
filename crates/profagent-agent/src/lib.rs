//! The agent: LLM providers, the analysis prompt, planners (LLM and built-in), the iterative
//! compression loop, run directories and replay.
//!
//! - `provider`: the `Provider` trait and its OpenAI-compatible, Anthropic, local and replay
//!   implementations; `config` picks one from `--llm PROVIDER:MODEL` or a TOML file.
//! - `facts` + `prompt`: what planners know about the model and how it is put to an LLM.
//! - `planner`: the `Planner` trait and the LLM analysis agent with its repair loop.
//! - `builtin`: the deterministic built-in planner (`--llm none`).
//! - `compressor`: rounds of plan → apply → evaluate → feedback, against small traits
//!   (`Workbench`) so the loop is testable without the real pruning/quantization crates.
//! - `judge`: verdicts on measurements (accept/reject, budget met), read from intervals.
//! - `rundir` + `report`: what a run writes, and `--replay`.
//!
//! Only this crate talks to the network, and it never edits graphs itself.
pub mod builtin;
pub mod compressor;
pub mod config;
pub mod coupling;
pub mod error;
pub mod estimate;
pub mod facts;
pub mod guard;
pub mod judge;
pub mod planner;
pub mod prompt;
pub mod provider;
pub mod redact;
pub mod report;
pub mod rundir;

pub use error::AgentError;
pub use facts::{
    Budget, Evaluation, GroupFacts, LayerFacts, PlanningInput, QuantProbe, RoundSummary,
};
pub use planner::{AnalysisAgent, Planner, Proposal};
pub use provider::{ChatMessage, ChatRequest, Completion, Provider, Role};
