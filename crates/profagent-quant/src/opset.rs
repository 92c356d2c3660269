//! Raising a model's default-domain opset to 13, which per-channel QuantizeLinear/
//! DequantizeLinear need (the `axis` attribute), so that old exports (tf2onnx at opset 9,
//! torch at opset 11) can be quantized statically without a re-export.
//!
//! Relabelling the opset is only sound when every op of the graph means the same at 13. Each
//! op is either in `UNCHANGED_SINCE` (its definition from that opset to 13 only added types or
//! optional features with backward-compatible defaults), rewritten here to its opset-13 form
//! (attributes that became inputs: Squeeze, Unsqueeze, Split, ReduceSum, Clip, Pad, Slice,
//! TopK, Dropout; Softmax-family axes when the input's rank is known), or a blocker: an op
//! we cannot vouch for stops the upgrade and is named in the error.
//!
//! The table is checked against the ONNX operator changelog (docs/Changelog.md) up to opset 13.
use std::collections::BTreeMap;

use profagent_onnx::proto::{AttributeProto, NodeProto};
use profagent_onnx::{attr, tensor, Model, NameGen, Patch, ShapeFacts, ShapeOptions};

use crate::error::Result;
use crate::linear::default_opset;

/// The opset the upgrade writes.
pub const UPGRADE_OPSET: i64 = 13;
/// IR version that opset 13 needs at least.
const IR_VERSION_FOR_OPSET_13: i64 = 7;

/// Op → the oldest opset from which the op means the same as at opset 13.
const UNCHANGED_SINCE: &[(&str, i64)] = &[
    ("Abs", 6),
    ("Add", 7),
    ("And", 7),
    ("ArgMax", 1),
    ("ArgMin", 1),
    ("AveragePool", 7),
    ("Cast", 6),
    ("Ceil", 6),
    ("Concat", 4),
    ("Constant", 1),
    ("ConstantOfShape", 9),
    ("Conv", 1),
    ("ConvTranspose", 1),
    ("DepthToSpace", 1),
    ("DequantizeLinear", 10),
    ("Div", 7),
    ("Elu", 6),
    ("Equal", 7),
    ("Erf", 9),
    ("Exp", 6),
    ("Expand", 8),
    ("Flatten", 1),
    ("Floor", 6),
    ("Gather", 1),
    ("GatherElements", 11),
    ("Gemm", 7),
    ("GlobalAveragePool", 1),
    ("GlobalMaxPool", 1),
    ("Greater", 7),
    ("HardSigmoid", 6),
    ("Identity", 1),
    ("InstanceNormalization", 6),
    ("LeakyRelu", 6),
    ("Less", 7),
    ("Log", 6),
    ("LRN", 1),
    ("MatMul", 1),
    ("Max", 6),
    ("MaxPool", 1),
    ("Mean", 6),
    ("Min", 6),
    ("Mul", 7),
    ("Neg", 6),
    ("Not", 1),
    ("Or", 7),
    ("Pow", 7),
    ("PRelu", 7),
    ("QuantizeLinear", 10),
    ("Range", 11),
    ("Reciprocal", 6),
    ("ReduceL2", 1),
    ("ReduceMax", 1),
    ("ReduceMean", 1),
    ("ReduceMin", 1),
    ("ReduceProd", 1),
    ("Relu", 6),
    ("Reshape", 5),
    ("Resize", 11),
    ("Selu", 6),
    ("Shape", 1),
    ("Sigmoid", 6),
    ("Sign", 9),
    ("Size", 1),
    ("Softplus", 1),
    ("Softsign", 1),
    ("SpaceToDepth", 1),
    ("Sqrt", 6),
    ("Sub", 7),
    ("Sum", 6),
    ("Tanh", 6),
    ("Tile", 6),
    ("Transpose", 1),
    ("Where", 9),
    ("Xor", 7),
];

/// Ops whose attributes became inputs: op → (the opset that made the change, attributes in
/// their new input order, starting at input position 1).
const ATTRIBUTES_TO_INPUTS: &[(&str, i64, &[AttributeInput])] = &[
    ("Squeeze", 13, &[AttributeInput::Ints("axes")]),
    ("Unsqueeze", 13, &[AttributeInput::Ints("axes")]),
    ("Split", 13, &[AttributeInput::Ints("split")]),
    ("ReduceSum", 13, &[AttributeInput::Ints("axes")]),
    (
        "Clip",
        11,
        &[AttributeInput::Float("min"), AttributeInput::Float("max")],
    ),
    (
        "Pad",
        11,
        &[AttributeInput::Ints("pads"), AttributeInput::Float("value")],
    ),
    (
        "Slice",
        10,
        &[
            AttributeInput::Ints("starts"),
            AttributeInput::Ints("ends"),
            AttributeInput::Ints("axes"),
        ],
    ),
    ("TopK", 10, &[AttributeInput::Ints1("k")]),
    ("Dropout", 12, &[AttributeInput::Float("ratio")]),
];

/// Attributes without which the old node cannot be written in the new form.
const REQUIRED_ATTRIBUTES: &[(&str, &str)] = &[
    ("Unsqueeze", "axes"),
    ("Pad", "pads"),
    ("Slice", "starts"),
    ("Slice", "ends"),
    ("TopK", "k"),
];

/// An attribute that becomes an input.
#[derive(Clone, Copy)]
enum AttributeInput {
    /// `ints` → 1-D int64 tensor.
    Ints(&'static str),
    /// `int` → int64 tensor of shape `[1]` (TopK's K).
    Ints1(&'static str),
    /// `float` → float scalar.
    Float(&'static str),
}

/// The softmax family: before opset 13 the input was coerced to 2-D at `axis` (default 1);
/// from 13 the op works along `axis` (default -1). Equal when `axis` is the last axis.
const SOFTMAX_FAMILY: &[&str] = &["Softmax", "LogSoftmax", "Hardmax"];

/// A model raised to `UPGRADE_OPSET`, and what that took.
pub struct Upgraded {
    pub model: Model,
    pub from: i64,
    /// Op → nodes rewritten to the opset-13 form.
    pub rewritten: BTreeMap<String, usize>,
}

impl Upgraded {
    /// One line for the report.
    pub fn note(&self) -> String {
        let rewritten = if self.rewritten.is_empty() {
            String::new()
        } else {
            let ops: Vec<String> = self
                .rewritten
                .iter()
                .map(|(op, n)| format!("{op} x{n}"))
                .collect();
            format!("; attributes moved to inputs: {}", ops.join(", "))
        };
        format!(
            "upgraded the model from opset {} to {UPGRADE_OPSET} for per-channel QuantizeLinear/DequantizeLinear{rewritten}",
            self.from
        )
    }
}

/// Raises the default-domain opset of a copy of `model` to `UPGRADE_OPSET`, or returns why
/// not: one line per op type that cannot be upgraded, naming a node. `Ok(Err(..))` is a
/// model that cannot be upgraded; `Err` a graph that a patch could not be applied to.
pub fn upgrade(model: &Model) -> Result<std::result::Result<Upgraded, Vec<String>>> {
    let from = default_opset(&model.proto);
    let graph = model.graph();
    let mut blockers: BTreeMap<String, String> = BTreeMap::new();
    let mut block = |node: &NodeProto, i: usize, why: String| {
        blockers
            .entry(node.op_type().to_string())
            .or_insert_with(|| {
                format!(
                    "{} (node '{}'): {why}",
                    node.op_type(),
                    profagent_onnx::index::node_label(node, i)
                )
            });
    };
    let mut names = NameGen::new(graph);
    let mut patch = Patch::new();
    let mut rewritten: BTreeMap<String, usize> = BTreeMap::new();
    let mut facts: Option<Option<ShapeFacts>> = None;
    for (i, node) in graph.node.iter().enumerate() {
        if !node.domain().is_empty() && node.domain() != "ai.onnx" {
            continue;
        }
        let op = node.op_type();
        if let Some(&(_, since)) = UNCHANGED_SINCE.iter().find(|(o, _)| *o == op) {
            if from < since {
                block(node, i, format!("its definition changed in opset {since}"));
            }
            continue;
        }
        if let Some(&(_, changed, inputs)) = ATTRIBUTES_TO_INPUTS.iter().find(|(o, ..)| *o == op) {
            if from >= changed {
                continue;
            }
            match attributes_to_inputs(node, inputs, &mut names, &mut patch) {
                Ok(replacement) => {
                    patch.replace_node(i, replacement);
                    *rewritten.entry(op.to_string()).or_default() += 1;
                }
                Err(why) => block(node, i, why),
            }
            continue;
        }
        if SOFTMAX_FAMILY.contains(&op) {
            let facts = facts
                .get_or_insert_with(|| ShapeFacts::for_model(model, &ShapeOptions::default()).ok());
            let rank = facts
                .as_ref()
                .zip(node.input.first())
                .and_then(|(f, input)| f.dims(input))
                .map(|d| d.len() as i64);
            let axis = attr::get_int(node, "axis").unwrap_or(1);
            match rank {
                Some(rank) if axis == rank - 1 || axis == -1 => {
                    let mut replacement = node.clone();
                    attr::set(&mut replacement, attr::int("axis", -1));
                    patch.replace_node(i, replacement);
                    *rewritten.entry(op.to_string()).or_default() += 1;
                }
                Some(rank) => block(
                    node,
                    i,
                    format!(
                        "axis {axis} of a rank-{rank} input flattens the trailing axes before opset 13"
                    ),
                ),
                None => block(
                    node,
                    i,
                    "its input rank is unknown, and its axis meaning changed in opset 13".into(),
                ),
            }
            continue;
        }
        block(
            node,
            i,
            "not known to mean the same at opset 13".to_string(),
        );
    }
    if !blockers.is_empty() {
        return Ok(Err(blockers.into_values().collect()));
    }
    let mut out = model.clone();
    patch.apply(out.graph_mut())?;
    for entry in out.proto.opset_import.iter_mut() {
        if entry.domain().is_empty() || entry.domain() == "ai.onnx" {
            entry.version = Some(UPGRADE_OPSET);
        }
    }
    if !out
        .proto
        .opset_import
        .iter()
        .any(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
    {
        out.proto
            .opset_import
            .push(profagent_onnx::proto::OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(UPGRADE_OPSET),
            });
    }
    out.proto.ir_version = Some(
        out.proto
            .ir_version
            .unwrap_or(0)
            .max(IR_VERSION_FOR_OPSET_13),
    );
    Ok(Ok(Upgraded {
        model: out,
        from,
        rewritten,
    }))
}

/// `node` with `inputs` taken from its attributes (initializers added to `patch`).
fn attributes_to_inputs(
    node: &NodeProto,
    inputs: &[AttributeInput],
    names: &mut NameGen,
    patch: &mut Patch,
) -> std::result::Result<NodeProto, String> {
    let mut replacement = node.clone();
    if node.input.len() > 1 {
        return Err("it already has more than one input".into());
    }
    let mut new_inputs: Vec<String> = Vec::new();
    let mut moved: Vec<&str> = Vec::new();
    for input in inputs {
        let (name, present) = match *input {
            AttributeInput::Ints(a) | AttributeInput::Ints1(a) | AttributeInput::Float(a) => {
                (a, attr::get(node, a).is_some())
            }
        };
        if !present {
            new_inputs.push(String::new());
            continue;
        }
        let value = names.fresh(&format!("{}_{name}", node.name()));
        let t = match *input {
            AttributeInput::Ints(a) => {
                let v = attr::get_ints(node, a).ok_or(format!("attribute '{a}' is not ints"))?;
                tensor::from_i64(&value, &[v.len() as i64], &v)
            }
            AttributeInput::Ints1(a) => {
                let v = attr::get_int(node, a).ok_or(format!("attribute '{a}' is not an int"))?;
                tensor::from_i64(&value, &[1], &[v])
            }
            AttributeInput::Float(a) => {
                let v =
                    attr::get_float(node, a).ok_or(format!("attribute '{a}' is not a float"))?;
                tensor::from_f32(&value, &[], &[v])
            }
        };
        patch.set_initializer(t);
        new_inputs.push(value);
        moved.push(name);
    }
    for (op, required) in REQUIRED_ATTRIBUTES {
        if node.op_type() == *op && !moved.contains(required) {
            return Err(format!("it has no '{required}' attribute"));
        }
    }
    // Trailing absent inputs are dropped; absent ones in between stay as "".
    while new_inputs.last().is_some_and(String::is_empty) {
        new_inputs.pop();
    }
    replacement.input.extend(new_inputs);
    // Dropout's `is_test` (before opset 7) has no counterpart either: inference is the default.
    let dropped = |a: &AttributeProto| {
        moved.contains(&a.name()) || (node.op_type() == "Dropout" && a.name() == "is_test")
    };
    replacement.attribute.retain(|a| !dropped(a));
    Ok(replacement)
}
