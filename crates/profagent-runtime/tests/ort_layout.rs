//! The convolution channel block read from ONNX Runtime's optimised graph
//! (`conv_channel_block`): what the built-in planner aligns pruned widths to.
mod common;

use profagent_runtime::{conv_channel_block, OptLevel, SessionOptions};

#[test]
fn onnx_runtime_reports_the_block_it_pads_convolution_channels_to() {
    let Some(runtime) = common::ort_runtime() else {
        return;
    };
    let block = conv_channel_block(runtime.as_ref(), &SessionOptions::default()).unwrap();
    eprintln!("channel block on this machine: {block:?}");
    // MLAS's blocked layout exists on every x86-64 CPU with AVX2 (8 channels) or AVX-512
    // (16); wherever it is used the block is a power of two.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        let b = block.expect("ONNX Runtime uses the NCHWc layout with AVX2");
        assert!(b >= 8 && b.is_power_of_two(), "block {b}");
    }
    if let Some(b) = block {
        assert!(b.is_power_of_two() && b > 1, "block {b}");
    }
    // Below the layout transforms (level "all") nothing is padded.
    let basic = SessionOptions {
        opt_level: OptLevel::Basic,
        ..SessionOptions::default()
    };
    assert_eq!(conv_channel_block(runtime.as_ref(), &basic).unwrap(), None);
}
