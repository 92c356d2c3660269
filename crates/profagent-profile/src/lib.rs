//! Per-node and per-layer profiles of an ONNX model.
//!
//! `static_cost` computes what the graph alone tells: parameters, MACs, weight bytes and
//! activation bytes at a batch size, grouped into layers by the exporter's module scopes.
//! Measured latency and memory (from a runtime) fill the `Option` fields of the same `Profile`
//! types (`dynamic`, feature `measured`, on by default; without it nothing here links a runtime,
//! so `profagent-prune` gets static costs only). `table` renders a profile for the terminal.
//! This crate decides nothing about what to compress.
pub mod cost;
#[cfg(feature = "measured")]
pub mod dynamic;
pub mod error;
pub mod fusion;
pub mod rank;
pub mod static_cost;
pub mod table;
pub mod types;

#[cfg(feature = "measured")]
pub use dynamic::{merge_measured, render_measurement, Measurement};
pub use error::{ProfileError, Result};
#[cfg(feature = "measured")]
pub use fusion::{merge_fusion, render_fusion};
pub use rank::{assign_latency_ranks, latency_order, RANK_TIE_TOLERANCE};
pub use static_cost::{static_profile, ProfileOptions};
pub use types::{Coverage, LayerKernels, LayerProfile, ModelSummary, NodeProfile, Profile};
