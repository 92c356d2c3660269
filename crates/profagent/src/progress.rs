//! Progress bars on stderr: the sink that draws the library crates' steps
//! (`profagent_onnx::progress`) with indicatif, one line per open step (an outer step such as
//! "round 2/6" above the step running inside it), and Ctrl-C.
//!
//! Bars are drawn only when stderr is a terminal and `--quiet` is off; otherwise no sink is
//! installed and stderr carries exactly the lines it carried before (tests compare them).
//!
//! Ctrl-C (`install_interrupt`): the first press lets the writes under way finish
//! (`profagent_onnx::finish_writes`) and exits with `crate::exit::INTERRUPTED` (130), or, for a command that
//! can stop between steps (`compress`), asks it to stop (`profagent_onnx::progress`'s stop
//! request) so that it records what it did; a second press exits at once.
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often a bar redraws by itself (spinners, elapsed time) between updates.
const TICK: Duration = Duration::from_millis(120);
/// Width of a bar, in characters.
const BAR_WIDTH: usize = 30;

/// The open steps, each with its bar.
struct Bars {
    multi: MultiProgress,
    open: Mutex<Vec<(u64, ProgressBar)>>,
    next_id: AtomicU64,
}

static BARS: OnceLock<&'static Bars> = OnceLock::new();

/// Installs the bar sink when stderr is a terminal and `quiet` is off; returns whether it did.
pub fn install(quiet: bool) -> bool {
    if quiet || !std::io::stderr().is_terminal() {
        return false;
    }
    let bars: &'static Bars = Box::leak(Box::new(Bars {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        open: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
    }));
    let _ = BARS.set(bars);
    profagent_onnx::progress::install(Box::new(Forward(bars)))
}

/// The sink handed to `profagent_onnx::progress` (it wants an owned box; the bars stay
/// reachable from here for `line` and `clear`).
struct Forward(&'static Bars);

impl profagent_onnx::progress::Sink for Forward {
    fn begin(&self, label: &str, total: Option<u64>, unit: &str) -> u64 {
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(style(total.is_some(), unit));
        bar.set_message(label.to_string());
        let bar = self.0.multi.add(bar);
        bar.enable_steady_tick(TICK);
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = self.0.open.lock() {
            open.push((id, bar));
        }
        id
    }

    fn set(&self, id: u64, done: u64) {
        if let Ok(open) = self.0.open.lock() {
            if let Some((_, bar)) = open.iter().find(|(i, _)| *i == id) {
                bar.set_position(done);
            }
        }
    }

    fn end(&self, id: u64) {
        let bar = match self.0.open.lock() {
            Ok(mut open) => open
                .iter()
                .position(|(i, _)| *i == id)
                .map(|at| open.remove(at).1),
            Err(_) => None,
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.0.multi.remove(&bar);
        }
    }
}

/// A step with a known total: label, bar, count, rate and time left; otherwise a spinner
/// with the count so far (when the step counts something) and the time spent.
fn style(bounded: bool, unit: &str) -> ProgressStyle {
    // Our units are plain words; braces would be read as template keys.
    let unit: String = unit.chars().filter(|c| !matches!(c, '{' | '}')).collect();
    let template = match (bounded, unit.is_empty()) {
        (true, _) => {
            format!("{{spinner}} {{msg}} [{{bar:{BAR_WIDTH}}}] {{pos}}/{{len}} {unit} ({{rate}}, {{eta}} left)")
        }
        (false, false) => format!("{{spinner}} {{msg}}: {{pos}} {unit} ({{elapsed}})"),
        (false, true) => "{spinner} {msg} ({elapsed})".to_string(),
    };
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    style.progress_chars("=> ").with_key(
        "rate",
        move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(state.per_sec(), &unit));
        },
    )
}

/// A rate as people read it: "306 samples/s", "2.5 runs/s", "1 per 4.0 s"; "starting" until
/// the first unit is done.
pub fn rate(per_second: f64, unit: &str) -> String {
    if !per_second.is_finite() || per_second <= 0.0 {
        return "starting".into();
    }
    if per_second >= 10.0 {
        format!("{per_second:.0} {unit}/s")
    } else if per_second >= 1.0 {
        format!("{per_second:.1} {unit}/s")
    } else {
        format!("1 per {:.1} s", 1.0 / per_second)
    }
}

/// A line on stderr above the bars (without bars: a plain line).
pub fn line(text: &str) {
    match BARS.get() {
        Some(bars) => bars.multi.suspend(|| eprintln!("{text}")),
        None => eprintln!("{text}"),
    }
}

/// Removes every bar from the terminal (before exiting on Ctrl-C).
fn clear() {
    if let Some(bars) = BARS.get() {
        let _ = bars.multi.clear();
    }
}

static PRESSES: AtomicUsize = AtomicUsize::new(0);

/// What the first Ctrl-C does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// Let the writes under way finish, then exit with `crate::exit::INTERRUPTED`.
    Exit,
    /// Ask the command to stop between steps (it records what it did and returns).
    Stop,
}

/// Ends the process at once with `code`, without the C library's exit handlers: run while an
/// ONNX Runtime session is still working on another thread, those handlers tore its thread
/// pool's cpuinfo down under it, and the process aborted ("Fatal error in cpuinfo", no exit
/// code) instead of exiting with `code`. Completed writes are already whole (atomic renames;
/// stderr is unbuffered, stdout flushes by line; stdout is not flushed here, as the main thread
/// may hold its lock).
fn exit_now(code: i32) -> ! {
    #[cfg(unix)]
    {
        signal_hook::low_level::exit(code)
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}

/// Installs the Ctrl-C handler (see the module doc). A handler that cannot be installed
/// leaves Ctrl-C as it was: the process ends at once, outputs still whole (atomic writes).
pub fn install_interrupt(on_first: OnInterrupt) {
    let installed = ctrlc::set_handler(move || {
        let presses = PRESSES.fetch_add(1, Ordering::SeqCst) + 1;
        if presses > 1 || on_first == OnInterrupt::Exit {
            if presses == 1 {
                profagent_onnx::finish_writes();
            }
            clear();
            // Held until the process ends: `exit` tears down ONNX Runtime under a session that
            // may still be running, and the error that session then returns must not be
            // printed after "interrupted" (nor its exit code race this one).
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "interrupted");
            exit_now(i32::from(crate::exit::INTERRUPTED));
        }
        profagent_onnx::progress::request_stop();
        line("interrupted: finishing the current step, then writing the report of what was done (Ctrl-C again quits at once)");
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C handler not installed ({e}): Ctrl-C stops at once");
    }
}

/// Whether Ctrl-C was pressed (in the binary), or the host of an embedded run (the Python
/// package) asked the command to stop.
pub fn interrupted() -> bool {
    PRESSES.load(Ordering::SeqCst) > 0 || profagent_onnx::progress::stop_requested()
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_read_as_people_write_them() {
        assert_eq!(rate(305.9126, "samples"), "306 samples/s");
        assert_eq!(rate(42.4, "samples"), "42 samples/s");
        assert_eq!(rate(2.46, "runs"), "2.5 runs/s");
        assert_eq!(rate(0.25, "groups"), "1 per 4.0 s");
        assert_eq!(rate(0.0, "pairs"), "starting");
        assert_eq!(rate(f64::INFINITY, "pairs"), "starting");
    }
}
