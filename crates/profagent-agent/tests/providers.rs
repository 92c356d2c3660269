//! The LLM client against a local scripted server speaking the OpenAI chat-completions (and
//! Anthropic Messages) protocol: good plans, broken answers, server errors and timeouts.
//! Whatever the server does, an invalid plan never comes out as a plan.
mod support;

use std::time::Duration;

use profagent_agent::config::LlmSettings;
use profagent_agent::facts::*;
use profagent_agent::planner::{AnalysisAgent, NoMeasure, Planner, Proposal};
use profagent_agent::provider::anthropic::Anthropic;
use profagent_agent::provider::http::HttpPolicy;
use profagent_agent::provider::openai::OpenAiCompatible;
use profagent_agent::provider::ApiKey;
use profagent_agent::rundir::{RunDir, TranscriptEntry};
use profagent_agent::AgentError;
use profagent_plan::{GroupInfo, LayerInfo, PlanContext};
use support::*;

/// Short timeouts and backoff so the failure cases finish fast.
fn fast_policy() -> HttpPolicy {
    HttpPolicy {
        timeout: Duration::from_millis(700),
        retries: 2,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

fn context() -> PlanContext {
    let mut context = PlanContext::new();
    for (name, op) in [
        ("layer1.0.conv1", "Conv"),
        ("layer1.0.conv2", "Conv"),
        ("fc", "Gemm"),
    ] {
        context.layers.insert(
            name.into(),
            LayerInfo {
                op_types: vec![op.into()],
                quant_modes: profagent_plan::context::quant_modes_for_op(op),
            },
        );
    }
    context.groups.insert(
        "layer1.0.conv1".into(),
        GroupInfo::new(64, vec!["layer1.0.conv1".into()]),
    );
    context.protected_layers.insert("fc".into());
    context
}

fn evaluation() -> Evaluation {
    Evaluation {
        top5: None,
        latency_batch: None,
        peak_memory_bytes: None,
        params: None,
        top1: Some(91.0),
        top1_interval: None,
        speed: None,
        accuracy_change: None,
        correct: None,
        worst_cosine: None,
        latency_ms: 10.0,
        model_bytes: 44_000_000,
        images: 100,
        loss: None,
        macs: None,
        cosine: None,
        agreement: None,
        details: serde_json::Value::Null,
    }
}

fn input() -> PlanningInput {
    PlanningInput {
        model_name: "resnet_test".into(),
        family: "convolutional".into(),
        runtime: "ort".into(),
        baseline: evaluation(),
        current: evaluation(),
        current_quantization: "none".into(),
        layers: vec![LayerFacts {
            name: "layer1.0.conv1".into(),
            op_type: "Conv".into(),
            params: 36864,
            macs: 37_000_000,
            latency_ms: Some(1.5),
            memory_bytes: None,
            ..Default::default()
        }],
        groups: vec![GroupFacts {
            id: "layer1.0.conv1".into(),
            channels: 64,
            heads: None,
            params: 36864,
            macs: 37_000_000,
            latency_ms: Some(1.5),
            sensitivity: None,
            fidelity_loss: None,
            prunable: true,
            note: None,
            ..Default::default()
        }],
        quant_probes: vec![],
        budget: Budget {
            max_acc_drop: 1.0,
            target_latency_ms: None,
            target_memory_bytes: None,
            target_speedup: Some(2.0),
            target_macs_fraction: None,
            min_cosine: None,
            acc_confidence: 0.9,
        },
        history: vec![],
        rounds_left: 2,
        patience: 2,
    }
}

const GOOD_PLAN: &str = r#"{"schema_version":1,"rationale":"layer1.0.conv1 dominates latency","pruning":[{"target":"layer1.0.conv1","ratio":0.25,"criterion":"l1","round_to":8,"rationale":"heaviest"}],"quantization":{"default":{"mode":"static"},"rationale":"static int8 is fastest for convs"}}"#;
const UNKNOWN_LAYERS: &str = r#"{"schema_version":1,"rationale":"r","pruning":[{"target":"layer9.conv","ratio":0.3,"rationale":"x"},{"target":"layer1.0.convv1","ratio":0.2,"rationale":"x"}]}"#;
const RATIO_ONE: &str = r#"{"schema_version":1,"rationale":"r","pruning":[{"target":"layer1.0.conv1","ratio":1.0,"rationale":"remove it all"}]}"#;

fn openai(server: &Server) -> OpenAiCompatible {
    let mut client = OpenAiCompatible::new(
        "openai-compatible",
        &format!("{}/v1", server.base_url),
        "test-model",
    );
    client.policy = fast_policy();
    client
}

fn run(
    client: impl profagent_agent::Provider + 'static,
) -> (Result<Proposal, AgentError>, Vec<TranscriptEntry>) {
    let mut agent = AnalysisAgent::new(Box::new(client));
    let mut entries = Vec::new();
    let result = agent.propose(
        1,
        &input(),
        &context(),
        &mut |e: &TranscriptEntry| {
            entries.push(e.clone());
            Ok(())
        },
        &mut NoMeasure,
    );
    (result, entries)
}

#[test]
fn a_good_plan_is_accepted_at_once_with_structured_output() {
    let server = serve(vec![chat(GOOD_PLAN)]);
    let (result, entries) = run(openai(&server));
    let proposal = result.unwrap();
    let plan = proposal.plan.expect("valid plan");
    assert_eq!(plan.pruning()[0].keep, 48);
    assert_eq!(proposal.attempts, 1);
    assert_eq!(entries[0].verdict, "valid");
    let received = server.received.lock().unwrap();
    assert_eq!(received[0].path, "/v1/chat/completions");
    assert_eq!(received[0].body["model"], "test-model");
    assert_eq!(received[0].body["response_format"]["type"], "json_schema");
    let prompt = received[0].body["messages"][1]["content"].as_str().unwrap();
    assert!(
        prompt.contains("layer1.0.conv1") && prompt.contains("speedup at least 2.00x"),
        "{prompt}"
    );
}

#[test]
fn invalid_json_is_sent_back_and_repaired() {
    let server = serve(vec![
        chat("Sure! {\"pruning\": [ {\"target\": "),
        chat(GOOD_PLAN),
    ]);
    let (result, entries) = run(openai(&server));
    let proposal = result.unwrap();
    assert!(proposal.plan.is_some());
    assert_eq!(proposal.attempts, 2);
    assert_eq!(entries[0].verdict, "parse_error");
    let received = server.received.lock().unwrap();
    let repair = received[1].body["messages"][3]["content"].as_str().unwrap();
    assert!(repair.contains("not a valid plan"), "{repair}");
    assert_eq!(received[1].body["messages"][2]["role"], "assistant");
}

#[test]
fn unknown_layers_are_named_in_the_repair_request() {
    let server = serve(vec![chat(UNKNOWN_LAYERS), chat(GOOD_PLAN)]);
    let (result, entries) = run(openai(&server));
    assert!(result.unwrap().plan.is_some());
    assert_eq!(entries[0].verdict, "rejected");
    assert_eq!(entries[0].issues.len(), 2);
    let received = server.received.lock().unwrap();
    let repair = received[1].body["messages"][3]["content"].as_str().unwrap();
    assert!(
        repair.contains("'layer9.conv' is neither a group id nor a layer"),
        "{repair}"
    );
    assert!(repair.contains("did you mean 'layer1.0.conv1'"), "{repair}");
}

/// The validator's errors on a repaired answer travel with the proposal (report.json's
/// `rounds[].rejected_issues`, which the report's verdict table shows).
#[test]
fn a_repaired_proposal_carries_the_issues_of_the_rejected_answer() {
    let server = serve(vec![chat(UNKNOWN_LAYERS), chat(GOOD_PLAN)]);
    let (result, entries) = run(openai(&server));
    let proposal = result.unwrap();
    assert!(proposal.plan.is_some());
    assert_eq!(proposal.rejected_issues, entries[0].issues);
    assert_eq!(proposal.rejected_issues.len(), 2);
    assert!(proposal
        .rejected_issues
        .iter()
        .any(|issue| issue.message.contains("layer9.conv")));
}

#[test]
fn ratio_one_is_never_applied_even_when_repeated() {
    let server = serve(vec![chat(RATIO_ONE), chat(RATIO_ONE), chat(RATIO_ONE)]);
    let (result, entries) = run(openai(&server));
    let proposal = result.unwrap();
    assert!(
        proposal.plan.is_none(),
        "an invalid plan came out as a plan"
    );
    let failure = proposal.failure.unwrap();
    assert!(
        failure.contains("no valid plan after 3 answer(s)") && failure.contains("ratio 1"),
        "{failure}"
    );
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e.verdict == "rejected"));
}

#[test]
fn a_server_error_is_retried() {
    let server = serve(vec![
        status(500, "{\"error\":\"overloaded\"}"),
        status(429, "{}"),
        chat(GOOD_PLAN),
    ]);
    let (result, entries) = run(openai(&server));
    assert!(result.unwrap().plan.is_some());
    assert_eq!(entries.len(), 1);
    assert_eq!(server.received.lock().unwrap().len(), 3);
}

#[test]
fn persistent_server_errors_end_in_a_clear_message() {
    let server = serve(vec![
        status(503, "down"),
        status(503, "down"),
        status(503, "down"),
    ]);
    let (result, entries) = run(openai(&server));
    let message = result.unwrap_err().to_string();
    assert!(message.contains("HTTP 503 after 3 attempt(s)"), "{message}");
    assert_eq!(entries[0].verdict, "provider_error");
}

#[test]
fn a_silent_server_times_out_with_a_clear_message() {
    let server = serve(vec![
        hang(Duration::from_secs(3)),
        hang(Duration::from_secs(3)),
        hang(Duration::from_secs(3)),
    ]);
    let mut client = openai(&server);
    client.policy.retries = 1;
    let (result, _) = run(client);
    let err = result.unwrap_err();
    assert!(
        matches!(err, AgentError::Timeout { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("did not answer within"), "{err}");
}

#[test]
fn a_server_without_structured_output_gets_the_schema_in_the_prompt_only() {
    let server = serve(vec![
        status(400, "{\"error\":\"response_format not supported\"}"),
        chat(GOOD_PLAN),
    ]);
    let (result, entries) = run(openai(&server));
    assert!(result.unwrap().plan.is_some());
    assert!(!entries[0].structured);
    let received = server.received.lock().unwrap();
    assert!(received[1].body.get("response_format").is_none());
    assert!(received[1].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("Answer format"));
}

#[test]
fn an_unreachable_endpoint_is_a_clear_error() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut client = OpenAiCompatible::new("ollama", &format!("http://127.0.0.1:{port}/v1"), "m");
    client.policy = fast_policy();
    let (result, _) = run(client);
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("cannot reach the LLM endpoint")
            && message.contains("Is the server running"),
        "{message}"
    );
}

#[test]
fn the_key_goes_in_a_header_and_never_into_the_run_directory() {
    const KEY: &str = "sk-test-secret-0123456789";
    // A misbehaving server that echoes the key back in its answer.
    let echo = GOOD_PLAN.replace("layer1.0.conv1 dominates latency", &format!("key {KEY}"));
    let server = serve(vec![chat(&echo)]);
    let mut client = openai(&server);
    client.api_key = Some(ApiKey::new(KEY));
    assert!(!format!("{client:?}").contains(KEY));
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::create(dir.path(), vec![KEY.to_string()]).unwrap();
    let mut agent = AnalysisAgent::new(Box::new(client));
    agent
        .propose(
            1,
            &input(),
            &context(),
            &mut |e: &TranscriptEntry| run_dir.record(e),
            &mut NoMeasure,
        )
        .unwrap();
    assert_eq!(
        server.received.lock().unwrap()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    for entry in walk(dir.path()) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(!text.contains(KEY), "{} contains the key", entry.display());
    }
    let transcript = std::fs::read_to_string(dir.path().join("transcript.jsonl")).unwrap();
    assert!(transcript.contains("[REDACTED]"));
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn anthropic_messages_protocol_with_a_forced_tool_call() {
    let plan: serde_json::Value = serde_json::from_str(GOOD_PLAN).unwrap();
    let server = serve(vec![ok(serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "compression_plan", "input": plan}],
        "stop_reason": "tool_use"
    }))]);
    let mut client = Anthropic::new(&server.base_url, "claude-test");
    client.api_key = Some(ApiKey::new("anthropic-key-123"));
    client.policy = fast_policy();
    let (result, _) = run(client);
    assert!(result.unwrap().plan.is_some());
    let received = server.received.lock().unwrap();
    assert_eq!(received[0].path, "/v1/messages");
    assert_eq!(received[0].header("x-api-key"), Some("anthropic-key-123"));
    assert_eq!(received[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(received[0].body["tool_choice"]["name"], "compression_plan");
    assert!(received[0].body["system"]
        .as_str()
        .unwrap()
        .contains("compression engineer"));
    assert_eq!(received[0].body["messages"][0]["role"], "user");
}

#[test]
fn settings_pick_providers_and_refuse_keys_in_files() {
    let none = LlmSettings::default();
    assert!(none.build().unwrap().is_none());
    let bad = LlmSettings {
        llm: Some("gpt4".into()),
        ..Default::default()
    };
    assert!(bad
        .build()
        .err()
        .unwrap()
        .to_string()
        .contains("PROVIDER:MODEL"));
    let unknown = LlmSettings {
        llm: Some("acme:big".into()),
        ..Default::default()
    };
    assert!(unknown
        .build()
        .err()
        .unwrap()
        .to_string()
        .contains("unknown LLM provider 'acme'"));
    let missing = LlmSettings {
        llm: Some("openai:gpt-4o".into()),
        api_key_env: Some("PROFAGENT_TEST_UNSET_KEY_VAR".into()),
        ..Default::default()
    };
    assert!(matches!(
        missing.build().err().unwrap(),
        AgentError::MissingKey { .. }
    ));
    let ollama = LlmSettings {
        llm: Some("ollama:qwen2.5:7b".into()),
        ..Default::default()
    };
    assert_eq!(
        ollama.build().unwrap().unwrap().describe(),
        "ollama:qwen2.5:7b"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("llm.toml");
    std::fs::write(
        &file,
        "[llm]\nllm = \"vllm:qwen\"\nbase_url = \"http://127.0.0.1:9/v1\"\ntemperature = 0.0\n",
    )
    .unwrap();
    let settings = LlmSettings::from_file(&file).unwrap();
    assert_eq!(settings.llm.as_deref(), Some("vllm:qwen"));
    std::fs::write(
        &file,
        "[llm]\nllm = \"openai:gpt-4o\"\napi_key = \"sk-x\"\n",
    )
    .unwrap();
    assert!(LlmSettings::from_file(&file)
        .unwrap_err()
        .to_string()
        .contains("not accepted in config files"));
}

/// An OpenAI chat-completions answer that calls `estimate_plan` with `arguments` instead of
/// answering.
fn estimate_call(id: &str, arguments: &str) -> Scripted {
    ok(serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function",
                            "function": {"name": "estimate_plan", "arguments": arguments}}]
        }}]
    }))
}

/// A model with tool calling asks for the estimate of a candidate plan, hears it (MACs and
/// latency saved, expected drop, budget verdict), then answers; the exchange is recorded.
#[test]
fn the_estimate_tool_answers_a_candidate_plan_before_the_answer() {
    let server = serve(vec![estimate_call("call_1", GOOD_PLAN), chat(GOOD_PLAN)]);
    let (result, entries) = run(openai(&server));
    let proposal = result.unwrap();
    assert!(proposal.plan.is_some());
    assert_eq!(proposal.attempts, 1);
    assert_eq!(
        entries
            .iter()
            .map(|e| e.verdict.as_str())
            .collect::<Vec<_>>(),
        ["tool_call", "valid"]
    );
    assert_eq!(entries[0].tool_calls.len(), 1);
    assert!(entries[0].answer.is_none());
    let received = server.received.lock().unwrap();
    let offered = &received[0].body["tools"][0]["function"];
    assert_eq!(offered["name"], "estimate_plan");
    assert!(offered["parameters"]["properties"]["pruning"].is_object());
    assert_eq!(received[0].body["tool_choice"], "auto");
    // The second request carries the call and the tool's answer.
    let messages = received[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["arguments"],
        GOOD_PLAN
    );
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_1");
    let result: serde_json::Value =
        serde_json::from_str(messages[3]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["valid"], true, "{result}");
    // 64 → 48 channels of a 37 MMACs, 1.5 ms group: a quarter of each.
    assert_eq!(result["estimate"]["macs_removed"], 9_250_000);
    let saved = result["estimate"]["latency_saved_ms"].as_f64().unwrap();
    assert!((saved - 0.375).abs() < 1e-9, "{result}");
    // No sensitivity was measured: the drop is unknown, and said so.
    assert_eq!(result["estimate"]["unmeasured"][0], "layer1.0.conv1");
    assert_eq!(result["within_budget"], true);
    assert_eq!(
        result,
        serde_json::from_str::<serde_json::Value>(&entries[0].tool_calls[0].result).unwrap()
    );
}

/// A candidate the validator refuses gets the validator's reason as the tool's answer.
#[test]
fn the_estimate_tool_names_what_is_wrong_with_an_invalid_candidate() {
    let server = serve(vec![estimate_call("c", UNKNOWN_LAYERS), chat(GOOD_PLAN)]);
    let (result, _) = run(openai(&server));
    assert!(result.unwrap().plan.is_some());
    let received = server.received.lock().unwrap();
    let content = received[1].body["messages"][3]["content"].as_str().unwrap();
    let answer: serde_json::Value = serde_json::from_str(content).unwrap();
    assert_eq!(answer["valid"], false);
    assert!(
        answer["error"].as_str().unwrap().contains("layer9.conv"),
        "{answer}"
    );
}

/// A model that only ever calls the tool gets `MAX_TOOL_CALLS` answers, then a request with no
/// tools, so the round ends with an answer (or the usual repair), never a loop.
#[test]
fn tool_calls_per_round_are_bounded() {
    let max = profagent_agent::planner::MAX_TOOL_CALLS;
    let mut script: Vec<Scripted> = (0..max)
        .map(|i| estimate_call(&format!("c{i}"), GOOD_PLAN))
        .collect();
    script.push(chat(GOOD_PLAN));
    let server = serve(script);
    let (result, entries) = run(openai(&server));
    assert!(result.unwrap().plan.is_some());
    assert_eq!(entries.len(), max + 1);
    let received = server.received.lock().unwrap();
    assert!(received[max - 1].body.get("tools").is_some());
    assert!(received[max].body.get("tools").is_none());
}

/// A server that refuses tools is asked again without them and keeps structured output.
#[test]
fn a_server_without_tools_is_asked_again_without_them() {
    let server = serve(vec![
        status(400, "{\"error\":\"tools are not supported by this model\"}"),
        chat(GOOD_PLAN),
    ]);
    let (result, entries) = run(openai(&server));
    assert!(result.unwrap().plan.is_some());
    assert!(entries[0].structured);
    let received = server.received.lock().unwrap();
    assert!(received[0].body.get("tools").is_some());
    assert!(received[1].body.get("tools").is_none());
    assert_eq!(received[1].body["response_format"]["type"], "json_schema");
}

/// A run whose planner called the tool is recorded with the call (its own files beside the
/// answer's) and replays without the model: the replay reads the answers, not the calls.
#[test]
fn a_run_with_tool_calls_is_recorded_and_replays() {
    let server = serve(vec![estimate_call("call_1", GOOD_PLAN), chat(GOOD_PLAN)]);
    let (result, entries) = run(openai(&server));
    let original = result.unwrap().plan.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::create(dir.path(), vec![]).unwrap();
    for entry in &entries {
        run_dir.record(entry).unwrap();
    }
    let round = dir.path().join("rounds/round-01");
    let tools: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(round.join("tools-1-call-2.json")).unwrap())
            .unwrap();
    assert_eq!(tools[0]["name"], "estimate_plan");
    assert_eq!(
        std::fs::read_to_string(round.join("answer-1.txt")).unwrap(),
        GOOD_PLAN
    );
    let mut replayed = profagent_agent::planner::replay_planner(dir.path()).unwrap();
    let proposal = replayed
        .propose(
            1,
            &input(),
            &context(),
            &mut |_: &TranscriptEntry| Ok(()),
            &mut NoMeasure,
        )
        .unwrap();
    assert_eq!(proposal.plan.unwrap(), original);
}
