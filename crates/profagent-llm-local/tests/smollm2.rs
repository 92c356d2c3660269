//! End-to-end tests on the real SmolLM2-135M-Instruct GGUF (feature `llama`): constrained plans
//! parse and satisfy the schema, sampling is reproducible from the seed, the token cap and
//! context limit give clear errors. Skipped, with the reason printed, when the model is not
//! installed (`bash scripts/ensure-llm-model.sh` installs it).

#![cfg(feature = "llama")]

mod common;

use common::plan::{plan_messages, plan_schema};
use profagent_llm_local::{
    find_test_model, schema_violations, LocalLlm, LocalLlmError, LocalLlmOptions,
};

/// Answers long enough for a 6-layer plan with bounded strings.
const PLAN_MAX_TOKENS: usize = 768;

fn model_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let path = find_test_model();
    if path.is_none() {
        eprintln!(
            "skipping {test}: SmolLM2 GGUF not installed (run `bash scripts/ensure-llm-model.sh` \
             or set PROFAGENT_LOCAL_LLM_GGUF)"
        );
    }
    path
}

fn options(seed: u32) -> LocalLlmOptions {
    LocalLlmOptions {
        seed,
        max_tokens: PLAN_MAX_TOKENS,
        ..LocalLlmOptions::default()
    }
}

#[test]
fn constrained_plans_satisfy_the_schema_over_two_rounds() {
    let Some(path) = model_or_skip("constrained_plans_satisfy_the_schema_over_two_rounds") else {
        return;
    };
    let mut llm = LocalLlm::load(&path, options(7)).expect("load SmolLM2");
    let schema = plan_schema();
    let mut messages = plan_messages();
    for round in 0..2 {
        let completion = llm
            .chat(&messages, Some(&schema))
            .expect("constrained answer");
        let value: serde_json::Value =
            serde_json::from_str(&completion.text).unwrap_or_else(|error| {
                panic!("round {round}: not JSON ({error}): {}", completion.text)
            });
        assert_eq!(
            schema_violations(&schema, &value),
            Vec::<String>::new(),
            "{}",
            completion.text
        );
        assert!(!value["layers"].as_array().unwrap().is_empty());
        assert!(completion.completion_tokens > 0 && completion.prompt_tokens > 0);
        assert!(!completion.truncated);
        eprintln!(
            "round {round}: {} tokens, {:.1} tok/s, {} attempt(s): {}",
            completion.completion_tokens,
            completion.tokens_per_second(),
            completion.attempts,
            completion.text
        );
        messages.push(("assistant".to_string(), completion.text));
        messages.push((
            "user".to_string(),
            "Accuracy dropped 3 points. Propose a milder plan.".to_string(),
        ));
    }
}

#[test]
fn equal_seeds_give_equal_answers() {
    let Some(path) = model_or_skip("equal_seeds_give_equal_answers") else {
        return;
    };
    let messages = vec![(
        "user".to_string(),
        "Name three colours, as a JSON list of strings.".to_string(),
    )];
    let schema = serde_json::json!({
        "type": "array", "minItems": 3, "maxItems": 3,
        "items": {"type": "string", "maxLength": 12}
    });
    let answer = |seed| {
        let mut llm = LocalLlm::load(
            &path,
            LocalLlmOptions {
                temperature: 1.0,
                ..options(seed)
            },
        )
        .expect("load SmolLM2");
        llm.chat(&messages, Some(&schema)).expect("answer").text
    };
    let first = answer(1);
    assert_eq!(first, answer(1), "same seed, same answer");
    let parsed: Vec<String> = serde_json::from_str(&first).expect("a JSON list of strings");
    assert_eq!(parsed.len(), 3);
}

#[test]
fn free_text_stops_at_the_token_cap() {
    let Some(path) = model_or_skip("free_text_stops_at_the_token_cap") else {
        return;
    };
    let max_tokens = 8;
    let mut llm = LocalLlm::load(
        &path,
        LocalLlmOptions {
            max_tokens,
            ..options(3)
        },
    )
    .unwrap();
    let messages = vec![(
        "user".to_string(),
        "Describe pruning in detail.".to_string(),
    )];
    let completion = llm.chat(&messages, None).expect("free text");
    assert!(!completion.text.trim().is_empty());
    assert_eq!(completion.completion_tokens, max_tokens);
    assert!(completion.truncated);
}

#[test]
fn unfinished_json_is_a_token_limit_error() {
    let Some(path) = model_or_skip("unfinished_json_is_a_token_limit_error") else {
        return;
    };
    let mut llm = LocalLlm::load(
        &path,
        LocalLlmOptions {
            max_tokens: 6,
            ..options(3)
        },
    )
    .unwrap();
    match llm.chat(&plan_messages(), Some(&plan_schema())) {
        Err(LocalLlmError::TokenLimit {
            max_tokens,
            partial,
        }) => {
            assert_eq!(max_tokens, 6);
            assert!(partial.starts_with('{'), "{partial}");
        }
        other => panic!("expected TokenLimit, got {other:?}"),
    }
}

#[test]
fn prompt_longer_than_the_context_is_rejected() {
    let Some(path) = model_or_skip("prompt_longer_than_the_context_is_rejected") else {
        return;
    };
    let options = LocalLlmOptions {
        context: 256,
        max_tokens: 64,
        ..options(3)
    };
    let mut llm = LocalLlm::load(&path, options).unwrap();
    let long = vec![("user".to_string(), "layer ".repeat(400))];
    let error = llm.chat(&long, None).unwrap_err();
    assert!(
        matches!(error, LocalLlmError::PromptTooLong { context: 256, .. }),
        "{error:?}"
    );
}

/// ProfAgent's real plan schema (draft-07: `definitions`, `$ref`, `allOf`, `oneOf` enums,
/// `anyOf` with null, integer formats), read from the committed copy in the repository.
#[test]
fn real_plan_schema_gives_parseable_plans() {
    let Some(path) = model_or_skip("real_plan_schema_gives_parseable_plans") else {
        return;
    };
    let schema_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/plan.schema.json");
    let Ok(schema_text) = std::fs::read_to_string(&schema_path) else {
        eprintln!(
            "skipping real_plan_schema_gives_parseable_plans: {} absent",
            schema_path.display()
        );
        return;
    };
    let schema: serde_json::Value = serde_json::from_str(&schema_text).expect("schema is JSON");
    // The provider's defaults (max_tokens 1024): the real schema bounds neither its arrays nor
    // its strings, so only the grammar's string cap keeps the answer finite.
    let options = LocalLlmOptions {
        seed: 11,
        ..LocalLlmOptions::default()
    };
    let mut llm = LocalLlm::load(&path, options).expect("load SmolLM2");
    let mut messages = plan_messages();
    messages[0].1 = format!(
        "You are a model-compression planner. Answer with one JSON object following this JSON \
         Schema:\n{schema_text}"
    );
    let completion = llm
        .chat(&messages, Some(&schema))
        .expect("constrained answer");
    let value: serde_json::Value = serde_json::from_str(&completion.text)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", completion.text));
    assert!(value.is_object(), "{}", completion.text);
    assert_eq!(
        schema_violations(&schema, &value),
        Vec::<String>::new(),
        "{}",
        completion.text
    );
    eprintln!(
        "real plan schema: {} prompt + {} answer tokens: {}",
        completion.prompt_tokens, completion.completion_tokens, completion.text
    );
}
