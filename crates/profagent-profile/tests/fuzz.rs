//! Fuzz target: mutated bytes of a small model (flips, truncations, insertions, overwrites)
//! go through `Model::decode` → `GraphIndex` → shape inference → static profile. Every stage
//! must return `Ok` or `Err`, never panic or hang.
//!
//! Bounded for CI (`FUZZ_CASES` cases). For a longer run:
//! `PROPTEST_CASES=200000 cargo test -p profagent-profile --release --test fuzz`.
use std::path::Path;

use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::{attr, GraphIndex, Model, ShapeFacts, ShapeOptions};
use profagent_profile::{static_profile, ProfileOptions};
use proptest::prelude::*;

/// Cases per CI run: about a second of work in a debug build.
const FUZZ_CASES: u32 = 1500;

/// A small model touching the folding paths: conv stack, attention with Shape-driven
/// reshapes, Slice/Split/Pad/Concat.
fn seed_model() -> Vec<u8> {
    let mut b = GraphBuilder::new(42);
    let x = b.input("input", &[-1, 3, 8, 8]);
    let c = b.conv("/stem/conv", &x, 3, 8, 3, 2, 1);
    let r = b.unary("Relu", "/stem/act", &c);
    let pads = b.init_i64("pads", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]);
    let p = b.node("Pad", "/pad/Pad", &[&r, &pads], 1, vec![]);
    let starts = b.init_i64("starts", &[2], &[1, 1]);
    let ends = b.init_i64("ends", &[2], &[5, 5]);
    let axes = b.init_i64("axes", &[2], &[2, 3]);
    let s = b.node(
        "Slice",
        "/crop/Slice",
        &[&p, &starts, &ends, &axes],
        1,
        vec![],
    );
    let shape = b.init_i64("tokens_shape", &[3], &[0, 8, -1]);
    let t = b.node("Reshape", "/to_tokens/Reshape", &[&s, &shape], 1, vec![]);
    let t = b.node(
        "Transpose",
        "/to_tokens/Transpose",
        &[&t],
        1,
        vec![attr::ints("perm", &[0, 2, 1])],
    );
    let ln = b.layernorm("/blocks.0/norm1", &t, 8);
    let a = b.attention("/blocks.0/attn", &ln, 8, 2);
    let y = b.binary("Add", "/blocks.0", &t, &a);
    let mean = b.node(
        "ReduceMean",
        "/head/ReduceMean",
        &[&y],
        1,
        vec![attr::ints("axes", &[1]), attr::int("keepdims", 0)],
    );
    let logits = b.gemm("/head/fc", &mean, 8, 4);
    b.output(&logits, &[-1, 4]);
    b.finish().to_bytes()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match m {
        Mutation::Flip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Set { at, byte } => bytes[at % n] = *byte,
        Mutation::Insert { at, bytes: extra } => {
            let at = at % (n + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let at = at % n;
            bytes.drain(at..(at + len).min(n));
        }
        Mutation::Truncate { at } => bytes.truncate(at % n),
    }
}

/// Runs every stage; any panic fails the test with the shrunk mutation list.
fn exercise(bytes: &[u8]) {
    let Ok(model) = Model::decode(bytes, Path::new("fuzzed.onnx")) else {
        return;
    };
    let graph = model.graph();
    if let Ok(index) = GraphIndex::new(graph) {
        for batch in [None, Some(1), Some(3)] {
            let _ = ShapeFacts::infer(graph, &index, &ShapeOptions { batch });
        }
    }
    if let Ok(profile) = static_profile(&model, &ProfileOptions { batch: 2 }) {
        let _ = profile.to_json();
        let _ = profagent_profile::table::render_table(&profile, 5);
    }
}

#[test]
fn seed_model_profiles_completely() {
    let bytes = seed_model();
    let model = Model::decode(&bytes, Path::new("seed.onnx")).expect("seed decodes");
    let profile = static_profile(&model, &ProfileOptions { batch: 2 }).expect("seed profiles");
    assert!(profile.is_complete(), "{:?}", profile.coverage);
    assert!(profile.model.macs > 0);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(FUZZ_CASES),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_models_never_panic(mutations in proptest::collection::vec(mutation(), 1..6)) {
        let mut bytes = seed_model();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        exercise(&bytes);
    }
}
