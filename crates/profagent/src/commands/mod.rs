//! One module per subcommand: its clap `Args` and a `run` that calls the library crates.
mod calib;
pub mod check;
pub mod compare;
pub mod compress;
pub mod eval;
pub mod inputs;
pub mod profile;
pub mod prune;
pub mod quantize;
pub mod report;

/// Most intra-op threads a command accepts: more is a typo, and asking a runtime for 100,000
/// threads runs until killed.
pub const MAX_THREADS: u64 = 1024;
/// Largest batch a command accepts: larger ones saturate the cost counts (profile) or cannot
/// be allocated (eval).
pub const MAX_BATCH: u64 = 1 << 16;

/// `--threads`: 0 (the runtime's choice) to `MAX_THREADS`.
pub fn threads_parser() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_THREADS)
}
