//! The pre-write output check of `quantize` and `prune`, run on ONNX Runtime against models
//! built in code: an unchanged rewrite passes with cosine 1, a rewrite that flips the outputs is
//! refused as the rewrite's failure, a dynamic input nobody sized is the input's fault, and the
//! real samples are capped at the number asked for.
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::Model;
use profagent_quant::Mode;
use profagent_runtime::{RuntimeKind, Tensor};
use profagent_workbench::check::{
    check_rewrite, first_samples, quant_min_cosine, CheckError, CheckInputs, Floor,
    DYNAMIC_MIN_COSINE, INT4_MIN_COSINE, STATIC_MIN_COSINE, SYNTHETIC_SAMPLES,
};
use profagent_workbench::Batch;

/// x[N,16] → Linear(16,8) → Relu → Gemm head(8,4) → logits.
fn mlp(features: i64) -> Model {
    let mut b = GraphBuilder::new(5);
    let x = b.input("input", &[-1, features]);
    let h = b.linear("/fc1", &x, 16, 8);
    let h = b.unary("Relu", "/act", &h);
    b.gemm("/head", &h, 8, 4);
    b.graph.node.last_mut().expect("a node").output[0] = "logits".into();
    b.output("logits", &[-1, 4]);
    b.finish()
}

/// `model` with every weight of the head negated: its logits point the other way.
fn flipped(model: &Model) -> Model {
    let mut out = model.clone();
    let head: Vec<String> = out
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type() == "Gemm")
        .flat_map(|n| n.input[1..].to_vec())
        .collect();
    for t in &mut out.graph_mut().initializer {
        if head.contains(&t.name().to_string()) {
            for v in &mut t.float_data {
                *v = -*v;
            }
            if let Some(raw) = t.raw_data.as_mut() {
                let values: Vec<u8> = raw
                    .chunks(4)
                    .flat_map(|c| (-f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                    .collect();
                *raw = values;
            }
        }
    }
    out
}

fn batches(count: usize, rows: usize) -> Vec<Batch> {
    (0..count)
        .map(|i| {
            let mut b = GraphBuilder::new(100 + i as u64);
            vec![(
                "input".to_string(),
                Tensor::f32(vec![rows, 16], b.rand_vec(rows * 16, 1.0)),
            )]
        })
        .collect()
}

fn floor(min_cosine: f64) -> Floor<'static> {
    Floor {
        min_cosine,
        what: "quantized",
        remedy: "Do something else.",
    }
}

#[test]
fn an_unchanged_rewrite_passes_on_real_samples_capped_at_the_number_asked() {
    let model = mlp(16);
    let data = batches(3, 20);
    let outcome = check_rewrite(
        RuntimeKind::Ort,
        &model,
        &model.clone(),
        Some(CheckInputs {
            batches: &data,
            origin: "real",
            samples: 30,
        }),
        &[],
        floor(STATIC_MIN_COSINE),
    )
    .expect("the same model reproduces itself");
    assert_eq!(
        outcome.samples, 30,
        "20 from the first batch, 10 from the second"
    );
    assert_eq!(outcome.inputs, "real");
    assert!(
        (outcome.report.cosine - 1.0).abs() < 1e-9,
        "{}",
        outcome.report.cosine
    );
    assert!(
        outcome.line().contains("on 30 real samples (needs ≥ 0.98)"),
        "{}",
        outcome.line()
    );
    assert!(
        outcome.line().contains("too few to trust"),
        "30 < 32: {}",
        outcome.line()
    );
    assert_eq!(outcome.prune_warning(), None);
}

#[test]
fn a_rewrite_below_its_floor_is_refused_as_its_own_failure() {
    let model = mlp(16);
    let error = check_rewrite(
        RuntimeKind::Ort,
        &model,
        &flipped(&model),
        None,
        &[],
        floor(DYNAMIC_MIN_COSINE),
    )
    .expect_err("negated logits have cosine -1");
    assert!(!error.is_bad_input(), "{error}");
    match &error {
        CheckError::BelowFloor(refusal) => {
            assert!(refusal.cosine < -0.99, "{}", refusal.cosine);
            assert_eq!(refusal.samples, SYNTHETIC_SAMPLES);
        }
        other => panic!("expected BelowFloor, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("the quantized model does not reproduce the original"),
        "{text}"
    );
    assert!(
        text.ends_with("nothing was written. Do something else."),
        "{text}"
    );
}

#[test]
fn a_pruning_check_reports_without_enforcing_and_warns_below_the_prune_floor() {
    let model = mlp(16);
    let outcome = check_rewrite(
        RuntimeKind::Ort,
        &model,
        &flipped(&model),
        None,
        &[],
        floor(f64::NEG_INFINITY),
    )
    .expect("no floor: reported only");
    let warning = outcome.prune_warning().expect("cosine -1 is far below 0.9");
    assert!(warning.contains("below 0.9"), "{warning}");
}

#[test]
fn a_dynamic_feature_dimension_nobody_sized_is_bad_input() {
    let model = mlp(-1);
    let error = check_rewrite(
        RuntimeKind::Ort,
        &model,
        &model.clone(),
        None,
        &[],
        floor(DYNAMIC_MIN_COSINE),
    )
    .expect_err("the second dimension of the input is unknown");
    assert!(error.is_bad_input(), "{error}");
    assert!(error.to_string().contains("--input-shape"), "{error}");
}

#[test]
fn a_fixed_batch_runs_whole_batches() {
    let data = batches(3, 8);
    let free = first_samples(&data, 10, false);
    let rows: Vec<usize> = free.iter().map(|b| b[0].1.shape[0]).collect();
    assert_eq!(rows, [8, 2]);
    let fixed = first_samples(&data, 10, true);
    let rows: Vec<usize> = fixed.iter().map(|b| b[0].1.shape[0]).collect();
    assert_eq!(rows, [8, 8]);
    assert_eq!(
        first_samples(&data, 0, false).len(),
        1,
        "at least one sample"
    );
}

#[test]
fn quantization_checks_prefer_samples_calibration_did_not_see() {
    let held_out = batches(1, 4);
    let calibration = batches(2, 4);
    let inputs = CheckInputs::for_quantization(Mode::Static, &held_out, Some(&calibration), 50)
        .expect("held-out samples");
    assert_eq!(inputs.origin, "real held-out (not used for calibration)");
    assert_eq!(inputs.batches.len(), 1);
    let inputs = CheckInputs::for_quantization(Mode::Static, &[], Some(&calibration), 50)
        .expect("calibration samples");
    assert_eq!(inputs.origin, "real calibration (no others in the data)");
    assert!(CheckInputs::for_quantization(Mode::Dynamic, &[], None, 50).is_none());
}

#[test]
fn each_mode_is_held_to_its_named_budget() {
    assert_eq!(quant_min_cosine(Mode::Dynamic), DYNAMIC_MIN_COSINE);
    assert_eq!(quant_min_cosine(Mode::Static), STATIC_MIN_COSINE);
    assert_eq!(quant_min_cosine(Mode::Int4), INT4_MIN_COSINE);
}
