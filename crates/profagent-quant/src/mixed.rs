//! Mixed per-layer modes: one model with, say, static int8 convolutions, dynamic int8
//! MatMuls and a sensitive layer left in float (`QuantSpec::layer_modes`).
//!
//! Every quantizable node (Conv, Gemm, MatMul) gets exactly one mode, decided on the input
//! graph before anything is rewritten: the last `LayerMode` whose pattern matches it, else the
//! spec's `mode` when its `layers` select it, else float. The single-mode passes then run one
//! after the other on the output of the previous one, each selecting exactly its nodes by name
//! (`node:NAME`): static first (its ranges are calibrated on the float model, as in a
//! single-mode run), then dynamic, then int4. Nodes without a name get the name their layer
//! already has (`Op#index`) in the working copy, so layer names stay what the plan saw while
//! earlier passes add and remove nodes.
use std::collections::BTreeMap;

use profagent_onnx::{ActivationSource, Model};

use crate::error::{QuantError, Result};
use crate::select::{NodeId, Selection, Verdict};
use crate::spec::{Mode, QuantReport, QuantSpec, SkippedLayer};

/// The order passes run in: static QDQ needs float activations to calibrate.
const PASS_ORDER: [Mode; 3] = [Mode::Static, Mode::Dynamic, Mode::Int4];

/// Quantizes `model` with the per-layer modes of `spec` (see the module docs).
pub fn quantize_mixed(
    model: &Model,
    spec: &QuantSpec,
    mut calibration: Option<&mut dyn ActivationSource>,
) -> Result<(Model, QuantReport)> {
    let mut current = named_copy(model);
    let assignment = assign(current.graph(), spec)?;
    let mut report = QuantReport {
        mode: "mixed".into(),
        ..Default::default()
    };
    let mut counts: Vec<String> = Vec::new();
    let mut skipped: BTreeMap<String, SkippedLayer> = BTreeMap::new();
    for mode in PASS_ORDER {
        let nodes: Vec<&str> = assignment
            .iter()
            .filter(|(_, m)| **m == Some(mode))
            .map(|(node, _)| node.as_str())
            .collect();
        if nodes.is_empty() {
            continue;
        }
        let pass = QuantSpec {
            mode,
            layers: Selection {
                include: nodes.iter().map(|n| format!("node:{n}")).collect(),
                exclude: Vec::new(),
            },
            layer_modes: Vec::new(),
            ..spec.clone()
        };
        let source = match mode {
            Mode::Static => calibration.take(),
            _ => None,
        };
        let (out, pass_report) = crate::quantize(&current, &pass, source)?;
        counts.push(format!("{} {}", mode.name(), pass_report.quantized.len()));
        for layer in pass_report.skipped {
            // Only reasons about nodes this pass was given; the rest belong to other passes.
            if assignment.get(&layer.node) == Some(&Some(mode)) {
                skipped.insert(layer.node.clone(), layer);
            }
        }
        report.quantized.extend(pass_report.quantized);
        report.notes.extend(pass_report.notes);
        report.quantized_activations += pass_report.quantized_activations;
        report.folded_relus += pass_report.folded_relus;
        report.calibration_batches += pass_report.calibration_batches;
        current = out;
    }
    let graph = current.graph();
    for (i, node) in graph.node.iter().enumerate() {
        if assignment.get(node.name()) == Some(&None) {
            let id = NodeId::of(graph, i);
            skipped.insert(
                id.node.clone(),
                SkippedLayer {
                    layer: id.layer,
                    node: id.node,
                    op_type: id.op_type,
                    reason: "kept in float by its per-layer mode".into(),
                },
            );
        }
    }
    report.skipped = skipped.into_values().collect();
    if counts.len() == 1 {
        // One mode and some layers in float: the report reads as that mode.
        report.mode = counts[0].split(' ').next().unwrap_or("mixed").to_string();
    }
    let float = assignment.values().filter(|m| m.is_none()).count();
    counts.push(format!("float {float}"));
    report
        .notes
        .push(format!("per-layer modes: {}", counts.join(", ")));
    if report.quantized.is_empty() {
        return Ok((model.clone(), report));
    }
    Ok((current, report))
}

/// A copy of `model` whose unnamed nodes are named after their layer (`Op#index`, the name
/// `profagent_onnx::layer_of_node` gives them), so later passes find them by name.
fn named_copy(model: &Model) -> Model {
    let mut out = model.clone();
    let graph = out.graph_mut();
    for (i, node) in graph.node.iter_mut().enumerate() {
        if node.name().is_empty() {
            let name = profagent_onnx::index::node_label(node, i);
            node.name = Some(name);
        }
    }
    out
}

/// Node name → the mode it gets (`None`: float), for every Conv/Gemm/MatMul of `graph`.
pub fn assign(
    graph: &profagent_onnx::proto::GraphProto,
    spec: &QuantSpec,
) -> Result<BTreeMap<String, Option<Mode>>> {
    let base = spec.layers.resolve(graph)?;
    let overrides = spec
        .layer_modes
        .iter()
        .map(|l| {
            let selection = Selection {
                include: vec![l.pattern.clone()],
                exclude: Vec::new(),
            };
            Ok((selection.resolve(graph)?, l.mode))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut assignment = BTreeMap::new();
    for i in 0..graph.node.len() {
        if !matches!(graph.node[i].op_type(), "MatMul" | "Gemm" | "Conv") {
            continue;
        }
        let id = NodeId::of(graph, i);
        let chosen = overrides
            .iter()
            .rev()
            .find(|(resolved, _)| matches!(resolved.verdict(&id), Verdict::Selected))
            .map(|(_, mode)| *mode);
        let mode = match chosen {
            Some(mode) => mode,
            None => match base.verdict(&id) {
                Verdict::Selected => Some(spec.mode),
                Verdict::Skipped(_) => None,
            },
        };
        if assignment.insert(id.node.clone(), mode).is_some() {
            return Err(QuantError::Node {
                node: id.node,
                op_type: id.op_type,
                reason: "two nodes have this name; per-layer modes need unique node names (rename them or use one mode)".into(),
            });
        }
    }
    Ok(assignment)
}
