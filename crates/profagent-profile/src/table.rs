//! Plain-text rendering of a profile for the terminal: the heaviest layers, totals, and any
//! gaps of the analysis. No colours: the output is meant to be pasted and diffed.
use crate::types::{LayerProfile, Profile};

/// `1234567` → `1.23M` (K/M/G/T, three significant digits).
pub fn human_count(value: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")];
    let v = value as f64;
    for (scale, unit) in UNITS {
        if v >= scale {
            return format!("{}{unit}", three_digits(v / scale));
        }
    }
    value.to_string()
}

/// `1536` → `1.54 KB`: decimal units, the same text as every other command and the report
/// (`profagent_onnx::units::bytes`).
pub fn human_bytes(value: u64) -> String {
    profagent_onnx::units::bytes(value)
}

fn three_digits(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// How the table ranks layers: by measured latency when every layer has one (noise-aware, see
/// `rank`), else by MACs.
fn ranked(profile: &Profile) -> (Vec<&LayerProfile>, &'static str) {
    if let Some(order) = crate::rank::latency_order(&profile.layers) {
        return (
            order.into_iter().map(|i| &profile.layers[i]).collect(),
            "latency",
        );
    }
    let mut layers: Vec<&LayerProfile> = profile.layers.iter().collect();
    layers.sort_by(|a, b| b.macs.cmp(&a.macs).then(b.params.cmp(&a.params)));
    (layers, "MACs")
}

struct Column {
    title: &'static str,
    left_aligned: bool,
}

/// The `top_k` heaviest layers as an aligned table, then totals and coverage notes.
pub fn render_table(profile: &Profile, top_k: usize) -> String {
    let (layers, ranking) = ranked(profile);
    let ranking = if ranking == "latency" {
        format!(
            "latency (identical layers pooled; within {:.0} % of each other, more MACs first)",
            crate::rank::RANK_TIE_TOLERANCE * 100.0
        )
    } else {
        ranking.to_string()
    };
    let with_latency = layers.iter().any(|l| l.latency_ms.is_some());
    let with_kernels = layers.iter().any(|l| l.kernels.is_some());
    let mut columns = vec![
        Column {
            title: "layer",
            left_aligned: true,
        },
        Column {
            title: "ops",
            left_aligned: true,
        },
        Column {
            title: "params",
            left_aligned: false,
        },
        Column {
            title: "MACs",
            left_aligned: false,
        },
        Column {
            title: "MAC share",
            left_aligned: false,
        },
        Column {
            title: "weights",
            left_aligned: false,
        },
        Column {
            title: "activations",
            left_aligned: false,
        },
    ];
    if with_latency {
        columns.push(Column {
            title: "latency",
            left_aligned: false,
        });
        columns.push(Column {
            title: "time share",
            left_aligned: false,
        });
    }
    if with_kernels {
        columns.push(Column {
            title: "kernels",
            left_aligned: true,
        });
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for layer in layers.iter().take(top_k) {
        let mut row = vec![
            layer.name.clone(),
            summarize_ops(&layer.op_types),
            human_count(layer.params),
            human_count(layer.macs),
            percent(layer.macs_share),
            human_bytes(layer.weight_bytes),
            human_bytes(layer.activation_bytes),
        ];
        if with_latency {
            row.push(
                layer
                    .latency_ms
                    .map(|v| format!("{v:.3} ms"))
                    .unwrap_or_default(),
            );
            row.push(layer.latency_share.map(percent).unwrap_or_default());
        }
        if with_kernels {
            row.push(
                layer
                    .kernels
                    .as_ref()
                    .map(crate::fusion::kernels_cell)
                    .unwrap_or_default(),
            );
        }
        rows.push(row);
    }
    let m = &profile.model;
    let mut total = vec![
        "total".to_string(),
        format!("{} nodes", m.node_count),
        human_count(m.params),
        human_count(m.macs),
        "100.0%".to_string(),
        human_bytes(m.weight_bytes),
        human_bytes(m.activation_bytes),
    ];
    if with_latency {
        total.push(
            m.latency_ms
                .map(|v| format!("{v:.3} ms"))
                .unwrap_or_default(),
        );
        total.push(String::new());
    }
    if with_kernels {
        total.push(String::new());
    }

    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .chain(std::iter::once(&total))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(c.title.len())
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&columns)
            .zip(&widths)
            .map(|((cell, c), &w)| {
                if c.left_aligned {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };

    let mut out = String::new();
    let shown = top_k.min(layers.len());
    out.push_str(&format!(
        "{} layers, {} nodes at batch {}; top {shown} by {ranking}:\n",
        m.layer_count, m.node_count, m.batch
    ));
    out.push_str(&line(columns.iter().map(|c| c.title).collect()));
    out.push('\n');
    let rule_width: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    out.push_str(&"-".repeat(rule_width));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out.push_str(&"-".repeat(rule_width));
    out.push('\n');
    out.push_str(&line(total.iter().map(String::as_str).collect()));
    out.push('\n');
    if let Some(rss) = m.peak_rss_bytes {
        out.push_str(&format!("peak memory: {}\n", human_bytes(rss)));
    }
    out.push_str(&coverage_notes(profile));
    out
}

/// `["Conv", "Relu", "Add", "MaxPool"]` → `Conv+Relu+Add+1`, keeping the column narrow.
fn summarize_ops(ops: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut s = ops
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("+");
    if ops.len() > SHOWN {
        s.push_str(&format!("+{}", ops.len() - SHOWN));
    }
    s
}

/// Notes on what the static analysis could not see (empty when complete).
pub fn coverage_notes(profile: &Profile) -> String {
    let c = &profile.coverage;
    let mut out = String::new();
    if !c.unsupported_ops.is_empty() {
        let ops: Vec<String> = c
            .unsupported_ops
            .iter()
            .map(|(op, n)| format!("{op} x{n}"))
            .collect();
        out.push_str(&format!(
            "note: shape inference does not know {}; sizes after them may be missing\n",
            ops.join(", ")
        ));
    }
    if !c.nodes_without_macs.is_empty() {
        out.push_str(&format!(
            "note: MACs unknown for {} compute node(s) (e.g. {}): MAC totals are a lower bound\n",
            c.nodes_without_macs.len(),
            c.nodes_without_macs[0]
        ));
    }
    if c.values_without_shape > 0 {
        out.push_str(&format!(
            "note: {} value(s) have unknown size and are left out of activation bytes\n",
            c.values_without_shape
        ));
    }
    out
}
