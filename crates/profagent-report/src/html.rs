//! `report.html`: the run report as one self-contained page (inline CSS and inline SVG charts,
//! no scripts, no network), readable on screen and printable.
//!
//! Every section has a stable id (`SECTION_IDS`) and every chart a `<figure>` with an id and
//! data attributes stating what it should contain, so tests can check the rendered DOM.
use std::fmt::Write;

use crate::charts;
use crate::error::ReportError;
use crate::format;
use crate::markdown::duration;
use crate::model::{RoundRecord, RunReport, SpeedVerdict};
use crate::tables::{self, Align, Table};

/// Ids of the sections every report has (per-layer latency only when measured).
pub const SECTION_IDS: [&str; 7] = [
    "overview",
    "before-after",
    "trajectory",
    "final-model",
    "rounds",
    "probes",
    "machine",
];
/// Id of the per-layer latency section and of its chart.
pub const LAYERS_SECTION_ID: &str = "layers";
pub const LAYER_CHART_ID: &str = "chart-layer-latency";
pub const TRAJECTORY_CHART_ID: &str = "chart-trajectory";

const STYLE: &str = r#"
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --soft:#f8fafc; --accent:#2563eb;
        --good:#16a34a; --bad:#dc2626; --warn:#b45309; }
* { box-sizing:border-box; }
body { margin:0; background:var(--soft); color:var(--ink);
       font:15px/1.55 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width:960px; margin:0 auto; padding:32px 24px 48px; }
h1 { font-size:26px; margin:0 0 4px; letter-spacing:-0.01em; }
h2 { font-size:19px; margin:0 0 12px; }
h3 { font-size:16px; margin:20px 0 8px; }
p { margin:6px 0 10px; }
.subtitle { color:var(--muted); margin:0 0 20px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px;
          padding:20px 24px; margin:0 0 18px; }
.kpis { display:grid; grid-template-columns:repeat(4, 1fr); gap:12px; margin:0 0 18px; }
.kpi { background:#fff; border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.kpi .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.05em; }
.kpi .value { font-size:24px; font-weight:600; margin-top:2px; font-variant-numeric:tabular-nums; }
.kpi .value.good { color:var(--good); } .kpi .value.bad { color:var(--bad); }
table { border-collapse:collapse; width:100%; font-size:14px; margin:6px 0 10px;
        font-variant-numeric:tabular-nums; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f1f5f9; font-weight:600; text-align:left; white-space:nowrap; }
td.num, th.num { text-align:right; white-space:nowrap; }
table.kv td:first-child { color:var(--muted); width:180px; white-space:nowrap; }
figure { margin:8px 0 4px; } figure svg { width:100%; height:auto; display:block; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
.badge { display:inline-block; font-size:12px; font-weight:600; padding:1px 8px; border-radius:99px;
         vertical-align:middle; margin-left:8px; }
.badge.accepted { background:#dcfce7; color:#166534; } .badge.rejected { background:#fee2e2; color:#991b1b; }
.badge.chosen { background:#dbeafe; color:#1e40af; }
blockquote { margin:8px 0 12px; padding:8px 14px; border-left:3px solid var(--accent);
             background:#f8fafc; color:#374151; }
.round { border-top:1px solid var(--line); padding-top:6px; margin-top:14px; }
.round:first-of-type { border-top:none; margin-top:0; }
.verdict { font-weight:600; } .muted { color:var(--muted); }
footer { color:var(--muted); font-size:13px; text-align:center; }
code { font:13px ui-monospace, Menlo, Consolas, monospace; background:#f1f5f9; padding:1px 4px;
       border-radius:4px; }
@media print { body { background:#fff; } section, .kpi { break-inside:avoid; } }
"#;

/// Renders the whole report as one HTML page.
pub fn render_html(report: &RunReport) -> String {
    let mut out = String::new();
    let name = escape(&report.model_name());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>ProfAgent report: {name}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
    );
    let _ = writeln!(out, "<h1>ProfAgent report: {name}</h1>");
    let _ = writeln!(
        out,
        "<p class=\"subtitle\">{} · planner {} · {} rounds · run time {}</p>",
        escape(&report.model.path),
        escape(&report.planner),
        report.rounds.len(),
        duration(report.seconds)
    );
    kpis(&mut out, report);

    open_section(&mut out, "overview", "Overview");
    out.push_str(&key_value_table(&tables::overview(report)));
    close_section(&mut out);

    let (before, after, slice) = report.before_after();
    open_section(&mut out, "before-after", "Before and after");
    let images = after.map(|a| a.images).unwrap_or(before.images);
    let _ = writeln!(
        out,
        "<p class=\"muted\">Measured on the {slice} slice ({images} images).</p>"
    );
    out.push_str(&html_table(&tables::before_after(report)));
    close_section(&mut out);

    open_section(
        &mut out,
        "trajectory",
        "Accuracy, latency and size across rounds",
    );
    let _ = writeln!(
        out,
        "<figure id=\"{TRAJECTORY_CHART_ID}\" data-points=\"{}\">{}<figcaption>Every candidate on the \
         feedback slice. The line follows the kept model (baseline, then accepted rounds); the dashed \
         line is the lowest top-1 the budget allows; the ringed point is the final model.</figcaption></figure>",
        charts::trajectory_point_count(report),
        chart_or_error(charts::trajectory_svg(report))
    );
    out.push_str(&html_table(&tables::trajectory(report)));
    close_section(&mut out);

    if !report.layers.is_empty() {
        open_section(&mut out, LAYERS_SECTION_ID, "Per-layer latency");
        let before_bars = report
            .layers
            .iter()
            .filter(|l| l.before_ms.is_some())
            .count();
        let after_bars = report
            .layers
            .iter()
            .filter(|l| l.after_ms.is_some())
            .count();
        let _ = writeln!(
            out,
            "<figure id=\"{LAYER_CHART_ID}\" data-layers=\"{}\" data-bars-before=\"{before_bars}\" \
             data-bars-after=\"{after_bars}\">{}<figcaption>Median latency of each layer at batch 1, \
             input model (grey) and final model (blue).</figcaption></figure>",
            report.layers.len(),
            chart_or_error(charts::layer_latency_svg(&report.layers))
        );
        out.push_str(&html_table(&tables::layers(report)));
        close_section(&mut out);
    }

    open_section(
        &mut out,
        "final-model",
        "Final model: pruning and quantization",
    );
    let pruning = tables::pruning(report);
    if pruning.is_empty() {
        out.push_str("<p>No channels were pruned.</p>\n");
    } else {
        out.push_str("<h3>Pruned groups</h3>\n");
        out.push_str(&html_table(&pruning));
    }
    let quantization = tables::quantization_summary(report);
    if quantization.is_empty() {
        out.push_str("<p>No layer is quantized.</p>\n");
    } else {
        out.push_str("<h3>Quantization</h3>\n");
        out.push_str(&html_table(&quantization));
    }
    close_section(&mut out);

    open_section(&mut out, "rounds", "Rounds");
    for round in &report.rounds {
        render_round(&mut out, round, report.chosen_round());
    }
    if report.rounds.is_empty() {
        out.push_str("<p>No round ran.</p>\n");
    }
    close_section(&mut out);

    open_section(&mut out, "probes", "Quantization probes");
    if report.quant_probes.is_empty() {
        out.push_str("<p>No quantization mode was probed on the baseline.</p>\n");
    } else {
        out.push_str(
            "<p class=\"muted\">Each mode measured on the baseline before planning.</p>\n",
        );
        out.push_str(&html_table(&tables::quant_probes(report)));
    }
    close_section(&mut out);

    if !report.sensitivity.is_empty() {
        open_section(&mut out, "sensitivity", "Pruning sensitivity");
        out.push_str(
            "<p class=\"muted\">Each group pruned alone on the baseline and scored on the feedback slice, least sensitive first. Expected drop: the loss increase times the points-per-nat slope fitted over all groups, less noisy than one top-1 difference; planners are given it.</p>\n",
        );
        out.push_str(&html_table(&tables::sensitivity(report)));
        close_section(&mut out);
    }

    open_section(&mut out, "machine", "Machine and runtime");
    out.push_str(&key_value_table(&tables::machine(report)));
    let data = tables::key_values(&report.data);
    if !data.is_empty() {
        out.push_str("<h3>Data</h3>\n");
        out.push_str(&key_value_table(&data));
    }
    close_section(&mut out);

    let _ = writeln!(
        out,
        "<footer>Generated by profagent {} from report.json ({}).</footer>\n</main>\n</body>\n</html>",
        escape(&report.tool_version),
        escape(&report.format)
    );
    out
}

/// A chart's SVG, or a visible note in its place (a report without one chart beats no report).
fn chart_or_error(chart: Result<String, ReportError>) -> String {
    chart.unwrap_or_else(|e| {
        format!(
            "<p class=\"muted\">Chart unavailable: {}</p>",
            escape(&e.to_string())
        )
    })
}

fn kpis(out: &mut String, report: &RunReport) {
    let Some(result) = &report.final_result else {
        return;
    };
    let (before, after, _) = report.before_after();
    let mut cards: Vec<(&str, String, &str)> = Vec::new();
    let drop = result
        .acc_drop
        .or(after.map(|a| crate::model::top1(before) - crate::model::top1(a)));
    if let Some(drop) = drop {
        let class = if drop <= report.budget.max_acc_drop {
            "good"
        } else {
            "bad"
        };
        let images = result.holdout_final.as_ref().map(|e| e.images).unwrap_or(0);
        cards.push((
            "Top-1 change",
            format::change(drop, result.drop_interval.as_ref(), images),
            class,
        ));
    }
    match &result.speed {
        Some(speed) => {
            let class = match speed.verdict() {
                SpeedVerdict::Faster => "good",
                SpeedVerdict::Slower => "bad",
                SpeedVerdict::NotDistinguishable => "",
            };
            cards.push(("Speed vs input, batch 1", format::speed(speed), class));
        }
        None => {
            let speedup = result
                .speedup
                .or(after.map(|a| before.latency_ms / a.latency_ms));
            if let Some(speedup) = speedup {
                cards.push((
                    "Speedup, batch 1 (no interval)",
                    format!("{speedup:.2}x"),
                    if speedup >= 1.0 { "good" } else { "bad" },
                ));
            }
        }
    }
    let reduction = result
        .size_reduction
        .or(after.map(|a| 1.0 - a.model_bytes as f64 / before.model_bytes.max(1) as f64));
    if let Some(reduction) = reduction {
        cards.push((
            "Size reduction",
            format!("{:.0} %", reduction * 100.0),
            "good",
        ));
    }
    let (met, class) = if result.budget_met {
        ("met", "good")
    } else {
        ("not met", "bad")
    };
    cards.push(("Budget", met.to_string(), class));
    out.push_str("<div class=\"kpis\">\n");
    for (label, value, class) in cards {
        let _ = writeln!(
            out,
            "<div class=\"kpi\"><div class=\"label\">{label}</div><div class=\"value {class}\">{}</div></div>",
            escape(&value)
        );
    }
    out.push_str("</div>\n");
}

fn render_round(out: &mut String, round: &RoundRecord, chosen: Option<usize>) {
    let status = tables::status(round, chosen);
    let badge = match (round.accepted, Some(round.round) == chosen) {
        (true, true) => "<span class=\"badge chosen\">accepted · chosen</span>",
        (true, false) => "<span class=\"badge accepted\">accepted</span>",
        (false, _) => "<span class=\"badge rejected\">rolled back</span>",
    };
    let _ = writeln!(
        out,
        "<div class=\"round\" id=\"round-{}\" data-status=\"{status}\">\n<h3>Round {}{badge}</h3>",
        round.round, round.round
    );
    let answers = if round.attempts == 1 {
        "answer"
    } else {
        "answers"
    };
    let _ = writeln!(
        out,
        "<p class=\"muted\">Planner {} · {} {answers} · {:.1} s</p>",
        escape(&round.planner),
        round.attempts,
        round.seconds
    );
    if let Some(plan) = &round.plan {
        if !plan.rationale.is_empty() {
            let _ = writeln!(out, "<blockquote>{}</blockquote>", escape(&plan.rationale));
        }
        let decisions = tables::decisions(round);
        if !decisions.is_empty() {
            out.push_str(&html_table(&decisions));
        }
        let quantization = tables::quantization_plan(round);
        if !quantization.is_empty() {
            out.push_str(&html_table(&quantization));
        }
    }
    let verdicts = tables::verdicts(round);
    if verdicts.is_empty() {
        out.push_str("<p>Validator: plan accepted, no warnings.</p>\n");
    } else {
        out.push_str("<p>Validator:</p>\n");
        out.push_str(&html_table(&verdicts));
    }
    let _ = writeln!(
        out,
        "<p>Result: {}.<br><span class=\"verdict\">Verdict:</span> {}</p>\n</div>",
        escape(&tables::round_result(round)),
        escape(&round.verdict)
    );
}

fn open_section(out: &mut String, id: &str, title: &str) {
    let _ = writeln!(out, "<section id=\"{id}\">\n<h2>{title}</h2>");
}

fn close_section(out: &mut String) {
    out.push_str("</section>\n");
}

fn html_table(table: &Table) -> String {
    let class = |align: Align| match align {
        Align::Left => "",
        Align::Right => " class=\"num\"",
    };
    let mut out = String::from("<table>\n<thead><tr>");
    for (header, align) in table.headers.iter().zip(&table.align) {
        let _ = write!(out, "<th{}>{}</th>", class(*align), escape(header));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (cell, align) in row.iter().zip(&table.align) {
            let _ = write!(out, "<td{}>{}</td>", class(*align), escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

fn key_value_table(table: &Table) -> String {
    let mut out = String::from("<table class=\"kv\">\n<tbody>\n");
    for row in &table.rows {
        if let [key, value] = row.as_slice() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(key),
                escape(value)
            );
        }
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
