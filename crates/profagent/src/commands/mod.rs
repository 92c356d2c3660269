//! One module per subcommand: its clap `Args` and a `run` that calls the library crates.
mod calib;
pub mod check;
pub mod compress;
pub mod eval;
pub mod inputs;
pub mod profile;
pub mod prune;
pub mod quantize;
pub mod report;
