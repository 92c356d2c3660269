//! Shape and dtype facts for every value of a graph.
//!
//! `ShapeFacts::infer` seeds facts from graph inputs, initializers, `Constant` nodes and
//! `value_info`, then walks the graph in topological order asking a registry (op type →
//! inference function, in `shape/ops_*.rs`) for each node's output facts. Small integer
//! tensors also carry their *values* (`ValueFact::value`), possibly symbolic, so the
//! exporter's `Shape → Gather → Unsqueeze → Concat → Reshape` chains fold to real shapes.
//!
//! The batch dimension (dim 0 of every graph input) stays symbolic unless
//! `ShapeOptions::batch` binds it. Ops the registry does not know leave their outputs unknown
//! (falling back to `value_info` when the file has it) and are listed in
//! `ShapeFacts::unsupported_ops`; that is a gap to report, not an error. Contradictions
//! (a Reshape that changes the element count, a MatMul whose inner dims differ) are errors
//! naming the node.
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{OnnxError, Result};
use crate::index::{node_label, GraphIndex};
use crate::model::Model;
use crate::proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension::Value as DimValue, type_proto,
    GraphProto, NodeProto, TensorProto, ValueInfoProto,
};
use crate::tensor;

mod ops_nn;
mod ops_tensor;
mod ops_values;
mod util;

/// Integer tensors up to this many elements keep their values (enough for any shape tensor,
/// small enough that folding never allocates much, whatever the file says).
pub const MAX_FOLDED_ELEMENTS: usize = 1024;

/// One dimension: a number, or a name (`batch`, `N`, or a product such as `batch*197`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    Known(i64),
    Symbolic(String),
}

impl Dim {
    pub fn known(&self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(*v),
            Dim::Symbolic(_) => None,
        }
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

/// What is known about one value. Every field may be unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueFact {
    /// ONNX element type code (`DataType as i32`).
    pub dtype: Option<i32>,
    /// The dims; `None` when even the rank is unknown.
    pub dims: Option<Vec<Dim>>,
    /// Row-major values of a small integer/bool tensor (`MAX_FOLDED_ELEMENTS` at most).
    pub value: Option<Vec<Dim>>,
}

impl ValueFact {
    pub fn new(dtype: Option<i32>, dims: Vec<Dim>) -> Self {
        ValueFact {
            dtype,
            dims: Some(dims),
            value: None,
        }
    }

    /// All dims as numbers, when every one is known.
    pub fn known_dims(&self) -> Option<Vec<i64>> {
        self.dims.as_ref()?.iter().map(Dim::known).collect()
    }

    /// Number of elements, when every dim is known (saturating: garbage files can claim
    /// absurd sizes).
    pub fn elements(&self) -> Option<u64> {
        let dims = self.known_dims()?;
        Some(
            dims.iter()
                .fold(1u64, |acc, &d| acc.saturating_mul(d.max(0) as u64)),
        )
    }

    /// Bytes the tensor takes, when its dims and dtype are known.
    pub fn bytes(&self) -> Option<u64> {
        let dtype = self.dtype?;
        let elements = self.elements()?;
        let packed_four_bit = matches!(
            DataType::try_from(dtype),
            Ok(DataType::Int4 | DataType::Uint4)
        );
        Some(if packed_four_bit {
            elements.div_ceil(2)
        } else {
            elements.saturating_mul(tensor::elem_size(dtype) as u64)
        })
    }

    /// The folded values as numbers, when all are known.
    pub fn int_values(&self) -> Option<Vec<i64>> {
        self.value.as_ref()?.iter().map(Dim::known).collect()
    }

    fn is_fully_known(&self) -> bool {
        self.dtype.is_some() && self.known_dims().is_some()
    }
}

/// Options for inference.
#[derive(Debug, Clone, Default)]
pub struct ShapeOptions {
    /// Binds the batch dimension (dim 0 of every graph input) to this size.
    pub batch: Option<i64>,
}

/// Shape/dtype/value facts for the values of one graph.
#[derive(Debug, Clone, Default)]
pub struct ShapeFacts {
    facts: HashMap<String, ValueFact>,
    /// Op types the registry does not know → how many nodes of that type; their outputs
    /// are unknown unless `value_info` supplied them.
    pub unsupported_ops: BTreeMap<String, usize>,
    /// Nodes of known op types whose outputs stayed unknown because an input was unknown.
    pub unresolved_nodes: Vec<String>,
}

impl ShapeFacts {
    /// Infers facts for `model`'s main graph.
    pub fn for_model(model: &Model, options: &ShapeOptions) -> Result<Self> {
        let graph = model.graph();
        let index = GraphIndex::new(graph)?;
        Self::infer(graph, &index, options)
    }

    /// Infers facts for every value of `graph` (see the module docs).
    pub fn infer(graph: &GraphProto, index: &GraphIndex, options: &ShapeOptions) -> Result<Self> {
        let mut bindings: HashMap<String, i64> = HashMap::new();
        let initializer_names: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
        let mut out = ShapeFacts::default();
        let mut seeds: HashMap<String, ValueFact> = HashMap::new();

        for input in graph
            .input
            .iter()
            .filter(|v| !initializer_names.contains(v.name()))
        {
            let mut fact = fact_from_value_info(input);
            // Only a symbolic batch is bound: a fixed one is baked into the graph's constants.
            if let (Some(Dim::Symbolic(name)), Some(batch)) =
                (fact.dims.as_ref().and_then(|d| d.first()), options.batch)
            {
                bindings.insert(name.clone(), batch);
            }
            bind(&mut fact, &bindings);
            out.facts.insert(input.name().to_string(), fact);
        }
        for init in &graph.initializer {
            out.facts
                .insert(init.name().to_string(), fact_from_tensor(init));
        }
        for vi in graph.value_info.iter().chain(graph.output.iter()) {
            let mut fact = fact_from_value_info(vi);
            bind(&mut fact, &bindings);
            if fact.dtype.is_some() || fact.dims.is_some() {
                seeds.insert(vi.name().to_string(), fact);
            }
        }

        for &ni in &index.topo {
            let node = &graph.node[ni];
            let inputs: Vec<ValueFact> = node
                .input
                .iter()
                .map(|name| out.facts.get(name).cloned().unwrap_or_default())
                .collect();
            let inferred = if node
                .attribute
                .iter()
                .any(|a| a.g.is_some() || !a.graphs.is_empty())
            {
                *out.unsupported_ops
                    .entry(node.op_type().to_string())
                    .or_default() += 1;
                Vec::new()
            } else {
                match lookup(node) {
                    None => {
                        *out.unsupported_ops
                            .entry(node.op_type().to_string())
                            .or_default() += 1;
                        Vec::new()
                    }
                    Some(infer) => match infer(node, &inputs) {
                        Ok(facts) => facts,
                        Err(Fail::Unknown) => {
                            out.unresolved_nodes.push(node_label(node, ni));
                            Vec::new()
                        }
                        Err(Fail::Invalid(reason)) => {
                            return Err(OnnxError::Shape {
                                node: node_label(node, ni),
                                op_type: node.op_type().to_string(),
                                reason,
                            })
                        }
                    },
                }
            };
            for (slot, name) in node.output.iter().enumerate() {
                if name.is_empty() {
                    continue;
                }
                let mut fact = inferred.get(slot).cloned().unwrap_or_default();
                if let Some(seed) = seeds.get(name) {
                    if fact.dtype.is_none() {
                        fact.dtype = seed.dtype;
                    }
                    if fact.known_dims().is_none() && seed.dims.is_some() {
                        fact.dims = seed.dims.clone();
                    }
                }
                if let Some(v) = &fact.value {
                    if v.len() > MAX_FOLDED_ELEMENTS {
                        fact.value = None;
                    }
                }
                out.facts.insert(name.clone(), fact);
            }
        }
        Ok(out)
    }

    /// Facts for `value` (unknown facts when the graph never mentions it).
    pub fn get(&self, value: &str) -> Option<&ValueFact> {
        self.facts.get(value)
    }

    pub fn dims(&self, value: &str) -> Option<&[Dim]> {
        self.facts.get(value)?.dims.as_deref()
    }

    pub fn known_dims(&self, value: &str) -> Option<Vec<i64>> {
        self.facts.get(value)?.known_dims()
    }

    pub fn dtype(&self, value: &str) -> Option<i32> {
        self.facts.get(value)?.dtype
    }

    pub fn bytes(&self, value: &str) -> Option<u64> {
        self.facts.get(value)?.bytes()
    }

    /// Names of node outputs in `graph` whose dims or dtype are still not fully known.
    pub fn incomplete_values<'g>(&self, graph: &'g GraphProto) -> Vec<&'g str> {
        graph
            .node
            .iter()
            .flat_map(|n| n.output.iter())
            .filter(|o| !o.is_empty())
            .filter(|o| {
                !self
                    .facts
                    .get(o.as_str())
                    .is_some_and(ValueFact::is_fully_known)
            })
            .map(String::as_str)
            .collect()
    }

    /// Every value with facts (for debugging and reports).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ValueFact)> {
        self.facts.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Why an inference function produced nothing.
#[derive(Debug)]
pub(crate) enum Fail {
    /// An input's facts are missing: outputs stay unknown.
    Unknown,
    /// The node contradicts its inputs (element counts, inner dims, bad attributes).
    Invalid(String),
}

pub(crate) type InferResult = std::result::Result<Vec<ValueFact>, Fail>;
/// An op's inference: node + facts of its inputs (unknown facts for missing ones) → facts
/// of its outputs, by position.
pub(crate) type InferFn = fn(&NodeProto, &[ValueFact]) -> InferResult;

/// Domains whose ops the registry covers (ONNX's default domain and ONNX Runtime's
/// contrib ops, which reuse the same names for the ops we know).
const KNOWN_DOMAINS: [&str; 3] = ["", "ai.onnx", "com.microsoft"];

fn lookup(node: &NodeProto) -> Option<InferFn> {
    if !KNOWN_DOMAINS.contains(&node.domain()) {
        return None;
    }
    lookup_default_domain(node.op_type())
}

fn lookup_default_domain(op: &str) -> Option<InferFn> {
    ops_values::lookup(op)
        .or_else(|| ops_tensor::lookup(op))
        .or_else(|| ops_nn::lookup(op))
}

/// True when shape inference knows `op_type` (default domain).
pub fn is_supported_op(op_type: &str) -> bool {
    lookup_default_domain(op_type).is_some()
}

fn bind(fact: &mut ValueFact, bindings: &HashMap<String, i64>) {
    if bindings.is_empty() {
        return;
    }
    if let Some(dims) = fact.dims.as_mut() {
        for d in dims.iter_mut() {
            if let Dim::Symbolic(s) = d {
                if let Some(&v) = bindings.get(s) {
                    *d = Dim::Known(v);
                }
            }
        }
    }
}

/// Facts from a graph input/output/value_info entry. A dim without value or name becomes a
/// fresh symbol named after the value, so two unknown dims never compare equal by accident.
pub fn fact_from_value_info(vi: &ValueInfoProto) -> ValueFact {
    let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return ValueFact::default();
    };
    let dtype = t.elem_type.filter(|&e| e != DataType::Undefined as i32);
    let dims = t.shape.as_ref().map(|shape| {
        shape
            .dim
            .iter()
            .enumerate()
            .map(|(i, d)| match &d.value {
                Some(DimValue::DimValue(v)) if *v >= 0 => Dim::Known(*v),
                Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::Symbolic(p.clone()),
                _ => Dim::Symbolic(format!("{}:{i}", vi.name())),
            })
            .collect()
    });
    ValueFact {
        dtype,
        dims,
        value: None,
    }
}

/// Facts from a tensor (initializer or `Constant` payload): dims, dtype and, for small
/// integer tensors, the values.
pub fn fact_from_tensor(t: &TensorProto) -> ValueFact {
    let dims: Vec<Dim> = t.dims.iter().map(|&d| Dim::Known(d.max(0))).collect();
    let value = if checked_element_count(t).is_some_and(|n| n <= MAX_FOLDED_ELEMENTS)
        && !tensor::is_float(t.data_type())
    {
        tensor::to_i64(t)
            .ok()
            .map(|v| v.into_iter().map(Dim::Known).collect())
    } else {
        None
    };
    ValueFact {
        dtype: Some(t.data_type()),
        dims: Some(dims),
        value,
    }
}

/// Element count of a tensor, `None` when the dims multiply past `usize` (files can claim
/// anything; `tensor::element_count` assumes sane dims).
pub fn checked_element_count(t: &TensorProto) -> Option<usize> {
    t.dims.iter().try_fold(1usize, |acc, &d| {
        acc.checked_mul(usize::try_from(d.max(0)).ok()?)
    })
}

#[cfg(test)]
mod tests;
