//! The JSON Schema of `CompressionPlan`, generated from the Rust types.
//!
//! The committed copy lives at `schema/plan.schema.json` in the repository root; the test
//! `tests/schema.rs` fails when it differs from what these types generate.
use crate::types::CompressionPlan;

/// Path of the committed schema, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/plan.schema.json";

/// The JSON Schema (draft 7) of a plan.
pub fn plan_json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(CompressionPlan);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

/// The schema as the committed file spells it (pretty JSON plus a final newline).
pub fn plan_json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&plan_json_schema()).unwrap_or_default();
    text.push('\n');
    text
}
