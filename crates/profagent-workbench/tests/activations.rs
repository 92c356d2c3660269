//! Streaming calibration (issue 17) through the activation seam: `BatchActivations` splits
//! batches into sub-batches whose requested activations fit its output budget, and the
//! quantizer's ranges are the same as with whole batches; graph inputs are handed over as fed;
//! a model with a fixed batch runs whole batches.
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{ActivationSource, Model};
use profagent_quant::calibrate::calibrate;
use profagent_quant::Calibration;
use profagent_runtime::{open_runtime, RuntimeKind, SessionOptions, Tensor};
use profagent_workbench::{Batch, BatchActivations};

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
    (b.finish(), vec![x, c, r, p, f])
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
    let runtime = open_runtime(RuntimeKind::Ort).expect("ONNX Runtime");
    let session = SessionOptions::default();
    let (model, tensors) = convnet(-1);
    let data = batches(6);
    let mut whole_source = BatchActivations::new(runtime.as_ref(), &session, &data);
    let whole =
        calibrate(&model, &tensors, &mut whole_source, Calibration::MinMax).expect("calibrates");
    assert_eq!(whole_source.runs, 3, "no budget: whole batches");
    // A budget of one byte runs every sample alone.
    let mut split_source = BatchActivations::new(runtime.as_ref(), &session, &data).within(1);
    let split =
        calibrate(&model, &tensors, &mut split_source, Calibration::MinMax).expect("calibrates");
    assert_eq!(
        split_source.runs, 18,
        "3 batches of 6 samples, one at a time"
    );
    let mut large = BatchActivations::new(runtime.as_ref(), &session, &data).within(1 << 30);
    calibrate(&model, &tensors, &mut large, Calibration::MinMax).expect("calibrates");
    assert_eq!(
        large.runs,
        1 + 1 + 1 + 1,
        "the first sample alone, then whole batches"
    );
    assert_eq!(whole.len(), tensors.len());
    for t in &tensors {
        assert_eq!(whole[t], split[t], "{t}");
    }
    let percentile = Calibration::Percentile { percentile: 99.9 };
    let mut split_source = BatchActivations::new(runtime.as_ref(), &session, &data).within(1);
    let split = calibrate(&model, &tensors, &mut split_source, percentile).expect("calibrates");
    for t in &tensors {
        assert!(
            split[t].lo >= whole[t].lo && split[t].hi <= whole[t].hi,
            "{t}"
        );
    }
}

#[test]
fn graph_inputs_are_the_values_fed() {
    let runtime = open_runtime(RuntimeKind::Ort).expect("ONNX Runtime");
    let session = SessionOptions::default();
    let (model, _) = convnet(-1);
    let data = batches(2);
    let mut source = BatchActivations::new(runtime.as_ref(), &session, &data).within(1);
    let mut seen = Vec::new();
    source
        .visit_values(&model, &["input".to_string()], &mut |i, dims, values| {
            assert_eq!(i, 0);
            assert_eq!(dims, [1, 3, 8, 8]);
            seen.extend_from_slice(values);
            Ok(())
        })
        .expect("streams");
    let fed: Vec<f32> = data
        .iter()
        .flat_map(|b| b[0].1.as_f32().expect("float").to_vec())
        .collect();
    assert_eq!(seen, fed);
}

#[test]
fn a_fixed_batch_model_runs_whole_batches() {
    let runtime = open_runtime(RuntimeKind::Ort).expect("ONNX Runtime");
    let session = SessionOptions::default();
    // Exported at batch 4: splitting would feed it shapes it refuses.
    let (model, tensors) = convnet(4);
    let data = batches(4);
    let mut source = BatchActivations::new(runtime.as_ref(), &session, &data).within(1);
    let ranges =
        calibrate(&model, &tensors, &mut source, Calibration::MinMax).expect("whole batches run");
    assert_eq!(ranges.len(), tensors.len());
    assert_eq!(source.runs, 3);
    assert_eq!(source.batches(), Some(3));
}
