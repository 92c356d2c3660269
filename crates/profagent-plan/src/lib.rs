//! Compression plans: the versioned contract between planners (LLM or built-in) and the code
//! that applies them.
//!
//! - `types`: `CompressionPlan` (pruning per group, quantization per layer, rationales).
//! - `schema`: the JSON Schema generated from those types (committed as `schema/plan.schema.json`).
//! - `context`: `PlanContext`, the facts about a model a plan is checked against.
//! - `keep`: the one rule that turns a ratio and `round_to` into a kept unit count.
//! - `validate`: `validate(plan, context)` → `ValidatedPlan` or every issue found.
//! - `parse`: reading a plan out of an LLM's free-text answer.
//!
//! This crate does no I/O and knows nothing about runtimes or LLMs.
pub mod context;
pub mod error;
pub mod keep;
pub mod parse;
pub mod schema;
pub mod types;
pub mod validate;

pub use context::{GroupInfo, LayerInfo, PlanContext, DEFAULT_MAX_PRUNE_RATIO};
pub use error::PlanError;
pub use keep::kept_after;
pub use parse::parse_plan;
pub use schema::{plan_json_schema, plan_json_schema_text, SCHEMA_PATH};
pub use types::{
    CompressionPlan, ImportanceCriterion, LayerQuantization, PruneDecision, PruneUnit,
    QuantActivations, QuantCalibration, QuantMode, QuantSetting, QuantizationPlan,
    PLAN_SCHEMA_VERSION,
};
pub use validate::{check, validate, IssueCode, PlanIssue, ResolvedPrune, Severity, ValidatedPlan};
