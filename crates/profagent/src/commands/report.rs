//! `profagent report`: regenerate `report.html` and `report.md` of a run directory from its
//! `report.json` (after an upgrade, or after editing the JSON by hand).
use std::path::PathBuf;
use std::process::ExitCode;

/// Regenerate report.html and report.md of a run directory from its report.json.
///
/// `profagent compress` writes both reports at the end of a run; this command rebuilds them
/// from the run's report.json alone (no model, data or runtime needed). report.html is one
/// self-contained page (charts inline, no network); report.md is the same content for
/// terminals and pull requests. Both files are replaced atomically.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    profagent report runs/resnet20\n  \
    profagent report runs/resnet20 --json -")]
pub struct Args {
    /// The run directory ('profagent compress --out DIR'); it must hold report.json.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,

    /// Also write a summary of what was written ({"html": ..., "markdown": ..., "rounds": N,
    /// "budget_met": ...}) as JSON to PATH; `-` prints it to stdout.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report_json = args.run_dir.join(profagent_report::REPORT_JSON);
    profagent_onnx::OutputGuard::default()
        .input(Some(report_json.as_path()))
        .output_file(args.json.as_deref())?;
    let (report, written) = profagent_report::regenerate(&args.run_dir)?;
    let summary = serde_json::json!({
        "html": written.html,
        "markdown": written.markdown,
        "model": report.model.path,
        "rounds": report.rounds.len(),
        "chosen_round": report.chosen_round(),
        "budget_met": report.final_result.as_ref().map(|f| f.budget_met),
    });
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            println!("{}", serde_json::to_string_pretty(&summary)?)
        }
        Some(path) => {
            let text = serde_json::to_string_pretty(&summary)? + "\n";
            profagent_onnx::write_atomic(path, text.as_bytes())?;
            super::info(format_args!("wrote {}", path.display()));
        }
        None => {}
    }
    super::info(format_args!("wrote {}", written.html.display()));
    super::info(format_args!("wrote {}", written.markdown.display()));
    Ok(ExitCode::SUCCESS)
}
