//! Constant values of a graph as the pruner sees them: initializers (weights, which it may
//! slice) and `Constant` nodes (shape vectors and scalars, which it may rewrite), plus the
//! resolution of a shape vector built by `Concat` into elements that remember where each
//! number came from, so head counts inside `Reshape` targets can be rewritten in place.
use std::collections::HashMap;

use profagent_onnx::proto::{GraphProto, TensorProto};
use profagent_onnx::{attr, tensor, GraphIndex};

/// Where a constant tensor lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConstSource {
    Initializer(String),
    /// A `Constant` node (by index in the graph at analysis time) and its `value` attribute.
    ConstantNode(usize),
}

/// Constant tensors by value name.
pub struct Consts<'g> {
    by_value: HashMap<String, (&'g TensorProto, ConstSource)>,
}

impl<'g> Consts<'g> {
    pub fn new(graph: &'g GraphProto) -> Self {
        let mut by_value = HashMap::new();
        for t in &graph.initializer {
            by_value.insert(
                t.name().to_string(),
                (t, ConstSource::Initializer(t.name().to_string())),
            );
        }
        for node in &graph.node {
            // PyTorch de-duplicates equal initializers through `Identity` nodes.
            if node.op_type() == "Identity" {
                if let (Some(input), Some(out)) = (node.input.first(), node.output.first()) {
                    if let Some(t) = graph.initializer.iter().find(|t| t.name() == input) {
                        by_value.insert(out.clone(), (t, ConstSource::Initializer(input.clone())));
                    }
                }
            }
        }
        for (i, node) in graph.node.iter().enumerate() {
            if node.op_type() == "Constant" {
                if let (Some(t), Some(out)) = (attr::get_tensor(node, "value"), node.output.first())
                {
                    by_value.insert(out.clone(), (t, ConstSource::ConstantNode(i)));
                }
            }
        }
        Consts { by_value }
    }

    pub fn get(&self, value: &str) -> Option<&'g TensorProto> {
        self.by_value.get(value).map(|(t, _)| *t)
    }

    pub fn source(&self, value: &str) -> Option<&ConstSource> {
        self.by_value.get(value).map(|(_, s)| s)
    }

    /// An initializer (a tensor the pruner may slice), not a `Constant` node.
    pub fn initializer(&self, value: &str) -> Option<&'g TensorProto> {
        match self.by_value.get(value) {
            Some((t, ConstSource::Initializer(_))) => Some(*t),
            _ => None,
        }
    }

    pub fn dims(&self, value: &str) -> Option<Vec<i64>> {
        self.get(value).map(|t| t.dims.clone())
    }

    pub fn ints(&self, value: &str) -> Option<Vec<i64>> {
        self.get(value).and_then(|t| tensor::to_i64(t).ok())
    }

    /// True when the constant broadcasts as a single number.
    pub fn is_scalar_like(&self, value: &str) -> bool {
        self.get(value)
            .is_some_and(|t| t.dims.iter().all(|&d| d == 1))
    }
}

/// One element of a shape vector: its value when constant, and the constant it came from.
#[derive(Debug, Clone)]
pub struct ShapeElem {
    pub value: Option<i64>,
    pub source: Option<(String, usize)>,
}

/// Resolves a 1-D shape vector (a `Reshape` target) into elements. Dynamic pieces must be
/// single elements (`Unsqueeze` of a scalar), as PyTorch exports them; anything else is None.
pub fn resolve_shape_vector(
    graph: &GraphProto,
    index: &GraphIndex,
    consts: &Consts,
    value: &str,
) -> Option<Vec<ShapeElem>> {
    if let Some(values) = consts.ints(value) {
        return Some(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| ShapeElem {
                    value: Some(v),
                    source: Some((value.to_string(), i)),
                })
                .collect(),
        );
    }
    let (_, node) = index.producer_node(graph, value)?;
    match node.op_type() {
        "Concat" => {
            let mut out = Vec::new();
            for input in &node.input {
                out.extend(resolve_shape_vector(graph, index, consts, input)?);
            }
            Some(out)
        }
        "Unsqueeze" => Some(vec![ShapeElem {
            value: None,
            source: None,
        }]),
        _ => None,
    }
}
