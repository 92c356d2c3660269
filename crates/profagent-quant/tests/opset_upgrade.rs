//! Static quantization of models below opset 13 (issue 17): upgraded to opset 13 when every op
//! allows it (attributes that became inputs are moved), else per-tensor scales from opset 10,
//! else a clear error naming the op that blocks the upgrade.
mod common;
mod outputs;
use common::Batch;
use outputs::{cosine, run};
use profagent_onnx::attr;
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::Model;
use profagent_quant::{quantize, Mode, QuantError, QuantSpec};
use profagent_runtime::Tensor;

/// Same budget as the static tests in error_budget.rs.
const INT8_STATIC_MIN_COSINE: f64 = 0.995;
const BATCH: usize = 8;

/// x[N,3,8,8] → Conv → Clip(0, 6; attributes before opset 11) → [LpNormalization] → Unsqueeze(axes attr) →
/// Squeeze(axes attr) → GlobalAveragePool → Flatten → Gemm → Softmax(axis 1), at `opset`.
fn old_convnet(opset: i64, with_lp_norm: bool) -> Model {
    let mut b = GraphBuilder::new(21);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c = b.conv("/conv", &x, 3, 8, 3, 1, 1);
    let mut h = if opset < 11 {
        b.node(
            "Clip",
            "/relu6",
            &[&c],
            1,
            vec![attr::float("min", 0.0), attr::float("max", 6.0)],
        )
    } else {
        let lo = b.init_f32("relu6.min", &[], &[0.0]);
        let hi = b.init_f32("relu6.max", &[], &[6.0]);
        b.node("Clip", "/relu6", &[&c, &lo, &hi], 1, vec![])
    };
    if with_lp_norm {
        h = b.node(
            "LpNormalization",
            "/norm",
            &[&h],
            1,
            vec![attr::int("axis", 1)],
        );
    }
    let u = b.node(
        "Unsqueeze",
        "/unsqueeze",
        &[&h],
        1,
        vec![attr::ints("axes", &[1])],
    );
    let s = b.node(
        "Squeeze",
        "/squeeze",
        &[&u],
        1,
        vec![attr::ints("axes", &[1])],
    );
    let p = b.unary("GlobalAveragePool", "/pool", &s);
    let f = b.node("Flatten", "/flatten", &[&p], 1, vec![attr::int("axis", 1)]);
    let y = b.gemm("/fc", &f, 8, 10);
    b.node("Softmax", "/softmax", &[&y], 1, vec![attr::int("axis", 1)]);
    b.graph.node.last_mut().expect("a node").output[0] = "logits".into();
    b.output("logits", &[-1, 10]);
    let mut model = b.finish();
    model.proto.opset_import[0].version = Some(opset);
    model.proto.ir_version = Some(4);
    model
}

fn inputs(seed: u64) -> Tensor {
    let mut b = GraphBuilder::new(seed);
    Tensor::f32(vec![BATCH, 3, 8, 8], b.rand_vec(BATCH * 3 * 64, 1.5))
}

fn calibration() -> Vec<Batch> {
    (0..4)
        .map(|s| vec![("input".to_string(), inputs(200 + s))])
        .collect()
}

fn weight_dq_axes(model: &Model) -> Vec<Option<i64>> {
    let graph = model.graph();
    graph
        .node
        .iter()
        .filter(|n| {
            n.op_type() == "DequantizeLinear"
                && graph.initializer.iter().any(|t| t.name() == n.input[0])
                && !n.input[0].contains("bias")
        })
        .map(|n| attr::get_int(n, "axis"))
        .collect()
}

#[test]
fn opset_9_model_is_upgraded_to_13_and_quantized_per_channel() {
    let model = old_convnet(9, false);
    let (q, report) = quantize(
        &model,
        &QuantSpec::new(Mode::Static),
        Some(&mut common::source(&calibration())),
    )
    .expect("an opset-9 model quantizes");
    assert_eq!(report.quantized.len(), 2);
    assert!(
        report.notes.iter().any(|n| n.contains("opset 9 to 13")),
        "{:?}",
        report.notes
    );
    assert_eq!(q.proto.opset_import[0].version, Some(13));
    assert!(q.proto.ir_version.unwrap_or(0) >= 7);
    // Conv weights [out, in, kh, kw] and the Gemm's transposed B [out, in]: channels on axis 0.
    assert_eq!(weight_dq_axes(&q), vec![Some(0), Some(0)], "per-channel");
    let graph = q.graph();
    // The ReLU6 (opset 9: min/max attributes, upgraded to operand inputs) is folded into the
    // convolution's output quantization: its upgraded bounds were readable.
    assert_eq!(report.folded_relus, 1);
    assert!(!graph.node.iter().any(|n| n.op_type() == "Clip"));
    for op in ["Unsqueeze", "Squeeze"] {
        let node = graph.node.iter().find(|n| n.op_type() == op);
        let node = node.unwrap_or_else(|| panic!("{op} kept"));
        assert!(node.input.len() >= 2, "{op} reads its operands as inputs");
        assert!(node.attribute.is_empty(), "{op}: {:?}", node.attribute);
    }
    let x = inputs(1);
    let (Some(reference), Some(got)) = (run(&model, &x), run(&q, &x)) else {
        return;
    };
    let c = cosine(&reference, &got);
    assert!(c >= INT8_STATIC_MIN_COSINE, "cosine {c}");
}

#[test]
fn an_op_that_blocks_the_upgrade_means_per_tensor_from_opset_10_and_an_error_below() {
    let model = old_convnet(11, true);
    let (q, report) = quantize(
        &model,
        &QuantSpec::new(Mode::Static),
        Some(&mut common::source(&calibration())),
    )
    .expect("opset 11 quantizes per tensor");
    assert_eq!(q.proto.opset_import[0].version, Some(11));
    assert_eq!(weight_dq_axes(&q), vec![None, None], "per-tensor");
    let note = report.notes.join(" ");
    assert!(
        note.contains("per-tensor") && note.contains("LpNormalization (node '/norm')"),
        "{note}"
    );
    let x = inputs(2);
    if let (Some(reference), Some(got)) = (run(&model, &x), run(&q, &x)) {
        let c = cosine(&reference, &got);
        assert!(c >= INT8_STATIC_MIN_COSINE, "cosine {c}");
    }

    let err = quantize(
        &old_convnet(9, true),
        &QuantSpec::new(Mode::Static),
        Some(&mut common::source(&calibration())),
    )
    .unwrap_err();
    assert!(
        matches!(err, QuantError::OpsetUpgrade { found: 9, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("LpNormalization (node '/norm')") && text.contains("opset_version=13"),
        "{text}"
    );
}

#[test]
fn nothing_selected_leaves_an_old_model_untouched() {
    let model = old_convnet(9, true);
    let mut spec = QuantSpec::new(Mode::Static);
    spec.layers.exclude = vec!["op:Conv".into(), "op:Gemm".into()];
    let (q, report) =
        quantize(&model, &spec, Some(&mut common::source(&calibration()))).expect("nothing to do");
    assert!(report.quantized.is_empty());
    assert_eq!(q.to_bytes(), model.to_bytes());
}
