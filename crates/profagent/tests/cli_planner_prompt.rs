//! Issue 20: the prompt an LLM planner gets for vit_tiny_cifar10 after one accepted round, from
//! a real `compress` run (the planner is a scripted OpenAI-compatible server on localhost: round
//! 1 prunes one MLP with `keep: N`, round 2 proposes nothing). The round-2 prompt must list every
//! prunable group with its units now and in the input and its measured latency, mark which
//! sensitivities were re-measured on round 1's model and which are stale (with the ratio
//! probed, both ratios for the groups probed a second time deeper), and state the budget left and the loop's rules. Needs ../shared (ignored, with the
//! reason, without it). The measured numbers vary run to run, so the snapshot replaces decimals
//! and the "measured on" column and sorts table rows; the assertions check the semantics.
#[path = "support/plan_server.rs"]
mod plan_server;

use std::path::{Path, PathBuf};
use std::process::Command;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// The cells of the group-table row of `group` in `prompt`.
fn row<'p>(prompt: &'p str, header: &[&str], group: &str, column: &str) -> &'p str {
    let line = prompt
        .lines()
        .skip_while(|l| !l.starts_with("group id |"))
        .find(|l| l.starts_with(&format!("{group} |")))
        .unwrap_or_else(|| panic!("no row for {group}:\n{prompt}"));
    let at = header.iter().position(|h| *h == column).unwrap();
    line.split('|').nth(at).unwrap().trim()
}

/// The prompt with run-to-run measurements replaced: decimals, speed verdicts, the group
/// table's measured columns (which groups were probed follows their measured latency), the
/// heaviest-layer rows (chosen by measured latency: only their count stays), and the order of
/// table rows (measured latency orders them).
fn normalized(prompt: &str) -> String {
    let decimals = regex::Regex::new(r"[+-]?\d+\.\d+").unwrap();
    let verdicts = regex::Regex::new(r"\b(faster|SLOWER|not distinguishable)\b").unwrap();
    let mut out = Vec::new();
    let mut rows: Vec<String> = Vec::new();
    let mut table = "";
    let flush = |table: &str, rows: &mut Vec<String>, out: &mut Vec<String>| {
        if table == "layer" && !rows.is_empty() {
            out.push(format!("[{} layer rows]", rows.len()));
            rows.clear();
        }
        rows.sort();
        out.append(rows);
    };
    for line in prompt.lines() {
        let line = decimals.replace_all(line, "[x]");
        let line = verdicts.replace_all(&line, "[verdict]").into_owned();
        let header = [
            ("group id |", "group"),
            ("layer |", "layer"),
            ("round |", "round"),
        ]
        .into_iter()
        .find(|(h, _)| line.starts_with(h));
        if let Some((_, name)) = header {
            flush(table, &mut rows, &mut out);
            table = name;
            out.push(line);
            continue;
        }
        let is_row = !table.is_empty() && line.contains(" | ");
        if !is_row {
            flush(table, &mut rows, &mut out);
            table = "";
            out.push(line);
            continue;
        }
        let mut cells: Vec<String> = line.split(" | ").map(str::to_string).collect();
        if table == "group" && cells.len() == 14 {
            // ms .. measured on: measurements.
            for cell in &mut cells[5..13] {
                *cell = "[m]".into();
            }
        }
        rows.push(cells.join(" | "));
    }
    flush(table, &mut rows, &mut out);
    out.join("\n")
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn the_prompt_after_one_accepted_round_is_a_dashboard() {
    let round_one = serde_json::json!({
        "schema_version": 1,
        "rationale": "thin one MLP a little",
        "pruning": [{"target": "blocks.1.mlp.fc1", "keep": 640, "unit": "channels",
                     "criterion": "l1", "rationale": "an MLP is cheap to thin"}]
    });
    let round_two = serde_json::json!({
        "schema_version": 1, "rationale": "stop here", "pruning": []
    });
    let server = plan_server::serve_plans(vec![round_one.to_string(), round_two.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = Command::new(env!("CARGO_BIN_EXE_profagent"))
        .env("NO_COLOR", "1")
        .arg("compress")
        .arg(shared().join("models/vit_tiny_cifar10.onnx"))
        .arg("--data")
        .arg(shared().join("data/cifar10-test"))
        .arg("--out")
        .arg(&out)
        .args([
            "--preset",
            "cifar10",
            "--max-acc-drop",
            "10",
            "--target-macs",
            "0.5",
        ])
        .args(["--no-probe", "--sensitivity-groups", "4", "--rounds", "2"])
        .args(["--calibration-images", "32", "--feedback-images", "100"])
        .args(["--holdout-images", "50", "--compare-seconds", "2"])
        .args([
            "--llm",
            "ollama:scripted",
            "--llm-base-url",
            server.as_str(),
        ])
        .arg("--no-guardrail")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let text = std::fs::read_to_string(out.join("report.json")).unwrap_or_else(|e| {
        panic!(
            "no report.json ({e}); compress exited with {:?}:\n{stderr}",
            run.status.code()
        )
    });
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("no report ({e}):\n{stderr}"));
    assert_eq!(
        report["rounds"][0]["accepted"], true,
        "round 1 must be accepted for this test to check anything:\n{stderr}"
    );
    // Unguarded: the scripted plan is applied as given (the guardrail could replace it with a
    // larger built-in plan; `tests/guard.rs` in profagent-agent covers it).
    assert_eq!(report["planner"], "ollama:scripted");
    assert_eq!(report["rounds"][0]["planner"], "ollama:scripted");
    let prompt = std::fs::read_to_string(out.join("rounds/round-02/prompt-1.md"))
        .unwrap_or_else(|e| panic!("no round-2 prompt ({e}):\n{stderr}"));
    let header: Vec<&str> = prompt
        .lines()
        .find(|l| l.starts_with("group id |"))
        .expect("group table")
        .split('|')
        .map(str::trim)
        .collect();

    // Every prunable group of the analysis is listed, with its current and input units.
    let groups: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("input/groups.json")).unwrap())
            .unwrap();
    let (prunable, frozen): (Vec<_>, Vec<_>) = groups.iter().partition(|g| g["prunable"] == true);
    assert!(
        prunable.len() > 16,
        "vit_tiny has more groups than the old table showed"
    );
    assert!(
        prompt.contains(&format!("Prunable groups (all {})", prunable.len())),
        "{prompt}"
    );
    let frozen_line = prompt
        .lines()
        .find(|l| l.starts_with("Not prunable"))
        .expect("the groups that cannot be pruned, in one line");
    for group in &frozen {
        assert!(frozen_line.contains(group["id"].as_str().unwrap()));
    }
    for group in &prunable {
        let id = group["id"].as_str().unwrap();
        let units = row(&prompt, &header, id, "units now/input");
        let original = group["channels"].as_u64().unwrap();
        let expected_now = if id == "blocks.1.mlp.fc1" {
            640
        } else {
            original
        };
        assert_eq!(units, format!("{expected_now}/{original}"), "{id}");
        // Measured latency reached the planner (the profiler ran on the input model).
        assert_ne!(row(&prompt, &header, id, "ms"), "-", "{id}: no latency");
    }

    // Re-measured groups (round 1's record) say so, with the ratio probed on round 1's model;
    // the pruned group, unless re-measured, is marked stale; the others carry the input's.
    let remeasured: Vec<&str> = report["rounds"][0]["sensitivity"]
        .as_array()
        .expect("round 1 re-measured sensitivities")
        .iter()
        .filter(|s| s["error"].is_null())
        .map(|s| s["group"].as_str().unwrap())
        .collect();
    assert!(!remeasured.is_empty(), "nothing re-measured:\n{stderr}");
    for id in &remeasured {
        assert_eq!(row(&prompt, &header, id, "measured on"), "round 1", "{id}");
        assert!(row(&prompt, &header, id, "probed").ends_with('%'), "{id}");
    }
    // The groups probed a second time, deeper, on round 1's model show both ratios (and a
    // third, deeper still, when the second was as cheap per MAC: `DEEPEST_RATIO`).
    let mut deeper: Vec<(&str, f64)> = report["rounds"][0]["sensitivity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["error"].is_null())
        .map(|s| (s["group"].as_str().unwrap(), s["ratio"].as_f64().unwrap()))
        .collect();
    deeper.retain(|(_, ratio)| *ratio > 0.3);
    assert!(!deeper.is_empty(), "no deeper probe on round 1's model");
    let two_ratios = regex::Regex::new(r"^\d+ % / \d+ %( / \d+ %)?$").unwrap();
    for (id, _) in &deeper {
        let probed = row(&prompt, &header, id, "probed");
        assert!(two_ratios.is_match(probed), "{id}: {probed}");
    }
    if !remeasured.contains(&"blocks.1.mlp.fc1") {
        let cell = row(&prompt, &header, "blocks.1.mlp.fc1", "measured on");
        assert!(
            cell == "-" || cell == "input (STALE: 768 units then)",
            "the pruned group's input measurement must read stale: {cell}"
        );
    }

    // The budget left and the loop's rules.
    assert!(prompt.contains("Budget left (current model against the input):"));
    assert!(
        regex::Regex::new(r"MACs: \d+\.\d % of the input's now \(\d+\.\d MMACs\), target at most 50\.0 %: \d+\.\d MMACs more to remove")
            .unwrap()
            .is_match(&prompt),
        "{prompt}"
    );
    assert!(prompt.contains("of the 10.00 allowed left"), "{prompt}");
    assert!(prompt.contains("Loop rules:"), "{prompt}");
    assert!(prompt.contains("same 100 feedback images (one image = 1.00 top-1 points"));
    // The history shows the accepted round.
    let history = prompt
        .lines()
        .find(|l| l.starts_with("1 | "))
        .expect("round 1 in the history");
    assert!(history.contains("| yes |"), "{history}");

    insta::assert_snapshot!(normalized(&prompt));
}
