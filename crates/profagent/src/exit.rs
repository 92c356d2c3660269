//! Exit codes and error printing.
//!
//! 0 ok, 1 budget not met, 2 bad input (the default for errors), 3 runtime failure, 130
//! interrupted (Ctrl-C, `crate::progress`).
use std::process::ExitCode;

pub const OK: u8 = 0;
pub const BUDGET_NOT_MET: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const RUNTIME_FAILURE: u8 = 3;
/// 128 + SIGINT, as shells report a process ended by Ctrl-C.
pub const INTERRUPTED: u8 = 130;

/// Wrap an error to exit with `RUNTIME_FAILURE` instead of `BAD_INPUT`.
#[derive(Debug)]
pub struct RuntimeFailure(pub anyhow::Error);

impl std::fmt::Display for RuntimeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for RuntimeFailure {}

/// Prints `error: <chain>` on one line and returns the exit code for it. A cause whose text
/// is already part of the line (an OS error a message quotes and also chains) is left out, and
/// every key-like value is masked (an endpoint may echo the key in its error body).
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", error_line(err));
    ExitCode::from(code_of(err))
}

/// The exit code of an error: `RUNTIME_FAILURE` when wrapped in `RuntimeFailure`, else
/// `BAD_INPUT`.
pub fn code_of(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<RuntimeFailure>().is_some() {
        RUNTIME_FAILURE
    } else {
        BAD_INPUT
    }
}

/// The error chain as one line, each distinct cause once, secrets masked.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    profagent_agent::redact::redact(&line, &profagent_agent::redact::secrets_from_env())
}

#[allow(dead_code)]
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

#[allow(dead_code)]
pub const ALL: [u8; 4] = [OK, BUDGET_NOT_MET, BAD_INPUT, RUNTIME_FAILURE];
