//! Ranking layers by measured latency without ranking noise.
//!
//! A model often repeats one layer many times (the 12 `mlp.fc1` of a ViT, the 3x3 convolutions
//! of a ResNet stage). Their true latencies are equal, so ordering them by their individual
//! medians orders them by noise, and "the five slowest layers" changes from one profile to the
//! next. The ranking here:
//! 1. pools structurally identical layers (same op types, MACs, params, weight and activation
//!    bytes) into one class and estimates the class's per-layer latency as the mean of its
//!    members' medians (n members: about √n times less noise than one median);
//! 2. orders classes by that estimate, treating classes within `RANK_TIE_TOLERANCE` of the
//!    slowest class of their tie run as tied and ordering tied classes by MACs (then params);
//! 3. lists a class's members in graph order.
//!
//! The reported per-layer `latency_ms` stays each layer's own median: only the order changes.
use std::collections::BTreeMap;

use crate::types::{LayerProfile, Profile};

/// Relative latency gap below which two classes of layers count as tied (measurement noise on
/// a shared machine is of this order for sub-millisecond kernels).
pub const RANK_TIE_TOLERANCE: f64 = 0.10;

/// Structural identity of a layer: what it computes, not where it sits.
type Signature = (Vec<String>, u64, u64, u64, u64);

fn signature(layer: &LayerProfile) -> Signature {
    (
        layer.op_types.clone(),
        layer.macs,
        layer.params,
        layer.weight_bytes,
        layer.activation_bytes,
    )
}

/// Indices into `layers`, slowest first (see the module docs); `None` when some layer has no
/// measured latency.
pub fn latency_order(layers: &[LayerProfile]) -> Option<Vec<usize>> {
    if layers.is_empty() || layers.iter().any(|l| l.latency_ms.is_none()) {
        return None;
    }
    // Classes in first-seen (graph) order, each with its members in graph order.
    let mut class_of: BTreeMap<Signature, usize> = BTreeMap::new();
    let mut classes: Vec<Vec<usize>> = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let next = classes.len();
        let class = *class_of.entry(signature(layer)).or_insert(next);
        if class == next {
            classes.push(Vec::new());
        }
        classes[class].push(index);
    }
    let pooled: Vec<f64> = classes
        .iter()
        .map(|members| {
            members
                .iter()
                .map(|&i| layers[i].latency_ms.unwrap_or(0.0))
                .sum::<f64>()
                / members.len() as f64
        })
        .collect();
    let mut by_latency: Vec<usize> = (0..classes.len()).collect();
    by_latency.sort_by(|&a, &b| pooled[b].total_cmp(&pooled[a]).then(a.cmp(&b)));
    // Tie runs: consecutive classes within the tolerance of the run's slowest class.
    let mut order = Vec::with_capacity(layers.len());
    let mut start = 0;
    while start < by_latency.len() {
        let head = pooled[by_latency[start]];
        let mut end = start + 1;
        while end < by_latency.len() && pooled[by_latency[end]] >= head * (1.0 - RANK_TIE_TOLERANCE)
        {
            end += 1;
        }
        let mut run: Vec<usize> = by_latency[start..end].to_vec();
        run.sort_by(|&a, &b| {
            let (la, lb) = (&layers[classes[a][0]], &layers[classes[b][0]]);
            lb.macs
                .cmp(&la.macs)
                .then(lb.params.cmp(&la.params))
                .then(pooled[b].total_cmp(&pooled[a]))
                .then(a.cmp(&b))
        });
        for class in run {
            order.extend_from_slice(&classes[class]);
        }
        start = end;
    }
    Some(order)
}

/// Writes `latency_rank` (1 = slowest) into every layer from `latency_order`.
pub fn assign_latency_ranks(profile: &mut Profile) {
    let Some(order) = latency_order(&profile.layers) else {
        return;
    };
    for (rank, index) in order.into_iter().enumerate() {
        profile.layers[index].latency_rank = Some(rank + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, op: &str, macs: u64, latency: f64) -> LayerProfile {
        LayerProfile {
            name: name.into(),
            op_types: vec![op.into()],
            nodes: vec![],
            params: macs / 10,
            macs,
            weight_bytes: macs / 5,
            activation_bytes: 1000,
            macs_share: 0.0,
            latency_ms: Some(latency),
            latency_share: None,
            latency_rank: None,
            peak_rss_bytes: None,
            kernels: None,
        }
    }

    fn names(layers: &[LayerProfile]) -> Vec<String> {
        latency_order(layers)
            .unwrap()
            .into_iter()
            .map(|i| layers[i].name.clone())
            .collect()
    }

    #[test]
    fn identical_layers_rank_in_graph_order_whatever_their_noise() {
        // Two profiles of the same 4-block model: the fc1 medians are shuffled by noise.
        let make = |noise: [f64; 4]| {
            let mut layers = Vec::new();
            for (block, n) in noise.iter().enumerate() {
                layers.push(layer(
                    &format!("b{block}.fc1"),
                    "MatMul",
                    9_000_000,
                    0.20 + n,
                ));
                layers.push(layer(
                    &format!("b{block}.attn"),
                    "Softmax",
                    1_000_000,
                    0.19 - n,
                ));
                layers.push(layer(&format!("b{block}.norm"), "LayerNorm", 10_000, 0.02));
            }
            layers
        };
        let first = names(&make([0.03, -0.02, 0.01, 0.0]));
        let second = names(&make([-0.03, 0.02, 0.0, 0.01]));
        assert_eq!(first, second);
        // fc1 and attn are within 10 %: tied, so MACs decide; members in graph order.
        assert_eq!(
            &first[..5],
            ["b0.fc1", "b1.fc1", "b2.fc1", "b3.fc1", "b0.attn"]
        );
        assert_eq!(first.last().unwrap(), "b3.norm");
    }

    #[test]
    fn a_clearly_slower_layer_outranks_a_heavier_one() {
        let layers = vec![
            layer("big", "Conv", 100_000_000, 0.5),
            layer("slow", "Resize", 1_000, 2.0),
        ];
        assert_eq!(names(&layers), ["slow", "big"]);
        let mut unmeasured = layers.clone();
        unmeasured[0].latency_ms = None;
        assert!(latency_order(&unmeasured).is_none());
    }
}
