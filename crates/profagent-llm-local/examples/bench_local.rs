//! Measures the embedded model on a compression-plan request: tokens/s and seconds per plan.
//!
//! ```text
//! cargo run --release -p profagent-llm-local --features llama --example bench_local -- \
//!     PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf [--plans N] [--threads N] [--seed N]
//! ```
//! Prints one markdown table row per plan and a summary row (median), ready for
//! docs/local-llm.md.

#[path = "../tests/common/plan.rs"]
mod plan;

use std::path::PathBuf;
use std::process::ExitCode;

use profagent_llm_local::{schema_violations, LocalLlm, LocalLlmOptions};

struct Args {
    path: PathBuf,
    plans: usize,
    threads: Option<usize>,
    seed: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        path: PathBuf::new(),
        plans: 3,
        threads: None,
        seed: 42,
    };
    let number = |flag: &str, value: Option<String>| -> Result<usize, String> {
        value
            .as_deref()
            .and_then(|value| value.parse().ok())
            .ok_or(format!("{flag} needs a non-negative integer"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plans" => parsed.plans = number("--plans", args.next())?,
            "--threads" => parsed.threads = Some(number("--threads", args.next())?),
            "--seed" => parsed.seed = number("--seed", args.next())? as u32,
            path if parsed.path.as_os_str().is_empty() => parsed.path = PathBuf::from(path),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if parsed.path.as_os_str().is_empty() {
        return Err("usage: bench_local PATH.gguf [--plans N] [--threads N] [--seed N]".into());
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let options = LocalLlmOptions {
        threads: args.threads,
        seed: args.seed,
        max_tokens: 768,
        ..LocalLlmOptions::default()
    };
    let threads = options.effective_threads();
    let load_started = std::time::Instant::now();
    let mut llm = match LocalLlm::load(&args.path, options) {
        Ok(llm) => llm,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    println!(
        "load (incl. sha256 check): {:.2} s",
        load_started.elapsed().as_secs_f64()
    );
    println!("| plan | threads | prompt tokens | answer tokens | attempts | generation tok/s | seconds per plan | schema-valid |");
    println!("|---|---|---|---|---|---|---|---|");
    let schema = plan::plan_schema();
    let messages = plan::plan_messages();
    let mut seconds = Vec::new();
    let mut rates = Vec::new();
    for index in 0..args.plans {
        match llm.chat(&messages, Some(&schema)) {
            Ok(completion) => {
                let valid = serde_json::from_str(&completion.text)
                    .map(|value| schema_violations(&schema, &value).is_empty())
                    .unwrap_or(false);
                println!(
                    "| {} | {threads} | {} | {} | {} | {:.1} | {:.2} | {valid} |",
                    index + 1,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.attempts,
                    completion.tokens_per_second(),
                    completion.seconds,
                );
                seconds.push(completion.seconds);
                rates.push(completion.tokens_per_second());
            }
            Err(error) => println!("| {} | {threads} | error: {error} |", index + 1),
        }
    }
    if !seconds.is_empty() {
        println!(
            "| median | {threads} | | | | {:.1} | {:.2} | |",
            median(&mut rates),
            median(&mut seconds)
        );
    }
    ExitCode::SUCCESS
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
