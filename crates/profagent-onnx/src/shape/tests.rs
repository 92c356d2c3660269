//! Unit tests of shape inference on graphs built in code.
use super::*;
use crate::attr;
use crate::builder::GraphBuilder;

fn infer(model: &Model, batch: Option<i64>) -> ShapeFacts {
    ShapeFacts::for_model(model, &ShapeOptions { batch }).expect("inference succeeds")
}

fn known(facts: &ShapeFacts, value: &str) -> Vec<i64> {
    facts
        .known_dims(value)
        .unwrap_or_else(|| panic!("{value}: dims not known: {:?}", facts.get(value)))
}

fn small_cnn() -> (Model, String) {
    let mut b = GraphBuilder::new(3);
    let x = b.input("input", &[-1, 3, 32, 32]);
    let c1 = b.conv("/conv1", &x, 3, 16, 3, 2, 1);
    let bn = b.batchnorm("/bn1", &c1, 16);
    let r = b.unary("Relu", "/relu", &bn);
    let dw = b.conv("/dw", &r, 16, 16, 3, 1, 16);
    let pool = b.node(
        "MaxPool",
        "/pool/MaxPool",
        &[&dw],
        1,
        vec![
            attr::ints("kernel_shape", &[3, 3]),
            attr::ints("strides", &[2, 2]),
            attr::ints("pads", &[1, 1, 1, 1]),
        ],
    );
    let gap = b.node(
        "GlobalAveragePool",
        "/gap/GlobalAveragePool",
        &[&pool],
        1,
        vec![],
    );
    let flat = b.node(
        "Flatten",
        "/Flatten",
        &[&gap],
        1,
        vec![attr::int("axis", 1)],
    );
    let fc = b.gemm("/fc", &flat, 16, 10);
    b.output(&fc, &[-1, 10]);
    (b.finish(), fc)
}

#[test]
fn cnn_shapes_with_symbolic_and_bound_batch() {
    let (model, fc) = small_cnn();
    let facts = infer(&model, None);
    assert_eq!(
        facts.dims("/conv1/Conv_output_0").unwrap(),
        &[
            Dim::Symbolic("N".into()),
            Dim::Known(16),
            Dim::Known(16),
            Dim::Known(16)
        ]
    );
    assert_eq!(
        facts.known_dims(&fc),
        None,
        "batch stays symbolic without a binding"
    );
    let facts = infer(&model, Some(4));
    assert_eq!(known(&facts, "/pool/MaxPool_output_0"), vec![4, 16, 8, 8]);
    assert_eq!(
        known(&facts, "/gap/GlobalAveragePool_output_0"),
        vec![4, 16, 1, 1]
    );
    assert_eq!(known(&facts, &fc), vec![4, 10]);
    assert_eq!(facts.bytes(&fc), Some(4 * 10 * 4));
    assert!(facts.unsupported_ops.is_empty());
    assert!(facts.incomplete_values(model.graph()).is_empty());
}

#[test]
fn attention_block_folds_shape_chains() {
    let mut b = GraphBuilder::new(5);
    let x = b.input("tokens", &[-1, 17, 64]);
    let ln = b.layernorm("/blocks.0/norm1", &x, 64);
    let y = b.attention("/blocks.0/attn", &ln, 64, 4);
    b.output(&y, &[-1, 17, 64]);
    let model = b.finish();

    let facts = infer(&model, None);
    let n = Dim::Symbolic("N".into());
    assert_eq!(
        facts.dims("/blocks.0/attn/MatMul_output_0").unwrap(),
        &[n.clone(), Dim::Known(4), Dim::Known(17), Dim::Known(17)],
        "q·kᵀ scores keep the symbolic batch through the folded reshape"
    );
    assert_eq!(
        facts.dims(&y).unwrap(),
        &[n, Dim::Known(17), Dim::Known(64)]
    );

    let facts = infer(&model, Some(2));
    assert_eq!(
        known(&facts, "/blocks.0/attn/MatMul_1_output_0"),
        vec![2, 4, 17, 16]
    );
    assert_eq!(known(&facts, &y), vec![2, 17, 64]);
    assert!(facts.incomplete_values(model.graph()).is_empty());
    assert!(
        facts.unresolved_nodes.is_empty(),
        "{:?}",
        facts.unresolved_nodes
    );
}

#[test]
fn equal_where_expand_fold_like_timm_cls_token() {
    // Reproduces timm's `cls_token.expand(B, -1, -1)` export.
    let mut b = GraphBuilder::new(9);
    let x = b.input("x", &[-1, 8, 32]);
    let shape = b.node("Shape", "/Shape", &[&x], 1, vec![]);
    let zero = b.const_i64("", &[], &[0]);
    let batch = b.node("Gather", "/Gather", &[&shape, &zero], 1, vec![]);
    let axes = b.const_i64("", &[1], &[0]);
    let batch_1d = b.node("Unsqueeze", "/Unsqueeze", &[&batch, &axes], 1, vec![]);
    let minus = b.const_i64("", &[2], &[-1, -1]);
    let target = b.node(
        "Concat",
        "/Concat",
        &[&batch_1d, &minus],
        1,
        vec![attr::int("axis", 0)],
    );
    let target_shape = b.node("Shape", "/Shape_1", &[&target], 1, vec![]);
    let ones = b.node(
        "ConstantOfShape",
        "/ConstantOfShape",
        &[&target_shape],
        1,
        vec![attr::tensor(
            "value",
            crate::tensor::from_i64("", &[1], &[1]),
        )],
    );
    let neg_one = b.const_i64("", &[], &[-1]);
    let minus_ones = b.binary("Mul", "/m", &ones, &neg_one);
    let is_minus = b.binary("Equal", "/e", &target, &minus_ones);
    let resolved = b.node("Where", "/Where", &[&is_minus, &ones, &target], 1, vec![]);
    let cls = b.weight("cls_token", &[1, 1, 32]);
    let expanded = b.node("Expand", "/Expand", &[&cls, &resolved], 1, vec![]);
    let joined = b.node(
        "Concat",
        "/Concat_1",
        &[&expanded, &x],
        1,
        vec![attr::int("axis", 1)],
    );
    b.output(&joined, &[-1, 9, 32]);
    let model = b.finish();
    let facts = infer(&model, None);
    let n = Dim::Symbolic("N".into());
    assert_eq!(
        facts.get(&resolved).unwrap().value.as_deref().unwrap(),
        &[n.clone(), Dim::Known(1), Dim::Known(1)]
    );
    assert_eq!(
        facts.dims(&joined).unwrap(),
        &[n, Dim::Known(9), Dim::Known(32)]
    );
    let facts = infer(&model, Some(3));
    assert_eq!(known(&facts, &joined), vec![3, 9, 32]);
}

#[test]
fn reshape_that_changes_element_count_is_an_error_naming_the_node() {
    let mut b = GraphBuilder::new(1);
    let x = b.input("x", &[2, 3, 4]);
    let target = b.init_i64("target", &[2], &[5, 5]);
    let y = b.node("Reshape", "/bad/Reshape", &[&x, &target], 1, vec![]);
    b.output(&y, &[5, 5]);
    let err = ShapeFacts::for_model(&b.finish(), &ShapeOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("/bad/Reshape"), "{message}");
    assert!(message.contains("24 elements"), "{message}");
}

#[test]
fn matmul_inner_dim_mismatch_is_an_error() {
    let mut b = GraphBuilder::new(1);
    let x = b.input("x", &[2, 3]);
    let w = b.weight("w", &[4, 5]);
    let y = b.node("MatMul", "/mm/MatMul", &[&x, &w], 1, vec![]);
    b.output(&y, &[2, 5]);
    let err = ShapeFacts::for_model(&b.finish(), &ShapeOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("inner dims differ: 3 vs 4"),
        "{err}"
    );
}

#[test]
fn unknown_ops_are_recorded_and_value_info_fills_in() {
    let mut b = GraphBuilder::new(1);
    let x = b.input("x", &[1, 8]);
    let y = b.node("FancyCustomOp", "/custom/Op", &[&x], 1, vec![]);
    let z = b.unary("Relu", "/relu", &y);
    b.output(&z, &[1, 8]);
    let model = b.finish();
    let facts = infer(&model, None);
    assert_eq!(facts.unsupported_ops.get("FancyCustomOp"), Some(&1));
    assert_eq!(facts.get(&y).and_then(|f| f.dims.clone()), None);
    assert_eq!(facts.unresolved_nodes, vec!["/relu/Relu".to_string()]);
    // The graph output's value_info is used where inference has nothing.
    assert_eq!(known(&facts, &z), vec![1, 8]);

    let mut with_info = model.clone();
    with_info
        .graph_mut()
        .value_info
        .push(crate::builder::value_info(&y, &[1, 8]));
    let facts = infer(&with_info, None);
    assert_eq!(known(&facts, &y), vec![1, 8]);
    assert!(facts.unresolved_nodes.is_empty());
}

#[test]
fn slice_split_pad_transpose_and_gather() {
    let mut b = GraphBuilder::new(1);
    let x = b.input("x", &[-1, 6, 10, 10]);
    let starts = b.init_i64("starts", &[2], &[1, -4]);
    let ends = b.init_i64("ends", &[2], &[i64::MAX, 100]);
    let axes = b.init_i64("axes", &[2], &[1, 3]);
    let steps = b.init_i64("steps", &[2], &[2, 1]);
    let sliced = b.node(
        "Slice",
        "/Slice",
        &[&x, &starts, &ends, &axes, &steps],
        1,
        vec![],
    );
    let split_sizes = b.init_i64("split", &[2], &[1, 2]);
    let split_name = "/Split".to_string();
    b.graph.node.push(attr::node(
        "Split",
        &split_name,
        &[&sliced, &split_sizes],
        &["s0", "s1"],
        vec![attr::int("axis", 1)],
    ));
    let pads = b.init_i64("pads", &[8], &[0, 0, 1, 2, 0, 0, 3, 4]);
    let padded = b.node("Pad", "/Pad", &["s1", &pads], 1, vec![]);
    let t = b.node(
        "Transpose",
        "/Transpose",
        &[&padded],
        1,
        vec![attr::ints("perm", &[0, 2, 3, 1])],
    );
    let idx = b.init_i64("idx", &[2, 3], &[0, 1, 2, 3, 4, 5]);
    let g = b.node(
        "Gather",
        "/Gather",
        &[&t, &idx],
        1,
        vec![attr::int("axis", 1)],
    );
    b.output(&g, &[]);
    let model = b.finish();
    let facts = infer(&model, Some(2));
    assert_eq!(known(&facts, &sliced), vec![2, 3, 10, 4]);
    assert_eq!(known(&facts, "s0"), vec![2, 1, 10, 4]);
    assert_eq!(known(&facts, "s1"), vec![2, 2, 10, 4]);
    assert_eq!(known(&facts, &padded), vec![2, 2, 14, 10]);
    assert_eq!(known(&facts, &t), vec![2, 14, 10, 2]);
    assert_eq!(known(&facts, &g), vec![2, 2, 3, 10, 2]);
}

/// The shared ViT export must infer completely: its attention shapes come from folded
/// Shape/Gather/Concat chains.
#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn shared_vit_tiny_infers_fully() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/models/vit_tiny_cifar10.onnx");
    let model = Model::load(&path).expect("shared model loads");
    let facts = infer(&model, Some(1));
    assert!(
        facts.unsupported_ops.is_empty(),
        "{:?}",
        facts.unsupported_ops
    );
    let incomplete = facts.incomplete_values(model.graph());
    assert!(incomplete.is_empty(), "not inferred: {incomplete:?}");
    // 32x32 image, patch 4 → 64 patches + cls = 65 tokens; 3 heads of 64.
    assert_eq!(
        known(&facts, "/blocks/blocks.0/attn/MatMul_output_0"),
        vec![1, 3, 65, 65]
    );
    assert_eq!(
        known(&facts, "/blocks/blocks.8/mlp/fc1/Add_output_0"),
        vec![1, 65, 768]
    );
    let logits = &model.graph().output[0];
    assert_eq!(known(&facts, logits.name()), vec![1, 10]);
}

#[test]
fn onnx_runtime_quantized_matmuls_have_the_float_matmul_shape() {
    // What dynamic quantization leaves in a transformer: DynamicQuantizeMatMul (float A, int8
    // B) and MatMulIntegerToFloat, with float attention MatMuls downstream.
    let mut b = GraphBuilder::new(1);
    let x = b.input("x", &[-1, 5, 8]);
    let w = b.weight("w", &[8, 6]);
    let scale = b.weight("scale", &[6]);
    let q = b.node(
        "DynamicQuantizeMatMul",
        "/q/DynamicQuantizeMatMul",
        &[&x, &w, &scale],
        1,
        vec![],
    );
    let w2 = b.weight("w2", &[8, 6]);
    let k = b.node(
        "MatMulIntegerToFloat",
        "/k/MatMulIntegerToFloat",
        &[&x, &w2, &scale, &scale],
        1,
        vec![],
    );
    let kt = b.node(
        "Transpose",
        "/kt/Transpose",
        &[&k],
        1,
        vec![attr::ints("perm", &[0, 2, 1])],
    );
    let scores = b.node("MatMul", "/scores/MatMul", &[&q, &kt], 1, vec![]);
    b.output(&scores, &[-1, 5, 5]);
    let facts = infer(&b.finish(), Some(2));
    assert_eq!(known(&facts, &q), vec![2, 5, 6]);
    assert_eq!(known(&facts, &k), vec![2, 5, 6]);
    assert_eq!(known(&facts, &scores), vec![2, 5, 5]);
    assert!(
        facts.unsupported_ops.is_empty(),
        "{:?}",
        facts.unsupported_ops
    );
}

#[test]
fn torch_window_padding_folds_like_torchvision_swin() {
    // torchvision's Swin pads H and W up to a window multiple: pad = (7 - x % 7) % 7, written
    // into F.pad's table, which the exporter reshapes to [n, 2], reverses along rows (Slice
    // with step -1), transposes and flattens before Pad.
    let mut b = GraphBuilder::new(3);
    let x = b.input("x", &[1, 9, 9, 8]);
    let shape = b.node("Shape", "/Shape", &[&x], 1, vec![]);
    let one = b.const_i64("", &[], &[1]);
    let h = b.node("Gather", "/Gather", &[&shape, &one], 1, vec![]);
    let seven = b.const_i64("", &[], &[7]);
    let rem = b.binary("Mod", "/Mod", &h, &seven);
    let short = b.binary("Sub", "/Sub", &seven, &rem);
    let pad = b.binary("Mod", "/Mod_1", &short, &seven);
    let axes = b.const_i64("", &[1], &[0]);
    let pad_1d = b.node("Unsqueeze", "/Unsqueeze", &[&pad, &axes], 1, vec![]);
    // F.pad order (last dim first): (C: 0, 0), (W: 0, pad), (H: 0, pad), (N: 0, 0).
    let zeros2 = b.const_i64("", &[2], &[0, 0]);
    let zero1 = b.const_i64("", &[1], &[0]);
    let table = b.node(
        "Concat",
        "/Concat",
        &[&zeros2, &zero1, &pad_1d, &zero1, &pad_1d, &zeros2],
        1,
        vec![attr::int("axis", 0)],
    );
    let rows = b.const_i64("", &[2], &[-1, 2]);
    let pairs = b.node("Reshape", "/Reshape", &[&table, &rows], 1, vec![]);
    let start = b.const_i64("", &[1], &[-1]);
    let end = b.const_i64("", &[1], &[i64::MIN]);
    let step = b.const_i64("", &[1], &[-1]);
    let reversed = b.node(
        "Slice",
        "/Slice",
        &[&pairs, &start, &end, &axes, &step],
        1,
        vec![],
    );
    let transposed = b.node(
        "Transpose",
        "/Transpose",
        &[&reversed],
        1,
        vec![attr::ints("perm", &[1, 0])],
    );
    let flat_shape = b.const_i64("", &[1], &[-1]);
    let pads = b.node(
        "Reshape",
        "/Reshape_1",
        &[&transposed, &flat_shape],
        1,
        vec![],
    );
    let padded = b.node("Pad", "/Pad", &[&x, &pads], 1, vec![]);
    b.output(&padded, &[1, 14, 14, 8]);
    let facts = infer(&b.finish(), None);
    assert_eq!(
        facts.get(&pads).and_then(|f| f.int_values()),
        Some(vec![0, 0, 0, 0, 0, 5, 5, 0])
    );
    assert_eq!(known(&facts, &padded), vec![1, 14, 14, 8]);
}
