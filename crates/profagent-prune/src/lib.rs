//! Structured pruning of ONNX graphs: channels (Conv/Gemm, with BN, residual Adds, Concat,
//! depthwise convs), transformer MLP width and whole attention heads.
//!
//! `analyze` finds dependency groups (sets of weight slices that must go together) and says
//! why a group cannot be pruned when it cannot; `prune` scores units by importance, removes
//! the least important ones as one `Patch`, re-validates the graph and reports the predicted
//! parameter and MAC savings. The input model is never modified. With calibration data the
//! layers reading removed units are refitted by least squares to their dense outputs
//! (`reconstruct`), the other consumers get bias correction (`repair`).
pub mod apply;
pub mod calibrate;
pub mod consts;
pub mod error;
pub mod group;
pub mod heads;
pub mod importance;
pub mod lsq;
mod obs;
pub mod reconstruct;
pub mod repair;
pub mod spec;
pub mod walk;

pub use apply::{default_protected, prune, GroupOutcome, PruneReport};
pub use calibrate::{
    channel_stats, expose_values, ActivationSource, ChannelStats, StatRequest, StatsAccumulator,
    ValueVisitor,
};
pub use error::{PruneError, Result};
pub use group::{Group, GroupKind, GroupStatus};
pub use reconstruct::ReconstructTiming;
pub use spec::{Importance, KeepRule, PruneSpec, RatioRule, ReconstructTarget};
pub use walk::analyze;
