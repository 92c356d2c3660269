//! Layer selection: which nodes a quantization pass may touch.
//!
//! A `Selection` holds include and exclude patterns written as strings, so a plan or a
//! command line can carry them verbatim:
//! - `layer1.0.conv1`: a layer name (as `profagent_onnx::naming::layer_of_node` spells it) or
//!   an exact node name; a layer name also selects the layers below it (`layer1` selects
//!   `layer1.0.conv1`);
//! - `re:blocks\.[0-3]\..*`: a regular expression that must match a whole layer or node name;
//! - `op:MatMul`: every node of that op type;
//! - `node:NAME`: the node of that exact name only (an unnamed node is `Op#index`), what a
//!   mixed-mode quantization gives each of its passes.
//!
//! An empty include list means "every supported layer". Exclusions win over inclusions.
//! A name or regex that matches no node of the graph is an error: a typo must not silently
//! quantize (or keep) the wrong layers.
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{QuantError, Result};
use profagent_onnx::proto::GraphProto;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug)]
enum Pattern {
    Name(String),
    Regex(Regex),
    OpType(String),
    Node(String),
}

impl Pattern {
    fn parse(text: &str) -> Result<Self> {
        let bad = |reason: String| QuantError::Selection {
            pattern: text.to_string(),
            reason,
        };
        if let Some(op) = text.strip_prefix("op:") {
            if op.is_empty() {
                return Err(bad("names no op type (write e.g. op:MatMul)".into()));
            }
            return Ok(Pattern::OpType(op.to_string()));
        }
        if let Some(node) = text.strip_prefix("node:") {
            if node.is_empty() {
                return Err(bad("names no node (write e.g. node:/fc/Gemm)".into()));
            }
            return Ok(Pattern::Node(node.to_string()));
        }
        if let Some(re) = text.strip_prefix("re:") {
            let anchored = format!("^(?:{re})$");
            return Regex::new(&anchored)
                .map(Pattern::Regex)
                .map_err(|e| bad(format!("is not a valid regular expression: {e}")));
        }
        if text.is_empty() {
            return Err(bad("is empty".into()));
        }
        Ok(Pattern::Name(text.to_string()))
    }

    fn matches(&self, layer: &str, node: &str, op_type: &str) -> bool {
        match self {
            Pattern::Name(name) => {
                node == name
                    || layer == name
                    || (layer.starts_with(name.as_str())
                        && layer.as_bytes().get(name.len()) == Some(&b'.'))
            }
            Pattern::Regex(re) => re.is_match(layer) || re.is_match(node),
            Pattern::OpType(op) => op_type == op,
            Pattern::Node(name) => node == name,
        }
    }
}

/// A node's identity for selection and reports.
#[derive(Debug, Clone)]
pub struct NodeId {
    pub index: usize,
    pub layer: String,
    pub node: String,
    pub op_type: String,
}

impl NodeId {
    pub fn of(graph: &GraphProto, index: usize) -> Self {
        let n = &graph.node[index];
        NodeId {
            index,
            layer: profagent_onnx::layer_of_node(n.name(), n.op_type(), index),
            node: profagent_onnx::index::node_label(n, index),
            op_type: n.op_type().to_string(),
        }
    }
}

/// Compiled selection, checked against one graph.
#[derive(Debug)]
pub struct Resolved {
    include: Vec<(String, Pattern)>,
    exclude: Vec<(String, Pattern)>,
}

/// Why a node is or is not selected.
pub enum Verdict {
    Selected,
    Skipped(String),
}

/// The pattern that selects exactly the layer (or node) `name`, not the layers under it.
pub fn exact(name: &str) -> String {
    format!("re:{}", regex::escape(name))
}

impl Selection {
    /// Compiles the patterns and checks that every name and regex matches some node.
    pub fn resolve(&self, graph: &GraphProto) -> Result<Resolved> {
        let ids: Vec<NodeId> = (0..graph.node.len())
            .map(|i| NodeId::of(graph, i))
            .collect();
        let compile = |list: &[String]| -> Result<Vec<(String, Pattern)>> {
            list.iter()
                .map(|text| {
                    let pattern = Pattern::parse(text)?;
                    let checked = !matches!(pattern, Pattern::OpType(_));
                    if checked
                        && !ids
                            .iter()
                            .any(|id| pattern.matches(&id.layer, &id.node, &id.op_type))
                    {
                        return Err(QuantError::Selection {
                            pattern: text.clone(),
                            reason: format!(
                                "matches no layer or node of the model{}",
                                suggestion(text, &ids)
                            ),
                        });
                    }
                    Ok((text.clone(), pattern))
                })
                .collect()
        };
        Ok(Resolved {
            include: compile(&self.include)?,
            exclude: compile(&self.exclude)?,
        })
    }
}

impl Resolved {
    pub fn verdict(&self, id: &NodeId) -> Verdict {
        if let Some((text, _)) = self
            .exclude
            .iter()
            .find(|(_, p)| p.matches(&id.layer, &id.node, &id.op_type))
        {
            return Verdict::Skipped(format!("excluded by '{text}'"));
        }
        if self.include.is_empty()
            || self
                .include
                .iter()
                .any(|(_, p)| p.matches(&id.layer, &id.node, &id.op_type))
        {
            Verdict::Selected
        } else {
            Verdict::Skipped("not in the include list".into())
        }
    }
}

/// ` (did you mean 'x'?)` for the closest layer name sharing the pattern's last component.
fn suggestion(text: &str, ids: &[NodeId]) -> String {
    let last = text.rsplit('.').next().unwrap_or(text);
    let close: Vec<&str> = ids
        .iter()
        .map(|id| id.layer.as_str())
        .filter(|l| l.ends_with(last) || l.contains(text))
        .take(3)
        .collect();
    if close.is_empty() {
        let sample: Vec<&str> = ids.iter().map(|id| id.layer.as_str()).take(3).collect();
        format!(" (layers look like: {})", sample.join(", "))
    } else {
        format!(" (did you mean: {}?)", close.join(", "))
    }
}
