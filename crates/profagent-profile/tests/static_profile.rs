//! Static profile: exact counts on graphs built in code, and the published parameter/MAC
//! numbers of the shared models.
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{attr, tensor, Model};
use profagent_profile::{static_profile, Profile, ProfileOptions};

/// Published MAC counts are rounded; ours must agree within this relative error.
const MACS_REL_TOLERANCE: f64 = 0.03;

fn profile(model: &Model, batch: i64) -> Profile {
    static_profile(model, &ProfileOptions { batch }).expect("profile succeeds")
}

/// conv(3→8, 3x3, stride 1) → relu → conv(8→8 depthwise 3x3, stride 2) → GAP → flatten → fc(8→10)
fn small_cnn() -> Model {
    let mut b = GraphBuilder::new(7);
    let x = b.input("input", &[-1, 3, 16, 16]);
    let c = b.conv("/features/features.0/conv", &x, 3, 8, 3, 1, 1);
    let r = b.unary("Relu", "/features/features.0/act", &c);
    let d = b.conv("/features/features.1/dw", &r, 8, 8, 3, 2, 8);
    let g = b.node(
        "GlobalAveragePool",
        "/pool/GlobalAveragePool",
        &[&d],
        1,
        vec![],
    );
    let f = b.node("Flatten", "/Flatten", &[&g], 1, vec![attr::int("axis", 1)]);
    let y = b.gemm("/fc", &f, 8, 10);
    b.output(&y, &[-1, 10]);
    b.finish()
}

#[test]
fn cnn_counts_are_exact() {
    let model = small_cnn();
    let p = profile(&model, 1);
    let conv0 = 16 * 16 * 8 * 3 * 9; // Hout·Wout·Cout·Cin·k²
    let dw = 8 * 8 * 8 * 9; // Hout·Wout·Cout·(Cin/group=1)·k²
    let fc = 8 * 10;
    assert_eq!(p.model.macs, (conv0 + dw + fc) as u64);
    let params = (8 * 3 * 9 + 8) + (8 * 9 + 8) + (10 * 8 + 10);
    assert_eq!(p.model.params, params as u64);
    assert_eq!(p.model.weight_bytes, 4 * params as u64);

    let conv_layer = p.layer("features.0.conv").expect("layer from scope");
    assert_eq!(conv_layer.op_types, vec!["Conv"]);
    assert_eq!(conv_layer.macs, conv0 as u64);
    assert_eq!(conv_layer.weight_bytes, 4 * (8 * 3 * 9 + 8));
    assert_eq!(conv_layer.activation_bytes, 4 * 8 * 16 * 16);
    let fc_layer = p.layer("fc").unwrap();
    assert_eq!(fc_layer.params, 90);
    assert!((fc_layer.macs_share - fc as f64 / p.model.macs as f64).abs() < 1e-12);
    assert!(p.is_complete(), "{:?}", p.coverage);

    // MACs and activations scale with the batch; parameters and weights do not.
    let p4 = profile(&model, 4);
    assert_eq!(p4.model.macs, 4 * p.model.macs);
    assert_eq!(p4.model.activation_bytes, 4 * p.model.activation_bytes);
    assert_eq!(p4.model.params, p.model.params);
    assert_eq!(p4.nodes[0].output_shapes[0], Some(vec![4, 8, 16, 16]));
}

#[test]
fn attention_matmuls_count_and_layers_follow_scopes() {
    let (tokens, dim, heads, hidden) = (17i64, 64i64, 4i64, 128i64);
    let mut b = GraphBuilder::new(11);
    let x = b.input("tokens", &[-1, tokens, dim]);
    let ln = b.layernorm("/blocks/blocks.0/norm1", &x, dim);
    let a = b.attention("/blocks/blocks.0/attn", &ln, dim, heads);
    let res = b.binary("Add", "/blocks/blocks.0", &x, &a);
    let h = b.linear("/blocks/blocks.0/mlp/fc1", &res, dim, hidden);
    let h = b.unary("Gelu", "/blocks/blocks.0/mlp/act", &h);
    let y = b.linear("/blocks/blocks.0/mlp/fc2", &h, hidden, dim);
    b.output(&y, &[-1, tokens, dim]);
    let model = b.finish();
    let p = profile(&model, 2);

    let qkv = 2 * tokens * dim * 3 * dim;
    let scores = 2 * heads * tokens * tokens * (dim / heads);
    let context = scores;
    let proj = 2 * tokens * dim * dim;
    let mlp = 2 * 2 * tokens * dim * hidden;
    assert_eq!(p.model.macs, (qkv + scores + context + proj + mlp) as u64);
    assert_eq!(p.layer("blocks.0.attn.qkv").unwrap().macs, qkv as u64);
    let attn = p.layer("blocks.0.attn").unwrap();
    assert_eq!(
        attn.macs,
        (scores + context) as u64,
        "q·kᵀ and ·v belong to the attn layer"
    );
    for op in [
        "Shape", "Gather", "Reshape", "Softmax", "MatMul", "Constant",
    ] {
        assert!(
            attn.op_types.iter().any(|o| o == op),
            "{op} missing from {:?}",
            attn.op_types
        );
    }
    assert!(
        !p.layers.iter().any(|l| l.name.starts_with("Constant")),
        "Constant nodes join their consumer's layer"
    );
    assert!(p.is_complete(), "{:?}", p.coverage);
}

#[test]
fn quantized_weights_stay_params_and_zero_points_do_not_count() {
    let mut b = GraphBuilder::new(3);
    let x = b.input("x", &[-1, 32]);
    b.graph
        .initializer
        .push(tensor::from_i8("w_q", &[32, 16], &[1i8; 512]));
    let scale = b.init_f32("w_scale", &[], &[0.01]);
    b.graph.initializer.push(tensor::from_i8("w_zp", &[], &[0]));
    let w = b.node(
        "DequantizeLinear",
        "/fc/DequantizeLinear",
        &["w_q", &scale, "w_zp"],
        1,
        vec![],
    );
    let y = b.node("MatMul", "/fc/MatMul", &[&x, &w], 1, vec![]);
    b.output(&y, &[-1, 16]);
    let p = profile(&b.finish(), 3);
    // The int8 weight is still 512 parameters (quantization changes their width, not their
    // number); the scalar zero point is not one, the float scale is.
    assert_eq!(p.model.params, 512 + 1);
    assert_eq!(p.model.weight_bytes, 512 + 4 + 1);
    assert_eq!(p.model.macs, 3 * 16 * 32);
    let fc = p.layer("fc").unwrap();
    assert_eq!(fc.weight_bytes, 517);
    assert_eq!(fc.op_types, vec!["DequantizeLinear", "MatMul"]);
}

#[test]
fn shared_initializer_is_counted_once() {
    let mut b = GraphBuilder::new(2);
    let x = b.input("x", &[1, 8]);
    let w = b.weight("shared.weight", &[8, 8]);
    let h = b.node("MatMul", "/a/MatMul", &[&x, &w], 1, vec![]);
    let y = b.node("MatMul", "/b/MatMul", &[&h, &w], 1, vec![]);
    b.output(&y, &[1, 8]);
    let p = profile(&b.finish(), 1);
    assert_eq!(p.model.params, 64);
    assert_eq!(
        p.layer("a").unwrap().params,
        64,
        "attributed to the first reader"
    );
    assert_eq!(p.layer("b").unwrap().params, 0);
    assert_eq!(
        p.layer("b").unwrap().weight_bytes,
        256,
        "but both layers read its bytes"
    );
    assert_eq!(p.model.weight_bytes, 256);
}

#[test]
fn batch_below_one_is_rejected() {
    let err = static_profile(&small_cnn(), &ProfileOptions { batch: 0 }).unwrap_err();
    assert!(
        err.to_string().contains("batch size must be at least 1"),
        "{err}"
    );
}

/// A model of ../shared/models. Tests that use it carry
/// `#[cfg_attr(not(shared_present), ignore = ...)]` (the build script sets `shared_present`).
fn shared_model(name: &str) -> Model {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/models")
        .join(name);
    Model::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_shared(name: &str, params: u64, macs: f64) {
    let model = shared_model(name);
    let p = profile(&model, 1);
    assert_eq!(p.model.params, params, "{name} params");
    let rel = (p.model.macs as f64 - macs).abs() / macs;
    assert!(
        rel <= MACS_REL_TOLERANCE,
        "{name}: {} MACs, expected about {macs} ({:.2}% off)",
        p.model.macs,
        rel * 100.0
    );
    assert!(p.is_complete(), "{name}: {:?}", p.coverage);
    println!("{name}: params {} MACs {}", p.model.params, p.model.macs);
    let layer_macs: u64 = p.layers.iter().map(|l| l.macs).sum();
    assert_eq!(
        layer_macs, p.model.macs,
        "{name}: layers add up to the model"
    );
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn shared_resnet20_matches_published_numbers() {
    assert_shared("resnet20_cifar10.onnx", 271_690, 40.6e6);
    // BatchNormalization kept: same convolutions, so the same MACs.
    let (folded, with_bn) = (
        shared_model("resnet20_cifar10.onnx"),
        shared_model("resnet20_cifar10_bn.onnx"),
    );
    let (folded, with_bn) = (profile(&folded, 1), profile(&with_bn, 1));
    assert_eq!(folded.model.macs, with_bn.model.macs);
    assert!(with_bn.is_complete(), "{:?}", with_bn.coverage);
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn shared_resnet18_matches_published_numbers() {
    assert_shared("resnet18_cifar10.onnx", 11_169_162, 0.556e9);
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn shared_mobilenet_v2_matches_published_numbers() {
    assert_shared("mobilenet_v2_imagenet.onnx", 3_487_818, 0.30e9);
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn shared_vit_tiny_matches_published_numbers_with_attention() {
    assert_shared("vit_tiny_cifar10.onnx", 4_028_170, 0.27e9);
    let model = shared_model("vit_tiny_cifar10.onnx");
    let p = profile(&model, 1);
    // 3 heads, 65 tokens, head dim 64: q·kᵀ and ·v each 3·65·65·64 MACs per block.
    let attn = p.layer("blocks.0.attn").expect("attn layer");
    assert_eq!(attn.macs, 2 * 3 * 65 * 65 * 64);
    assert_eq!(p.layer("blocks.0.attn.qkv").unwrap().macs, 65 * 192 * 576);
}
