//! Exit codes and error printing.
//!
//! 0 ok, 1 budget not met, 2 bad input (the default for errors), 3 runtime failure.
use std::process::ExitCode;

pub const OK: u8 = 0;
pub const BUDGET_NOT_MET: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const RUNTIME_FAILURE: u8 = 3;

/// Wrap an error to exit with `RUNTIME_FAILURE` instead of `BAD_INPUT`.
#[derive(Debug)]
pub struct RuntimeFailure(pub anyhow::Error);

impl std::fmt::Display for RuntimeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for RuntimeFailure {}

/// Prints `error: <chain>` on one line and returns the exit code for it.
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err:#}");
    if err.downcast_ref::<RuntimeFailure>().is_some() {
        ExitCode::from(RUNTIME_FAILURE)
    } else {
        ExitCode::from(BAD_INPUT)
    }
}

#[allow(dead_code)]
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

#[allow(dead_code)]
pub const ALL: [u8; 4] = [OK, BUDGET_NOT_MET, BAD_INPUT, RUNTIME_FAILURE];
