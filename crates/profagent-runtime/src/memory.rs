//! Process memory readings (Linux /proc): resident set size now and its high-water mark.
//!
//! To isolate one session from whatever the process did before, `reset_peak_rss` writes `5` to
//! /proc/self/clear_refs, which resets VmHWM to the current RSS (Linux ≥ 4.0); the peak after
//! loading and running a model minus the RSS before loading is then that session's footprint.
use std::fs;

/// Resident memory readings in bytes; `None` where /proc is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RssReading {
    pub current_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
}

/// Reads VmRSS and VmHWM from /proc/self/status.
pub fn rss() -> RssReading {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
    };
    RssReading {
        current_bytes: kib("VmRSS:"),
        peak_bytes: kib("VmHWM:"),
    }
}

/// Resets the high-water mark to the current RSS; false when the kernel does not allow it (the
/// peak then covers the whole process lifetime, which callers should say).
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Scheduler counters of the calling thread (/proc/thread-self/schedstat): nanoseconds on a CPU
/// and nanoseconds runnable but waiting for one. Waiting means the machine is oversubscribed and
/// wall-clock latencies include time the model was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerTimes {
    pub on_cpu_ns: u64,
    pub waiting_ns: u64,
}

pub fn thread_scheduler_times() -> Option<SchedulerTimes> {
    let text = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some(SchedulerTimes {
        on_cpu_ns: fields.next()??,
        waiting_ns: fields.next()??,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_tracks_a_large_allocation() {
        let before = rss();
        let Some(current) = before.current_bytes else {
            eprintln!("skipping: /proc/self/status not readable");
            return;
        };
        reset_peak_rss();
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let after = rss();
        assert!(after.peak_bytes.unwrap() >= current + (48 << 20));
        drop(block);
    }
}
