//! Issue 21: the run folder stores each prompt and answer once. A long invalid answer sent
//! back in two repair prompts used to be written 12 times (a 9 MB answer made a 108 MB run).
use profagent_agent::provider::{ChatMessage, Role};
use profagent_agent::rundir::{read_transcript, RunDir, TranscriptEntry};

fn files_below(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn repair_rounds_store_each_answer_and_prompt_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path(), vec![]).unwrap();
    let system = format!("SYSTEM PROMPT {}", "s".repeat(4000));
    let user = format!("USER PROMPT {}", "u".repeat(4000));
    let answers: Vec<String> = (1..=3)
        .map(|i| format!("ANSWER-{i} {}", "a".repeat(20_000)))
        .collect();
    let mut messages = vec![
        ChatMessage::new(Role::System, system.clone()),
        ChatMessage::new(Role::User, user.clone()),
    ];
    for (i, answer) in answers.iter().enumerate() {
        run.record(&TranscriptEntry {
            round: 1,
            attempt: i + 1,
            planner: "test".into(),
            messages: messages.clone(),
            answer: Some(answer.clone()),
            error: Some("not JSON".into()),
            verdict: "parse_error".into(),
            issues: vec![],
            structured: false,
            seconds: 0.0,
            tool_calls: vec![],
        })
        .unwrap();
        messages.push(ChatMessage::new(Role::Assistant, answer.clone()));
        messages.push(ChatMessage::new(Role::User, "fix it".to_string()));
    }
    let count = |needle: &str| -> usize {
        files_below(dir.path())
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap().matches(needle).count())
            .sum()
    };
    // answer-N.txt and the transcript's `answer` (what a replay feeds back).
    for i in 1..=3 {
        assert_eq!(count(&format!("ANSWER-{i} ")), 2, "answer {i}");
    }
    assert_eq!(count("SYSTEM PROMPT "), 2, "system prompt");
    assert_eq!(count("USER PROMPT "), 2, "user prompt");
    // Later prompts say where the earlier answer is.
    let prompt = std::fs::read_to_string(dir.path().join("rounds/round-01/prompt-3.md")).unwrap();
    assert!(prompt.contains("rounds/round-01/answer-1.txt"), "{prompt}");
    // A replay still reads every answer whole.
    let entries = read_transcript(dir.path()).unwrap();
    let replayed: Vec<String> = entries.into_iter().filter_map(|e| e.answer).collect();
    assert_eq!(replayed, answers);
}

#[test]
fn redacted_values_mask_configured_keys_and_leave_the_rest_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let key = "configured-key-value-123";
    let run = RunDir::create(dir.path(), vec![key.to_string()]).unwrap();
    let value = serde_json::json!({"error": format!("endpoint said: bad key {key}"), "x": 0.1});
    let masked = run.redacted(value).unwrap();
    assert_eq!(masked["error"], "endpoint said: bad key [REDACTED]");
    assert_eq!(masked["x"], 0.1);
    let plain = serde_json::json!({"nothing": "to hide", "y": 1.5e-7});
    assert_eq!(run.redacted(plain.clone()).unwrap(), plain);
}
