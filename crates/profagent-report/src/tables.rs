//! The report's tables, built once from a `RunReport` and rendered by both the HTML and the
//! Markdown renderer, so the two files always say the same thing.
use serde_json::Value;

use crate::format::{self, NONE};
use crate::model::{top1, Evaluation, RoundRecord, RunReport};

/// Column alignment (numbers right, text left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub align: Vec<Align>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            headers: columns.iter().map(|(h, _)| h.to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

use Align::{Left, Right};

/// Key facts of the run: model, budget, planner, outcome.
pub fn overview(report: &RunReport) -> Table {
    let mut table = Table::new(&[("", Left), ("", Left)]);
    table.push(vec![
        "Model".into(),
        format!(
            "{} ({})",
            report.model_name(),
            format::bytes(report.model.bytes)
        ),
    ]);
    table.push(vec!["Budget".into(), budget_text(report)]);
    table.push(vec!["Planner".into(), report.planner.clone()]);
    let accepted = report.rounds.iter().filter(|r| r.accepted).count();
    table.push(vec![
        "Rounds".into(),
        format!("{} ({accepted} accepted)", report.rounds.len()),
    ]);
    if let Some(result) = &report.final_result {
        let met = if result.budget_met { "met" } else { "NOT met" };
        table.push(vec![
            "Outcome".into(),
            format!("budget {met} ({})", result.stop_reason),
        ]);
        if let Some(line) = result_line(report) {
            table.push(vec!["Result".into(), line]);
        }
        table.push(vec!["Final model".into(), result.model_path.clone()]);
    } else {
        table.push(vec![
            "Outcome".into(),
            "no final model (the run stopped before choosing one)".into(),
        ]);
    }
    if let Some(replay) = &report.replay {
        let same = if replay.identical {
            "identical model"
        } else {
            "DIFFERENT model"
        };
        table.push(vec![
            "Replay of".into(),
            format!("{} ({same})", replay.source),
        ]);
    }
    table
}

/// The final model against the input in one line (top-1 change, speed, size), every ratio in
/// words ("1.6x slower"), with its interval: the Markdown headline and the overview's Result
/// row, so the two cannot disagree.
pub fn result_line(report: &RunReport) -> Option<String> {
    let result = report.final_result.as_ref()?;
    let mut headline = Vec::new();
    let images = result.holdout_final.as_ref().map(|e| e.images).unwrap_or(0);
    match result.acc_drop {
        Some(drop) => headline.push(format!(
            "top-1 {}",
            format::change(drop, result.drop_interval.as_ref(), images)
        )),
        None if report.baseline.top1.is_none() => {
            headline.push("no labels: accuracy not measured, judged on output fidelity".into())
        }
        None => {}
    }
    match (&result.speed, result.speedup) {
        (Some(speed), _) => headline.push(format::speed(speed)),
        (None, Some(speedup)) if speedup >= 1.0 => {
            headline.push(format!("{speedup:.2}x faster (no interval)"))
        }
        (None, Some(speedup)) => headline.push(format!(
            "{speedup:.2}x, i.e. {:.2}x slower (no interval)",
            1.0 / speedup.max(f64::MIN_POSITIVE)
        )),
        (None, None) => {}
    }
    if let Some(reduction) = result.size_reduction {
        headline.push(format!("{:.0} % smaller", reduction * 100.0));
    }
    (!headline.is_empty()).then(|| headline.join("; "))
}

pub fn budget_text(report: &RunReport) -> String {
    let budget = &report.budget;
    let mut parts = vec![format!(
        "top-1 drop ≤ {:.2} pp ({:.0} % one-sided confidence)",
        budget.max_acc_drop,
        budget.acc_confidence * 100.0
    )];
    if let Some(latency) = budget.target_latency_ms {
        parts.push(format!("latency ≤ {}", format::ms(latency)));
    }
    if let Some(speedup) = budget.target_speedup {
        parts.push(format!("speedup ≥ {speedup:.2}x"));
    }
    if let Some(size) = budget.target_memory_bytes {
        parts.push(format!("size ≤ {}", format::bytes(size)));
    }
    if let Some(f) = budget.target_macs_fraction {
        parts.push(format!("MACs ≤ {:.0} % of the input", f * 100.0));
    }
    if let Some(c) = budget.min_cosine {
        parts.push(format!("output cosine with the input ≥ {c}"));
    }
    parts.join(", ")
}

/// Baseline vs final, one metric per row.
pub fn before_after(report: &RunReport) -> Table {
    let (before, after, _) = report.before_after();
    let mut table = Table::new(&[
        ("Metric", Left),
        ("Baseline", Right),
        ("Final", Right),
        ("Change", Right),
    ]);
    type Row = (
        &'static str,
        fn(&Evaluation) -> Option<f64>,
        fn(f64) -> String,
        Change,
    );
    let batch = before
        .latency_batch
        .or(after.and_then(|a| a.latency_batch))
        .map(|l| l.batch);
    let rows: [Row; 10] = [
        (
            "Top-1 accuracy",
            |e| Some(top1(e)),
            format::percent,
            Change::Points,
        ),
        (
            "Top-5 accuracy",
            |e| e.top5,
            format::percent,
            Change::Points,
        ),
        (
            "Output cosine with the input model",
            |e| e.cosine,
            |c| format!("{c:.5}"),
            Change::Delta,
        ),
        (
            "Top-1 agreement with the input model",
            |e| e.agreement,
            format::percent,
            Change::Points,
        ),
        (
            "Latency, batch 1",
            |e| Some(e.latency_ms),
            format::ms,
            Change::Faster,
        ),
        (
            BATCH_N,
            |e| e.latency_batch.map(|l| l.median_ms),
            format::ms,
            Change::Faster,
        ),
        (
            "Peak memory (RSS)",
            |e| e.peak_memory_bytes.map(|b| b as f64),
            |v| format::bytes(v as u64),
            Change::Relative,
        ),
        (
            "File size",
            |e| Some(e.model_bytes as f64),
            |v| format::bytes(v as u64),
            Change::Smaller,
        ),
        (
            "Parameters",
            |e| e.params.map(|p| p as f64),
            |v| format::count(v as u64),
            Change::Relative,
        ),
        (
            "MACs (batch 1)",
            |e| e.macs.map(|m| m as f64),
            |v| format::count(v as u64),
            Change::Relative,
        ),
    ];
    for (label, get, show, change) in rows {
        let b = get(before);
        let a = after.and_then(get);
        if b.is_none() && a.is_none() {
            continue;
        }
        let label = match (label, batch) {
            (BATCH_N, Some(n)) => format!("Latency, batch {n}"),
            (label, _) => label.to_string(),
        };
        let delta = match (b, a) {
            (Some(b), Some(a)) => change.show(b, a),
            _ => NONE.to_string(),
        };
        table.push(vec![
            label,
            format::opt(b, show),
            format::opt(a, show),
            delta,
        ]);
    }
    table
}

/// Row label of the batch-N latency, replaced by the measured batch size.
const BATCH_N: &str = "Latency, batch N";

#[derive(Clone, Copy)]
enum Change {
    Points,
    /// Before / after of a time.
    Faster,
    /// Before / after of a size.
    Smaller,
    Relative,
    /// After minus before of a value close to 1 (a cosine).
    Delta,
}

impl Change {
    fn show(self, before: f64, after: f64) -> String {
        match self {
            Change::Points => format::points(after - before),
            Change::Delta => format!("{:+.5}", after - before),
            Change::Faster | Change::Smaller => {
                let Some(ratio) = format::factor(before, after) else {
                    return NONE.to_string();
                };
                let word = match (self, after <= before) {
                    (Change::Faster, true) => "faster",
                    (Change::Faster, false) => "slower",
                    (_, true) => "smaller",
                    (_, false) => "larger",
                };
                if after <= before {
                    format!("{ratio} {word}")
                } else {
                    format!(
                        "{} {word}",
                        format::factor(after, before).unwrap_or_default()
                    )
                }
            }
            Change::Relative => format::relative(before, after).unwrap_or_else(|| NONE.to_string()),
        }
    }
}

/// Per-layer latency before/after, with the final quantization mode of each layer.
pub fn layers(report: &RunReport) -> Table {
    let quantization = report.final_quantization();
    let mut table = Table::new(&[
        ("Layer", Left),
        ("Before", Right),
        ("After", Right),
        ("Speedup", Right),
        ("Quantization", Left),
    ]);
    for row in &report.layers {
        let speedup = match (row.before_ms, row.after_ms) {
            (Some(b), Some(a)) => format::factor(b, a).unwrap_or_else(|| NONE.to_string()),
            (Some(_), None) => "removed".to_string(),
            _ => NONE.to_string(),
        };
        let mode = quantization
            .get(&row.layer)
            .cloned()
            .unwrap_or_else(|| "none".to_string());
        table.push(vec![
            row.layer.clone(),
            format::opt(row.before_ms, format::ms),
            format::opt(row.after_ms, format::ms),
            speedup,
            mode,
        ]);
    }
    table
}

/// Channels removed per prunable group in the final model.
pub fn pruning(report: &RunReport) -> Table {
    let mut table = Table::new(&[
        ("Group", Left),
        ("Channels", Right),
        ("Removed", Right),
        ("Round", Right),
    ]);
    for group in report.final_pruning() {
        let rounds: Vec<String> = group.rounds.iter().map(|r| r.to_string()).collect();
        table.push(vec![
            group.group.clone(),
            format!("{} → {}", group.original, group.kept),
            format!("{:.0} %", group.removed_fraction() * 100.0),
            rounds.join(", "),
        ]);
    }
    table
}

/// Quantization of the final model: one row per mode with its layer count.
pub fn quantization_summary(report: &RunReport) -> Table {
    let mut table = Table::new(&[("Mode", Left), ("Layers", Right)]);
    let mut by_mode: std::collections::BTreeMap<String, usize> = Default::default();
    let quantized = report.final_quantization();
    for mode in quantized.values() {
        *by_mode.entry(mode.clone()).or_default() += 1;
    }
    // Layers measured but absent from the quantization map stayed in float.
    let float = report
        .layers
        .iter()
        .filter(|l| !quantized.contains_key(&l.layer))
        .count();
    if float > 0 && !quantized.is_empty() {
        *by_mode.entry("none (float)".to_string()).or_default() += float;
    }
    for (mode, layers) in by_mode {
        table.push(vec![mode, layers.to_string()]);
    }
    table
}

/// Every candidate of the run (and the baseline) in accuracy, latency and size.
pub fn trajectory(report: &RunReport) -> Table {
    let chosen = report.chosen_round();
    let mut table = Table::new(&[
        ("Round", Left),
        ("Top-1", Right),
        ("Drop [95 %]", Right),
        ("Latency", Right),
        ("Speedup vs input [95 %]", Right),
        ("Size", Right),
        ("Status", Left),
    ]);
    let base = &report.baseline;
    table.push(vec![
        "baseline".into(),
        format::percent(top1(base)),
        NONE.into(),
        format::ms(base.latency_ms),
        base.speed
            .as_ref()
            .map(|s| format!("A/A {}", speed_interval(s)))
            .unwrap_or_else(|| NONE.into()),
        format::bytes(base.model_bytes),
        "input model".into(),
    ]);
    for round in &report.rounds {
        let (top1, latency, speed, size) = match &round.evaluation {
            Some(e) => (
                format::percent(top1(e)),
                format::ms(e.latency_ms),
                e.speed
                    .as_ref()
                    .map(speed_interval)
                    .unwrap_or_else(|| NONE.into()),
                format::bytes(e.model_bytes),
            ),
            None => (NONE.into(), NONE.into(), NONE.into(), NONE.into()),
        };
        let drop = match round.evaluation.as_ref().and_then(|e| e.accuracy_change) {
            Some(p) => {
                let i = p.drop_interval(profagent_stats::REPORT_CONFIDENCE);
                format!(
                    "{:.2} [{:.2}, {:.2}] pp, n={}",
                    i.value, i.low, i.high, p.samples
                )
            }
            None => format::opt(round.acc_drop, |d| format!("{d:.2} pp")),
        };
        table.push(vec![
            round.round.to_string(),
            top1,
            drop,
            latency,
            speed,
            size,
            status(round, chosen).to_string(),
        ]);
    }
    table
}

pub fn status(round: &RoundRecord, chosen: Option<usize>) -> &'static str {
    match (round.accepted, Some(round.round) == chosen) {
        (true, true) => "accepted, chosen",
        (true, false) => "accepted",
        (false, _) if round.evaluation.is_none() => "no candidate",
        (false, _) => "rolled back",
    }
}

/// A round's pruning decisions with the validator's resolution of each.
pub fn decisions(round: &RoundRecord) -> Table {
    let mut table = Table::new(&[
        ("Target", Left),
        ("Ratio", Right),
        ("Channels", Right),
        ("Criterion", Left),
        ("Rationale", Left),
    ]);
    let Some(plan) = &round.plan else {
        return table;
    };
    for decision in &plan.pruning {
        let resolved = round
            .resolved_pruning
            .iter()
            .find(|r| r.group == decision.target)
            .map(|r| r.counts().replacen('→', " → ", 1))
            .unwrap_or_else(|| NONE.to_string());
        let criterion = serde_json::to_value(decision.criterion)
            .ok()
            .and_then(|v| v.as_str().map(str::to_uppercase))
            .unwrap_or_default();
        table.push(vec![
            decision.target.clone(),
            match decision.keep {
                Some(keep) => format!("keep {keep}"),
                None => format!("{:.0} %", decision.ratio * 100.0),
            },
            resolved,
            criterion,
            decision.rationale.clone(),
        ]);
    }
    table
}

/// A round's quantization choice: the default and each per-layer override.
pub fn quantization_plan(round: &RoundRecord) -> Table {
    let mut table = Table::new(&[("Layers", Left), ("Mode", Left), ("Rationale", Left)]);
    let Some(quant) = round.plan.as_ref().and_then(|p| p.quantization.as_ref()) else {
        return table;
    };
    table.push(vec![
        "(default)".into(),
        quant.default.mode.to_string(),
        quant.rationale.clone(),
    ]);
    for layer in &quant.layers {
        table.push(vec![
            layer.layer.clone(),
            layer.mode.to_string(),
            layer.rationale.clone(),
        ]);
    }
    table
}

/// The validator's verdicts on a round: issues on rejected answers, warnings on the plan.
pub fn verdicts(round: &RoundRecord) -> Table {
    let mut table = Table::new(&[("Verdict", Left), ("Where", Left), ("Message", Left)]);
    for issue in &round.rejected_issues {
        table.push(vec![
            "rejected".into(),
            issue.location.clone(),
            issue.message.clone(),
        ]);
    }
    for issue in &round.warnings {
        table.push(vec![
            "warning".into(),
            issue.location.clone(),
            issue.message.clone(),
        ]);
    }
    table
}

/// The candidate's evaluation in one line.
pub fn round_result(round: &RoundRecord) -> String {
    match &round.evaluation {
        Some(e) => format!(
            "top-1 {} ({}), latency {}, size {}",
            format::percent(top1(e)),
            format::opt(round.acc_drop, |d| format::points(-d)),
            format::ms(e.latency_ms),
            format::bytes(e.model_bytes),
        ),
        None => round
            .failure
            .clone()
            .unwrap_or_else(|| "no candidate was evaluated".into()),
    }
}

/// "faster", "slower" or "not distinguishable": what the interval says.
fn verdict_word(comparison: &profagent_stats::SpeedComparison) -> &'static str {
    match comparison.verdict() {
        profagent_stats::SpeedVerdict::Faster => "faster",
        profagent_stats::SpeedVerdict::Slower => "slower",
        profagent_stats::SpeedVerdict::NotDistinguishable => "not distinguishable",
    }
}

/// "1.46x [1.42, 1.49]": a speedup with its interval.
fn speed_interval(comparison: &profagent_stats::SpeedComparison) -> String {
    let s = &comparison.speedup;
    format!("{:.2}x [{:.2}, {:.2}]", s.value, s.low, s.high)
}

/// Quantization modes measured on the baseline.
pub fn quant_probes(report: &RunReport) -> Table {
    let mut table = Table::new(&[
        ("Mode", Left),
        ("Latency", Right),
        ("Speedup", Right),
        ("Size", Right),
        ("Top-1", Right),
        ("Note", Left),
    ]);
    for probe in &report.quant_probes {
        let note = match (&probe.error, probe.calibration_trials.is_empty()) {
            (Some(e), _) => e.clone(),
            (None, true) => String::new(),
            (None, false) => format!(
                "calibration on the feedback slice: {}; {} kept",
                probe
                    .calibration_trials
                    .iter()
                    .map(|t| t.describe())
                    .collect::<Vec<_>>()
                    .join(", "),
                probe.calibration.unwrap_or_default().as_str()
            ),
        };
        table.push(vec![
            probe.label(),
            format::ms(probe.latency_ms),
            probe
                .speed
                .as_ref()
                .map(|s| format!("{} ({})", speed_interval(s), verdict_word(s)))
                .unwrap_or_else(|| format!("{:.2}x", probe.speedup)),
            format::bytes(probe.model_bytes),
            format::opt(probe.top1, format::percent),
            note,
        ]);
    }
    table
}

/// Pruning sensitivity measured on the baseline, least sensitive first.
pub fn sensitivity(report: &RunReport) -> Table {
    let with_cosine = report.sensitivity.iter().any(|s| s.cosine_loss.is_some());
    let mut header = vec![
        ("Group", Left),
        ("Pruned alone", Right),
        ("Top-1", Right),
        ("Top-1 drop", Right),
        ("Loss increase", Right),
        ("Expected drop", Right),
    ];
    if with_cosine {
        header.push(("Output cosine", Right));
    }
    header.push(("Note", Left));
    let mut table = Table::new(&header);
    let mut rows: Vec<_> = report.sensitivity.iter().collect();
    rows.sort_by(|a, b| {
        let key = |s: &&crate::model::GroupSensitivity| {
            s.expected_drop.or(s.drop).unwrap_or(f64::INFINITY)
        };
        key(a).total_cmp(&key(b)).then(a.group.cmp(&b.group))
    });
    for s in rows {
        let mut row = vec![
            s.group.clone(),
            format!("{}→{} ({:.0} %)", s.current, s.keep, s.ratio * 100.0),
            format::opt(s.top1, format::percent),
            s.drop.map(|d| format!("{d:.2} pt")).unwrap_or_default(),
            s.loss_increase
                .map(|l| format!("{l:+.4} nats"))
                .unwrap_or_default(),
            s.expected_drop
                .map(|d| format!("{d:.2} pt"))
                .unwrap_or_default(),
        ];
        if with_cosine {
            row.push(
                s.cosine_loss
                    .map(|l| format!("{:.5}", 1.0 - l))
                    .unwrap_or_default(),
            );
        }
        row.push(s.error.clone().unwrap_or_default());
        table.push(row);
    }
    table
}

/// Machine, runtime and data split as key/value rows (nested objects flattened with dots).
pub fn key_values(value: &Value) -> Table {
    let mut table = Table::new(&[("", Left), ("", Left)]);
    let mut rows = Vec::new();
    flatten("", value, &mut rows);
    for (key, text) in rows {
        table.push(vec![humanize(&key), text]);
    }
    table
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, child, rows);
            }
        }
        Value::Null => {}
        Value::String(text) => rows.push((prefix.to_string(), text.clone())),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let parts: Vec<String> = items.iter().map(scalar).collect();
            rows.push((prefix.to_string(), parts.join(", ")));
        }
        other => rows.push((prefix.to_string(), scalar(other))),
    }
}

/// `logical_cores` → "Logical cores", `cpu` → "CPU": keys as a reader would write them.
fn humanize(key: &str) -> String {
    const ACRONYMS: [&str; 6] = ["cpu", "os", "isa", "gpu", "rss", "sha256"];
    let words: Vec<String> = key
        .split(['_', '.'])
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(i, word)| {
            if ACRONYMS.contains(&word) {
                word.to_uppercase()
            } else if i == 0 {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default()
            } else {
                word.to_string()
            }
        })
        .collect();
    words.join(" ")
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        other => other.to_string(),
    }
}

/// Machine and runtime: the run's own description, else the evaluator's record of the baseline.
pub fn machine(report: &RunReport) -> Table {
    let described = key_values(&report.machine);
    if !described.is_empty() {
        return described;
    }
    let details = &report.baseline.details;
    let mut fallback = serde_json::Map::new();
    if let Some(runtime) = details.get("runtime") {
        fallback.insert("runtime".into(), runtime.clone());
    }
    if let Some(machine) = details.get("machine") {
        fallback.insert("machine".into(), machine.clone());
    }
    key_values(&Value::Object(fallback))
}
