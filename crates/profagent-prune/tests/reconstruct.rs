//! Layer-wise reconstruction on small graphs built in code, where the answer is known: the
//! removed unit is an exact multiple of a kept one (unit 0 = 0.1 · unit 5 after ReLU), so the
//! consumer refitted on calibration data must reproduce the dense outputs on *other* inputs,
//! while plain pruning (with or without bias correction) cannot; both reconstruction targets
//! (independent, sequential) must. On a chain of convolutions losing real channels,
//! sequential reconstruction must end at least as close to the dense outputs as independent.
mod common;
use common::input_of;

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{tensor, Model};
use profagent_prune::{analyze, prune, GroupKind, KeepRule, PruneSpec, ReconstructTarget};
use profagent_runtime::Tensor;

/// Reconstruction after removing an exactly redundant unit: largest output difference,
/// relative to the largest dense output.
const RECONSTRUCTED_MAX_REL_DIFF: f32 = 1e-4;
/// Plain pruning of the same unit moves outputs at least this much (relative), so the test
/// can tell the two apart.
const PLAIN_MIN_REL_DIFF: f32 = 1e-2;
/// Scale of the removed unit relative to its twin.
const TWIN_SCALE: f32 = 0.1;

/// Sets the weights of unit 0 along `axis` of initializer `name` to `TWIN_SCALE` × unit 5.
fn make_twin(model: &mut Model, name: &str, axis: usize) {
    let graph = model.graph_mut();
    let t = graph
        .initializer
        .iter_mut()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no initializer {name}"));
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let mut data = tensor::to_f32(t).unwrap();
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    for o in 0..outer {
        for j in 0..inner {
            let at = |u: usize| (o * dims[axis] + u) * inner + j;
            data[at(0)] = TWIN_SCALE * data[at(5)];
        }
    }
    *t = tensor::from_f32(name, &t.dims.clone(), &data);
}

/// Scales every weight of initializer `name` by `factor` (to make unit 0 the least important).
fn scale_unit0(model: &mut Model, name: &str, axis: usize, factor: f32) {
    let graph = model.graph_mut();
    let t = graph
        .initializer
        .iter_mut()
        .find(|t| t.name() == name)
        .unwrap();
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let mut data = tensor::to_f32(t).unwrap();
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    for o in 0..outer {
        for j in 0..inner {
            data[(o * dims[axis]) * inner + j] *= factor;
        }
    }
    *t = tensor::from_f32(name, &t.dims.clone(), &data);
}

/// Largest |a − b| over the largest |a|.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// Sequential over independent reconstruction: relative RMS output error on held-out inputs,
/// at most this ratio (sequential must be at least as close to the dense model).
const SEQUENTIAL_MAX_ERROR_RATIO: f64 = 1.0;

/// Prunes unit 0 of the group of `kind` four ways and returns the relative output
/// differences on held-out inputs: (plain, bias correction only, independent reconstruction,
/// sequential reconstruction).
fn four_ways(model: &Model, kind: GroupKind, sample: &[usize]) -> (f32, f32, f32, f32) {
    let groups = analyze(model).unwrap();
    let group = groups
        .iter()
        .find(|g| g.kind == kind && g.is_prunable())
        .expect("a prunable group");
    let mut b = GraphBuilder::new(99);
    let per: usize = sample.iter().product();
    let shape = |n: usize| [vec![n], sample.to_vec()].concat();
    let calib = Tensor::f32(shape(64), b.rand_vec(64 * per, 1.0));
    let held_out = Tensor::f32(shape(16), b.rand_vec(16 * per, 1.0));
    let dense = common::run(model, &held_out);
    let mut spec = PruneSpec::uniform(0.0);
    spec.protect_first_and_last = false;
    spec.keep = vec![KeepRule {
        group: group.id.clone(),
        keep: group.units - 1,
    }];
    let mut results = Vec::new();
    for (bias_correction, reconstruct, target) in [
        (false, false, ReconstructTarget::Independent),
        (true, false, ReconstructTarget::Independent),
        (true, true, ReconstructTarget::Independent),
        (true, true, ReconstructTarget::Sequential),
    ] {
        spec.bias_correction = bias_correction;
        spec.reconstruct = reconstruct;
        spec.reconstruct_target = target;
        let mut source = common::OrtCalibration {
            batch: calib.clone(),
        };
        let (pruned, report) = prune(model, &spec, Some(&mut source)).unwrap();
        let outcome = report.pruned_groups().next().unwrap();
        assert_eq!(
            outcome.removed,
            vec![0],
            "the twin unit is the least important"
        );
        assert_eq!(
            report.reconstructed.is_empty(),
            !reconstruct,
            "{:?}",
            report.warnings
        );
        results.push(rel_diff(&dense, &common::run(&pruned, &held_out)));
    }
    (results[0], results[1], results[2], results[3])
}

#[test]
fn conv_consumer_of_a_redundant_channel_is_reconstructed_exactly() {
    // conv1 3→6 (3x3) → ReLU → conv2 6→4 (3x3, stride 2: im2col with padding and stride).
    let mut b = GraphBuilder::new(5);
    let x = b.input("input", &[-1, 3, 9, 9]);
    let c1 = b.conv("/conv1", &x, 3, 6, 3, 1, 1);
    let r = b.unary("Relu", "/relu", &c1);
    let c2 = b.conv("/conv2", &r, 6, 4, 3, 2, 1);
    b.graph.node.last_mut().unwrap().output[0] = "out".into();
    let _ = c2;
    b.output("out", &[-1, 4, 5, 5]);
    let mut model = b.finish();
    let (w1, b1) = (
        input_of(&model, "/conv1/Conv", 1),
        input_of(&model, "/conv1/Conv", 2),
    );
    let w2 = input_of(&model, "/conv2/Conv", 1);
    make_twin(&mut model, &w1, 0);
    make_twin(&mut model, &b1, 0);
    scale_unit0(&mut model, &w2, 1, 0.5);
    let (plain, bias, recon, seq) = four_ways(&model, GroupKind::Channel, &[3, 9, 9]);
    eprintln!("conv: relative max output difference: plain {plain:.2e}, bias correction {bias:.2e}, reconstruction {recon:.2e}, sequential {seq:.2e}");
    assert!(plain > PLAIN_MIN_REL_DIFF, "plain {plain}");
    assert!(bias > PLAIN_MIN_REL_DIFF, "bias correction {bias}");
    assert!(recon < RECONSTRUCTED_MAX_REL_DIFF, "reconstruction {recon}");
    assert!(seq < RECONSTRUCTED_MAX_REL_DIFF, "sequential {seq}");
}

#[test]
fn mlp_down_projection_of_a_redundant_unit_is_reconstructed_exactly() {
    // fc1 8→6 → ReLU → fc2 6→8 (MatMul + Add bias) on [N, 5, 8] tokens.
    let mut b = GraphBuilder::new(3);
    let x = b.input("input", &[-1, 5, 8]);
    let h = b.linear("/blocks.0/mlp/fc1", &x, 8, 6);
    let h = b.unary("Relu", "/blocks.0/mlp/act", &h);
    let y = b.linear("/blocks.0/mlp/fc2", &h, 6, 8);
    let id = b.node("Identity", "/out", &[&y], 1, vec![]);
    b.graph.node.last_mut().unwrap().output[0] = "out".into();
    let _ = id;
    b.output("out", &[-1, 5, 8]);
    let mut model = b.finish();
    let w1 = input_of(&model, "/blocks.0/mlp/fc1/MatMul", 1);
    let b1 = input_of(&model, "/blocks.0/mlp/fc1/Add", 0);
    let w2 = input_of(&model, "/blocks.0/mlp/fc2/MatMul", 1);
    make_twin(&mut model, &w1, 1);
    make_twin(&mut model, &b1, 0);
    scale_unit0(&mut model, &w2, 0, 0.5);
    let (plain, bias, recon, seq) = four_ways(&model, GroupKind::Mlp, &[5, 8]);
    eprintln!("mlp: relative max output difference: plain {plain:.2e}, bias correction {bias:.2e}, reconstruction {recon:.2e}, sequential {seq:.2e}");
    assert!(plain > PLAIN_MIN_REL_DIFF, "plain {plain}");
    assert!(bias > PLAIN_MIN_REL_DIFF, "bias correction {bias}");
    assert!(recon < RECONSTRUCTED_MAX_REL_DIFF, "reconstruction {recon}");
    assert!(seq < RECONSTRUCTED_MAX_REL_DIFF, "sequential {seq}");
}

/// Root mean square of `a − b` over that of `a`.
fn rel_rms(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sq = |it: &mut dyn Iterator<Item = f64>| it.map(|v| v * v).sum::<f64>();
    let diff = sq(&mut a.iter().zip(b).map(|(x, y)| (x - y) as f64));
    (diff / sq(&mut a.iter().map(|&x| x as f64))).sqrt()
}

#[test]
fn sequential_reconstruction_of_a_conv_chain_is_at_least_as_close_as_independent() {
    // conv1 3→8 → ReLU → conv2 8→8 → ReLU → conv3 8→4; both inner groups lose 3 of 8
    // channels (random weights: nothing is redundant), so conv2 and conv3 are refitted and
    // conv3's input carries conv2's remaining error.
    let mut b = GraphBuilder::new(17);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c1 = b.conv("/conv1", &x, 3, 8, 3, 1, 1);
    let r1 = b.unary("Relu", "/relu1", &c1);
    let c2 = b.conv("/conv2", &r1, 8, 8, 3, 1, 1);
    let r2 = b.unary("Relu", "/relu2", &c2);
    let _ = b.conv("/conv3", &r2, 8, 4, 3, 1, 1);
    b.graph.node.last_mut().unwrap().output[0] = "out".into();
    b.output("out", &[-1, 4, 8, 8]);
    let model = b.finish();
    let groups = analyze(&model).unwrap();
    let keep: Vec<KeepRule> = groups
        .iter()
        .filter(|g| g.kind == GroupKind::Channel && g.is_prunable())
        .map(|g| KeepRule {
            group: g.id.clone(),
            keep: g.units - 3,
        })
        .collect();
    assert_eq!(keep.len(), 2, "conv1's and conv2's channels are prunable");
    let mut data = GraphBuilder::new(101);
    let calib = Tensor::f32(vec![96, 3, 8, 8], data.rand_vec(96 * 192, 1.0));
    let held_out = Tensor::f32(vec![32, 3, 8, 8], data.rand_vec(32 * 192, 1.0));
    let dense = common::run(&model, &held_out);
    let mut spec = PruneSpec::uniform(0.0);
    spec.protect_first_and_last = false;
    spec.keep = keep;
    let mut error = |reconstruct: bool, target: ReconstructTarget| {
        spec.reconstruct = reconstruct;
        spec.reconstruct_target = target;
        let mut source = common::OrtCalibration {
            batch: calib.clone(),
        };
        let (pruned, report) = prune(&model, &spec, Some(&mut source)).unwrap();
        let want = if reconstruct { 2 } else { 0 };
        assert_eq!(report.reconstructed.len(), want, "{:?}", report.warnings);
        rel_rms(&dense, &common::run(&pruned, &held_out))
    };
    let bias_only = error(false, ReconstructTarget::Independent);
    let independent = error(true, ReconstructTarget::Independent);
    let sequential = error(true, ReconstructTarget::Sequential);
    eprintln!("conv chain, relative RMS output error on held-out inputs: bias correction {bias_only:.4}, independent {independent:.4}, sequential {sequential:.4}");
    assert!(independent < bias_only, "{independent} vs {bias_only}");
    assert!(
        sequential <= independent * SEQUENTIAL_MAX_ERROR_RATIO,
        "sequential {sequential} vs independent {independent}"
    );
}
