//! Mixed per-layer modes: the quantized graph, read back node by node, holds exactly the mode
//! each layer was given, and runs within the static error budget on ONNX Runtime.
mod common;
mod outputs;
use std::collections::BTreeMap;

use common::Batch;
use outputs::{cosine, run};
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{GraphIndex, Model};
use profagent_quant::{quantize, LayerMode, Mode, QuantError, QuantSpec};
use profagent_runtime::Tensor;

/// Static int8 with some layers dynamic or float: no more error than all-static (see
/// error_budget.rs `INT8_STATIC_MIN_COSINE`).
const MIXED_MIN_COSINE: f64 = 0.995;
const BATCH: usize = 8;

/// x[N,3,8,8] → Conv → Relu → Conv → Add(skip) → Relu → GlobalAveragePool → Flatten →
/// MatMul+Add (proj) → Relu → Gemm (fc).
fn model() -> Model {
    let mut b = GraphBuilder::new(5);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c1 = b.conv("/conv1", &x, 3, 16, 3, 1, 1);
    let r1 = b.unary("Relu", "/relu", &c1);
    let c2 = b.conv("/layer1/conv2", &r1, 16, 16, 3, 1, 1);
    let s = b.binary("Add", "/layer1", &c2, &r1);
    let r2 = b.unary("Relu", "/layer1/relu", &s);
    let p = b.unary("GlobalAveragePool", "/pool", &r2);
    let f = b.node(
        "Flatten",
        "/Flatten",
        &[&p],
        1,
        vec![profagent_onnx::attr::int("axis", 1)],
    );
    let h = b.linear("/proj", &f, 16, 32);
    let h = b.unary("Relu", "/proj_act", &h);
    let _ = b.gemm("/fc", &h, 32, 10);
    let last = b.graph.node.last_mut().expect("a node");
    last.output[0] = "logits".into();
    b.output("logits", &[-1, 10]);
    b.finish()
}

fn inputs(seed: u64) -> Tensor {
    let mut b = GraphBuilder::new(seed);
    let shape = [BATCH, 3, 8, 8];
    Tensor::f32(shape.to_vec(), b.rand_vec(shape.iter().product(), 1.5))
}

/// The mode each compute layer of a quantized graph runs in, read from the graph alone:
/// `DynamicQuantizeMatMul` is dynamic, `MatMulNBits` int4, a Conv/Gemm/MatMul whose weight
/// comes out of a `DequantizeLinear` static, one with a float weight initializer float.
fn modes_in(model: &Model) -> BTreeMap<String, &'static str> {
    let graph = model.graph();
    let index = GraphIndex::new(graph).expect("valid graph");
    let mut modes = BTreeMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        let layer = profagent_onnx::layer_of_node(node.name(), node.op_type(), i);
        let mode = match node.op_type() {
            "DynamicQuantizeMatMul" => "dynamic",
            "MatMulNBits" => "int4",
            "Conv" | "Gemm" | "MatMul" => {
                let weight = &node.input[1];
                match index.producer.get(weight) {
                    Some(&(p, _)) if graph.node[p].op_type() == "DequantizeLinear" => "static",
                    None if index.initializers.contains_key(weight) => "none",
                    _ => "activation x activation",
                }
            }
            _ => continue,
        };
        assert!(
            modes.insert(layer.clone(), mode).is_none(),
            "two compute nodes in layer {layer}"
        );
    }
    modes
}

fn calibration() -> Vec<Batch> {
    (0..4)
        .map(|s| vec![("input".to_string(), inputs(100 + s))])
        .collect()
}

fn layer_mode(text: &str) -> LayerMode {
    LayerMode::parse(text).expect("valid PATTERN=MODE")
}

#[test]
fn each_layer_runs_in_the_mode_it_was_given() {
    let model = model();
    let x = inputs(3);
    let Some(reference) = run(&model, &x) else {
        eprintln!("skipping: ONNX Runtime unavailable");
        return;
    };
    let mut spec = QuantSpec::new(Mode::Static);
    spec.layer_modes = vec![
        layer_mode("op:MatMul=dynamic"),
        layer_mode("layer1.conv2=none"),
    ];
    let batches = calibration();
    let (q, report) =
        quantize(&model, &spec, Some(&mut common::source(&batches))).expect("quantizes");
    let expected: BTreeMap<String, &str> = [
        ("conv1", "static"),
        ("layer1.conv2", "none"),
        ("proj", "dynamic"),
        ("fc", "static"),
    ]
    .into_iter()
    .map(|(l, m)| (l.to_string(), m))
    .collect();
    assert_eq!(modes_in(&q), expected);
    assert_eq!(report.mode, "mixed");
    assert_eq!(report.quantized.len(), 3);
    let kept: Vec<&str> = report.skipped.iter().map(|s| s.layer.as_str()).collect();
    assert_eq!(kept, ["layer1.conv2"]);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n == "per-layer modes: static 2, dynamic 1, float 1"),
        "{:?}",
        report.notes
    );
    // The dynamic layer absorbed its bias Add, as in a dynamic-only run.
    assert!(!q.graph().node.iter().any(|n| n.name() == "/proj/Add"));
    let c = cosine(&reference, &run(&q, &x).expect("runs"));
    assert!(c >= MIXED_MIN_COSINE, "cosine {c}");
}

#[test]
fn the_last_matching_layer_mode_wins() {
    let model = model();
    // Dynamic for every layer, fc back to float; convolutions stay float (dynamic mode leaves
    // them, with its reason).
    let mut spec = QuantSpec::new(Mode::Dynamic);
    spec.layer_modes = vec![layer_mode("op:Gemm=dynamic"), layer_mode("fc=none")];
    let (q, report) = quantize(&model, &spec, None).expect("quantizes");
    let modes = modes_in(&q);
    assert_eq!(modes["fc"], "none");
    assert_eq!(modes["proj"], "dynamic");
    assert_eq!(modes["conv1"], "none");
    assert_eq!(report.mode, "dynamic");
}

#[test]
fn a_layer_mode_that_matches_nothing_is_refused() {
    let mut spec = QuantSpec::new(Mode::Static);
    spec.layer_modes = vec![layer_mode("layer9.conv=none")];
    let err = quantize(&model(), &spec, None).expect_err("unknown layer");
    assert!(matches!(err, QuantError::Selection { .. }), "{err}");
    assert!(err.to_string().contains("layer9.conv"), "{err}");
    for bad in ["fc", "fc=fast", "=static"] {
        assert!(LayerMode::parse(bad).is_err(), "{bad}");
    }
}
