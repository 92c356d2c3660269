//! `profagent profile`: per-layer parameters, MACs and bytes of a model, as a table of the
//! heaviest layers and, with `--json`, a full machine-readable profile.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use profagent_onnx::Model;
use profagent_profile::{static_profile, table, ProfileOptions};

/// Profile an ONNX model layer by layer.
///
/// Layers are the exporter's module scopes (`/layer1/layer1.0/conv1/Conv` belongs to
/// `layer1.0.conv1`). For each layer: parameters (float weights), MACs (Conv, Gemm and
/// MatMul, attention's activation×activation MatMuls included), bytes of the weights it
/// reads and bytes of the activations it writes at the given batch size.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    profagent profile model.onnx\n  \
    profagent profile model.onnx --batch 8 --top 10\n  \
    profagent profile model.onnx --json profile.json")]
pub struct Args {
    /// The ONNX model to profile (read only; external data next to it is read too).
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,

    /// Batch size for MACs and activation bytes (binds the model's symbolic batch dim).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub batch: i64,

    /// Write the full profile (model totals, layers[], nodes[]) as JSON to PATH; `-` prints
    /// it to stdout instead of the table.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// How many of the heaviest layers the table shows.
    #[arg(long, default_value_t = 20, value_name = "K")]
    pub top: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let model = Model::load(&args.model).map_err(one_line)?;
    let profile = static_profile(&model, &ProfileOptions { batch: args.batch })
        .map_err(one_line)
        .with_context(|| format!("cannot profile {}", args.model.display()))?;

    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            println!("{}", profile.to_json().map_err(one_line)?);
        }
        Some(path) => {
            print!("{}", table::render_table(&profile, args.top));
            profile.write_json(path).map_err(one_line)?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{}", table::render_table(&profile, args.top)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Library errors as one line: `exit::report_error` prints the chain on one line, and a
/// message from a decoder may itself contain line breaks.
fn one_line(err: impl std::fmt::Display) -> anyhow::Error {
    let text = err.to_string();
    anyhow::anyhow!(text.split_whitespace().collect::<Vec<_>>().join(" "))
}
