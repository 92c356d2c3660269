//! Progress of long steps and the request to stop early, for every crate.
//!
//! Library crates never print. A step that may take more than about a second (calibration,
//! evaluation, profiling runs, interleaved timing, gathering activations, refitting pruned
//! layers) opens a `Step` with `step(label, total, unit)` and moves it with `Step::set`; the
//! binary installs one `Sink` (`install`) that draws it, the CLI with indicatif on a terminal.
//! Without a sink (tests, library users, piped output) a step costs one atomic load.
//!
//! Steps nest: a step opened while another is open runs inside it (the CLI draws "round 2/6"
//! above "calibrating"), and each ends when its `Step` is dropped, on every exit path.
//!
//! `request_stop` / `stop_requested` carry the first Ctrl-C from the binary's signal handler to
//! loops that can stop between steps (`compress` ends its rounds and writes its report).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Draws steps. `begin` returns the step's id, which `set` and `end` name (a step may be moved
/// from worker threads, and steps nest).
pub trait Sink: Send + Sync {
    /// A step begins: what it does, how many `unit`s it will do (`None`: not known ahead).
    fn begin(&self, label: &str, total: Option<u64>, unit: &str) -> u64;
    /// Step `id` has done `done` units.
    fn set(&self, id: u64, done: u64);
    /// Step `id` ended.
    fn end(&self, id: u64);
}

static SINK: OnceLock<Box<dyn Sink>> = OnceLock::new();
static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the process's sink; the first one stays (a second call returns `false`).
pub fn install(sink: Box<dyn Sink>) -> bool {
    SINK.set(sink).is_ok()
}

/// An open step; ends when dropped.
#[must_use = "a step ends when dropped: bind it to a variable for the step's duration"]
pub struct Step {
    sink: Option<(&'static dyn Sink, u64)>,
}

/// Opens a step: `label` says what runs ("calibrating static quantization"), `total` how many
/// `unit`s ("samples") it will do, when known.
pub fn step(label: impl AsRef<str>, total: Option<u64>, unit: &str) -> Step {
    let sink = SINK
        .get()
        .map(|s| (s.as_ref(), s.begin(label.as_ref(), total, unit)));
    Step { sink }
}

impl Step {
    /// `done` units of this step are done.
    pub fn set(&self, done: u64) {
        if let Some((sink, id)) = self.sink {
            sink.set(id, done);
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some((sink, id)) = self.sink {
            sink.end(id);
        }
    }
}

/// Asks loops that can stop between steps to stop (the binary's first Ctrl-C).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Withdraws a stop request: a host that runs several commands in one process (the Python
/// package) clears it before each, so one interrupted call does not stop the next.
pub fn clear_stop() {
    STOP.store(false, Ordering::SeqCst);
}

/// Whether `request_stop` was called.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every call, as text, from the thread that runs the test.
    struct Recorder(Mutex<Vec<String>>);

    impl Sink for Recorder {
        fn begin(&self, label: &str, total: Option<u64>, unit: &str) -> u64 {
            let mut events = self.0.lock().unwrap_or_else(|e| e.into_inner());
            events.push(format!("begin {label} {total:?} {unit}"));
            events.iter().filter(|e| e.starts_with("begin")).count() as u64
        }
        fn set(&self, id: u64, done: u64) {
            self.push(format!("set {id} {done}"));
        }
        fn end(&self, id: u64) {
            self.push(format!("end {id}"));
        }
    }

    impl Recorder {
        fn push(&self, event: String) {
            if let Ok(mut events) = self.0.lock() {
                events.push(event);
            }
        }
    }

    static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

    struct Forward;
    impl Sink for Forward {
        fn begin(&self, label: &str, total: Option<u64>, unit: &str) -> u64 {
            RECORDER.begin(label, total, unit)
        }
        fn set(&self, id: u64, done: u64) {
            RECORDER.set(id, done)
        }
        fn end(&self, id: u64) {
            RECORDER.end(id)
        }
    }

    #[test]
    fn nested_steps_reach_the_sink_in_order_and_end_on_drop() {
        assert!(install(Box::new(Forward)));
        assert!(!install(Box::new(Forward)), "the first sink stays");
        {
            let outer = step("round 1/2", None, "");
            let inner = step("calibrating", Some(3), "samples");
            inner.set(2);
            drop(inner);
            outer.set(1);
        }
        let events = RECORDER.0.lock().map(|e| e.clone()).unwrap_or_default();
        assert_eq!(
            events,
            [
                "begin round 1/2 None ",
                "begin calibrating Some(3) samples",
                "set 2 2",
                "end 2",
                "set 1 1",
                "end 1"
            ]
        );
    }
}
