//! `Patch::apply` refuses every edit that leaves an invalid graph (dangling input, cycle,
//! double assignment, lost graph output, bad node index, rewire cycle), names the value or
//! node at fault, and leaves the graph exactly as it was.
use profagent_onnx::builder::GraphBuilder;
use profagent_onnx::proto::GraphProto;
use profagent_onnx::{attr, OnnxError, Patch};

/// input → Relu (node 0, "/a/Relu") → Sigmoid (node 1, "/b/Sigmoid") → Neg (node 2) → "y".
fn chain() -> GraphProto {
    let mut b = GraphBuilder::new(1);
    let x = b.input("x", &[1, 4]);
    let a = b.unary("Relu", "/a", &x);
    let s = b.unary("Sigmoid", "/b", &a);
    let _ = b.node("Neg", "/c/Neg", &[&s], 1, vec![]);
    if let Some(last) = b.graph.node.last_mut() {
        last.output[0] = "y".into();
    }
    b.output("y", &[1, 4]);
    b.finish().graph().clone()
}

/// Applies `patch` to a fresh chain, expects an error, and checks the graph is untouched.
fn refused(patch: &Patch) -> OnnxError {
    let original = chain();
    let mut graph = original.clone();
    let err = patch
        .apply(&mut graph)
        .expect_err("the patch leaves an invalid graph");
    assert_eq!(graph, original, "a refused patch changed the graph ({err})");
    err
}

#[test]
fn a_valid_patch_applies() {
    let mut graph = chain();
    let mut patch = Patch::new();
    let a = graph.node[0].output[0].clone();
    patch.replace_node(1, attr::node("Tanh", "/b/Tanh", &[&a], &["t"], vec![]));
    patch.replace_node(2, attr::node("Neg", "/c/Neg", &["t"], &["y"], vec![]));
    patch.apply(&mut graph).unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type()).collect();
    assert_eq!(ops, ["Relu", "Tanh", "Neg"]);
}

#[test]
fn dangling_input_is_refused_naming_the_node_and_value() {
    let mut patch = Patch::new();
    patch.replace_node(
        1,
        attr::node(
            "Sigmoid",
            "/b/Sigmoid",
            &["nowhere"],
            &["/b/Sigmoid_output_0"],
            vec![],
        ),
    );
    match refused(&patch) {
        OnnxError::DanglingInput { node, value, .. } => {
            assert_eq!((node.as_str(), value.as_str()), ("/b/Sigmoid", "nowhere"));
        }
        other => panic!("expected a dangling input, got: {other}"),
    }
}

#[test]
fn cycle_is_refused_naming_a_node_on_it() {
    // Relu now reads Sigmoid's output, which reads Relu's: a two-node cycle.
    let graph = chain();
    let sigmoid_out = graph.node[1].output[0].clone();
    let relu_out = graph.node[0].output[0].clone();
    let mut patch = Patch::new();
    patch.replace_node(
        0,
        attr::node("Relu", "/a/Relu", &[&sigmoid_out], &[&relu_out], vec![]),
    );
    match refused(&patch) {
        OnnxError::Cycle { node, .. } => {
            assert!(["/a/Relu", "/b/Sigmoid"].contains(&node.as_str()), "{node}");
        }
        other => panic!("expected a cycle, got: {other}"),
    }
}

#[test]
fn double_assignment_is_refused_naming_both_producers() {
    let graph = chain();
    let relu_out = graph.node[0].output[0].clone();
    let mut patch = Patch::new();
    patch.add_node(attr::node(
        "Abs",
        "/extra/Abs",
        &["x"],
        &[&relu_out],
        vec![],
    ));
    match refused(&patch) {
        OnnxError::DoubleAssignment {
            value,
            first,
            second,
        } => {
            assert_eq!(value, relu_out);
            let mut producers = [first, second];
            producers.sort();
            assert_eq!(producers, ["/a/Relu", "/extra/Abs"]);
        }
        other => panic!("expected a double assignment, got: {other}"),
    }
}

#[test]
fn lost_graph_output_is_refused_naming_it() {
    let mut patch = Patch::new();
    patch.remove_node(2);
    let err = refused(&patch);
    assert!(matches!(err, OnnxError::Patch(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("graph output 'y' is no longer produced"),
        "{err}"
    );
}

#[test]
fn node_index_out_of_range_is_refused() {
    let mut patch = Patch::new();
    patch.replace_node(7, attr::node("Relu", "/z", &["x"], &["z"], vec![]));
    let err = refused(&patch);
    assert!(
        err.to_string().contains("node index 7 out of range"),
        "{err}"
    );
}

#[test]
fn rewire_cycle_is_refused() {
    let graph = chain();
    let relu_out = graph.node[0].output[0].clone();
    let sigmoid_out = graph.node[1].output[0].clone();
    let mut patch = Patch::new();
    patch.rewire(&relu_out, &sigmoid_out);
    patch.rewire(&sigmoid_out, &relu_out);
    let err = refused(&patch);
    assert!(err.to_string().contains("rewire cycle"), "{err}");
}
