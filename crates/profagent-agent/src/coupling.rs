//! What cuts in several groups remove together, each layer counted once.
//!
//! A layer that writes one pruned group's channels and reads another's keeps
//! `(1 - r_out) (1 - r_in)` of its MACs (and weights); adding up each group's MACs times its
//! own cut counts the product twice. On resnet18_cifar10 a built-in round planned as
//! "remove 222.7 MMACs" removed 197.2: the stage-4 residual stream was cut by 75 % and so were
//! the convolutions that read and write it. Planners allocate, and estimates report, with this.
use std::collections::BTreeMap;

use profagent_plan::PlanContext;

use crate::facts::{GroupFacts, PlanningInput};

/// MACs, parameters and (where measured) milliseconds removed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Removed {
    pub macs: f64,
    pub params: f64,
    /// `None` when no group involved has a measured latency.
    pub ms: Option<f64>,
}

#[derive(Debug, Clone)]
struct Term {
    macs: f64,
    params: f64,
    ms: Option<f64>,
    /// Indices of the groups whose cuts shrink this term (a layer's producer and consumer
    /// groups; one group for the part of a group not found among the layers).
    groups: Vec<usize>,
}

/// The layers `groups` touch, each with the groups it belongs to.
#[derive(Debug, Clone)]
pub struct Coupling {
    terms: Vec<Term>,
    groups: usize,
}

impl Coupling {
    /// The layers of `groups` (from `context`'s group layers) with their MACs, parameters and
    /// latency (from `input.layers`). The part of a group's own totals its known layers do not
    /// account for (a context without layer lists, layers missing from the profile) stays a
    /// term of its own, linear in the group's cut: without layer facts this is the first-order
    /// sum.
    pub fn new(groups: &[&GroupFacts], input: &PlanningInput, context: &PlanContext) -> Self {
        let facts: BTreeMap<&str, _> = input.layers.iter().map(|l| (l.name.as_str(), l)).collect();
        let mut layers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, g) in groups.iter().enumerate() {
            let Some(info) = context.groups.get(&g.id) else {
                continue;
            };
            for layer in &info.layers {
                if facts.contains_key(layer.as_str()) {
                    let owners = layers.entry(layer.as_str()).or_default();
                    if !owners.contains(&i) {
                        owners.push(i);
                    }
                }
            }
        }
        let mut terms = Vec::new();
        let mut known = vec![(0.0, 0.0, 0.0); groups.len()];
        for (name, owners) in layers {
            let l = facts[name];
            for &i in &owners {
                known[i].0 += l.macs as f64;
                known[i].1 += l.params as f64;
                known[i].2 += l.latency_ms.unwrap_or(0.0);
            }
            terms.push(Term {
                macs: l.macs as f64,
                params: l.params as f64,
                ms: l.latency_ms,
                groups: owners,
            });
        }
        for (i, g) in groups.iter().enumerate() {
            let (macs, params, ms) = known[i];
            terms.push(Term {
                macs: (g.macs as f64 - macs).max(0.0),
                params: (g.params as f64 - params).max(0.0),
                ms: g.latency_ms.map(|t| (t - ms).max(0.0)),
                groups: vec![i],
            });
        }
        Coupling {
            terms,
            groups: groups.len(),
        }
    }

    /// What removing `fractions[i]` of group `i`'s current units (channels, or heads of a heads
    /// group) removes, all groups at once.
    pub fn removed(&self, fractions: &[f64]) -> Removed {
        assert_eq!(fractions.len(), self.groups, "one fraction per group");
        let mut out = Removed::default();
        for t in &self.terms {
            let kept: f64 = t
                .groups
                .iter()
                .map(|&g| 1.0 - fractions[g].clamp(0.0, 1.0))
                .product();
            let gone = 1.0 - kept;
            out.macs += t.macs * gone;
            out.params += t.params * gone;
            if let Some(ms) = t.ms {
                *out.ms.get_or_insert(0.0) += ms * gone;
            }
        }
        out
    }
}
