//! `profagent`: the command-line glue. Clap definitions live here and in each
//! `commands/<verb>.rs`; business logic lives in the library crates.
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod commands;
mod config;
mod exit;
mod progress;

/// Profile an ONNX model on the runtime it ships with, plan layerwise pruning and
/// quantization (an LLM or the built-in planner), apply, evaluate, iterate to a budget.
#[derive(Parser, Debug)]
#[command(name = "profagent", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Defaults for any flag can live in ./profagent.toml (or --config PATH, given \
    before the subcommand): one table per subcommand, keys are long flag names, e.g.\n  \
    [compress]\n  max-acc-drop = 1.0\n  rounds = 4\nFlags on the command line override the file.\n\n\
    Exit codes: 0 ok, 1 budget not met, 2 bad input, 3 runtime failure, 130 interrupted \
    (Ctrl-C)."
)]
struct Cli {
    /// Print results, notes, warnings and errors only: no progress bars or lines, no
    /// "preprocessing: ..." or "wrote ..." lines on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,

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
    Compress(Box<commands::compress::Args>),
    /// Regenerate report.html and report.md of a run directory from its report.json.
    Report(commands::report::Args),
    /// Is one model faster than another here? Interleaved timing with a 95 % interval.
    Compare(commands::compare::Args),
    /// Print a shell completion script, e.g. `profagent completions bash >
    /// ~/.local/share/bash-completion/completions/profagent`.
    Completions(commands::completions::Args),
}

/// Every MODEL argument (a file, a model folder, `hf:ORG/NAME`) resolved to its .onnx file.
fn locate_models(command: &mut Command) -> anyhow::Result<()> {
    use commands::inputs::locate_model;
    match command {
        Command::Profile(a) => locate_model(&mut a.model),
        Command::Eval(a) => {
            locate_model(&mut a.model)?;
            a.reference.as_mut().map_or(Ok(()), locate_model)
        }
        Command::Quantize(a) => locate_model(&mut a.model),
        Command::Prune(a) => locate_model(&mut a.model),
        Command::Compress(a) => locate_model(&mut a.model),
        Command::Compare(a) => {
            locate_model(&mut a.reference)?;
            locate_model(&mut a.candidate)
        }
        Command::Report(_) | Command::Completions(_) => Ok(()),
    }
}

/// The clap command: a flag given twice (profagent.toml, then the command line) keeps its last
/// value.
fn command() -> clap::Command {
    let mut command = Cli::command().args_override_self(true);
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, |c| c.args_override_self(true));
    }
    // Built, so that global flags (--quiet) are among each subcommand's arguments when
    // profagent.toml keys are checked against them.
    command.build();
    command
}

fn main() -> ExitCode {
    let command = command();
    let applied = match config::apply(std::env::args_os().collect(), &command) {
        Ok(applied) => applied,
        Err(err) => return exit::report_error(&err),
    };
    let matches = match command.try_get_matches_from(&applied.argv) {
        Ok(matches) => matches,
        // A bad value from profagent.toml is reported naming the file and the key.
        Err(err) => match applied.explain(&err) {
            Some(line) => return exit::report_error(&anyhow::anyhow!(line)),
            None => err.exit(),
        },
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    commands::set_quiet(cli.quiet);
    progress::install(cli.quiet);
    // `compress` stops between steps on the first Ctrl-C and writes what it did; the other
    // commands exit once the file being written is whole.
    progress::install_interrupt(match cli.command {
        Command::Compress(_) => progress::OnInterrupt::Stop,
        _ => progress::OnInterrupt::Exit,
    });
    let mut command = cli.command;
    if let Err(err) = locate_models(&mut command) {
        return exit::report_error(&err);
    }
    let result = match command {
        Command::Profile(a) => commands::profile::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Quantize(a) => commands::quantize::run(a),
        Command::Prune(a) => commands::prune::run(a),
        Command::Compress(a) => commands::compress::run(*a),
        Command::Report(a) => commands::report::run(a),
        Command::Compare(a) => commands::compare::run(a),
        Command::Completions(a) => commands::completions::run(a, crate::command()),
    };
    match result {
        Ok(code) => code,
        Err(err) => exit::report_error(&err),
    }
}
