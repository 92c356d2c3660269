//! `Patch`: the one way transforms edit a graph.
//!
//! A pass records what it wants (add/replace/remove nodes and initializers, rewire the
//! consumers of a value) against the current node indices, then `Patch::apply` builds the new
//! graph, re-sorts it topologically and re-validates it. If anything is inconsistent the graph
//! is left untouched and an error names the problem: a pass can never leave a half-edited
//! graph behind.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::error::{OnnxError, Result};
use crate::index::GraphIndex;
use crate::proto::{GraphProto, NodeProto, TensorProto, ValueInfoProto};

#[derive(Debug, Default, Clone)]
pub struct Patch {
    remove_nodes: BTreeSet<usize>,
    replace_nodes: BTreeMap<usize, NodeProto>,
    /// New nodes; placed by the topological sort.
    add_nodes: Vec<NodeProto>,
    set_initializers: Vec<TensorProto>,
    remove_initializers: BTreeSet<String>,
    /// consumers of `.0` read `.1` instead (node inputs only; graph outputs keep their names).
    rewires: Vec<(String, String)>,
    /// value_info entries to drop because the value's shape or type changes.
    invalidate_value_info: BTreeSet<String>,
    add_value_info: Vec<ValueInfoProto>,
    /// Drop nodes and initializers that no longer reach a graph output.
    prune_dead: bool,
}

impl Patch {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.remove_nodes.is_empty()
            && self.replace_nodes.is_empty()
            && self.add_nodes.is_empty()
            && self.set_initializers.is_empty()
            && self.remove_initializers.is_empty()
            && self.rewires.is_empty()
            && self.invalidate_value_info.is_empty()
            && self.add_value_info.is_empty()
    }

    /// Removes node `index` (its outputs must be unused or rewired).
    pub fn remove_node(&mut self, index: usize) -> &mut Self {
        self.remove_nodes.insert(index);
        self
    }

    /// Replaces node `index` with `node`.
    pub fn replace_node(&mut self, index: usize, node: NodeProto) -> &mut Self {
        self.replace_nodes.insert(index, node);
        self
    }

    /// Adds a node; its position is chosen by the topological sort.
    pub fn add_node(&mut self, node: NodeProto) -> &mut Self {
        self.add_nodes.push(node);
        self
    }

    /// Adds an initializer, or replaces the one with the same name.
    pub fn set_initializer(&mut self, tensor: TensorProto) -> &mut Self {
        self.invalidate_value_info.insert(tensor.name().to_string());
        self.set_initializers.push(tensor);
        self
    }

    /// Removes an initializer (it must be unused after the patch).
    pub fn remove_initializer(&mut self, name: &str) -> &mut Self {
        self.remove_initializers.insert(name.to_string());
        self
    }

    /// Makes every node that reads `from` read `to` instead.
    pub fn rewire(&mut self, from: &str, to: &str) -> &mut Self {
        self.rewires.push((from.to_string(), to.to_string()));
        self
    }

    /// Forgets the recorded shape of `value` (its shape changes).
    pub fn invalidate_value_info(&mut self, value: &str) -> &mut Self {
        self.invalidate_value_info.insert(value.to_string());
        self
    }

    /// Records type/shape for a (new) value.
    pub fn add_value_info(&mut self, info: ValueInfoProto) -> &mut Self {
        self.invalidate_value_info.insert(info.name().to_string());
        self.add_value_info.push(info);
        self
    }

    /// Also remove nodes and initializers that no longer contribute to a graph output.
    pub fn prune_dead(&mut self, yes: bool) -> &mut Self {
        self.prune_dead = yes;
        self
    }

    /// Applies the patch to `graph`. On error `graph` is unchanged.
    pub fn apply(&self, graph: &mut GraphProto) -> Result<()> {
        let n = graph.node.len();
        for &i in self.remove_nodes.iter().chain(self.replace_nodes.keys()) {
            if i >= n {
                return Err(OnnxError::Patch(format!(
                    "node index {i} out of range (graph has {n} nodes)"
                )));
            }
        }
        let mut new = graph.clone();
        let mut nodes: Vec<NodeProto> = Vec::with_capacity(n + self.add_nodes.len());
        for (i, node) in graph.node.iter().enumerate() {
            if self.remove_nodes.contains(&i) {
                continue;
            }
            nodes.push(
                self.replace_nodes
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| node.clone()),
            );
        }
        nodes.extend(self.add_nodes.iter().cloned());
        let rewire: HashMap<&str, &str> = self
            .rewires
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        if !rewire.is_empty() {
            for node in nodes.iter_mut() {
                for input in node.input.iter_mut() {
                    // Follow chains (a → b → c) so rewires compose.
                    let mut hops = 0;
                    while let Some(&to) = rewire.get(input.as_str()) {
                        *input = to.to_string();
                        hops += 1;
                        if hops > rewire.len() {
                            return Err(OnnxError::Patch(format!(
                                "rewire cycle through '{input}'"
                            )));
                        }
                    }
                }
            }
        }
        new.node = nodes;
        new.initializer
            .retain(|t| !self.remove_initializers.contains(t.name()));
        for t in &self.set_initializers {
            match new.initializer.iter_mut().find(|x| x.name() == t.name()) {
                Some(slot) => *slot = t.clone(),
                None => new.initializer.push(t.clone()),
            }
        }
        if self.prune_dead {
            prune_dead(&mut new);
        }
        // Drop value_info of changed or vanished values; graph inputs/outputs keep theirs.
        let produced: HashSet<String> = new
            .node
            .iter()
            .flat_map(|n| n.output.iter().cloned())
            .collect();
        new.value_info.retain(|v| {
            produced.contains(v.name()) && !self.invalidate_value_info.contains(v.name())
        });
        new.value_info.extend(self.add_value_info.iter().cloned());
        // Re-sort and validate.
        let index = GraphIndex::new(&new)?;
        let sorted: Vec<NodeProto> = index.topo.iter().map(|&i| new.node[i].clone()).collect();
        new.node = sorted;
        for out in &new.output {
            let name = out.name();
            if !produced.contains(name)
                && !new.initializer.iter().any(|t| t.name() == name)
                && !new.input.iter().any(|i| i.name() == name)
            {
                return Err(OnnxError::Patch(format!(
                    "graph output '{name}' is no longer produced by any node"
                )));
            }
        }
        *graph = new;
        Ok(())
    }
}

/// Removes nodes that do not reach a graph output and initializers nobody reads.
fn prune_dead(graph: &mut GraphProto) {
    let mut live: HashSet<String> = graph.output.iter().map(|o| o.name().to_string()).collect();
    let mut keep = vec![false; graph.node.len()];
    // Walk backwards until no change (graphs are small enough; usually 1-2 sweeps).
    loop {
        let mut changed = false;
        for (i, node) in graph.node.iter().enumerate().rev() {
            if keep[i] {
                continue;
            }
            if node.output.iter().any(|o| live.contains(o)) {
                keep[i] = true;
                changed = true;
                for v in crate::index::node_reads(node) {
                    live.insert(v);
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut i = 0;
    graph.node.retain(|_| {
        let k = keep[i];
        i += 1;
        k
    });
    graph.initializer.retain(|t| live.contains(t.name()));
}

/// Produces names that do not collide with any value or node already in a graph.
#[derive(Debug, Clone)]
pub struct NameGen {
    taken: HashSet<String>,
}

impl NameGen {
    pub fn new(graph: &GraphProto) -> Self {
        let mut taken = HashSet::new();
        for n in &graph.node {
            taken.insert(n.name().to_string());
            taken.extend(n.input.iter().cloned());
            taken.extend(n.output.iter().cloned());
        }
        taken.extend(graph.initializer.iter().map(|t| t.name().to_string()));
        taken.extend(graph.input.iter().map(|v| v.name().to_string()));
        taken.extend(graph.output.iter().map(|v| v.name().to_string()));
        NameGen { taken }
    }

    /// `base` itself when free, else `base_1`, `base_2`, ...
    pub fn fresh(&mut self, base: &str) -> String {
        let mut candidate = base.to_string();
        let mut k = 1;
        while self.taken.contains(&candidate) {
            candidate = format!("{base}_{k}");
            k += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}
