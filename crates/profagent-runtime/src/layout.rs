//! The channel block of the runtime's convolution layout, read from the runtime.
//!
//! ONNX Runtime's CPU provider runs float convolutions in a blocked layout (NCHWc) whose
//! block depends on the CPU (8 channels with AVX2, 16 with AVX-512): a convolution's output
//! channels are padded up to a whole block (12 to 16 on AVX2), and some widths drop the
//! consumer out of the layout, with reorders around it (9 on AVX2). A pruned width that is not
//! a multiple of the block therefore runs as slowly as the next multiple up, or slower
//! (measured on resnet20_cifar10, AVX2: three 16-channel groups cut to 12 ran at 1.00x of the
//! dense model, cut to 8 at 1.14x; a compress result with 9-, 12- and 28-channel groups at
//! 0.87 of the MACs ran at 0.95x).
//!
//! The block is not assumed from the CPU flags: `conv_channel_block` builds a two-convolution
//! probe whose first convolution has one output channel, asks the runtime for the graph it
//! executes (`Runtime::optimized_model`) and reads how many output channels that convolution's
//! weights were padded to.
use profagent_onnx::attr;
use profagent_onnx::builder::GraphBuilder;

use crate::{ModelSource, Result, Runtime, SessionOptions};

/// Input channels of the probe's first convolution (a multiple of every block size in use).
const PROBE_CHANNELS: i64 = 64;

/// The number of channels the runtime pads a float convolution's output channels to a multiple
/// of, with `options` (its optimisation level decides whether the blocked layout is used),
/// read from the graph it executes; `None` when it does not pad (no blocked layout: another
/// runtime or CPU, or an optimisation level below the layout transforms) or cannot show its
/// graph.
pub fn conv_channel_block(runtime: &dyn Runtime, options: &SessionOptions) -> Result<Option<u32>> {
    let probe = probe_model();
    let Some(bytes) = runtime.optimized_model(&ModelSource::Bytes(probe.to_bytes()), options)?
    else {
        return Ok(None);
    };
    let optimized = crate::decode_optimized(&bytes, "the channel-block probe")?;
    let Some(graph) = optimized.proto.graph.as_ref() else {
        return Ok(None);
    };
    Ok(padded_probe_width(graph))
}

/// The probe: `x[1, 64, 8, 8] → Conv(1 output channel) → Relu → Conv(16 output channels)`.
fn probe_model() -> profagent_onnx::Model {
    let mut b = GraphBuilder::new(7);
    let x = b.input("x", &[1, PROBE_CHANNELS, 8, 8]);
    let narrow = b.weight("narrow.weight", &[1, PROBE_CHANNELS, 3, 3]);
    let pads = || {
        vec![
            attr::ints("kernel_shape", &[3, 3]),
            attr::ints("pads", &[1, 1, 1, 1]),
        ]
    };
    let y = b.node("Conv", "/narrow/Conv", &[&x, &narrow], 1, pads());
    let r = b.unary("Relu", "/narrow", &y);
    let wide = b.weight("wide.weight", &[16, 1, 3, 3]);
    let z = b.node("Conv", "/wide/Conv", &[&r, &wide], 1, pads());
    b.output(&z, &[1, 16, 8, 8]);
    b.finish()
}

/// In the runtime's optimised probe: the output channels of the weights of the blocked-layout
/// convolution that reads the 64 input channels, when they were padded beyond the one
/// channel the probe asked for.
fn padded_probe_width(graph: &profagent_onnx::proto::GraphProto) -> Option<u32> {
    graph
        .node
        .iter()
        .filter(|n| {
            n.op_type.as_deref() == Some("Conv")
                && n.domain.as_deref().is_some_and(|d| d.ends_with("nchwc"))
        })
        .filter_map(|n| {
            let weight = n.input.get(1)?;
            let init = graph
                .initializer
                .iter()
                .find(|t| t.name.as_deref() == Some(weight.as_str()))?;
            if init.dims.get(1) == Some(&PROBE_CHANNELS) {
                init.dims.first().copied()
            } else {
                None
            }
        })
        .find(|&out| out > 1)
        .and_then(|out| u32::try_from(out).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph as ONNX Runtime writes it with the blocked layout: the narrow conv's weights
    /// padded to `padded` output channels, in the `com.microsoft.nchwc` domain.
    fn optimized(padded: i64, domain: &str) -> profagent_onnx::proto::GraphProto {
        let mut b = GraphBuilder::new(1);
        let x = b.input("x", &[1, PROBE_CHANNELS, 8, 8]);
        let w = b.init_f32(
            "narrow.weight",
            &[padded, PROBE_CHANNELS, 3, 3],
            &vec![0.0; (padded * PROBE_CHANNELS * 9) as usize],
        );
        b.node("Conv", "/narrow/Conv", &[&x, &w], 1, vec![]);
        let mut graph = b.finish().proto.graph.unwrap();
        graph.node[0].domain = Some(domain.into());
        graph
    }

    #[test]
    fn the_block_is_the_width_the_runtime_padded_one_channel_to() {
        assert_eq!(
            padded_probe_width(&optimized(8, "com.microsoft.nchwc")),
            Some(8)
        );
        assert_eq!(
            padded_probe_width(&optimized(16, "com.microsoft.nchwc")),
            Some(16)
        );
        // Not in the blocked layout, or not padded: no block.
        assert_eq!(padded_probe_width(&optimized(8, "")), None);
        assert_eq!(
            padded_probe_width(&optimized(1, "com.microsoft.nchwc")),
            None
        );
    }
}
