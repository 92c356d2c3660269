//! Every mode on models built in code, run through ONNX Runtime: quantizing nothing is the
//! identity, and each bit width stays within its named error budget against float.
mod common;
mod outputs;
use common::Batch;
use outputs::{cosine, run};
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::Model;
use profagent_quant::{
    quantize, ActivationType, Mode, QuantError, QuantSpec, Selection, Target, WeightRange,
};
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions, Tensor};

/// Dynamic int8 weights and activations: ONNX Runtime's own tool reaches cosine ≥ 0.9994 on
/// real ViTs (notes/engines.md); a random MLP is no easier.
const INT8_DYNAMIC_MIN_COSINE: f64 = 0.999;
/// Static int8 also quantizes every activation with a calibrated range, about twice the
/// error of dynamic on small random nets.
const INT8_STATIC_MIN_COSINE: f64 = 0.995;
/// 4-bit blocks of 32: engines.md measured cosine 0.98 on ViT-B/16.
const INT4_MIN_COSINE: f64 = 0.97;

const BATCH: usize = 8;

/// The spec for `mode` with the int8 weight range this CPU's ONNX Runtime kernels sum without
/// saturating (7 bits on x86 without VNNI: `profagent_quant::WeightRange`), as `quantize
/// --weight-range auto` and `compress` choose it: the models here run on this CPU.
fn spec_here(mode: Mode) -> QuantSpec {
    let mut spec = QuantSpec::new(mode);
    if profagent_runtime::machine_info().int8_pair_sums_saturate() {
        spec.weight_range = WeightRange::Reduced;
    }
    spec
}

/// x[N,64] → Linear(64,128) → Relu → Linear(128,32) → Gemm head(32,10).
fn mlp() -> Model {
    let mut b = GraphBuilder::new(7);
    let x = b.input("input", &[-1, 64]);
    let h = b.linear("/fc1", &x, 64, 128);
    let h = b.unary("Relu", "/act", &h);
    let h = b.linear("/fc2", &h, 128, 32);
    let y = b.gemm("/head", &h, 32, 10);
    let out = b.unary("Identity", "/out", &y);
    rename_output(&mut b, &out);
    b.finish()
}

/// x[N,3,8,8] → Conv → Relu → Conv → Add(skip) → Relu → GlobalAveragePool → Flatten → Gemm.
fn convnet() -> Model {
    let mut b = GraphBuilder::new(11);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c1 = b.conv("/conv1", &x, 3, 16, 3, 1, 1);
    let r1 = b.unary("Relu", "/relu", &c1);
    let c2 = b.conv("/layer1/conv2", &r1, 16, 16, 3, 1, 1);
    let s = b.binary("Add", "/layer1", &c2, &r1);
    let r2 = b.unary("Relu", "/layer1/relu", &s);
    pooled_head(b, &r2)
}

/// `x[N,16,H,W]` → GlobalAveragePool → Flatten → Gemm(16, 10) → logits: the end of the
/// convnets here.
fn pooled_head(mut b: GraphBuilder, x: &str) -> Model {
    let p = b.unary("GlobalAveragePool", "/pool", x);
    let f = b.node(
        "Flatten",
        "/Flatten",
        &[&p],
        1,
        vec![profagent_onnx::attr::int("axis", 1)],
    );
    let y = b.gemm("/fc", &f, 16, 10);
    let out = b.unary("Identity", "/out", &y);
    rename_output(&mut b, &out);
    b.finish()
}

fn rename_output(b: &mut GraphBuilder, value: &str) {
    let last = b.graph.node.last_mut().expect("a node");
    last.output[0] = "logits".into();
    let _ = value;
    b.output("logits", &[-1, 10]);
}

fn inputs(shape: &[usize], seed: u64) -> Tensor {
    let mut b = GraphBuilder::new(seed);
    let n: usize = shape.iter().product();
    Tensor::f32(shape.to_vec(), b.rand_vec(n, 1.5))
}

fn calibration(shape: &[usize]) -> Vec<Batch> {
    (0..4)
        .map(|s| vec![("input".to_string(), inputs(shape, 100 + s))])
        .collect()
}

#[test]
fn quantizing_nothing_is_the_identity() {
    let model = convnet();
    let x = inputs(&[BATCH, 3, 8, 8], 1);
    for mode in [Mode::Dynamic, Mode::Static, Mode::Int4] {
        let mut spec = spec_here(mode);
        spec.layers = Selection {
            include: vec![],
            exclude: vec!["op:Conv".into(), "op:Gemm".into(), "op:MatMul".into()],
        };
        let (out, report) = quantize(&model, &spec, None).expect("nothing to do is fine");
        assert!(report.quantized.is_empty());
        assert_eq!(
            out.to_bytes(),
            model.to_bytes(),
            "{mode:?} changed the model"
        );
        let (Some(a), Some(b)) = (run(&model, &x), run(&out, &x)) else {
            return;
        };
        assert_eq!(a, b);
    }
}

#[test]
fn dynamic_int8_within_budget_for_both_targets_and_granularities() {
    let model = mlp();
    let x = inputs(&[BATCH, 64], 2);
    let Some(reference) = run(&model, &x) else {
        return;
    };
    for target in [Target::Ort, Target::Standard] {
        for per_channel in [false, true] {
            let mut spec = spec_here(Mode::Dynamic);
            spec.target = target;
            spec.per_channel = Some(per_channel);
            let (q, report) = quantize(&model, &spec, None).expect("quantizes");
            assert_eq!(report.quantized.len(), 3, "fc1, fc2 and the Gemm head");
            assert_eq!(report.quantized[0].layer, "fc1");
            let got = run(&q, &x).expect("runtime present");
            let c = cosine(&reference, &got);
            assert!(
                c >= INT8_DYNAMIC_MIN_COSINE,
                "{target:?} per_channel={per_channel}: cosine {c}"
            );
            assert!(report.weight_bytes_after() * 3 < report.weight_bytes_before());
        }
    }
}

/// Issue 18: a MatMul's bias `Add` (how exporters write `nn.Linear`) becomes the bias input of
/// `DynamicQuantizeMatMul`, so ONNX Runtime runs both in one kernel; outputs stay in budget.
#[test]
fn dynamic_folds_a_trailing_bias_add_into_the_matmul() {
    let model = mlp();
    let (q, report) = quantize(&model, &spec_here(Mode::Dynamic), None).expect("quantizes");
    assert_eq!(report.quantized.len(), 3);
    let graph = q.graph();
    assert!(
        !graph.node.iter().any(|n| n.op_type() == "Add"),
        "bias Adds left: {:?}",
        graph.node.iter().map(|n| n.op_type()).collect::<Vec<_>>()
    );
    let fused: Vec<usize> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "DynamicQuantizeMatMul")
        .map(|n| n.input.len())
        .collect();
    assert_eq!(fused, vec![5, 5, 5], "every layer carries its bias");
    let x = inputs(&[BATCH, 64], 8);
    if let (Some(reference), Some(got)) = (run(&model, &x), run(&q, &x)) {
        let c = cosine(&reference, &got);
        assert!(c >= INT8_DYNAMIC_MIN_COSINE, "cosine {c}");
    }
    // Portable ops keep the Add; a MatMul output read twice keeps it too.
    let mut spec = spec_here(Mode::Dynamic);
    spec.target = Target::Standard;
    let (q, _) = quantize(&model, &spec, None).expect("quantizes");
    assert_eq!(
        q.graph()
            .node
            .iter()
            .filter(|n| n.op_type() == "Add")
            .count(),
        3
    );
    let mut b = GraphBuilder::new(9);
    let x = b.input("input", &[-1, 64]);
    let h = b.linear("/fc1", &x, 64, 10);
    let matmul_out = b.graph.node[0].output[0].clone();
    let y = b.binary("Add", "/skip", &h, &matmul_out);
    let _ = b.unary("Identity", "/out", &y);
    rename_output(&mut b, &y);
    let (q, _) = quantize(&b.finish(), &spec_here(Mode::Dynamic), None).expect("quantizes");
    assert_eq!(
        q.graph()
            .node
            .iter()
            .filter(|n| n.op_type() == "Add")
            .count(),
        2
    );
}

#[test]
fn dynamic_unsigned_weights_within_budget() {
    let model = mlp();
    let x = inputs(&[BATCH, 64], 3);
    let Some(reference) = run(&model, &x) else {
        return;
    };
    let mut spec = spec_here(Mode::Dynamic);
    spec.signed_weights = false;
    let (q, _) = quantize(&model, &spec, None).expect("quantizes");
    let c = cosine(&reference, &run(&q, &x).expect("runs"));
    assert!(c >= INT8_DYNAMIC_MIN_COSINE, "cosine {c}");
}

#[test]
fn dynamic_keeps_convolutions_float_with_a_reason() {
    let (_, report) = quantize(&convnet(), &spec_here(Mode::Dynamic), None).expect("quantizes");
    assert_eq!(report.quantized.len(), 1, "only the Gemm head");
    assert!(report
        .skipped
        .iter()
        .filter(|s| s.op_type == "Conv")
        .all(|s| s.reason.contains("ConvInteger")));
}

#[test]
fn static_int8_within_budget_and_relus_folded() {
    let model = convnet();
    let x = inputs(&[BATCH, 3, 8, 8], 4);
    let Some(reference) = run(&model, &x) else {
        return;
    };
    let batches = calibration(&[BATCH, 3, 8, 8]);
    let (q, report) = quantize(
        &model,
        &spec_here(Mode::Static),
        Some(&mut common::source(&batches)),
    )
    .expect("quantizes");
    assert_eq!(report.quantized.len(), 3);
    assert_eq!(report.folded_relus, 2);
    assert!(!q.graph().node.iter().any(|n| n.op_type() == "Relu"));
    let c = cosine(&reference, &run(&q, &x).expect("runs"));
    assert!(c >= INT8_STATIC_MIN_COSINE, "cosine {c}");
}

/// x → Conv → Clip(0, 6) (ReLU6, min as an initializer, max from a Constant node) → Conv →
/// Clip(0, 6) → GlobalAveragePool → Flatten → Gemm: the MobileNetV2 pattern.
fn relu6_convnet() -> Model {
    let mut b = GraphBuilder::new(13);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let zero = b.init_f32("relu6.min", &[], &[0.0]);
    let six = format!("{}_output_0", "/six/Constant");
    b.graph.node.push(profagent_onnx::attr::node(
        "Constant",
        "/six/Constant",
        &[],
        &[&six],
        vec![profagent_onnx::attr::tensor(
            "value",
            profagent_onnx::tensor::from_f32("", &[], &[6.0]),
        )],
    ));
    let c1 = b.conv("/conv1", &x, 3, 16, 3, 1, 1);
    let r1 = b.node("Clip", "/relu6a", &[&c1, &zero, &six], 1, vec![]);
    let c2 = b.conv("/conv2", &r1, 16, 16, 3, 1, 1);
    let r2 = b.node("Clip", "/relu6b", &[&c2, &zero, &six], 1, vec![]);
    pooled_head(b, &r2)
}

/// Issue 18: a ReLU6 (`Clip` with a constant minimum of 0) is folded like a Relu. Left in
/// place, ONNX Runtime dropped the Clip but kept a standalone DequantizeLinear and
/// QuantizeLinear between the convolutions (MobileNetV2: 1.01x instead of 1.82x faster than
/// fp32) and quantized each convolution's output over its whole pre-activation range (logit
/// cosine 0.951 instead of 0.981 on ImageNet). Folded: no Clip, no standalone Q/DQ kernel
/// left between the two QLinearConvs, within the static budget.
#[test]
fn static_folds_relu6_clips_and_runs_without_requantization() {
    let model = relu6_convnet();
    let x = inputs(&[BATCH, 3, 8, 8], 5);
    let Some(reference) = run(&model, &x) else {
        return;
    };
    let batches = calibration(&[BATCH, 3, 8, 8]);
    let (q, report) = quantize(
        &model,
        &spec_here(Mode::Static),
        Some(&mut common::source(&batches)),
    )
    .expect("quantizes");
    assert_eq!(report.folded_relus, 2);
    assert!(!q.graph().node.iter().any(|n| n.op_type() == "Clip"));
    let c = cosine(&reference, &run(&q, &x).expect("runs"));
    assert!(c >= INT8_STATIC_MIN_COSINE, "cosine {c}");

    let runtime = open_runtime(RuntimeKind::Ort).expect("ONNX Runtime");
    let ops = kernel_ops(runtime.as_ref(), &q);
    assert_eq!(
        ops.iter().filter(|o| *o == "QLinearConv").count(),
        2,
        "{ops:?}"
    );
    // The model input is quantized once; nothing is re-quantized between the convolutions.
    assert_eq!(
        ops.iter().filter(|o| *o == "QuantizeLinear").count(),
        1,
        "{ops:?}"
    );

    // A Clip whose minimum is not 0 (here -1) is not folded.
    let mut hardtanh = relu6_convnet();
    for init in &mut hardtanh.graph_mut().initializer {
        if init.name() == "relu6.min" {
            *init = profagent_onnx::tensor::from_f32("relu6.min", &[], &[-1.0]);
        }
    }
    let (q, report) = quantize(
        &hardtanh,
        &spec_here(Mode::Static),
        Some(&mut common::source(&batches)),
    )
    .expect("quantizes");
    assert_eq!(report.folded_relus, 0);
    assert_eq!(
        q.graph()
            .node
            .iter()
            .filter(|n| n.op_type() == "Clip")
            .count(),
        2
    );
}

/// Element type of the zero point (third input) of every `op_type` node of `model`.
fn zero_point_types(model: &Model, op_type: &str) -> Vec<(String, i32)> {
    let graph = model.graph();
    graph
        .node
        .iter()
        .filter(|n| n.op_type() == op_type)
        .map(|n| {
            let zero = n
                .input
                .get(2)
                .and_then(|z| graph.initializer.iter().find(|t| t.name() == z))
                .map(|t| t.data_type())
                .unwrap_or(-1);
            (n.name().to_string(), zero)
        })
        .collect()
}

/// Issue 18: ONNX Runtime 1.32 fuses QDQ convolutions into QLinearConv everywhere only with
/// uint8 activations; the static rewrite writes uint8 activations with int8 weights (as
/// `quantize_static(activation_type=QUInt8, weight_type=QInt8)` does) and stays in budget.
#[test]
fn static_activations_are_uint8_weights_int8_and_within_budget() {
    use profagent_onnx::proto::tensor_proto::DataType;
    let model = convnet();
    let x = inputs(&[BATCH, 3, 8, 8], 6);
    let batches = calibration(&[BATCH, 3, 8, 8]);
    let (q, report) = quantize(
        &model,
        &spec_here(Mode::Static),
        Some(&mut common::source(&batches)),
    )
    .expect("quantizes");
    let quantize_nodes = zero_point_types(&q, "QuantizeLinear");
    assert_eq!(quantize_nodes.len(), report.quantized_activations);
    for (node, ty) in &quantize_nodes {
        assert_eq!(*ty, DataType::Uint8 as i32, "{node} quantizes to {ty}");
    }
    // Every DequantizeLinear of a weight (a constant input) reads int8, of a bias int32.
    let graph = q.graph();
    let constants: Vec<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let weight_types: Vec<i32> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "DequantizeLinear" && constants.contains(&n.input[0].as_str()))
        .filter_map(|n| {
            graph
                .initializer
                .iter()
                .find(|t| t.name() == n.input[0])
                .map(|t| t.data_type())
        })
        .collect();
    assert_eq!(
        weight_types
            .iter()
            .filter(|&&t| t == DataType::Int8 as i32)
            .count(),
        3,
        "conv1, conv2 and fc weights: {weight_types:?}"
    );
    assert!(weight_types
        .iter()
        .all(|&t| t == DataType::Int8 as i32 || t == DataType::Int32 as i32));
    assert!(report.quantized[0].scheme.contains("uint8 activations"));
    // Flatten moves values only: its output reuses the pooled tensor's scale and zero point.
    let flatten_out = &graph
        .node
        .iter()
        .find(|n| n.op_type() == "Flatten")
        .expect("Flatten kept")
        .output[0];
    let q_of = |tensor: &str| {
        graph
            .node
            .iter()
            .find(|n| n.op_type() == "QuantizeLinear" && n.input[0] == tensor)
            .map(|n| n.input[1..].to_vec())
    };
    let pooled = &graph
        .node
        .iter()
        .find(|n| n.op_type() == "GlobalAveragePool")
        .expect("pool kept")
        .output[0];
    assert_eq!(q_of(flatten_out), q_of(pooled));
    assert!(q_of(pooled).is_some());
    let Some(reference) = run(&model, &x) else {
        return;
    };
    let c = cosine(&reference, &run(&q, &x).expect("runs"));
    assert!(c >= INT8_STATIC_MIN_COSINE, "cosine {c}");
}

/// The op types of the kernels ONNX Runtime runs for `model` (its profiler, one batch).
fn kernel_ops(runtime: &dyn profagent_runtime::Runtime, model: &Model) -> Vec<String> {
    let mut session = runtime
        .load_profiling(
            &ModelSource::Bytes(model.to_bytes()),
            &SessionOptions::default(),
        )
        .expect("loads");
    session
        .run(&[("input".to_string(), inputs(&[BATCH, 3, 8, 8], 7))])
        .expect("runs");
    let trace = session.finish(0).expect("trace");
    trace.kernels.into_iter().map(|k| k.op_type).collect()
}

/// What ONNX Runtime makes of the uint8 rewrite: every convolution runs as a QLinearConv
/// kernel and the residual Add as QLinearAdd; no float Conv is left between DQ and Q.
#[test]
fn static_uint8_runs_as_int8_kernels_in_onnx_runtime() {
    let model = convnet();
    let batches = calibration(&[BATCH, 3, 8, 8]);
    let (q, _) = quantize(
        &model,
        &spec_here(Mode::Static),
        Some(&mut common::source(&batches)),
    )
    .expect("quantizes");
    let runtime = match open_runtime(RuntimeKind::Ort) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipping: ONNX Runtime unavailable: {e}");
            return;
        }
    };
    let ops = kernel_ops(runtime.as_ref(), &q);
    assert_eq!(
        ops.iter().filter(|o| *o == "QLinearConv").count(),
        2,
        "{ops:?}"
    );
    assert!(ops.iter().any(|o| o == "QLinearAdd"), "{ops:?}");
    assert!(
        !ops.iter()
            .any(|o| matches!(o.as_str(), "Conv" | "FusedConv" | "Add")),
        "float kernels left: {ops:?}"
    );
}

#[test]
fn static_int8_activations_on_request() {
    use profagent_onnx::proto::tensor_proto::DataType;
    let batches = calibration(&[BATCH, 3, 8, 8]);
    let mut spec = spec_here(Mode::Static);
    spec.activations = ActivationType::Int8;
    let (q, report) =
        quantize(&convnet(), &spec, Some(&mut common::source(&batches))).expect("quantizes");
    assert!(zero_point_types(&q, "QuantizeLinear")
        .iter()
        .all(|(_, ty)| *ty == DataType::Int8 as i32));
    assert!(report.quantized[0].scheme.contains("int8 activations"));
}

#[test]
fn static_without_calibration_is_an_error() {
    let err = quantize(&convnet(), &spec_here(Mode::Static), None).unwrap_err();
    assert!(matches!(err, QuantError::NoCalibration), "{err}");
}

#[test]
fn static_respects_exclusions() {
    let batches = calibration(&[BATCH, 3, 8, 8]);
    let mut spec = spec_here(Mode::Static);
    spec.layers.exclude = vec!["layer1".into()];
    let (_, report) =
        quantize(&convnet(), &spec, Some(&mut common::source(&batches))).expect("quantizes");
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.layer.as_str()).collect();
    assert_eq!(skipped, vec!["layer1.conv2"]);
    assert!(report.skipped[0].reason.contains("excluded by 'layer1'"));
}

#[test]
fn int4_within_budget() {
    let model = mlp();
    let x = inputs(&[BATCH, 64], 5);
    let Some(reference) = run(&model, &x) else {
        return;
    };
    for block in [16, 32] {
        let mut spec = spec_here(Mode::Int4);
        spec.block_size = block;
        let (q, report) = quantize(&model, &spec, None).expect("quantizes");
        assert_eq!(report.quantized.len(), 3);
        let c = cosine(&reference, &run(&q, &x).expect("runs"));
        assert!(c >= INT4_MIN_COSINE, "block {block}: cosine {c}");
    }
}

#[test]
fn bad_options_and_unknown_layers_are_clear_errors() {
    let mut spec = spec_here(Mode::Int4);
    spec.block_size = 24;
    let err = quantize(&mlp(), &spec, None).unwrap_err().to_string();
    assert!(err.contains("power of two"), "{err}");
    let mut spec = spec_here(Mode::Dynamic);
    spec.layers.include = vec!["fc3".into()];
    let err = quantize(&mlp(), &spec, None).unwrap_err().to_string();
    assert!(
        err.contains("fc3") && err.contains("matches no layer"),
        "{err}"
    );
    spec.layers.include = vec!["re:fc[".into()];
    let err = quantize(&mlp(), &spec, None).unwrap_err().to_string();
    assert!(err.contains("regular expression"), "{err}");
}

#[test]
fn include_by_regex_and_op_type() {
    let mut spec = spec_here(Mode::Dynamic);
    spec.layers.include = vec!["re:fc[12]".into()];
    let (_, report) = quantize(&mlp(), &spec, None).expect("quantizes");
    let layers: Vec<&str> = report.quantized.iter().map(|l| l.layer.as_str()).collect();
    assert_eq!(layers, vec!["fc1", "fc2"]);
    spec.layers.include = vec!["op:Gemm".into()];
    let (_, report) = quantize(&mlp(), &spec, None).expect("quantizes");
    assert_eq!(report.quantized.len(), 1);
    assert_eq!(report.quantized[0].layer, "head");
}
