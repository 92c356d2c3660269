//! The machine a measurement ran on: CPU model, the ISA features that decide int8 speed, core
//! count. Recorded next to every latency so numbers from different machines are not compared.
use serde::{Deserialize, Serialize};

/// CPU facts relevant to inference speed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub cpu_model: String,
    /// Logical CPUs this process may use.
    pub logical_cores: usize,
    pub avx2: bool,
    pub avx512f: bool,
    /// AVX-512 VNNI: fast u8×s8 dot products (ORT's int8 kernels).
    pub avx512_vnni: bool,
    /// AVX-VNNI (the 256-bit variant on newer cores).
    pub avx_vnni: bool,
    /// AMX with int8 tiles.
    pub amx_int8: bool,
    pub os: String,
    pub arch: String,
}

impl MachineInfo {
    /// True where ONNX Runtime's uint8 x int8 kernels add products in a saturating int16:
    /// x86-64 without VNNI (AVX2 and AVX-512 use VPMADDUBSW, which sums two u8 x s8 products
    /// into an int16; VNNI's VPDPBUSD and AMX add in int32). Int8 weights beyond +-64 then
    /// overflow on large activations (see `profagent_quant::WeightRange`). Other
    /// architectures widen before they add.
    pub fn int8_pair_sums_saturate(&self) -> bool {
        self.arch == "x86_64" && !(self.avx512_vnni || self.avx_vnni || self.amx_int8)
    }
}

/// Reads /proc/cpuinfo (Linux); on other systems the CPU flags are reported false.
pub fn machine_info() -> MachineInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|line| line.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|line| line.split_once(':'))
            .map(|(_, value)| value.trim().to_string())
    };
    let flags: Vec<String> = field("flags")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    MachineInfo {
        cpu_model: field("model name").unwrap_or_else(|| "unknown".to_string()),
        logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        avx2: has("avx2"),
        avx512f: has("avx512f"),
        avx512_vnni: has("avx512_vnni"),
        avx_vnni: has("avx_vnni"),
        amx_int8: has("amx_int8"),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
    }
}

/// CPU time counters at one instant: the whole machine's (busy and total, all CPUs) and this
/// process's, in the kernel's clock ticks (`/proc/stat`, `/proc/self/stat`: the same unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
    own: u64,
    cpus: usize,
}

/// Reads the CPU counters (Linux); `None` where the system does not provide them.
pub fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_times(&stat, &own)
}

fn parse_cpu_times(stat: &str, own: &str) -> Option<CpuTimes> {
    let mut lines = stat.lines();
    let first = lines.next()?;
    let fields: Vec<u64> = first
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    if fields.len() < 8 {
        return None;
    }
    let idle = fields[3] + fields[4];
    let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7];
    let cpus = lines
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis;
    // utime and stime are fields 14 and 15, the 12th and 13th after it.
    let after = &own[own.rfind(')')? + 1..];
    let mut rest = after.split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some(CpuTimes {
        busy,
        total: busy + idle,
        own: utime + stime,
        cpus: cpus.max(1),
    })
}

/// How busy the machine was between `before` and now, for a measurement that used `threads`
/// intra-op threads (0: the runtime's default, one per CPU): the CPUs' worth of time used by
/// everything but this process. `None` without counters or when no tick passed.
pub fn machine_load(
    before: Option<CpuTimes>,
    threads: usize,
) -> Option<profagent_stats::MachineLoad> {
    load_between(before?, cpu_times()?, threads)
}

fn load_between(
    before: CpuTimes,
    after: CpuTimes,
    threads: usize,
) -> Option<profagent_stats::MachineLoad> {
    let total = after.total.checked_sub(before.total).filter(|t| *t > 0)?;
    let busy = after.busy.saturating_sub(before.busy);
    let own = after.own.saturating_sub(before.own);
    let cpus = after.cpus;
    Some(profagent_stats::MachineLoad {
        others: busy.saturating_sub(own) as f64 / total as f64 * cpus as f64,
        cores: cpus,
        threads: if threads == 0 {
            cpus
        } else {
            threads.min(cpus)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_cores_and_serialises() {
        let info = machine_info();
        assert!(info.logical_cores >= 1);
        if std::path::Path::new("/proc/cpuinfo").exists() {
            assert_ne!(info.cpu_model, "unknown");
        }
        let json = serde_json::to_string(&info).unwrap();
        if std::path::Path::new("/proc/stat").exists() {
            let before = cpu_times().expect("Linux has CPU counters");
            // Spin a little so ticks pass.
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed() < std::time::Duration::from_millis(60) {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            std::hint::black_box(x);
            if let Some(load) = machine_load(Some(before), 1) {
                assert!(load.others >= 0.0 && load.others <= load.cores as f64 + 1e-9);
                assert_eq!(load.threads, 1);
            }
        }
        let back: MachineInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn int8_saturation_is_x86_without_vnni() {
        let cpu = |arch: &str, vnni: bool, avx_vnni: bool| MachineInfo {
            cpu_model: "test".into(),
            logical_cores: 2,
            avx2: true,
            avx512f: vnni,
            avx512_vnni: vnni,
            avx_vnni,
            amx_int8: false,
            os: "linux".into(),
            arch: arch.into(),
        };
        assert!(cpu("x86_64", false, false).int8_pair_sums_saturate());
        assert!(!cpu("x86_64", true, false).int8_pair_sums_saturate());
        assert!(!cpu("x86_64", false, true).int8_pair_sums_saturate());
        assert!(!cpu("aarch64", false, false).int8_pair_sums_saturate());
    }

    #[test]
    fn other_processes_cpu_time_is_the_machine_s_less_our_own() {
        let own = |ticks: u64| {
            format!("4242 (a (b) c) R 1 1 1 0 -1 4194304 10 0 0 0 {ticks} 0 0 0 20 0 3 0")
        };
        let stat = |busy: u64, idle: u64| {
            format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\nintr 1\n")
        };
        let before = parse_cpu_times(&stat(1000, 1000), &own(500)).unwrap();
        assert_eq!(before.cpus, 2);
        // 200 ticks passed (100 per CPU): 150 busy, of which 80 ours, so others used 70 of
        // 200 ticks = 0.7 CPUs.
        let after = parse_cpu_times(&stat(1150, 1050), &own(580)).unwrap();
        let load = load_between(before, after, 1).unwrap();
        assert!((load.others - 0.7).abs() < 1e-12, "{load:?}");
        assert!(!load.busy());
        assert_eq!(load_between(before, before, 0), None);
        assert_eq!(load_between(before, after, 0).unwrap().threads, 2);
        assert_eq!(parse_cpu_times("", &own(1)), None);
        assert_eq!(parse_cpu_times(&stat(1, 1), "garbage"), None);
    }
}
