//! `profagent`: the command-line glue. Clap definitions live here and in each
//! `commands/<verb>.rs`; business logic lives in the library crates.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod exit;

/// Profile an ONNX model on the runtime it ships with, plan layerwise pruning and
/// quantization (an LLM or the built-in planner), apply, evaluate, iterate to a budget.
#[derive(Parser, Debug)]
#[command(name = "profagent", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Exit codes: 0 ok, 1 budget not met, 2 bad input, 3 runtime failure.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Per-layer parameters, MACs, bytes and measured latency/memory of a model.
    Profile(commands::profile::Args),
    /// Accuracy, fidelity, latency and memory of a model on a dataset.
    Eval(commands::eval::Args),
    /// Post-training quantization: dynamic int8, static int8 (QDQ) or int4 weight-only.
    Quantize(commands::quantize::Args),
    /// Structured pruning of channels, MLP width and attention heads.
    Prune(commands::prune::Args),
    /// Profile → plan → apply → evaluate → feedback, until the budget is met.
    Compress(commands::compress::Args),
    /// Regenerate report.html and report.md of a run directory from its report.json.
    Report(commands::report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Profile(a) => commands::profile::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Quantize(a) => commands::quantize::run(a),
        Command::Prune(a) => commands::prune::run(a),
        Command::Compress(a) => commands::compress::run(a),
        Command::Report(a) => commands::report::run(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => exit::report_error(&err),
    }
}
