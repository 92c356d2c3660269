//! The analysis prompt: compact tables of the heaviest layers and groups, measured
//! quantization behaviour, the budget and the history, sized for small context windows.
use std::fmt::Write;

use crate::facts::{
    GroupFacts, LayerFacts, PairedAccuracy, PlanningInput, SpeedComparison, SpeedVerdict,
};

/// Rows per table: enough to show where time goes without flooding a 4k-token window.
pub const MAX_LAYER_ROWS: usize = 12;
pub const MAX_HISTORY_ROWS: usize = 6;

pub const SYSTEM_PROMPT: &str = "You are a model-compression engineer. You plan structured pruning and post-training quantization of an ONNX model for CPU inference, from measured profiles. You answer with exactly one JSON object that follows the given schema, nothing else.";

/// A short, exact description of the answer format (also useful when the server cannot
/// enforce the JSON Schema).
const FORMAT: &str = r#"Answer format (JSON, no comments):
{"schema_version": 1,
 "rationale": "why, in 1-3 sentences",
 "pruning": [{"target": "<group id>", "ratio": 0.25 or "keep": 48, "unit": "channels"|"heads", "criterion": "obs"|"l1"|"l2"|"random", "round_to": 8, "rationale": "..."}],
 "quantization": {"default": {"mode": "none"|"dynamic"|"static"|"int4", "per_channel": true, "signed_weights": true},
                  "layers": [{"layer": "<layer name>", "mode": "none", "rationale": "..."}], "rationale": "..."}}
Criteria: obs removes the units whose loss the next layers' least-squares refit compensates best (data-aware, from calibration data); l1/l2 by weight magnitude; random is a baseline.
Rules: give either ratio (the fraction of the group's CURRENT units to remove, 0 < ratio <= 0.9, kept count rounded to round_to) or keep (the exact number of units to keep, at least 10 % of the current ones), not both; use only group ids and layer names from the tables; omit "quantization" to keep the current quantization; an empty "pruning" list prunes nothing."#;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The user message for one round.
pub fn build_prompt(input: &PlanningInput) -> String {
    let mut p = String::new();
    let b = &input.budget;
    let _ = writeln!(
        p,
        "Model: {} ({}), runtime {}.",
        input.model_name, input.family, input.runtime
    );
    let _ = writeln!(
        p,
        "Baseline: top-1 {}, batch-1 latency {:.2} ms, size {:.2} MB.",
        top1_text(&input.baseline),
        input.baseline.latency_ms,
        mb(input.baseline.model_bytes)
    );
    let _ = writeln!(
        p,
        "Current (start of this round): top-1 {}{}, {:.2} ms, {:.2} MB{}, quantization {}.",
        top1_text(&input.current),
        input
            .current
            .accuracy_change
            .filter(|_| input.history.iter().any(|h| h.accepted))
            .map(|c| format!(", change against the input {}", change_text(&c)))
            .unwrap_or_default(),
        input.current.latency_ms,
        mb(input.current.model_bytes),
        match (input.current.macs, input.baseline.macs) {
            (Some(now), Some(base)) if base > 0 => format!(
                ", {:.1} MMACs ({:.1} % of the input's)",
                now as f64 / 1e6,
                100.0 * now as f64 / base as f64
            ),
            _ => String::new(),
        },
        input.current_quantization
    );
    let mut goals = vec![format!("top-1 drop at most {:.2} points", b.max_acc_drop)];
    if let Some(c) = b.min_cosine {
        goals.push(format!(
            "mean output cosine with the input model at least {c} (current {})",
            input
                .current
                .cosine
                .map(|v| format!("{v:.5}"))
                .unwrap_or_else(|| "not measured".into())
        ));
    }
    // Accuracy and fidelity bounds; what follows are targets.
    let bounds = goals.len();
    if let Some(ms) = b.target_latency_ms {
        goals.push(format!("latency at most {ms:.2} ms"));
    }
    if let Some(bytes) = b.target_memory_bytes {
        goals.push(format!("size at most {:.2} MB", mb(bytes)));
    }
    if let Some(x) = b.target_speedup {
        goals.push(format!("speedup at least {x:.2}x"));
    }
    if let Some(f) = b.target_macs_fraction {
        goals.push(format!(
            "MACs at most {:.0} % of the input model's (pruning only: quantization keeps MACs)",
            f * 100.0
        ));
    }
    if goals.len() == bounds {
        goals.push("otherwise as fast and small as possible".into());
    }
    let _ = writeln!(
        p,
        "Budget: {}. Rounds left after this one: {}.",
        goals.join("; "),
        input.rounds_left
    );

    write_budget_left(&mut p, input);
    write_rules(&mut p, input);

    let any_layer_ms = input.layers.iter().any(|l| l.latency_ms.is_some());
    let any_scaled = input.layers.iter().any(|l| l.latency_scaled);
    let mut layers: Vec<_> = input.layers.iter().collect();
    layers.sort_by(|a, c| {
        let key = |l: &LayerFacts| l.latency_ms.unwrap_or(l.macs as f64 * 1e-9);
        key(c).total_cmp(&key(a)).then(a.name.cmp(&c.name))
    });
    let _ = writeln!(
        p,
        "\nHeaviest layers (of {}){}:\nlayer | op | params | MMACs | ms | mem MB",
        input.layers.len(),
        latency_source(any_layer_ms, any_scaled)
    );
    for l in layers.iter().take(MAX_LAYER_ROWS) {
        let _ = writeln!(
            p,
            "{} | {} | {} | {:.1} | {} | {}",
            l.name,
            l.op_type,
            l.params,
            l.macs as f64 / 1e6,
            l.latency_ms
                .map(|v| format!("{v:.3}{}", if l.latency_scaled { "*" } else { "" }))
                .unwrap_or_else(|| "-".into()),
            l.memory_bytes
                .map(|v| format!("{:.2}", mb(v)))
                .unwrap_or_else(|| "-".into()),
        );
    }

    write_groups(&mut p, input);

    if !input.quant_probes.is_empty() {
        let _ = writeln!(p, "\nMeasured quantization of the input model on this runtime (speedup: median of interleaved runs against the input, 95 % interval; top-1 drop: paired on the same images):\nmode | ms | speedup [interval] | MB | top-1");
        for q in &input.quant_probes {
            match &q.error {
                Some(e) => {
                    let _ = writeln!(p, "{} | failed: {e}", q.label());
                }
                None => {
                    let _ = writeln!(
                        p,
                        "{} | {:.2} | {:.2}x{} | {:.2} | {}{}",
                        q.label(),
                        q.latency_ms,
                        q.speedup,
                        q.speed
                            .as_ref()
                            .map(|s| format!(
                                " [{:.2}-{:.2}] {}",
                                s.speedup.low,
                                s.speedup.high,
                                verdict_word(s)
                            ))
                            .unwrap_or_default(),
                        mb(q.model_bytes),
                        q.top1
                            .map(|t| format!("{t:.2}"))
                            .unwrap_or_else(|| "-".into()),
                        q.cosine
                            .map(|c| format!(" (output cosine {c:.5})"))
                            .unwrap_or_default()
                    );
                    if let Some(kernels) = &q.kernels {
                        let _ = writeln!(p, "  {} on the runtime: {kernels}", q.label());
                    }
                    if !q.calibration_trials.is_empty() {
                        let trials: Vec<String> =
                            q.calibration_trials.iter().map(|t| t.describe()).collect();
                        let _ = writeln!(
                            p,
                            "  calibration methods on the same graph (top-1 on the feedback slice; set quantization.default.calibration): {}; the row above is {}",
                            trials.join(", "),
                            q.calibration.unwrap_or_default().as_str()
                        );
                    }
                }
            }
        }
    }

    if !input.history.is_empty() {
        let _ = writeln!(
            p,
            "\nEarlier rounds (latest last; top-1 change: paired with the input model on the same feedback images, 95 % interval; speed: the candidate timed against the input, interleaved, 95 % interval):\nround | plan | top-1 | top-1 change [interval] | MMACs | ms | speed vs input [interval] | MB | accepted | note"
        );
        let skip = input.history.len().saturating_sub(MAX_HISTORY_ROWS);
        for h in input.history.iter().skip(skip) {
            let _ = writeln!(
                p,
                "{} | {} | {} | {} | {} | {} | {} | {} | {} | {}",
                h.round,
                h.plan,
                h.top1
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into()),
                h.accuracy_change
                    .map(|c| change_text(&c))
                    .unwrap_or_else(|| "-".into()),
                h.macs
                    .map(|m| format!("{:.1}", m as f64 / 1e6))
                    .unwrap_or_else(|| "-".into()),
                h.latency_ms
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into()),
                h.speed
                    .as_ref()
                    .map(speed_text)
                    .unwrap_or_else(|| "-".into()),
                h.model_bytes
                    .map(|v| format!("{:.2}", mb(v)))
                    .unwrap_or_else(|| "-".into()),
                if h.accepted { "yes" } else { "no" },
                h.note
            );
        }
    }
    let _ = writeln!(p, "\n{FORMAT}");
    p
}

/// The follow-up message after an invalid answer.
pub fn repair_prompt(problems: &str) -> String {
    format!(
        "Your answer cannot be used:\n{problems}\nReturn the corrected, complete plan as one JSON object in the same format, using only group ids and layer names from the tables."
    )
}

/// "91.20 % (95 % interval 89.4–92.7, 1000 images)" or "not measured (no labels)".
fn top1_text(evaluation: &crate::facts::Evaluation) -> String {
    match (evaluation.top1, evaluation.top1_interval) {
        (Some(t), Some(i)) => format!(
            "{t:.2} % (95 % interval {:.1}-{:.1}, {} images)",
            i.low, i.high, evaluation.images
        ),
        (Some(t), None) => format!("{t:.2} %"),
        (None, _) => "not measured (no labels)".into(),
    }
}

/// How the "ms" columns were obtained, for the table titles.
fn latency_source(any_measured: bool, any_scaled: bool) -> &'static str {
    match (any_measured, any_scaled) {
        (false, _) => ", by MACs; ms - = latency not measured",
        (true, false) => {
            ", slowest first; ms = median latency measured on the input model by the runtime's profiler"
        }
        (true, true) => {
            ", slowest first; ms = median latency measured on the input model by the runtime's profiler, * = a layer pruning has shrunk since: the input's ms scaled by its MACs now / then (an estimate, not measured on this model)"
        }
    }
}

/// What is left of the budget on every axis it names, from the current model's measurements:
/// the planner should not have to subtract.
fn write_budget_left(p: &mut String, input: &PlanningInput) {
    let b = &input.budget;
    let (base, now) = (&input.baseline, &input.current);
    let mut rows = Vec::new();
    let drop = input.drop_of(now.top1);
    if base.top1.is_some() {
        let margin = crate::estimate::confidence_margin(input)
            .map(|m| {
                format!(
                    "; the loop accepts a plan only if its measured drop stays below what is left by the confidence margin of {}",
                    m.describe()
                )
            })
            .unwrap_or_default();
        rows.push(format!(
            "top-1: {drop:.2} points below the input on the feedback images so far; {:.2} of the {:.2} allowed left{margin}",
            crate::estimate::accuracy_left(input),
            b.max_acc_drop
        ));
    }
    if let Some(min) = b.min_cosine {
        let cos = now.cosine.unwrap_or(1.0);
        rows.push(format!(
            "output cosine: {cos:.5} now, at least {min} required; {:.5} of cosine left to lose",
            (cos - min).max(0.0)
        ));
    }
    if let (Some(f), Some(n), Some(base_macs)) = (b.target_macs_fraction, now.macs, base.macs) {
        let share = n as f64 / base_macs.max(1) as f64;
        let missing = (n as f64 - f * base_macs as f64).max(0.0);
        rows.push(format!(
            "MACs: {:.1} % of the input's now ({:.1} MMACs), target at most {:.1} %: {}",
            share * 100.0,
            n as f64 / 1e6,
            f * 100.0,
            if missing > 0.0 {
                format!(
                    "{:.1} MMACs more to remove ({:.1} % of what is left)",
                    missing / 1e6,
                    100.0 * missing / n.max(1) as f64
                )
            } else {
                "met".into()
            }
        ));
    }
    if let Some(x) = b.target_speedup {
        rows.push(format!(
            "speed: {} against the input now, target at least {x:.2}x",
            now.speed
                .as_ref()
                .map(speed_text)
                .unwrap_or_else(|| format!("{:.2}x", base.latency_ms / now.latency_ms.max(1e-9)))
        ));
    }
    if let Some(ms) = b.target_latency_ms {
        rows.push(format!(
            "latency: {:.2} ms now, target at most {ms:.2} ms",
            now.latency_ms
        ));
    }
    if let Some(bytes) = b.target_memory_bytes {
        rows.push(format!(
            "size: {:.2} MB now, target at most {:.2} MB",
            mb(now.model_bytes),
            mb(bytes)
        ));
    }
    let _ = writeln!(p, "\nBudget left (current model against the input):");
    for row in rows {
        let _ = writeln!(p, "- {row}");
    }
}

/// How the loop judges a plan and when it stops, so a planner can plan for it.
fn write_rules(p: &mut String, input: &PlanningInput) {
    let images = input.baseline.images.max(1);
    let _ = writeln!(
        p,
        "\nLoop rules: your plan is applied to the CURRENT model (pruning first, then quantization of the pruned float model) and measured on the same {images} feedback images (one image = {:.2} top-1 points, so differences of a few images are noise). It is accepted only if the {:.0} % upper confidence bound of its paired top-1 drop against the input stays within the budget{} and it improves on the current model{}; otherwise it is rolled back. The run stops as soon as every target is met, when the rounds run out{}, or when you propose no change. Estimates in the group table are linear in the ratio only near the probed ratio: cutting far beyond it has not been measured.",
        100.0 / images as f64,
        input.budget.acc_confidence * 100.0,
        if input.budget.min_cosine.is_some() {
            " and its output cosine keeps the bound"
        } else {
            ""
        },
        match input.budget.objective() {
            profagent_record::Objective::Macs => " by at least 0.5 % of the MACs",
            profagent_record::Objective::Size => " by at least 2 % of the size",
            profagent_record::Objective::Speed => " in measured speed (interleaved timing)",
        },
        if input.patience > 0 {
            format!(
                ", after {} round(s) in a row with nothing accepted",
                input.patience
            )
        } else {
            String::new()
        }
    );
}

/// Where a group's sensitivity comes from: "input" (measured before round 1 on the input
/// model), "round N" (re-measured on round N's accepted model), with "STALE" when the group
/// has lost units since (the measurement describes a wider group).
fn measured_on(g: &GroupFacts) -> String {
    let Some(round) = g.measured_round else {
        return "-".into();
    };
    let model = if round == 0 {
        "input".to_string()
    } else {
        format!("round {round}")
    };
    match g.probed_from {
        Some(from) if from != g.units() => format!("{model} (STALE: {from} units then)"),
        _ => model,
    }
}

/// The prunable-groups table, every group: units now and in the input, cost (MACs, measured
/// ms, and both per unit), and the sensitivity measurement with what it is: the measured top-1
/// drop on n images (one image is 100/n points) and the loss-fitted estimate, each labelled,
/// at the ratio actually probed and on the model it was probed on.
fn write_groups(p: &mut String, input: &PlanningInput) {
    let any_ms = input.groups.iter().any(|g| g.latency_ms.is_some());
    let any_scaled = input.layers.iter().any(|l| l.latency_scaled);
    let (mut groups, frozen): (Vec<_>, Vec<_>) = input.groups.iter().partition(|g| g.prunable);
    groups.sort_by(|a, b| {
        let key = |g: &GroupFacts| g.latency_ms.unwrap_or(g.macs as f64 * 1e-9);
        key(b).total_cmp(&key(a)).then(a.id.cmp(&b.id))
    });
    let _ = writeln!(
        p,
        "\nPrunable groups (all {}){}:",
        groups.len(),
        if any_ms {
            ", slowest first; ms = summed latency of the layers the group touches (its producers and the layers that read its channels)"
        } else {
            ", by MACs; ms - = latency not measured"
        }
    );
    if any_ms && any_scaled {
        let _ = writeln!(
            p,
            "(ms of layers pruning has shrunk since the input model are the input's ms scaled by their MACs: estimates.)"
        );
    }
    let images = input.groups.iter().find_map(|g| g.probed_images);
    let probed = input.groups.iter().any(|g| g.probed_ratio.is_some());
    if probed {
        let _ = writeln!(
            p,
            "Sensitivity, measured with only that group pruned (probed = fraction of its units removed then; two or three values 'a / b / c' = the group was also probed deeper, on the same model, and the cost between the ratios is measured, not extrapolated; measured on = the model it was probed on: the input model before round 1, or an accepted round's model, STALE when the group has lost units since): {}; fitted drop = the group's cross-entropy increase times a points-per-nat slope fitted over all groups measured together (an ESTIMATE, smoother than one group's measured drop; - = too few groups to fit); cosine lost = output cosine with the input model lost by that pruning. Drops are in top-1 points against the model probed; - = not measured.",
            match images {
                Some(n) if n > 0 => format!(
                    "measured drop = top-1 lost on {n} feedback images (one image = {:.2} points, so a difference of a few images is noise)",
                    100.0 / n as f64
                ),
                _ => "measured drop = top-1 lost on the feedback images".into(),
            }
        );
    }
    let _ = writeln!(
        p,
        "group id | units now/input | heads | params | MMACs | ms | MMACs/unit | ms/unit | probed | measured drop | fitted drop | cosine lost | measured on | note"
    );
    let dash = || "-".to_string();
    for g in groups {
        let mut note = Vec::new();
        if g.residual {
            note.push(
                "residual stream (skip-connection Add: pruning thins every block on it)".into(),
            );
        }
        if let Some(n) = g.note.as_deref().filter(|n| !n.is_empty()) {
            note.push(n.to_string());
        }
        if let Some(block) = g.runtime_block {
            note.push(format!(
                "the runtime pads this width to a multiple of {block} here: keep a multiple of {block} (round_to {block}), any other count runs as slowly as the next multiple up"
            ));
        }
        // Heads groups are cut in heads: their cost per unit is per head.
        let units = g.heads.unwrap_or(g.channels).max(1) as f64;
        let _ = writeln!(
            p,
            "{} | {}/{} | {} | {} | {:.1} | {} | {:.3} | {} | {} | {} | {} | {} | {} | {}",
            g.id,
            g.channels,
            g.original_channels.unwrap_or(g.channels),
            g.heads.map(|h| h.to_string()).unwrap_or_else(dash),
            g.params,
            g.macs as f64 / 1e6,
            g.latency_ms.map(|v| format!("{v:.3}")).unwrap_or_else(dash),
            g.macs as f64 / 1e6 / units,
            g.latency_ms
                .map(|v| format!("{:.4}", v / units))
                .unwrap_or_else(dash),
            with_deeper(
                g.probed_ratio.map(|r| format!("{:.0} %", r * 100.0)),
                deeper_cells(g, |d| Some(format!("{:.0} %", d.ratio * 100.0))),
            ),
            with_deeper(
                g.measured_drop.map(|d| format!("{d:.2}")),
                deeper_cells(g, |d| d.measured_drop.map(|v| format!("{v:.2}"))),
            ),
            with_deeper(
                g.fitted_drop.map(|d| format!("{d:.2}")),
                deeper_cells(g, |d| d.fitted_drop.map(|v| format!("{v:.2}"))),
            ),
            with_deeper(
                g.fidelity_loss.map(|l| format!("{l:.5}")),
                deeper_cells(g, |d| d.fidelity_loss.map(|v| format!("{v:.5}"))),
            ),
            measured_on(g),
            note.join("; "),
        );
    }
    if !frozen.is_empty() {
        let mut ids: Vec<&str> = frozen.iter().map(|g| g.id.as_str()).collect();
        ids.sort_unstable();
        let _ = writeln!(
            p,
            "Not prunable (the pruner cannot follow their channels, or they are the model's input or output; do not target them): {}",
            ids.join(", ")
        );
    }
}

/// A sensitivity cell: the first probe's value, then " / " and each deeper probe's when the
/// group has them ("-" for a missing value).
fn with_deeper(first: Option<String>, deeper: Vec<String>) -> String {
    std::iter::once(first.unwrap_or_else(|| "-".to_string()))
        .chain(deeper)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// One value per deeper probe of `g` (`deeper`, then `deepest`), "-" where `value` has none.
fn deeper_cells(
    g: &GroupFacts,
    value: impl Fn(&crate::facts::DeeperProbe) -> Option<String>,
) -> Vec<String> {
    [&g.deeper, &g.deepest]
        .into_iter()
        .flatten()
        .map(|d| value(d).unwrap_or_else(|| "-".to_string()))
        .collect()
}

/// "faster", "SLOWER" or "not distinguishable": the interleaved comparison's verdict.
fn verdict_word(speed: &SpeedComparison) -> &'static str {
    match speed.verdict() {
        SpeedVerdict::Faster => "faster",
        SpeedVerdict::Slower => "SLOWER",
        SpeedVerdict::NotDistinguishable => "not distinguishable",
    }
}

/// "1.31x [1.27-1.36] faster".
fn speed_text(speed: &SpeedComparison) -> String {
    format!(
        "{:.2}x [{:.2}-{:.2}] {}",
        speed.speedup.value,
        speed.speedup.low,
        speed.speedup.high,
        verdict_word(speed)
    )
}

/// "-0.40 [-1.12, +0.31] on 1000 images": the paired top-1 change against the input model
/// (negative: worse) with its 95 % interval.
fn change_text(change: &PairedAccuracy) -> String {
    let drop = change.drop_interval(profagent_stats::REPORT_CONFIDENCE);
    format!(
        "{:+.2} [{:+.2}, {:+.2}] on {} images",
        -drop.value, -drop.high, -drop.low, change.samples
    )
}
