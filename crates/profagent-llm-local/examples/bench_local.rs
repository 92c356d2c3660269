//! Measures the embedded model on a compression-plan request: tokens/s and seconds per plan.
//!
//! ```text
//! cargo run --release -p profagent-llm-local --features llama --example bench_local -- \
//!     PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf [--plans N] [--threads N] [--seed N]
//! ```
//! Runs the same plan requests with the default grammar strategy (sample first, mask only on
//! rejection) and with the full-vocabulary mask baseline, printing one markdown row per plan, a
//! median row per strategy, and their ratio: it guards against regressions in constrained
//! decoding speed. Results go in docs/local-llm.md.

#[path = "../tests/common/plan.rs"]
mod plan;

use std::path::PathBuf;
use std::process::ExitCode;

use profagent_llm_local::{schema_violations, GrammarStrategy, LocalLlm, LocalLlmOptions};

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
    println!("| grammar strategy | plan | threads | prompt tokens | answer tokens | attempts | generation tok/s | seconds per plan | schema-valid |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut medians = Vec::new();
    for strategy in [GrammarStrategy::SampleFirst, GrammarStrategy::MaskAlways] {
        match bench(&args, strategy) {
            Ok(median) => medians.push((strategy, median)),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        }
    }
    if let [(_, fast), (_, baseline)] = medians.as_slice() {
        println!(
            "\nSampleFirst vs MaskAlways (same prompts, seeds): {:.2}x the generation speed, \
             {:.2}x less time per plan",
            fast.0 / baseline.0,
            baseline.1 / fast.1
        );
    }
    ExitCode::SUCCESS
}

/// Runs `args.plans` plan requests with one strategy; returns the median (tok/s, s per plan).
fn bench(args: &Args, strategy: GrammarStrategy) -> Result<(f64, f64), String> {
    let options = LocalLlmOptions {
        threads: args.threads,
        seed: args.seed,
        max_tokens: 768,
        grammar_strategy: strategy,
        ..LocalLlmOptions::default()
    };
    let threads = options.effective_threads();
    let load_started = std::time::Instant::now();
    let mut llm = LocalLlm::load(&args.path, options).map_err(|error| error.to_string())?;
    eprintln!(
        "{strategy:?}: load (incl. sha256 check) {:.2} s",
        load_started.elapsed().as_secs_f64()
    );
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
                    "| {strategy:?} | {} | {threads} | {} | {} | {} | {:.1} | {:.2} | {valid} |",
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
            Err(error) => println!(
                "| {strategy:?} | {} | {threads} | error: {error} |",
                index + 1
            ),
        }
    }
    if seconds.is_empty() {
        return Err(format!("{strategy:?}: every plan failed"));
    }
    let median_rate = median(&mut rates);
    let median_seconds = median(&mut seconds);
    println!(
        "| {strategy:?} | median | {threads} | | | | {median_rate:.1} | {median_seconds:.2} | |"
    );
    Ok((median_rate, median_seconds))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
