//! Attention heads of a BERT-style encoder (separate query/key/value projections reshaped to
//! heads through run-time shapes, an additive mask shared by every head, erf-GELU MLP), as
//! optimum exports it: the pruner finds one heads group and one MLP group per layer, and
//! removing heads that contribute nothing leaves the outputs unchanged.
#[path = "../../profagent/tests/support/bert.rs"]
mod bert;

use profagent_onnx::{tensor, Model};
use profagent_prune::{analyze, prune, GroupKind, PruneSpec, RatioRule};
use profagent_runtime::{open_runtime, ModelSource, RuntimeKind, SessionOptions, Tensor};

/// Removing heads whose weights are exactly zero must not change outputs beyond this.
const ZERO_HEAD_MAX_ABS_DIFF: f32 = 1e-5;

fn small() -> bert::BertConfig {
    bert::BertConfig {
        layers: 2,
        hidden: 32,
        heads: 4,
        mlp: 64,
        vocab: 1024,
        max_positions: 64,
        classes: 3,
    }
}

/// Batch 2 of 7 tokens, the second sentence padded after 4 tokens.
fn feeds() -> Vec<(String, Tensor)> {
    let ids: Vec<i64> = (0..14).map(|i| (i * 37 + 5) % 900).collect();
    let mask: Vec<i64> = (0..14).map(|i| i64::from(i < 7 || i % 7 < 4)).collect();
    let types: Vec<i64> = (0..14).map(|i| i64::from(i % 7 >= 3)).collect();
    vec![
        ("input_ids".into(), Tensor::i64(vec![2, 7], ids)),
        ("attention_mask".into(), Tensor::i64(vec![2, 7], mask)),
        ("token_type_ids".into(), Tensor::i64(vec![2, 7], types)),
    ]
}

fn logits(model: &Model) -> Vec<f32> {
    let runtime = open_runtime(RuntimeKind::Ort).expect("ONNX Runtime is available");
    let options = SessionOptions {
        threads: 1,
        opt_level: profagent_runtime::OptLevel::Disabled,
        ..Default::default()
    };
    let mut session = runtime
        .load(&ModelSource::Bytes(model.to_bytes()), &options)
        .expect("the model loads in ONNX Runtime");
    session.run(&feeds()).expect("the model runs")[0]
        .1
        .as_f32()
        .expect("float logits")
        .to_vec()
}

/// Zeroes head `head` of every layer: its query/key/value columns and biases and its rows
/// of the output projection.
fn zero_head(model: &mut Model, config: &bert::BertConfig, head: usize) {
    let width = (config.hidden / config.heads) as usize;
    let hidden = config.hidden as usize;
    let columns = head * width..(head + 1) * width;
    let graph = model.graph().clone();
    let matmul_weight = |scope: &str| -> Vec<String> {
        graph
            .node
            .iter()
            .filter(|n| n.op_type() == "MatMul" && n.name().ends_with(&format!("{scope}/MatMul")))
            .map(|n| n.input[1].clone())
            .collect()
    };
    let mut producers = Vec::new();
    for part in ["query", "key", "value"] {
        producers.extend(matmul_weight(&format!("attention/self/{part}")));
    }
    let outputs = matmul_weight("attention/output/dense");
    let biases: Vec<String> = ["query", "key", "value"]
        .iter()
        .flat_map(|part| {
            (0..config.layers)
                .map(move |l| format!("bert.encoder.layer.{l}.attention.self.{part}.bias"))
        })
        .collect();
    for t in model.graph_mut().initializer.iter_mut() {
        let name = t.name().to_string();
        if !(producers.contains(&name) || outputs.contains(&name) || biases.contains(&name)) {
            continue;
        }
        let mut data = tensor::to_f32(t).unwrap();
        let dims = t.dims.clone();
        if producers.contains(&name) {
            for row in 0..hidden {
                data[row * hidden + columns.start..row * hidden + columns.end].fill(0.0);
            }
        } else if outputs.contains(&name) {
            data[columns.start * hidden..columns.end * hidden].fill(0.0);
        } else {
            data[columns.clone()].fill(0.0);
        }
        tensor::set_f32(t, &dims, &data);
    }
}

#[test]
fn separate_qkv_attention_is_one_heads_group_per_layer() {
    let config = small();
    let model = bert::bert_model(&config);
    let groups = analyze(&model).unwrap();
    let heads: Vec<_> = groups
        .iter()
        .filter(|g| g.kind == GroupKind::Heads)
        .collect();
    assert_eq!(heads.len(), 2, "{groups:#?}");
    for group in &heads {
        assert!(group.is_prunable(), "{group:?}");
        assert_eq!((group.units, group.unit_width), (4, 8));
        assert!(
            group
                .layers
                .iter()
                .any(|l| l.ends_with("attention.output.dense")),
            "{group:?}"
        );
    }
    let mlp = groups
        .iter()
        .filter(|g| g.kind == GroupKind::Mlp && g.units == 64 && g.is_prunable())
        .count();
    assert_eq!(mlp, 2, "{groups:#?}");
}

#[test]
fn removing_zeroed_heads_keeps_the_outputs() {
    let config = small();
    let mut model = bert::bert_model(&config);
    zero_head(&mut model, &config, 1);
    let mut spec = PruneSpec::uniform(0.0);
    spec.rules = vec![RatioRule {
        pattern: ".*#heads".into(),
        ratio: 0.25,
    }];
    let (pruned, report) = prune(&model, &spec, None).unwrap();
    let removed: Vec<_> = report.pruned_groups().map(|g| g.removed.clone()).collect();
    assert_eq!(removed, vec![vec![1], vec![1]], "{report:?}");
    let (before, after) = (logits(&model), logits(&pruned));
    assert_eq!(before.len(), after.len());
    let diff = before
        .iter()
        .zip(&after)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff <= ZERO_HEAD_MAX_ABS_DIFF, "max diff {diff}");
    assert!(report.params_after < report.params_before);
}
