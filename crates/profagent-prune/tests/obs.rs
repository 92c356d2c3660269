//! `obs` importance on small graphs built in code, against a brute-force search over which
//! units to drop, scored by the exact reconstruction error of a direct dense least-squares
//! refit of the consumer on the calibration rows: equal to the best subset on a tiny case,
//! never worse than `l1` or `weighted` on random cases. A depthwise conv inside a group is
//! scored through the layer after it; a consumer that cannot be reconstructed falls back to
//! `weighted`, with a warning; no calibration data is an error.
mod common;
use common::input_of;

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{attr, expose_values, tensor, Model};
use profagent_prune::{analyze, prune, GroupKind, Importance, KeepRule, PruneError, PruneSpec};
use profagent_runtime::Tensor;

/// Slack on "never worse" (the Gram matrix is summed from f32 products).
const NOT_WORSE_REL_SLACK: f64 = 1e-6;
/// Greedy removal is not an exhaustive search: on one of the eight random MLPs below
/// (seed 5, keep 8) it ends 0.9 % above the subset `weighted` picks (18.83 vs 18.65); on the
/// others it is 0-15 % below (measured: 36.96 vs 41.89, 22.76 vs 23.96, 47.09 vs 55.02, ...).
const GREEDY_MAX_EXCESS: f64 = 0.02;

fn init(model: &Model, name: &str) -> Vec<f32> {
    let t = model
        .graph()
        .initializer
        .iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no initializer {name}"));
    tensor::to_f32(t).unwrap()
}

/// fc1 8→`hidden` → ReLU → fc2 `hidden`→8 (MatMul + Add bias) on [N, 5, 8] tokens.
fn mlp(seed: u64, hidden: i64) -> Model {
    let mut b = GraphBuilder::new(seed);
    let x = b.input("input", &[-1, 5, 8]);
    let h = b.linear("/blocks.0/mlp/fc1", &x, 8, hidden);
    let h = b.unary("Relu", "/blocks.0/mlp/act", &h);
    let y = b.linear("/blocks.0/mlp/fc2", &h, hidden, 8);
    b.node("Identity", "/out", &[&y], 1, vec![]);
    b.graph.node.last_mut().unwrap().output[0] = "out".into();
    b.output("out", &[-1, 5, 8]);
    b.finish()
}

/// The units of the first prunable group of `kind` that `importance` removes to keep `keep`.
fn removed_by(
    model: &Model,
    kind: GroupKind,
    importance: Importance,
    keep: usize,
    calib: &Tensor,
) -> (Vec<usize>, Vec<String>, Vec<String>) {
    let groups = analyze(model).unwrap();
    let group = groups
        .iter()
        .find(|g| g.kind == kind && g.is_prunable())
        .expect("a prunable group");
    let mut spec = PruneSpec::uniform(0.0);
    spec.protect_first_and_last = false;
    spec.importance = importance;
    spec.keep = vec![KeepRule {
        group: group.id.clone(),
        keep,
    }];
    let mut source = common::OrtCalibration {
        batch: calib.clone(),
    };
    let (_, report) = prune(model, &spec, Some(&mut source)).unwrap();
    let outcome = report.pruned_groups().next().expect("pruned").clone();
    (outcome.removed, report.warnings, report.reconstructed)
}

/// Rows of `value` (channels last after `to_rows`) on `calib`, with a ones column.
fn rows_of(model: &Model, value: &str, calib: &Tensor, channels_first: bool) -> Vec<Vec<f64>> {
    let exposed = expose_values(model, &[value.to_string()]);
    let outputs = common::run_all(&exposed, calib);
    let t = &outputs.iter().find(|(n, _)| n == value).unwrap().1;
    let data = t.as_f32().unwrap();
    let mut rows = Vec::new();
    if channels_first {
        let (n, c, hw) = (t.shape[0], t.shape[1], t.shape[2] * t.shape[3]);
        for i in 0..n {
            for p in 0..hw {
                let mut r: Vec<f64> = (0..c)
                    .map(|ch| data[(i * c + ch) * hw + p] as f64)
                    .collect();
                r.push(1.0);
                rows.push(r);
            }
        }
    } else {
        let c = *t.shape.last().unwrap();
        for chunk in data.chunks(c) {
            let mut r: Vec<f64> = chunk.iter().map(|&v| v as f64).collect();
            r.push(1.0);
            rows.push(r);
        }
    }
    rows
}

/// `Σ_o min_{w'} ||X w_o − X_K w'||²`: the consumer (weights `w[o][f]` over the features of
/// `rows`, bias last) refitted on the features left after removing `removed`, by solving the
/// normal equations directly (Gaussian elimination with partial pivoting, f64).
fn refit_error(rows: &[Vec<f64>], w: &[Vec<f64>], removed: &[usize]) -> f64 {
    let n = rows[0].len();
    let kept: Vec<usize> = (0..n).filter(|f| !removed.contains(f)).collect();
    let k = kept.len();
    let mut total = 0.0;
    for wo in w {
        let target: Vec<f64> = rows
            .iter()
            .map(|r| r.iter().zip(wo).map(|(a, b)| a * b).sum())
            .collect();
        let mut a = vec![vec![0.0; k + 1]; k];
        for (p, &i) in kept.iter().enumerate() {
            for (q, &j) in kept.iter().enumerate() {
                a[p][q] = rows.iter().map(|r| r[i] * r[j]).sum();
            }
            a[p][k] = rows.iter().zip(&target).map(|(r, t)| r[i] * t).sum();
        }
        for col in 0..k {
            let piv = (col..k)
                .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
                .unwrap();
            a.swap(col, piv);
            let pivot_row = a[col].clone();
            for (r, row) in a.iter_mut().enumerate() {
                if r != col {
                    let f = row[col] / pivot_row[col];
                    for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                        *x -= f * p;
                    }
                }
            }
        }
        let fit: Vec<f64> = (0..k).map(|p| a[p][k] / a[p][p]).collect();
        total += rows
            .iter()
            .zip(&target)
            .map(|(r, t)| {
                let y: f64 = kept.iter().zip(&fit).map(|(&i, v)| r[i] * v).sum();
                (t - y) * (t - y)
            })
            .sum::<f64>();
    }
    total
}

/// fc2's weights as `w[o][f]` (hidden units, then the bias).
fn fc2_weights(model: &Model, hidden: usize) -> Vec<Vec<f64>> {
    let w = init(model, &input_of(model, "/blocks.0/mlp/fc2/MatMul", 1));
    let b = init(model, &input_of(model, "/blocks.0/mlp/fc2/Add", 0));
    (0..8)
        .map(|o| {
            let mut col: Vec<f64> = (0..hidden).map(|h| w[h * 8 + o] as f64).collect();
            col.push(b[o] as f64);
            col
        })
        .collect()
}

fn calib_for(seed: u64, samples: usize, sample: &[usize]) -> Tensor {
    let mut b = GraphBuilder::new(seed);
    let per: usize = sample.iter().product();
    Tensor::f32(
        [vec![samples], sample.to_vec()].concat(),
        b.rand_vec(samples * per, 1.0),
    )
}

#[test]
fn obs_equals_the_best_subset_on_a_tiny_mlp() {
    let hidden = 6;
    let model = mlp(7, hidden as i64);
    let calib = calib_for(8, 64, &[5, 8]);
    let rows = rows_of(
        &model,
        &input_of(&model, "/blocks.0/mlp/fc2/MatMul", 0),
        &calib,
        false,
    );
    let w = fc2_weights(&model, hidden);
    for keep in [5, 4, 3] {
        let (removed, warnings, _) =
            removed_by(&model, GroupKind::Mlp, Importance::Obs, keep, &calib);
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut best = (f64::INFINITY, Vec::new());
        for mask in 0u32..(1 << hidden) {
            if mask.count_ones() as usize == hidden - keep {
                let set: Vec<usize> = (0..hidden).filter(|u| mask & (1 << u) != 0).collect();
                let e = refit_error(&rows, &w, &set);
                if e < best.0 {
                    best = (e, set);
                }
            }
        }
        let ours = refit_error(&rows, &w, &removed);
        eprintln!(
            "keep {keep}: obs {removed:?} error {ours:.4}, best {:?} error {:.4}",
            best.1, best.0
        );
        assert_eq!(removed, best.1, "keep {keep}");
    }
}

#[test]
fn obs_is_never_worse_than_l1_or_weighted_on_random_mlps() {
    let hidden = 12;
    let (mut totals, mut better) = ([0.0f64; 2], 0);
    for seed in 0..8u64 {
        let model = mlp(100 + seed, hidden as i64);
        let calib = calib_for(200 + seed, 48, &[5, 8]);
        let rows = rows_of(
            &model,
            &input_of(&model, "/blocks.0/mlp/fc2/MatMul", 0),
            &calib,
            false,
        );
        let w = fc2_weights(&model, hidden);
        let keep = 6 + (seed as usize % 3);
        let error = |importance| {
            let (removed, _, _) = removed_by(&model, GroupKind::Mlp, importance, keep, &calib);
            refit_error(&rows, &w, &removed)
        };
        let (obs, l1, weighted) = (
            error(Importance::Obs),
            error(Importance::L1),
            error(Importance::Weighted),
        );
        eprintln!("seed {seed} keep {keep}: obs {obs:.4}, l1 {l1:.4}, weighted {weighted:.4}");
        assert!(
            obs <= l1 * (1.0 + NOT_WORSE_REL_SLACK),
            "seed {seed}: obs {obs} > l1 {l1}"
        );
        assert!(
            obs <= weighted * (1.0 + GREEDY_MAX_EXCESS),
            "seed {seed}: obs {obs} > weighted {weighted}"
        );
        totals[0] += obs;
        totals[1] += weighted;
        better += usize::from(obs < weighted * (1.0 - 1e-3));
    }
    // Over all cases obs loses clearly less, and is strictly better on most of them.
    assert!(totals[0] < totals[1], "{totals:?}");
    assert!(better >= 5, "obs better than weighted on {better} of 8");
}

/// conv1 3→6 (3x3) → ReLU → `middle` → conv2 6→4 (`k2`×`k2`) on 5×5 images (25 positions
/// per sample: every row is sampled).
fn conv_chain(seed: u64, depthwise: bool, k2: i64) -> Model {
    let mut b = GraphBuilder::new(seed);
    let x = b.input("input", &[-1, 3, 5, 5]);
    let c1 = b.conv("/conv1", &x, 3, 6, 3, 1, 1);
    let mut h = b.unary("Relu", "/relu1", &c1);
    if depthwise {
        let d = b.conv("/dw", &h, 6, 6, 3, 1, 6);
        h = b.unary("Relu", "/relu2", &d);
    }
    b.conv("/conv2", &h, 6, 4, k2, 1, 1);
    b.graph.node.last_mut().unwrap().output[0] = "out".into();
    b.output("out", &[-1, 4, 5, 5]);
    b.finish()
}

#[test]
fn a_depthwise_conv_in_the_group_is_scored_through_the_layer_after_it() {
    let model = conv_chain(31, true, 1);
    let calib = calib_for(32, 32, &[3, 5, 5]);
    let (removed, warnings, reconstructed) =
        removed_by(&model, GroupKind::Channel, Importance::Obs, 5, &calib);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(reconstructed, vec!["conv2".to_string()]);
    // conv2 is 1×1: its features are the depthwise outputs' channels.
    let rows = rows_of(&model, &input_of(&model, "/conv2/Conv", 0), &calib, true);
    let wt = init(&model, &input_of(&model, "/conv2/Conv", 1));
    let bias = init(&model, &input_of(&model, "/conv2/Conv", 2));
    let w: Vec<Vec<f64>> = (0..4)
        .map(|o| {
            let mut r: Vec<f64> = (0..6).map(|c| wt[o * 6 + c] as f64).collect();
            r.push(bias[o] as f64);
            r
        })
        .collect();
    let best = (0..6)
        .min_by(|&a, &b| refit_error(&rows, &w, &[a]).total_cmp(&refit_error(&rows, &w, &[b])))
        .unwrap();
    assert_eq!(removed, vec![best]);
}

#[test]
fn a_consumer_that_cannot_be_reconstructed_falls_back_to_weighted() {
    let mut model = conv_chain(41, false, 3);
    // auto_pad SAME_UPPER: reconstruction refuses it, so obs cannot score its inputs.
    let conv2 = model
        .graph_mut()
        .node
        .iter_mut()
        .find(|n| n.name() == "/conv2/Conv")
        .unwrap();
    conv2.attribute.retain(|a| a.name() != "pads");
    conv2.attribute.push(attr::string("auto_pad", "SAME_UPPER"));
    let calib = calib_for(42, 32, &[3, 5, 5]);
    let (obs, warnings, _) = removed_by(&model, GroupKind::Channel, Importance::Obs, 4, &calib);
    let (weighted, _, _) = removed_by(&model, GroupKind::Channel, Importance::Weighted, 4, &calib);
    assert_eq!(obs, weighted);
    assert!(
        warnings.iter().any(|w| w
            .contains("'conv2' cannot be reconstructed (auto_pad SAME_UPPER)")
            && w.contains("ranked by weighted importance instead of obs")),
        "{warnings:?}"
    );
}

#[test]
fn obs_without_calibration_data_is_refused() {
    let model = mlp(1, 6);
    let mut spec = PruneSpec::uniform(0.5);
    spec.protect_first_and_last = false;
    spec.importance = Importance::Obs;
    let err = prune(&model, &spec, None).unwrap_err();
    assert!(
        matches!(err, PruneError::ImportanceUnavailable { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("importance 'obs' needs calibration data"),
        "{err}"
    );
}
