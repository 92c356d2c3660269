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
        let back: MachineInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, info);
    }
}
