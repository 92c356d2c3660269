//! One module per subcommand: its clap `Args` and a `run` that calls the library crates.
pub mod check;
pub mod compare;
pub mod completions;
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

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--quiet`: informational lines on stderr (progress, the preprocessing chosen, files
/// written) are left out; results, notes, warnings and errors are not.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// An informational line on stderr (above any progress bars), unless `--quiet`.
pub fn info(line: impl std::fmt::Display) {
    if !quiet() {
        crate::progress::line(&line.to_string());
    }
}

static EMBEDDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run by a host process (`crate::run_embedded`): the `--json` file is the host's own
/// temporary file, read back as the call's result, so "wrote PATH" is not announced.
pub fn set_embedded(embedded: bool) {
    EMBEDDED.store(embedded, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `--json PATH` names stdout (`-`), as in every command.
pub fn json_to_stdout(path: Option<&std::path::Path>) -> bool {
    path.is_some_and(|p| p.as_os_str() == "-")
}

/// Writes a `--json` document: `-` prints it to stdout, any other path is written atomically
/// and announced on stderr. Every command's `--json` goes through here.
pub fn write_json(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    if json_to_stdout(Some(path)) {
        println!("{text}");
    } else {
        profagent_onnx::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !EMBEDDED.load(std::sync::atomic::Ordering::Relaxed) {
            info(format_args!("wrote {}", path.display()));
        }
    }
    Ok(())
}

/// `--min-cosine`: a mean output cosine in (0, 1), e.g. 0.999.
/// `--acc-confidence`: a one-sided confidence in [0.5, 0.999].
pub fn parse_confidence(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| {
        format!("'{text}' is not a number; give a confidence in [0.5, 0.999], e.g. 0.9")
    })?;
    if (0.5..=0.999).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "a one-sided confidence is in [0.5, 0.999] (0.5: the measured drop alone), e.g. 0.9; got {value}"
        ))
    }
}

pub fn parse_min_cosine(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number; give a cosine in (0, 1), e.g. 0.99"))?;
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(format!(
            "a mean output cosine is in (0, 1), e.g. 0.99; got {value}"
        ))
    }
}
