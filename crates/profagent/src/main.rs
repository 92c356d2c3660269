//! The `profagent` binary: everything is in the library (`src/lib.rs`), which the Python
//! package's console script runs too.

/// Exit status when the reader of our output has gone: what a shell reports for a process
/// ended by SIGPIPE (128 + 13), as `cat` is in `cat big | head`.
const OUTPUT_GONE: i32 = 141;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so a write to a pipe whose reader has gone (`profagent ... | head`,
    // a parent process that died) fails, and `eprintln!`/`println!` panic on it ("failed
    // printing to stderr"), exit 101 with a backtrace nobody can read. That one panic ends the
    // process quietly instead. Only the binary: the library, run inside Python, leaves the
    // interpreter's handling alone.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") {
            std::process::exit(OUTPUT_GONE);
        }
        default(info);
    }));
    profagent::main_with(std::env::args_os().collect())
}
