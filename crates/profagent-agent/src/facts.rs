//! What planners know about a model: the compact facts the prompt and the built-in planner
//! are built from (filled from the profile, the pruning analysis and the measurements of the
//! run), plus the budget and the history of earlier rounds. The measured facts themselves
//! (`Budget`, `Evaluation`, `QuantProbe`, `GroupSensitivity`) are the run record's types
//! (`profagent-record`), re-exported here.
use serde::{Deserialize, Serialize};

pub use profagent_record::{
    Budget, Estimate, Evaluation, GroupSensitivity, LatencyAt, Objective, PairedAccuracy,
    QuantProbe, SpeedComparison, SpeedVerdict, ACCURACY_CONFIDENCE,
};

/// Cost of one layer (from the static profile, plus measured latency when available).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerFacts {
    pub name: String,
    pub op_type: String,
    pub params: u64,
    pub macs: u64,
    /// Median latency on the target runtime, ms: measured once on the input model by the
    /// runtime's profiler (`Workbench::layer_latencies`); for a layer pruning has shrunk since,
    /// the input's number times the layer's MACs now over its MACs then (`latency_scaled`).
    pub latency_ms: Option<f64>,
    /// True when `latency_ms` is the input model's measurement scaled by MACs, not measured
    /// on this model.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub latency_scaled: bool,
    /// Activation + weight memory, bytes.
    pub memory_bytes: Option<u64>,
}

/// A prunable group as planners see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupFacts {
    pub id: String,
    pub channels: usize,
    pub heads: Option<usize>,
    pub params: u64,
    pub macs: u64,
    /// Summed latency of the layers the group touches (its producers and the layers that read
    /// its channels), ms, from the per-layer latencies in `LayerFacts` (when profiled).
    pub latency_ms: Option<f64>,
    /// The top-1 drop (points) planners rank by when `probed_ratio` of this group is pruned
    /// alone: `fitted_drop` when the fit was possible, else `measured_drop`.
    pub sensitivity: Option<f64>,
    /// Top-1 drop (points) measured on `probed_images` feedback images with `probed_ratio` of
    /// this group pruned alone, on the input model: it moves in steps of 100 / `probed_images`
    /// points (one image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_drop: Option<f64>,
    /// Images the sensitivity measurement used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_images: Option<usize>,
    /// Fraction of the group's units the measurement removed (after rounding to whole units:
    /// 1 of 3 heads is 0.33, not the nominal `SENSITIVITY_RATIO`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_ratio: Option<f64>,
    /// Loss-fitted estimate of the same drop: the group's cross-entropy increase times the
    /// points-per-nat slope fitted over all measured groups (`GroupSensitivity::expected_drop`);
    /// `None` when too few groups were measured to fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_drop: Option<f64>,
    /// Output cosine lost in the same measurement (the cosine with the original model of the
    /// model the group was probed on, minus the probed model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity_loss: Option<f64>,
    /// Round whose model the sensitivity was measured on (0: the input model, before round 1).
    /// Older than the last accepted pruning round means stale: measured on a wider model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_round: Option<usize>,
    /// The group's units (heads for a heads group, else channels) when it was probed
    /// (`probed_ratio` is a fraction of these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_from: Option<usize>,
    /// The group's channels in the input model (`channels` is what is left now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_channels: Option<usize>,
    /// True when the group's channels are a residual stream: two or more producers write them
    /// and an `Add` of two such tensors (a skip connection) couples them, so pruning it thins
    /// every block on the stream at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub residual: bool,
    /// The runtime pads this group's channel count up to a multiple of this on this machine
    /// (ONNX Runtime's blocked layout of float convolutions, read from the graph it runs:
    /// `profagent_runtime::conv_channel_block`): a kept count that is not a multiple runs as
    /// slowly as the next multiple up. Counted as `channels` counts: in whole conv groups
    /// for a group a grouped convolution reads (the block over its group width's common
    /// factor with it). `None`: no padding known (not a float convolution
    /// group, or a runtime without a blocked layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_block: Option<u32>,
    pub prunable: bool,
    pub note: Option<String>,
    /// A second measurement at a deeper ratio (the groups cheapest per MAC, the ones planners
    /// cut deepest), on the same model as the first: the cost curve between the two ratios is
    /// measured, not extrapolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deeper: Option<DeeperProbe>,
    /// A third measurement, deeper than `deeper`, on the same model (groups still among the
    /// cheapest per MAC at the deeper ratio: planners may cut them to this depth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deepest: Option<DeeperProbe>,
}

/// A group's sensitivity measured at a second, deeper ratio (see `GroupFacts::deeper`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeeperProbe {
    /// Fraction of `probed_from` units removed (larger than `probed_ratio`).
    pub ratio: f64,
    /// As `GroupFacts::sensitivity`, at `ratio`.
    pub sensitivity: Option<f64>,
    pub measured_drop: Option<f64>,
    pub fitted_drop: Option<f64>,
    pub fidelity_loss: Option<f64>,
}

impl GroupFacts {
    /// Expected top-1 drop (points, against the model the group was probed on) with `fraction`
    /// of its `probed_from` units removed, on the measured curve: quadratic in the fraction up to
    /// the probed ratio, anchored at `sensitivity` (the first units removed are the least
    /// important); with deeper probes (`deeper`, then `deepest`), linear from each measurement
    /// to the next (each taken as at least proportional growth over the one before: a smaller
    /// deeper drop is noise) and quadratic beyond the deepest; without one, quadratic beyond the
    /// probed ratio (an extrapolation). Drops are at least `floor` at the probed ratio
    /// (measured drops near zero are noise, not free units). `None` without a measurement.
    pub fn expected_drop_at(&self, fraction: f64, floor: f64) -> Option<f64> {
        let r1 = self.probed_ratio.filter(|r| *r > 0.0 && r.is_finite())?;
        let s1 = self.sensitivity?.max(floor).max(0.0);
        let mut points = vec![(r1, s1)];
        for probe in [&self.deeper, &self.deepest].into_iter().flatten() {
            let (r, s) = *points.last().expect("one point");
            if let Some(d) = probe
                .sensitivity
                .filter(|_| probe.ratio > r && probe.ratio.is_finite())
            {
                points.push((probe.ratio, d.max(s * probe.ratio / r)));
            }
        }
        let x = fraction.max(0.0);
        if x <= r1 {
            return Some(s1 * (x / r1).powi(2));
        }
        for pair in points.windows(2) {
            let ((ra, sa), (rb, sb)) = (pair[0], pair[1]);
            if x <= rb {
                return Some(sa + (sb - sa) * (x - ra) / (rb - ra));
            }
        }
        let (r, s) = *points.last().expect("one point");
        Some(s * (x / r).powi(2))
    }

    /// The deepest fraction of `probed_from` units a measurement covers (the deepest probe's
    /// ratio when there is one); `None` without a measurement.
    pub fn measured_range(&self) -> Option<f64> {
        let r1 = self.probed_ratio.filter(|r| *r > 0.0 && r.is_finite())?;
        Some(
            [&self.deeper, &self.deepest]
                .into_iter()
                .flatten()
                .map(|d| d.ratio)
                .fold(r1, f64::max),
        )
    }

    /// The units the group is pruned in, now: heads for an attention-heads group, else
    /// channels (`probed_from` counts the same units).
    pub fn units(&self) -> usize {
        self.heads.unwrap_or(self.channels)
    }
}

/// One earlier round in a few fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    pub round: usize,
    pub plan: String,
    pub top1: Option<f64>,
    pub latency_ms: Option<f64>,
    pub model_bytes: Option<u64>,
    /// The candidate's top-1 against the input model on the same feedback images (paired:
    /// the change and its interval), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_change: Option<PairedAccuracy>,
    /// The candidate timed against the input model, interleaved (speedup interval and
    /// verdict), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedComparison>,
    /// The candidate's MACs at batch 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<u64>,
    pub accepted: bool,
    pub note: String,
}

/// Everything a planner gets for one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanningInput {
    pub model_name: String,
    /// "convolutional", "transformer" or "mixed" (from the op types).
    pub family: String,
    pub runtime: String,
    pub baseline: Evaluation,
    /// The model this round starts from.
    pub current: Evaluation,
    /// Quantization in effect on the current model ("none", "static", ...).
    pub current_quantization: String,
    pub layers: Vec<LayerFacts>,
    pub groups: Vec<GroupFacts>,
    pub quant_probes: Vec<QuantProbe>,
    pub budget: Budget,
    pub history: Vec<RoundSummary>,
    pub rounds_left: usize,
    /// Rounds in a row without an accepted candidate that end the run (0: not stated).
    #[serde(default)]
    pub patience: usize,
}

impl PlanningInput {
    /// Top-1 drop of `top1` against the baseline, points (0 without labels: then the
    /// fidelity bound is the budget).
    pub fn drop_of(&self, top1: Option<f64>) -> f64 {
        match (self.baseline.top1, top1) {
            (Some(b), Some(t)) => b - t,
            _ => 0.0,
        }
    }
}
