//! A read-only index over a `GraphProto`: who produces and who consumes every value, a
//! topological order, and initializer lookup. Built in O(nodes + edges); rebuild it after
//! applying a `Patch`.
use std::collections::{HashMap, HashSet};

use crate::error::{OnnxError, Result};
use crate::proto::{GraphProto, NodeProto, TensorProto};

/// An output slot of a node: `(node index, output position)`.
pub type Outlet = (usize, usize);
/// An input slot of a node: `(node index, input position)`.
pub type Inlet = (usize, usize);

#[derive(Debug, Clone)]
pub struct GraphIndex {
    /// value name → the node output that produces it.
    pub producer: HashMap<String, Outlet>,
    /// value name → every node input that reads it (in node order).
    pub consumers: HashMap<String, Vec<Inlet>>,
    /// initializer name → position in `graph.initializer`.
    pub initializers: HashMap<String, usize>,
    /// names of real graph inputs (those that are not also initializers).
    pub inputs: Vec<String>,
    /// names of graph outputs.
    pub outputs: Vec<String>,
    /// node indices in a topological order (stable: ties keep file order).
    pub topo: Vec<usize>,
}

/// Values a node reads: its inputs plus the outer-scope values its subgraphs (If/Loop/Scan)
/// capture, which also order it after their producers.
pub fn node_reads(node: &NodeProto) -> Vec<String> {
    let mut reads: Vec<String> = node
        .input
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    for attr in &node.attribute {
        let graphs = attr.g.iter().chain(attr.graphs.iter());
        for g in graphs {
            reads.extend(captured_values(g));
        }
    }
    reads
}

fn captured_values(g: &GraphProto) -> Vec<String> {
    let mut defined: HashSet<&str> = HashSet::new();
    defined.extend(g.input.iter().map(|v| v.name()));
    defined.extend(g.initializer.iter().map(|t| t.name()));
    for n in &g.node {
        defined.extend(n.output.iter().map(String::as_str));
    }
    let mut out = Vec::new();
    for n in &g.node {
        for v in node_reads(n) {
            if !defined.contains(v.as_str()) {
                out.push(v);
            }
        }
    }
    out
}

/// Human-readable node label for messages: its name, or `op_type#index` when unnamed.
pub fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name().is_empty() {
        format!("{}#{index}", node.op_type())
    } else {
        node.name().to_string()
    }
}

impl GraphIndex {
    /// Indexes `graph`, failing on dangling inputs, double assignment and cycles.
    pub fn new(graph: &GraphProto) -> Result<Self> {
        Self::build(graph, &HashSet::new())
    }

    /// Like `new`, for a subgraph that may read `outer` scope values.
    pub fn build(graph: &GraphProto, outer: &HashSet<String>) -> Result<Self> {
        let mut producer: HashMap<String, Outlet> = HashMap::new();
        let initializers: HashMap<String, usize> = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name().to_string(), i))
            .collect();
        for (ni, node) in graph.node.iter().enumerate() {
            for (slot, out) in node.output.iter().enumerate() {
                if out.is_empty() {
                    continue;
                }
                if let Some(&(prev, _)) = producer.get(out) {
                    return Err(OnnxError::DoubleAssignment {
                        value: out.clone(),
                        first: node_label(&graph.node[prev], prev),
                        second: node_label(node, ni),
                    });
                }
                producer.insert(out.clone(), (ni, slot));
            }
        }
        let graph_inputs: HashSet<&str> = graph.input.iter().map(|v| v.name()).collect();
        let mut consumers: HashMap<String, Vec<Inlet>> = HashMap::new();
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
        for (ni, node) in graph.node.iter().enumerate() {
            for (slot, v) in node.input.iter().enumerate() {
                if !v.is_empty() {
                    consumers.entry(v.clone()).or_default().push((ni, slot));
                }
            }
            for v in node_reads(node) {
                if let Some(&(p, _)) = producer.get(&v) {
                    deps[ni].push(p);
                } else if !graph_inputs.contains(v.as_str())
                    && !initializers.contains_key(&v)
                    && !outer.contains(&v)
                {
                    return Err(OnnxError::DanglingInput {
                        node: node_label(node, ni),
                        op_type: node.op_type().to_string(),
                        value: v,
                    });
                }
            }
        }
        let topo = topo_order(graph, &deps)?;
        Ok(GraphIndex {
            producer,
            consumers,
            inputs: graph
                .input
                .iter()
                .map(|v| v.name().to_string())
                .filter(|n| !initializers.contains_key(n))
                .collect(),
            outputs: graph.output.iter().map(|v| v.name().to_string()).collect(),
            initializers,
            topo,
        })
    }

    /// The initializer called `name`, if any.
    pub fn initializer<'g>(&self, graph: &'g GraphProto, name: &str) -> Option<&'g TensorProto> {
        self.initializers.get(name).map(|&i| &graph.initializer[i])
    }

    /// The node producing `value`, if any.
    pub fn producer_node<'g>(
        &self,
        graph: &'g GraphProto,
        value: &str,
    ) -> Option<(usize, &'g NodeProto)> {
        self.producer.get(value).map(|&(i, _)| (i, &graph.node[i]))
    }

    /// Nodes reading `value`.
    pub fn consumer_nodes(&self, value: &str) -> &[Inlet] {
        self.consumers.get(value).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when `value` is a graph output.
    pub fn is_output(&self, value: &str) -> bool {
        self.outputs.iter().any(|o| o == value)
    }
}

/// Kahn's algorithm with a min-heap on the node index so the order is deterministic and
/// keeps file order when the file is already sorted.
fn topo_order(graph: &GraphProto, deps: &[Vec<usize>]) -> Result<Vec<usize>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = graph.node.len();
    let mut indegree = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (ni, d) in deps.iter().enumerate() {
        for &p in d {
            indegree[ni] += 1;
            users[p].push(ni);
        }
    }
    let mut heap: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = heap.pop() {
        order.push(i);
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                heap.push(Reverse(u));
            }
        }
    }
    if order.len() != n {
        let stuck = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
        let node = &graph.node[stuck];
        return Err(OnnxError::Cycle {
            node: node_label(node, stuck),
            op_type: node.op_type().to_string(),
        });
    }
    Ok(order)
}
