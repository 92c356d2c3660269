//! `profagent completions SHELL`: the shell completion script, generated from the clap
//! definitions (every subcommand, flag and value list), on stdout.
use std::process::ExitCode;

/// Print a completion script for SHELL on stdout.
#[derive(clap::Args, Debug)]
#[command(after_help = "Install, e.g.:\n  \
    bash:       profagent completions bash > ~/.local/share/bash-completion/completions/profagent\n  \
    zsh:        profagent completions zsh > ~/.zfunc/_profagent   (with fpath+=~/.zfunc)\n  \
    fish:       profagent completions fish > ~/.config/fish/completions/profagent.fish\n  \
    PowerShell: profagent completions powershell >> $PROFILE")]
pub struct Args {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
