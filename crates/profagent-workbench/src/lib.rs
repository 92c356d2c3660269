//! The glue between the commands, the compression loop and the library crates, as a library:
//! what `profagent compress`, `quantize` and `prune` run, usable from other front ends (the
//! Python package) without the CLI.
//!
//! - `bench`: `OrtBench`, the real `profagent_agent::compressor::Workbench`: static profile and
//!   pruning analysis for the planners, `profagent-prune` and `profagent-quant` to apply plans,
//!   `profagent-data` to evaluate (paired, per image), `profagent_runtime::compare_latency` to
//!   time candidates interleaved.
//! - `activations`: calibration activations for the pruner (`profagent_prune::ActivationSource`)
//!   from batches run through a runtime; `profagent prune --calib` uses it too.
//! - `signedness`: `quantize --activations auto`: static QDQ with uint8 and int8 activations
//!   timed against each other (interleaved), int8 kept only when measurably faster.
//! - `calibration`: `quantize --calibration auto`: static QDQ with each range method, each
//!   checked against the float model on real samples, the most faithful kept.
//! - `check`: the pre-write output check of `quantize` and `prune` on the target runtime, with
//!   the named per-mode cosine budgets.
//! - `split`: how `compress` divides its data into calibration, feedback and holdout.
//!
//! Decisions of the loop live in `profagent-agent` (the loop, the judge, the planners); this
//! crate measures, applies and holds the commands' fixed rules (budgets, slice sizes).
pub mod activations;
pub mod bench;
pub mod calibration;
pub mod check;
pub mod signedness;
pub mod split;
pub mod weights;

pub use activations::{Batch, BatchActivations};
pub use bench::OrtBench;
pub use check::{check_rewrite, CheckError, CheckInputs, CheckOutcome, Floor};
pub use split::{split_sizes, CALIBRATION_BATCH, MAX_DEFAULT_FEEDBACK, MIN_DEFAULT_FEEDBACK};
