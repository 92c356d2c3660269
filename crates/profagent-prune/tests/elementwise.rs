//! Group discovery reads the one element-wise op table (`profagent_onnx::ops::ELEMENTWISE`):
//! channels flow through every one-input op of it, and every several-input op of it couples
//! the channels of the convolutions it combines.
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::ops::{Elementwise, ELEMENTWISE};
use profagent_onnx::Model;
use profagent_prune::{analyze, GroupStatus};

/// x → Conv(/a) → OP → Conv(/out) → y, or with two convolutions into OP.
fn graph(op: &str, kind: Elementwise) -> Model {
    let mut b = GraphBuilder::new(2);
    let x = b.input("x", &[1, 3, 8, 8]);
    let a = b.conv("/a", &x, 3, 8, 3, 1, 1);
    let attrs = match kind {
        Elementwise::Cast => vec![profagent_onnx::attr::int("to", 1)],
        _ => Vec::new(),
    };
    let mixed = if kind.is_unary() {
        b.node(op, "/op", &[&a], 1, attrs)
    } else {
        let c = b.conv("/b", &x, 3, 8, 3, 1, 1);
        b.node(op, "/op", &[&a, &c], 1, attrs)
    };
    let y = b.conv("/out", &mixed, 8, 4, 3, 1, 1);
    b.output(&y, &[1, 4, 8, 8]);
    b.finish()
}

#[test]
fn every_elementwise_op_of_the_table_carries_channels() {
    for &(op, kind) in ELEMENTWISE {
        let groups = analyze(&graph(op, kind)).unwrap_or_else(|e| panic!("{op}: {e}"));
        let group = groups
            .iter()
            .find(|g| g.producers.iter().any(|p| first_scope(p) == "a"))
            .unwrap_or_else(|| panic!("{op}: no group for /a: {groups:?}"));
        assert!(
            matches!(group.status, GroupStatus::Prunable),
            "{op}: {:?}",
            group.status
        );
        let expected = if kind.is_unary() { 1 } else { 2 };
        assert_eq!(
            group.producers.len(),
            expected,
            "{op}: {:?}",
            group.producers
        );
    }
}

/// `a` for `/a/Conv`, `a` and `a.weight`.
fn first_scope(name: &str) -> &str {
    name.trim_start_matches('/')
        .split(['/', '.'])
        .next()
        .unwrap_or_default()
}
