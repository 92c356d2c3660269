//! The `profagent` binary: everything is in the library (`src/lib.rs`), which the Python
//! package's console script runs too.
fn main() -> std::process::ExitCode {
    profagent::main_with(std::env::args_os().collect())
}
