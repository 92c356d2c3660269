//! The int8 weight range for the CPU the model is quantized on, which is the CPU it is measured
//! on (`quantize --weight-range auto`, and every quantization `compress` applies).
use profagent_quant::WeightRange;
use profagent_runtime::MachineInfo;
use serde::Serialize;

/// The range and why, in words a user can check against their CPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightRangeChoice {
    pub range: WeightRange,
    pub reason: String,
}

/// Reduced (7-bit) weights where ONNX Runtime's u8 x s8 kernels add in a saturating int16
/// (`MachineInfo::int8_pair_sums_saturate`), full ones elsewhere. A fact of the kernels, not a
/// timing: full-range weights on such a CPU give wrong sums on large activations.
pub fn weight_range_for(machine: &MachineInfo) -> WeightRangeChoice {
    if machine.int8_pair_sums_saturate() {
        WeightRangeChoice {
            range: WeightRange::Reduced,
            reason: format!(
                "int8 weights in 7 bits (-64..64): this CPU ({}) has no VNNI, and ONNX Runtime's \
                 uint8 x int8 kernels sum pairs of products in a saturating int16 there, which \
                 full-range weights overflow; quantize with --weight-range full for a CPU with VNNI",
                machine.cpu_model
            ),
        }
    } else {
        WeightRangeChoice {
            range: WeightRange::Full,
            reason: format!(
                "int8 weights over the full range (-127..127): this CPU ({}) {}",
                machine.cpu_model,
                if machine.arch == "x86_64" {
                    "has VNNI, whose int8 kernels add in int32; a CPU without VNNI needs --weight-range reduced"
                } else {
                    "widens int8 products before adding them"
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduced_without_vnni_full_with_it() {
        let mut cpu = profagent_runtime::machine_info();
        cpu.arch = "x86_64".into();
        cpu.avx512_vnni = false;
        cpu.avx_vnni = false;
        cpu.amx_int8 = false;
        let choice = weight_range_for(&cpu);
        assert_eq!(choice.range, WeightRange::Reduced);
        assert!(choice.reason.contains("has no VNNI"), "{}", choice.reason);
        cpu.avx512_vnni = true;
        assert_eq!(weight_range_for(&cpu).range, WeightRange::Full);
    }
}
