//! The glue between the compression loop and the library crates, as a library: what
//! `profagent compress` runs, usable from other front ends (the Python package) without the CLI.
//!
//! - `bench`: `OrtBench`, the real `profagent_agent::compressor::Workbench`: static profile and
//!   pruning analysis for the planners, `profagent-prune` and `profagent-quant` to apply plans,
//!   `profagent-data` to evaluate (paired, per image), `profagent_runtime::compare_latency` to
//!   time candidates interleaved.
//! - `activations`: calibration activations for the pruner (`profagent_prune::ActivationSource`)
//!   from batches run through a runtime; `profagent prune --calib` uses it too.
//! - `signedness`: `quantize --activations auto`: static QDQ with uint8 and int8 activations
//!   timed against each other (interleaved), int8 kept only when measurably faster.
//!
//! Decisions live in `profagent-agent` (the loop, the judge, the planners); this crate measures
//! and applies.
pub mod activations;
pub mod bench;
pub mod signedness;

pub use activations::{Batch, BatchActivations};
pub use bench::OrtBench;
