//! `profagent`: the command-line glue. Clap definitions live here and in each
//! `commands/<verb>.rs`; business logic lives in the library crates.
//!
//! A library as well as the binary (`src/main.rs` only calls `main_with`), so that the Python
//! package (`python/`) runs the very same commands in its own process: `main_with` is the
//! `profagent` console script, `run_embedded` the engine of every `profagent.<verb>(...)` call
//! (no process exit, no Ctrl-C handler, the error returned instead of printed).
use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod commands;
mod config;
pub mod exit;
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

/// How a command ended when run by `run_embedded`: its exit code (`exit::OK`,
/// `exit::BUDGET_NOT_MET`, `exit::BAD_INPUT`, `exit::RUNTIME_FAILURE`, `exit::INTERRUPTED`)
/// and, for an error, the one line the binary prints after `error: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: u8,
    pub error: Option<String>,
}

/// The binary: `argv` as the process got it (program name first). Errors are printed on
/// stderr, clap's usage errors and `--help` exit the process as clap does, and Ctrl-C is
/// handled as `progress::install_interrupt` says.
pub fn main_with(argv: Vec<OsString>) -> ExitCode {
    match dispatch(argv, true) {
        Ok(code) => code,
        Err(Parsed::Clap(err)) => err.exit(),
        Err(Parsed::Failed(err)) => exit::report_error(&err),
    }
}

/// One command run inside a host process (the Python package): nothing exits the process and
/// no Ctrl-C handler is installed (the host asks a running `compress` to stop through
/// `profagent_onnx::progress::request_stop`); an error comes back as its line instead of
/// being printed. Progress bars and informational lines go to stderr as in the binary.
pub fn run_embedded(argv: Vec<OsString>) -> Outcome {
    match dispatch(argv, false) {
        Ok(exit_code) => Outcome {
            code: code_value(exit_code),
            error: None,
        },
        Err(Parsed::Clap(err)) => Outcome {
            code: exit::BAD_INPUT,
            error: Some(clap_line(&err)),
        },
        Err(Parsed::Failed(err)) => Outcome {
            code: exit::code_of(&err),
            error: Some(exit::error_line(&err)),
        },
    }
}

/// The number behind an `ExitCode` the CLI returns (`ExitCode` does not expose it); one of
/// `exit`'s constants.
pub fn code_value(code: ExitCode) -> u8 {
    [
        exit::OK,
        exit::BUDGET_NOT_MET,
        exit::BAD_INPUT,
        exit::RUNTIME_FAILURE,
        exit::INTERRUPTED,
    ]
    .into_iter()
    .find(|&c| ExitCode::from(c) == code)
    .unwrap_or(exit::RUNTIME_FAILURE)
}

/// A clap error (a bad keyword value reaching the parser) as one line, without its `error: `
/// prefix and the `--help` hint.
fn clap_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why `dispatch` did not run a command to its exit code.
enum Parsed {
    /// Usage errors, `--help`, `--version`: clap renders them.
    Clap(clap::Error),
    /// Everything else: one error line.
    Failed(anyhow::Error),
}

fn dispatch(argv: Vec<OsString>, binary: bool) -> Result<ExitCode, Parsed> {
    let command = command();
    let applied = config::apply(argv, &command).map_err(Parsed::Failed)?;
    let matches = match command.try_get_matches_from(&applied.argv) {
        Ok(matches) => matches,
        // A bad value from profagent.toml is reported naming the file and the key.
        Err(err) => {
            return Err(match applied.explain(&err) {
                Some(line) => Parsed::Failed(anyhow::anyhow!(line)),
                None => Parsed::Clap(err),
            })
        }
    };
    let cli = Cli::from_arg_matches(&matches).map_err(Parsed::Clap)?;
    commands::set_quiet(cli.quiet);
    commands::set_embedded(!binary);
    progress::install(cli.quiet);
    if binary {
        // `compress` stops between steps on the first Ctrl-C and writes what it did; the other
        // commands exit once the file being written is whole.
        progress::install_interrupt(match cli.command {
            Command::Compress(_) => progress::OnInterrupt::Stop,
            _ => progress::OnInterrupt::Exit,
        });
    }
    let mut command = cli.command;
    locate_models(&mut command).map_err(Parsed::Failed)?;
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
    result.map_err(Parsed::Failed)
}
