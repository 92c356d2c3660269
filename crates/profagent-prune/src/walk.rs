//! Group discovery: the DepGraph idea on an ONNX graph.
//!
//! Every prunable producer (Conv, Gemm, MatMul with a constant weight) opens a *channel
//! space*. Walking the graph in topological order, each value remembers which spaces its
//! channel axis is made of (`Layout`: segments, so `Concat` offsets work). Channel-preserving
//! ops pass the layout on, `Add`/`Mul` of two laid-out values couple their spaces (union-find),
//! consumers record the input-channel slices they must lose. Any op the walker does not
//! understand blocks every space it touches, with a reason naming the node: such groups are
//! reported, never silently pruned or skipped. Attention blocks are matched first (`heads`).
use std::collections::{BTreeSet, HashMap, HashSet};

use profagent_onnx::proto::{GraphProto, NodeProto};
use profagent_onnx::{attr, index::node_label, layer_of_node, GraphIndex, Model};

use crate::consts::Consts;
use crate::error::Result;
use crate::group::{AxisMap, Group, GroupKind, GroupStatus, Probe, Rewrite, Slice, SliceRole};
use crate::heads::match_attention;

/// Spatial pooling: channels pass through untouched.
const POOLING: &[&str] = &[
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "LpPool",
    "GlobalLpPool",
];

#[derive(Debug, Clone)]
struct Segment {
    space: usize,
    len: usize,
}

/// How a value's channel axis is made of spaces.
#[derive(Debug, Clone)]
struct Layout {
    segments: Vec<Segment>,
    /// Channel axis counted from the end: -3 for NCHW, -1 for `[.., C]`.
    axis_from_end: i64,
    /// Rank when known (Conv outputs).
    rank: Option<usize>,
    /// Produced by flattening NCHW: each channel spans a block of spatial positions.
    flat: bool,
}

impl Layout {
    fn total(&self) -> usize {
        self.segments.iter().map(|s| s.len).sum()
    }
    /// (segment, channel offset) pairs.
    fn offsets(&self) -> Vec<(usize, usize)> {
        let mut off = 0;
        self.segments
            .iter()
            .map(|s| {
                let r = (s.space, off);
                off += s.len;
                r
            })
            .collect()
    }
    fn same_shape(&self, other: &Layout) -> bool {
        self.axis_from_end == other.axis_from_end
            && self.flat == other.flat
            && self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| a.len == b.len)
    }
}

#[derive(Debug, Default)]
struct Space {
    len: usize,
    kind: Option<GroupKind>,
    producer_nodes: Vec<usize>,
    layers: BTreeSet<String>,
    slices: Vec<Slice>,
    rewrites: Vec<Rewrite>,
    probes: Vec<Probe>,
    consumers: Vec<usize>,
    scaled: Vec<usize>,
    blocked: Vec<String>,
    unit_width: usize,
    /// Channels that can only be removed together (a grouped Conv's group width; 0 or 1:
    /// any channel alone): the group's units become blocks of this many channels.
    unit_multiple: usize,
    /// An `Add` of two laid-out tensors (a skip connection) reads this space.
    residual: bool,
}

struct Walker<'g> {
    graph: &'g GraphProto,
    index: GraphIndex,
    consts: Consts<'g>,
    layouts: HashMap<String, Layout>,
    spaces: Vec<Space>,
    parent: Vec<usize>,
    claimed: HashSet<usize>,
    heads_at: HashMap<usize, usize>,
}

/// The layer name of node `ni` (as groups and reports spell it).
pub fn layer_name(model: &Model, ni: usize) -> String {
    let n = &model.graph().node[ni];
    layer_of_node(n.name(), n.op_type(), ni)
}

/// Finds every dependency group of `model`, prunable or not (with the reason).
pub fn analyze(model: &Model) -> Result<Vec<Group>> {
    let graph = model.graph();
    let index = GraphIndex::new(graph)?;
    let mut w = Walker {
        graph,
        consts: Consts::new(graph),
        index,
        layouts: HashMap::new(),
        spaces: Vec::new(),
        parent: Vec::new(),
        claimed: HashSet::new(),
        heads_at: HashMap::new(),
    };
    w.match_attention();
    let topo = w.index.topo.clone();
    for ni in topo {
        w.visit(ni);
    }
    let outputs = w.index.outputs.clone();
    for out in outputs {
        if let Some(l) = w.layouts.get(&out).cloned() {
            w.block(&l, format!("its channels reach the graph output '{out}'"));
        }
    }
    Ok(w.finish())
}

impl<'g> Walker<'g> {
    fn layer(&self, ni: usize) -> String {
        let n = &self.graph.node[ni];
        layer_of_node(n.name(), n.op_type(), ni)
    }

    fn label(&self, ni: usize) -> String {
        node_label(&self.graph.node[ni], ni)
    }

    fn new_space(&mut self, len: usize, kind: GroupKind, producer: usize) -> usize {
        let id = self.spaces.len();
        let mut s = Space {
            len,
            kind: Some(kind),
            unit_width: 1,
            ..Default::default()
        };
        s.producer_nodes.push(producer);
        s.layers.insert(self.layer(producer));
        self.spaces.push(s);
        self.parent.push(id);
        id
    }

    fn find(&mut self, mut s: usize) -> usize {
        while self.parent[s] != s {
            self.parent[s] = self.parent[self.parent[s]];
            s = self.parent[s];
        }
        s
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[rb.max(ra)] = ra.min(rb);
        }
    }

    fn block(&mut self, layout: &Layout, reason: String) {
        for seg in &layout.segments {
            self.spaces[seg.space].blocked.push(reason.clone());
        }
    }

    fn block_inputs(&mut self, ins: &[Option<Layout>], reason: String) {
        for l in ins.iter().flatten() {
            self.block(l, reason.clone());
        }
    }

    /// Records that the slices of `layout`'s spaces in `tensor` (axis `axis`) go with them.
    fn slice(
        &mut self,
        layout: &Layout,
        tensor: &str,
        axis: usize,
        unit_len: usize,
        role: SliceRole,
        ni: usize,
    ) {
        // Shared weights are copied for this node when pruning (see `apply`); computed ones
        // cannot be sliced.
        let shared = self.consts.initializer(tensor).is_none();
        let layer = self.layer(ni);
        for (space, offset) in layout.offsets() {
            if shared {
                let why = format!(
                    "tensor '{tensor}' of node '{}' is computed, not a stored weight",
                    self.label(ni)
                );
                self.spaces[space].blocked.push(why);
                continue;
            }
            let s = &mut self.spaces[space];
            s.slices.push(Slice {
                tensor: tensor.to_string(),
                axis,
                map: AxisMap {
                    base: offset * unit_len,
                    blocks: 1,
                    block_stride: 0,
                    unit_len,
                },
                role,
                node: ni,
            });
            s.layers.insert(layer.clone());
        }
    }

    fn consumer(&mut self, layout: &Layout, ni: usize) {
        for (space, _) in layout.offsets() {
            self.spaces[space].consumers.push(ni);
        }
    }

    fn match_attention(&mut self) {
        for ni in self.index.topo.clone() {
            if self.heads_at.contains_key(&ni) {
                continue;
            }
            match match_attention(self.graph, &self.index, &self.consts, ni) {
                Ok(Some(m)) => {
                    let space = self.new_space(m.heads, GroupKind::Heads, ni);
                    let layer = self.layer(m.proj_node);
                    let s = &mut self.spaces[space];
                    s.unit_width = m.head_dim;
                    s.slices = m.slices;
                    s.rewrites = m.rewrites;
                    s.consumers.push(m.proj_node);
                    s.scaled = m.attention_matmuls;
                    s.layers.insert(layer);
                    self.claimed.extend(m.claimed);
                    for projection in m.projections {
                        self.heads_at.insert(projection, space);
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    // Report the attention block; its qkv output is then blocked by the walk.
                    let space = self.new_space(0, GroupKind::Heads, ni);
                    self.spaces[space].blocked.push(reason);
                }
            }
        }
    }

    fn visit(&mut self, ni: usize) {
        if self.claimed.contains(&ni) {
            return;
        }
        let node: &'g NodeProto = &self.graph.node[ni];
        let ins: Vec<Option<Layout>> = node
            .input
            .iter()
            .map(|v| self.layouts.get(v).cloned())
            .collect();
        if self.producer(ni, node, &ins) {
            return;
        }
        if ins.iter().all(Option::is_none) {
            return;
        }
        let op = node.op_type();
        let label = self.label(ni);
        // Element-wise ops (the one table, `profagent_onnx::ops`): one input keeps the
        // channel layout, several couple their inputs' channels.
        let kind = profagent_onnx::ops::elementwise(op);
        let out = if kind.is_some_and(|k| k.is_unary()) {
            self.unary(node, &ins, &label)
        } else if kind.is_some() {
            self.binary(ni, node, &ins, &label)
        } else if POOLING.contains(&op) {
            self.pooling(node, &ins, &label)
        } else {
            match op {
                "BatchNormalization" => self.batchnorm(ni, node, &ins, &label),
                "Pad" => self.pad(node, &ins, &label),
                "Flatten" => self.flatten(node, &ins, &label),
                "Reshape" => self.reshape(node, &ins, &label),
                "Concat" => self.concat(node, &ins, &label),
                "LayerNormalization" => Err(format!(
                    "LayerNormalization '{label}' normalizes over the channel axis"
                )),
                _ => Err(format!(
                    "{op} node '{label}' is not understood by the pruner"
                )),
            }
        };
        match out {
            Ok(Some(layout)) => {
                if let Some(o) = node.output.first() {
                    self.layouts.insert(o.clone(), layout);
                }
                let extra_used = node
                    .output
                    .iter()
                    .skip(1)
                    .any(|o| !o.is_empty() && !self.index.consumer_nodes(o).is_empty());
                if extra_used {
                    self.block_inputs(&ins, format!("node '{label}' has extra outputs in use"));
                }
            }
            Ok(None) => {}
            Err(reason) => self.block_inputs(&ins, reason),
        }
    }

    /// Conv, Gemm and MatMul with a constant weight: consume the input channels, open a space.
    fn producer(&mut self, ni: usize, node: &NodeProto, ins: &[Option<Layout>]) -> bool {
        let op = node.op_type();
        if !matches!(op, "Conv" | "Gemm" | "MatMul") || node.input.len() < 2 {
            return false;
        }
        let Some(weight) = self.consts.initializer(&node.input[1]) else {
            return false;
        };
        let dims = weight.dims.clone();
        let label = self.label(ni);
        let wname = node.input[1].clone();
        let out_name = node.output[0].clone();
        let bias = node.input.get(2).filter(|b| !b.is_empty()).cloned();
        match op {
            "Conv" => {
                let rank = dims.len();
                if rank < 3 {
                    return false;
                }
                let axis_from_end = -(rank as i64 - 1);
                let group = attr::get_int(node, "group").unwrap_or(1).max(1) as usize;
                let (cout, cin_per_group) = (dims[0] as usize, dims[1] as usize);
                if let Some(l) = &ins[0] {
                    if l.axis_from_end != axis_from_end || l.flat {
                        self.block(
                            l,
                            format!("Conv '{label}' reads channels on an unexpected axis"),
                        );
                    } else if group == 1 && l.total() == cin_per_group {
                        self.slice(l, &wname, 1, 1, SliceRole::ConsumerWeight, ni);
                        self.consumer(l, ni);
                    } else if group > 1 && l.total() == group * cin_per_group && cout == l.total() {
                        // Depthwise (one channel per group) or grouped with as many outputs as
                        // inputs per group (ResNeXt, RegNet): channel `c` stays channel `c`
                        // and both belong to group `c / width`. Channels pass through and the
                        // conv's own slices go with them; a grouped conv's channels can only
                        // go a whole group at a time, so its spaces prune in units of
                        // `width` channels (the conv then has fewer groups).
                        let l = l.clone();
                        let width = cin_per_group;
                        self.slice(&l, &wname, 0, 1, SliceRole::ProducerWeight, ni);
                        if let Some(b) = &bias {
                            self.slice(&l, b, 0, 1, SliceRole::Bias, ni);
                        }
                        for (space, _) in l.offsets() {
                            let s = &mut self.spaces[space];
                            s.rewrites.push(Rewrite::ConvGroupFromWeight {
                                node: ni,
                                channels_per_group: width,
                            });
                            s.unit_multiple = lcm(s.unit_multiple.max(1), width);
                        }
                        if l.segments.len() > 1 {
                            let what = if width == 1 { "depthwise" } else { "grouped" };
                            self.block(&l, format!("{what} Conv '{label}' spans several groups"));
                        }
                        self.layouts.insert(out_name, l);
                        return true;
                    } else {
                        self.block(l, format!("grouped Conv '{label}' (group {group}) couples channels across groups"));
                    }
                }
                let space = self.new_space(cout, GroupKind::Channel, ni);
                if group != 1 {
                    self.spaces[space]
                        .blocked
                        .push(format!("output channels of grouped Conv '{label}' (group {group}) are tied to its input groups"));
                }
                self.open(
                    space,
                    &wname,
                    0,
                    bias.as_deref(),
                    &out_name,
                    axis_from_end,
                    Some(rank),
                    ni,
                );
                true
            }
            "Gemm" => {
                if dims.len() != 2 || attr::get_int(node, "transA").unwrap_or(0) != 0 {
                    return false;
                }
                let trans_b = attr::get_int(node, "transB").unwrap_or(0) != 0;
                let (k, n, in_axis, out_axis) = if trans_b {
                    (dims[1] as usize, dims[0] as usize, 1, 0)
                } else {
                    (dims[0] as usize, dims[1] as usize, 0, 1)
                };
                if let Some(l) = &ins[0] {
                    self.consume_matrix(l, &wname, in_axis, k, ni, &label);
                }
                let space = self.new_space(n, GroupKind::Mlp, ni);
                let bias = match bias {
                    Some(b) if self.consts.dims(&b) == Some(vec![n as i64]) => Some(b),
                    Some(b) if self.consts.is_scalar_like(&b) => None,
                    Some(_) => {
                        self.spaces[space].blocked.push(format!(
                            "Gemm '{label}' has a bias that is not a [N] constant"
                        ));
                        None
                    }
                    None => None,
                };
                self.open(
                    space,
                    &wname,
                    out_axis,
                    bias.as_deref(),
                    &out_name,
                    -1,
                    Some(2),
                    ni,
                );
                true
            }
            _ => {
                if dims.len() != 2 {
                    return false;
                }
                if let Some(l) = &ins[0] {
                    self.consume_matrix(l, &wname, 0, dims[0] as usize, ni, &label);
                }
                if self.heads_at.contains_key(&ni) {
                    return true;
                }
                let space = self.new_space(dims[1] as usize, GroupKind::Mlp, ni);
                self.open(space, &wname, 1, None, &out_name, -1, None, ni);
                true
            }
        }
    }

    fn consume_matrix(
        &mut self,
        l: &Layout,
        wname: &str,
        in_axis: usize,
        k: usize,
        ni: usize,
        label: &str,
    ) {
        if l.axis_from_end != -1 {
            self.block(l, format!("'{label}' reads channels on an unexpected axis"));
            return;
        }
        let total = l.total();
        let unit_len = if l.flat && total > 0 && k.is_multiple_of(total) {
            k / total
        } else if !l.flat && k == total {
            1
        } else {
            self.block(
                l,
                format!("'{label}' has {k} input features, which do not match {total} channels"),
            );
            return;
        };
        self.slice(l, wname, in_axis, unit_len, SliceRole::ConsumerWeight, ni);
        self.consumer(l, ni);
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        space: usize,
        weight: &str,
        axis: usize,
        bias: Option<&str>,
        out: &str,
        axis_from_end: i64,
        rank: Option<usize>,
        ni: usize,
    ) {
        let layout = Layout {
            segments: vec![Segment {
                space,
                len: self.spaces[space].len,
            }],
            axis_from_end,
            rank,
            flat: false,
        };
        self.slice(&layout, weight, axis, 1, SliceRole::ProducerWeight, ni);
        if let Some(b) = bias {
            self.slice(&layout, b, 0, 1, SliceRole::Bias, ni);
        }
        self.spaces[space].probes.push(Probe {
            value: out.to_string(),
            axis_from_end,
            base: 0,
            width: 1,
        });
        self.layouts.insert(out.to_string(), layout);
    }

    fn unary(
        &mut self,
        node: &NodeProto,
        ins: &[Option<Layout>],
        label: &str,
    ) -> Result<Option<Layout>, String> {
        let Some(l) = &ins[0] else {
            return Err(format!(
                "{} '{label}' reads channels through a parameter input",
                node.op_type()
            ));
        };
        let params_ok = node
            .input
            .iter()
            .skip(1)
            .all(|v| v.is_empty() || self.consts.is_scalar_like(v));
        if !params_ok || ins.iter().skip(1).any(Option::is_some) {
            return Err(format!(
                "{} '{label}' has non-scalar parameters",
                node.op_type()
            ));
        }
        Ok(Some(l.clone()))
    }

    fn binary(
        &mut self,
        ni: usize,
        node: &NodeProto,
        ins: &[Option<Layout>],
        label: &str,
    ) -> Result<Option<Layout>, String> {
        if ins.len() != 2 {
            return Err(format!("'{label}' has {} inputs", ins.len()));
        }
        match (&ins[0], &ins[1]) {
            (Some(a), Some(b)) => {
                if !a.same_shape(b) {
                    return Err(format!(
                        "'{label}' combines tensors with different channel layouts"
                    ));
                }
                let residual = node.op_type() == "Add";
                for (x, y) in a.segments.iter().zip(&b.segments) {
                    if residual {
                        self.spaces[x.space].residual = true;
                        self.spaces[y.space].residual = true;
                    }
                    self.union(x.space, y.space);
                }
                Ok(Some(a.clone()))
            }
            (Some(l), None) | (None, Some(l)) => {
                let other = if ins[0].is_some() {
                    &node.input[1]
                } else {
                    &node.input[0]
                };
                let Some(dims) = self.consts.dims(other) else {
                    return Err(format!("'{label}' combines the channels with '{other}', whose channel layout is unknown"));
                };
                if dims.iter().all(|&d| d == 1) {
                    return Ok(Some(l.clone()));
                }
                let axis = dims.len() as i64 + l.axis_from_end;
                if axis < 0 || l.flat {
                    return if l.flat {
                        Err(format!(
                            "'{label}' applies a constant to flattened channels"
                        ))
                    } else {
                        Ok(Some(l.clone()))
                    };
                }
                let axis = axis as usize;
                if dims[axis] == 1 {
                    Ok(Some(l.clone()))
                } else if dims[axis] as usize == l.total() {
                    self.slice(l, other, axis, 1, SliceRole::Bias, ni);
                    Ok(Some(l.clone()))
                } else {
                    Err(format!(
                        "constant '{other}' of '{label}' does not broadcast over the channels"
                    ))
                }
            }
            (None, None) => Ok(None),
        }
    }

    fn pooling(
        &mut self,
        node: &NodeProto,
        ins: &[Option<Layout>],
        label: &str,
    ) -> Result<Option<Layout>, String> {
        let l = ins[0]
            .clone()
            .ok_or_else(|| format!("'{label}' has an unexpected input"))?;
        if l.flat || l.rank.is_none_or(|r| l.axis_from_end != -(r as i64 - 1)) {
            return Err(format!(
                "{} '{label}' pools a tensor that is not channels-first",
                node.op_type()
            ));
        }
        Ok(Some(l))
    }

    fn batchnorm(
        &mut self,
        ni: usize,
        node: &NodeProto,
        ins: &[Option<Layout>],
        label: &str,
    ) -> Result<Option<Layout>, String> {
        let l = ins[0]
            .clone()
            .ok_or_else(|| format!("'{label}' has an unexpected input"))?;
        if node.input.len() != 5 || ins.iter().skip(1).any(Option::is_some) {
            return Err(format!(
                "BatchNormalization '{label}' has unexpected inputs"
            ));
        }
        for (k, role) in [
            (1, SliceRole::BnScale),
            (2, SliceRole::BnParam),
            (3, SliceRole::BnParam),
            (4, SliceRole::BnParam),
        ] {
            let name = &node.input[k];
            if self.consts.dims(name) != Some(vec![l.total() as i64]) {
                return Err(format!(
                    "BatchNormalization '{label}' parameter '{name}' is not a [C] constant"
                ));
            }
            self.slice(&l, name, 0, 1, role, ni);
        }
        Ok(Some(l))
    }

    fn pad(
        &mut self,
        node: &NodeProto,
        ins: &[Option<Layout>],
        label: &str,
    ) -> Result<Option<Layout>, String> {
        let l = ins[0]
            .clone()
            .ok_or_else(|| format!("'{label}' pads with a channel tensor"))?;
        let pads = node
            .input
            .get(1)
            .and_then(|v| self.consts.ints(v))
            .or_else(|| attr::get_ints(node, "pads"))
            .ok_or_else(|| format!("Pad '{label}' has non-constant pads"))?;
        if node.input.get(3).is_some_and(|v| !v.is_empty()) {
            return Err(format!(
                "Pad '{label}' uses 'axes', which the pruner does not handle"
            ));
        }
        let rank = pads.len() / 2;
        let axis = rank as i64 + l.axis_from_end;
        if axis < 0 || pads[axis as usize] != 0 || pads[axis as usize + rank] != 0 {
            return Err(format!("Pad '{label}' pads the channel axis"));
        }
        Ok(Some(l))
    }

    fn flatten(
        &mut self,
        node: &NodeProto,
        ins: &[Option<Layout>],
        label: &str,
    ) -> Result<Option<Layout>, String> {
        let l = ins[0]
            .clone()
            .ok_or_else(|| format!("'{label}' has an unexpected input"))?;
        let axis = attr::get_int(node, "axis").unwrap_or(1);
        match flatten_channels_first(l) {
            Some(flat) if axis == 1 => Ok(Some(flat)),
            _ => Err(format!(
                "Flatten '{label}' does not flatten channels-first into [N, C*S]"
            )),
        }
    }

    fn reshape(
        &mut self,
        node: &NodeProto,
        ins: &[Option<Layout>],
        label: &str,
    ) -> Result<Option<Layout>, String> {
        let l = ins[0]
            .clone()
            .ok_or_else(|| format!("Reshape '{label}' takes its shape from the channels"))?;
        let target = node.input.get(1).and_then(|v| self.consts.ints(v));
        let is_flatten = matches!(target.as_deref(), Some([0 | -1, -1]) | Some([0, _]));
        match flatten_channels_first(l) {
            Some(flat) if is_flatten => Ok(Some(flat)),
            _ => Err(format!(
                "Reshape '{label}' changes the channel layout in a way the pruner does not follow"
            )),
        }
    }

    fn concat(
        &mut self,
        node: &NodeProto,
        ins: &[Option<Layout>],
        label: &str,
    ) -> Result<Option<Layout>, String> {
        let axis = attr::get_int(node, "axis").unwrap_or(0);
        let Some(first) = ins.iter().flatten().next().cloned() else {
            return Ok(None);
        };
        if ins.iter().any(Option::is_none) {
            return Err(format!(
                "Concat '{label}' joins the channels with a tensor the pruner does not track"
            ));
        }
        let all: Vec<&Layout> = ins.iter().flatten().collect();
        let on_channels = match first.rank {
            Some(r) => axis == first.axis_from_end || axis == r as i64 + first.axis_from_end,
            None => axis == first.axis_from_end,
        };
        if on_channels {
            if all
                .iter()
                .any(|l| l.axis_from_end != first.axis_from_end || l.flat)
            {
                return Err(format!("Concat '{label}' joins different channel layouts"));
            }
            Ok(Some(Layout {
                segments: all.iter().flat_map(|l| l.segments.clone()).collect(),
                ..first
            }))
        } else {
            if all.iter().any(|l| !l.same_shape(&first)) {
                return Err(format!("Concat '{label}' joins different channel layouts"));
            }
            for l in &all[1..] {
                for (x, y) in first.segments.iter().zip(&l.segments) {
                    self.union(x.space, y.space);
                }
            }
            Ok(Some(first))
        }
    }

    fn finish(mut self) -> Vec<Group> {
        let n = self.spaces.len();
        let mut roots: Vec<usize> = Vec::new();
        let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
        for s in 0..n {
            let r = self.find(s);
            if !members.contains_key(&r) {
                roots.push(r);
            }
            members.entry(r).or_default().push(s);
        }
        let topo_pos: HashMap<usize, usize> = self
            .index
            .topo
            .iter()
            .enumerate()
            .map(|(p, &i)| (i, p))
            .collect();
        let mut groups = Vec::new();
        let mut ids: HashSet<String> = HashSet::new();
        for r in roots {
            let mut g = Group {
                id: String::new(),
                kind: GroupKind::Channel,
                producers: Vec::new(),
                layers: Vec::new(),
                units: self.spaces[r].len,
                unit_width: self.spaces[r].unit_width,
                status: GroupStatus::Prunable,
                slices: Vec::new(),
                rewrites: Vec::new(),
                probes: Vec::new(),
                consumer_nodes: Vec::new(),
                scaled_nodes: Vec::new(),
                residual: false,
            };
            let mut producers: Vec<usize> = Vec::new();
            let mut layers = BTreeSet::new();
            let mut reasons: Vec<String> = Vec::new();
            let mut kinds = BTreeSet::new();
            let mut multiple = 1;
            for &s in &members[&r] {
                let sp = std::mem::take(&mut self.spaces[s]);
                multiple = lcm(multiple, sp.unit_multiple.max(1));
                if sp.len != g.units {
                    reasons.push(format!(
                        "coupled layers have different channel counts ({} vs {})",
                        sp.len, g.units
                    ));
                }
                producers.extend(sp.producer_nodes);
                layers.extend(sp.layers);
                g.slices.extend(sp.slices);
                g.rewrites.extend(sp.rewrites);
                g.probes.extend(sp.probes);
                g.consumer_nodes.extend(sp.consumers);
                g.scaled_nodes.extend(sp.scaled);
                reasons.extend(sp.blocked);
                g.residual |= sp.residual;
                if let Some(k) = sp.kind {
                    kinds.insert(format!("{k:?}"));
                }
            }
            producers.sort_by_key(|p| topo_pos.get(p).copied().unwrap_or(usize::MAX));
            g.kind = if kinds.contains("Heads") {
                GroupKind::Heads
            } else if kinds.contains("Channel") {
                GroupKind::Channel
            } else {
                GroupKind::Mlp
            };
            g.producers = producers.iter().map(|&p| self.layer(p)).collect();
            g.producers.dedup();
            g.layers = layers.into_iter().collect();
            let base = g
                .producers
                .first()
                .cloned()
                .unwrap_or_else(|| format!("group{r}"));
            let mut id = if g.kind == GroupKind::Heads {
                format!("{base}#heads")
            } else {
                base
            };
            let mut k = 2;
            while ids.contains(&id) {
                id = format!("{}#{k}", g.producers.first().cloned().unwrap_or_default());
                k += 1;
            }
            ids.insert(id.clone());
            g.id = id;
            if multiple > 1 {
                if g.kind != GroupKind::Channel {
                    reasons.push(format!(
                        "a grouped Conv reads its units in groups of {multiple} channels, and only convolution channels are pruned a whole conv group at a time"
                    ));
                } else if !g.units.is_multiple_of(multiple) {
                    reasons.push(format!(
                        "its {} channels are read by grouped Convs in groups of {multiple}, which do not divide them",
                        g.units
                    ));
                } else {
                    coarsen(&mut g, multiple);
                }
            }
            let mut seen = HashSet::new();
            reasons.retain(|x| seen.insert(x.clone()));
            if !reasons.is_empty() {
                g.status = GroupStatus::Unprunable {
                    reason: reasons.join("; "),
                };
            } else if g.units == 0 {
                g.status = GroupStatus::Unprunable {
                    reason: "group has no channels".into(),
                };
            }
            groups.push(g);
        }
        groups
    }
}

/// Least common multiple.
fn lcm(a: usize, b: usize) -> usize {
    a / profagent_plan::keep::gcd(a, b) * b
}

/// Makes every unit of a channel group `multiple` consecutive channels (a grouped Conv's
/// group): unit `u` then removes what units `u·multiple .. (u+1)·multiple` removed.
fn coarsen(g: &mut Group, multiple: usize) {
    g.units /= multiple;
    g.unit_width *= multiple;
    for s in &mut g.slices {
        s.map.unit_len *= multiple;
    }
    for p in &mut g.probes {
        p.width *= multiple;
    }
    for r in &mut g.rewrites {
        if let Rewrite::ShapeConst { per_unit, .. } = r {
            *per_unit *= multiple as i64;
        }
    }
}

/// The layout after flattening a channels-first `[N, C, S...]` value into `[N, C*S]` (the
/// Flatten/Reshape into a classifier); None when the channel axis is not axis 1.
fn flatten_channels_first(l: Layout) -> Option<Layout> {
    let r = l.rank?;
    (l.axis_from_end == -(r as i64 - 1)).then_some(Layout {
        axis_from_end: -1,
        rank: Some(2),
        flat: l.flat || r > 2,
        ..l
    })
}
