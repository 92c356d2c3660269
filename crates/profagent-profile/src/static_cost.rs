//! Builds the static `Profile`: shape inference at the requested batch, then per node the
//! params (weight elements: float initializers, and integer initializers of rank ≥ 2, i.e.
//! quantized weights, counted unpacked; attributed to the first node that reads them), MACs
//! (`cost` registry), weight bytes and output activation bytes; then nodes grouped into
//! layers by the exporter's module scope (`naming::layer_of_node`).
use std::collections::{HashMap, HashSet};

use profagent_onnx::index::{node_label, node_reads};
use profagent_onnx::proto::{tensor_proto::DataType, GraphProto, TensorProto};
use profagent_onnx::{layer_of_node, tensor, GraphIndex, Model, ShapeFacts, ShapeOptions};

use crate::cost;
use crate::error::{ProfileError, Result};
use crate::types::{Coverage, LayerProfile, ModelSummary, NodeProfile, Profile};

/// What to profile.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// Batch size MACs and activation bytes are computed for (binds the symbolic batch dim).
    pub batch: i64,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions { batch: 1 }
    }
}

/// The static profile of `model` (no runtime involved).
pub fn static_profile(model: &Model, options: &ProfileOptions) -> Result<Profile> {
    if options.batch < 1 {
        return Err(ProfileError::InvalidBatch {
            batch: options.batch,
        });
    }
    let graph = model.proto.graph.as_ref().ok_or(ProfileError::NoGraph)?;
    let index = GraphIndex::new(graph)?;
    let facts = ShapeFacts::infer(
        graph,
        &index,
        &ShapeOptions {
            batch: Some(options.batch),
        },
    )?;

    let layer_names = assign_layers(graph, &index);
    let mut coverage = Coverage {
        unsupported_ops: facts.unsupported_ops.clone(),
        ..Coverage::default()
    };
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut nodes = Vec::with_capacity(index.topo.len());
    // Per node: the initializers it reads, for per-layer de-duplication.
    let mut node_initializers: Vec<Vec<&str>> = Vec::with_capacity(index.topo.len());
    for &ni in &index.topo {
        let node = &graph.node[ni];
        let label = node_label(node, ni);
        let mut reads: Vec<&str> = Vec::new();
        let mut params = 0u64;
        let mut weight_bytes = 0u64;
        for name in node_reads(node) {
            let Some(&pos) = index.initializers.get(&name) else {
                continue;
            };
            let init = &graph.initializer[pos];
            if reads.contains(&init.name()) {
                continue;
            }
            reads.push(init.name());
            weight_bytes = weight_bytes.saturating_add(initializer_bytes(init));
            let counted = param_elements(init, node);
            if counted > 0 && claimed.insert(init.name()) {
                params = params.saturating_add(counted);
            }
        }
        let macs = match cost::node_macs(node, &facts) {
            Some(m) => m,
            None => {
                coverage.nodes_without_macs.push(label.clone());
                0
            }
        };
        let mut activation_bytes = 0u64;
        let mut output_shapes = Vec::with_capacity(node.output.len());
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            match facts.bytes(out) {
                Some(b) => activation_bytes = activation_bytes.saturating_add(b),
                None => coverage.values_without_shape += 1,
            }
            output_shapes.push(facts.known_dims(out));
        }
        nodes.push(NodeProfile {
            name: label,
            op_type: node.op_type().to_string(),
            layer: layer_names[ni].clone(),
            output_shapes,
            params,
            macs,
            weight_bytes,
            activation_bytes,
            latency_ms: None,
        });
        node_initializers.push(reads);
    }

    let layers = group_layers(&nodes, &node_initializers, graph);
    let total_macs = saturating_sum(nodes.iter().map(|n| n.macs));
    let layers: Vec<LayerProfile> = layers
        .into_iter()
        .map(|mut l| {
            l.macs_share = share(l.macs, total_macs);
            l
        })
        .collect();
    let model_summary = ModelSummary {
        path: model.path.as_ref().map(|p| p.display().to_string()),
        batch: options.batch,
        node_count: nodes.len(),
        layer_count: layers.len(),
        params: saturating_sum(nodes.iter().map(|n| n.params)),
        macs: total_macs,
        weight_bytes: saturating_sum(graph.initializer.iter().map(initializer_bytes)),
        activation_bytes: saturating_sum(nodes.iter().map(|n| n.activation_bytes)),
        latency_ms: None,
        peak_rss_bytes: None,
    };
    Ok(Profile {
        model: model_summary,
        layers,
        nodes,
        coverage,
        #[cfg(feature = "measured")]
        measurement: None,
        #[cfg(feature = "measured")]
        fusion: None,
    })
}

/// Parameters an initializer holds for `node`: its elements when it is float, or when it is an
/// integer tensor of rank ≥ 2 (a quantized weight; 1-D and scalar integers are zero points and
/// shapes). A quantized model keeps its parameters: only their width changes. MatMulNBits
/// packs 8 / bits weights per byte of its `B` input.
fn param_elements(init: &TensorProto, node: &profagent_onnx::proto::NodeProto) -> u64 {
    if tensor::is_float(init.data_type()) {
        return element_count(init);
    }
    let integer = matches!(
        DataType::try_from(init.data_type()).unwrap_or(DataType::Undefined),
        DataType::Int8 | DataType::Uint8 | DataType::Int4 | DataType::Uint4
    );
    if !integer || init.dims.len() < 2 {
        return 0;
    }
    let packed_b = node.op_type() == "MatMulNBits"
        && node.input.get(1).map(String::as_str) == Some(init.name());
    let per_byte = if packed_b {
        let bits = profagent_onnx::attr::get_int(node, "bits")
            .unwrap_or(4)
            .clamp(1, 8);
        (8 / bits) as u64
    } else {
        1
    };
    element_count(init).saturating_mul(per_byte)
}

/// Elements of a tensor, saturating: a corrupt file may claim dims whose product overflows.
fn element_count(t: &TensorProto) -> u64 {
    t.dims
        .iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d.max(0) as u64))
}

/// Bytes of an initializer's payload (packed 4-bit types count half a byte per element).
fn initializer_bytes(t: &TensorProto) -> u64 {
    if let Some(raw) = &t.raw_data {
        return raw.len() as u64;
    }
    let elements = element_count(t);
    match DataType::try_from(t.data_type()) {
        Ok(DataType::Int4 | DataType::Uint4) => elements.div_ceil(2),
        _ => elements.saturating_mul(tensor::elem_size(t.data_type()) as u64),
    }
}

fn saturating_sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}

/// `part / whole`, 0 when `whole` is 0.
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Layer name per node index. `Constant` nodes are operands, not computations: they join the
/// layer of the first node that reads them, so they never form layers of their own.
fn assign_layers(graph: &GraphProto, index: &GraphIndex) -> Vec<String> {
    let mut layers: Vec<String> = graph
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| layer_of_node(n.name(), n.op_type(), i))
        .collect();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op_type() != "Constant" {
            continue;
        }
        let consumer = node
            .output
            .iter()
            .flat_map(|o| index.consumer_nodes(o))
            .map(|&(c, _)| c)
            .find(|&c| graph.node[c].op_type() != "Constant");
        if let Some(c) = consumer {
            layers[i] = layers[c].clone();
        }
    }
    layers
}

fn group_layers(
    nodes: &[NodeProfile],
    node_initializers: &[Vec<&str>],
    graph: &GraphProto,
) -> Vec<LayerProfile> {
    let sizes: HashMap<&str, u64> = graph
        .initializer
        .iter()
        .map(|t| (t.name(), initializer_bytes(t)))
        .collect();
    let mut order: Vec<LayerProfile> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut seen_weights: Vec<HashSet<&str>> = Vec::new();
    for (node, reads) in nodes.iter().zip(node_initializers) {
        let slot = *position.entry(node.layer.as_str()).or_insert_with(|| {
            order.push(LayerProfile {
                name: node.layer.clone(),
                op_types: Vec::new(),
                nodes: Vec::new(),
                params: 0,
                macs: 0,
                weight_bytes: 0,
                activation_bytes: 0,
                macs_share: 0.0,
                latency_ms: None,
                latency_share: None,
                latency_rank: None,
                peak_rss_bytes: None,
                kernels: None,
            });
            seen_weights.push(HashSet::new());
            order.len() - 1
        });
        let layer = &mut order[slot];
        if !layer.op_types.contains(&node.op_type) {
            layer.op_types.push(node.op_type.clone());
        }
        layer.nodes.push(node.name.clone());
        layer.params = layer.params.saturating_add(node.params);
        layer.macs = layer.macs.saturating_add(node.macs);
        layer.activation_bytes = layer.activation_bytes.saturating_add(node.activation_bytes);
        for &name in reads {
            if seen_weights[slot].insert(name) {
                layer.weight_bytes = layer
                    .weight_bytes
                    .saturating_add(sizes.get(name).copied().unwrap_or(0));
            }
        }
    }
    order
}
