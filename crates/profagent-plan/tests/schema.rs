//! The committed JSON Schema must match the one the types generate.
//!
//! To regenerate after changing the plan types:
//! `PROFAGENT_UPDATE_SCHEMA=1 cargo test -p profagent-plan --test schema`
use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(profagent_plan::SCHEMA_PATH)
}

#[test]
fn committed_schema_is_up_to_date() {
    let generated = profagent_plan::plan_json_schema_text();
    let path = committed_path();
    if std::env::var_os("PROFAGENT_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale or missing; regenerate it with `PROFAGENT_UPDATE_SCHEMA=1 cargo test -p profagent-plan --test schema` and commit it",
        path.display()
    );
}

#[test]
fn schema_names_every_plan_field_and_mode() {
    let schema = profagent_plan::plan_json_schema();
    let text = schema.to_string();
    for needle in [
        "pruning",
        "quantization",
        "ratio",
        "round_to",
        "criterion",
        "heads",
        "dynamic",
        "static",
        "int4",
        "per_channel",
        "signed_weights",
        "rationale",
    ] {
        assert!(text.contains(needle), "schema lacks {needle}");
    }
}
