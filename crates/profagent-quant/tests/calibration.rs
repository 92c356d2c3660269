//! Streaming calibration (issue 17): batches are split into sub-batches whose requested
//! activations fit the output budget, and the ranges are the same as with whole batches.
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::Model;
use profagent_quant::calibrate::{calibrate, calibrate_within};
use profagent_quant::{Batch, Calibration};
use profagent_runtime::{open_runtime, RuntimeKind, Tensor};

/// x[N,3,8,8] → Conv → Relu → GlobalAveragePool → Flatten → Gemm → logits.
fn convnet(batch: i64) -> (Model, Vec<String>) {
    let mut b = GraphBuilder::new(3);
    let x = b.input("input", &[batch, 3, 8, 8]);
    let c = b.conv("/conv", &x, 3, 8, 3, 1, 1);
    let r = b.unary("Relu", "/relu", &c);
    let p = b.unary("GlobalAveragePool", "/pool", &r);
    let f = b.node(
        "Flatten",
        "/Flatten",
        &[&p],
        1,
        vec![profagent_onnx::attr::int("axis", 1)],
    );
    let y = b.gemm("/fc", &f, 8, 10);
    b.graph.node.last_mut().expect("a node").output[0] = "logits".into();
    b.output("logits", &[batch, 10]);
    let _ = y;
    (b.finish(), vec![c, r, p, f])
}

fn batches(rows: usize) -> Vec<Batch> {
    (0..3)
        .map(|s| {
            let mut b = GraphBuilder::new(50 + s);
            let x = Tensor::f32(vec![rows, 3, 8, 8], b.rand_vec(rows * 3 * 64, 2.0));
            vec![("input".to_string(), x)]
        })
        .collect()
}

#[test]
fn split_batches_give_the_same_ranges_as_whole_ones() {
    if let Err(e) = open_runtime(RuntimeKind::Ort) {
        eprintln!("skipping: ONNX Runtime unavailable: {e}");
        return;
    }
    let (model, tensors) = convnet(-1);
    let data = batches(6);
    let whole = calibrate(&model, &tensors, &data, Calibration::MinMax).expect("calibrates");
    // A budget of one byte runs every sample alone.
    let (split, runs) =
        calibrate_within(&model, &tensors, &data, Calibration::MinMax, 1).expect("calibrates");
    assert_eq!(runs, 18, "3 batches of 6 samples, one at a time");
    let (_, runs) = calibrate_within(&model, &tensors, &data, Calibration::MinMax, 1 << 30)
        .expect("calibrates");
    assert_eq!(
        runs,
        1 + 1 + 1 + 1,
        "the first sample alone, then whole batches"
    );
    assert_eq!(whole.len(), tensors.len());
    for t in &tensors {
        assert_eq!(whole[t], split[t], "{t}");
    }
    let percentile = Calibration::Percentile { percentile: 99.9 };
    let (split, _) = calibrate_within(&model, &tensors, &data, percentile, 1).expect("calibrates");
    for t in &tensors {
        assert!(
            split[t].lo >= whole[t].lo && split[t].hi <= whole[t].hi,
            "{t}"
        );
    }
}

#[test]
fn a_fixed_batch_model_runs_whole_batches() {
    if let Err(e) = open_runtime(RuntimeKind::Ort) {
        eprintln!("skipping: ONNX Runtime unavailable: {e}");
        return;
    }
    // Exported at batch 4: splitting would feed it shapes it refuses.
    let (model, tensors) = convnet(4);
    let (ranges, runs) = calibrate_within(&model, &tensors, &batches(4), Calibration::MinMax, 1)
        .expect("whole batches of the fixed size run");
    assert_eq!(ranges.len(), tensors.len());
    assert_eq!(runs, 3);
}
