//! Fusion coverage in the profile: the runtime's `FusionReport` (which quantized nodes run as
//! int8 kernels, which stay float between dequantize and quantize, which layout ops were
//! inserted) merged into the layers, and its text for the terminal.
#[cfg(feature = "measured")]
use std::collections::BTreeMap;

#[cfg(feature = "measured")]
use profagent_runtime::{FusionReport, KernelPrecision};

use crate::types::LayerKernels;
#[cfg(feature = "measured")]
use crate::types::Profile;

#[cfg(feature = "measured")]
/// How many layer names a line of the text lists before it says how many there are in all.
const LISTED_LAYERS: usize = 40;

#[cfg(feature = "measured")]
/// Stores `report` in `profile` and fills each layer's `kernels` from its quantized nodes.
pub fn merge_fusion(profile: &mut Profile, report: &FusionReport) {
    let mut by_layer: BTreeMap<&str, LayerKernels> = BTreeMap::new();
    for node in &report.nodes {
        let kernels = by_layer.entry(node.layer.as_str()).or_default();
        match node.runs_as {
            KernelPrecision::Int8 => kernels.int8 += 1,
            KernelPrecision::Float => kernels.float += 1,
            KernelPrecision::Absorbed => kernels.absorbed += 1,
        }
        kernels.layout_ops += node.layout_ops;
    }
    for layer in &mut profile.layers {
        layer.kernels = by_layer.get(layer.name.as_str()).cloned();
    }
    profile.fusion = Some(report.clone());
}

/// A layer's kernels as a table cell: `int8`, `float`, `2 int8 + 1 float`, with `, +2 layout`
/// when the runtime inserted layout ops next to them.
pub fn kernels_cell(kernels: &LayerKernels) -> String {
    let mut cell = match (kernels.int8, kernels.float) {
        (0, 0) if kernels.absorbed > 0 => "folded".to_string(),
        (_, 0) => "int8".to_string(),
        (0, _) => "float".to_string(),
        (int8, float) => format!("{int8} int8 + {float} float"),
    };
    if kernels.layout_ops > 0 {
        cell.push_str(&format!(", +{} layout", kernels.layout_ops));
    }
    cell
}

#[cfg(feature = "measured")]
/// The fusion lines of `profile profile` (empty when the model has no quantized nodes or
/// fusion was not measured): the summary, the layers per int8 kernel, and the float islands.
pub fn render_fusion(profile: &Profile) -> String {
    let Some(report) = profile.fusion.as_ref().filter(|r| r.quantized() > 0) else {
        return String::new();
    };
    let runtime = profile
        .measurement
        .as_ref()
        .map_or_else(|| "the runtime".to_string(), |m| m.runtime_version.clone());
    let mut out = format!(
        "int8 kernels after {runtime}'s graph optimisation: {}\n",
        report.summary_line()
    );
    let mut by_kernel: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in &report.nodes {
        if node.runs_as == KernelPrecision::Int8 {
            let kernel = node.kernel.as_deref().unwrap_or("?");
            by_kernel.entry(kernel).or_default().push(&node.layer);
        }
    }
    for (kernel, layers) in by_kernel {
        out.push_str(&format!("  {kernel}: {}\n", listed(&layers)));
    }
    let islands = report.float_islands();
    if !islands.is_empty() {
        let names: Vec<String> = islands
            .iter()
            .map(|n| {
                format!(
                    "{} ({})",
                    n.layer,
                    n.kernel.as_deref().unwrap_or(&n.op_type)
                )
            })
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "  float islands (dequantize -> op -> quantize run in float, slower than the float model): {}\n",
            listed(&names)
        ));
    }
    out
}

#[cfg(feature = "measured")]
fn listed(names: &[&str]) -> String {
    let mut text = names
        .iter()
        .take(LISTED_LAYERS)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED_LAYERS {
        text.push_str(&format!(", … ({} in all)", names.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_say_int8_float_or_both() {
        let cell = |int8, float, layout_ops| {
            kernels_cell(&LayerKernels {
                int8,
                float,
                absorbed: 0,
                layout_ops,
            })
        };
        assert_eq!(cell(1, 0, 0), "int8");
        assert_eq!(cell(0, 1, 2), "float, +2 layout");
        assert_eq!(cell(2, 1, 0), "2 int8 + 1 float");
    }
}
