//! The one table of element-wise ONNX ops: ops whose every output element depends only on the
//! input elements at the same (broadcast) position. Shape inference (`shape/ops_values.rs`)
//! gives them their input's shape or the broadcast shape, and the pruner's group discovery
//! (`profagent-prune` `walk.rs`) lets channels flow through them (one input) or couples the
//! channels of their inputs (several). Adding an op here teaches both.
//!
//! Shape-preserving ops that mix elements along an axis (`Softmax`, `LRN`,
//! `InstanceNormalization`) or take a per-channel operand (`PRelu`) are not element-wise in
//! this sense and are not listed.

/// How an element-wise op takes its tensor inputs and what its output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elementwise {
    /// One tensor input (Clip's bounds, LeakyRelu's alpha are scalars or attributes); the
    /// output has the input's shape and element type.
    Unary,
    /// `Cast`: one input; the element type comes from the `to` attribute.
    Cast,
    /// `Dropout`: the identity at inference, with an optional mask output.
    Dropout,
    /// Two tensor inputs, broadcast (numpy rules).
    Binary,
    /// Any number of tensor inputs, broadcast.
    Variadic,
}

impl Elementwise {
    /// Whether the op reads one tensor and keeps its layout (what flows through it is what
    /// came in).
    pub fn is_unary(self) -> bool {
        matches!(
            self,
            Elementwise::Unary | Elementwise::Cast | Elementwise::Dropout
        )
    }
}

/// Every element-wise op, with its kind.
pub const ELEMENTWISE: &[(&str, Elementwise)] = &[
    ("Relu", Elementwise::Unary),
    ("LeakyRelu", Elementwise::Unary),
    ("Sigmoid", Elementwise::Unary),
    ("HardSigmoid", Elementwise::Unary),
    ("HardSwish", Elementwise::Unary),
    ("Tanh", Elementwise::Unary),
    ("Erf", Elementwise::Unary),
    ("Gelu", Elementwise::Unary),
    ("FastGelu", Elementwise::Unary),
    ("QuickGelu", Elementwise::Unary),
    ("Elu", Elementwise::Unary),
    ("Selu", Elementwise::Unary),
    ("Celu", Elementwise::Unary),
    ("Softplus", Elementwise::Unary),
    ("Softsign", Elementwise::Unary),
    ("Mish", Elementwise::Unary),
    ("Clip", Elementwise::Unary),
    ("Identity", Elementwise::Unary),
    ("Neg", Elementwise::Unary),
    ("Abs", Elementwise::Unary),
    ("Sign", Elementwise::Unary),
    ("Exp", Elementwise::Unary),
    ("Log", Elementwise::Unary),
    ("Sqrt", Elementwise::Unary),
    ("Reciprocal", Elementwise::Unary),
    ("Floor", Elementwise::Unary),
    ("Ceil", Elementwise::Unary),
    ("Round", Elementwise::Unary),
    ("Sin", Elementwise::Unary),
    ("Cos", Elementwise::Unary),
    ("Not", Elementwise::Unary),
    ("Cast", Elementwise::Cast),
    ("Dropout", Elementwise::Dropout),
    ("Add", Elementwise::Binary),
    ("Sub", Elementwise::Binary),
    ("Mul", Elementwise::Binary),
    ("Div", Elementwise::Binary),
    ("Pow", Elementwise::Binary),
    ("Mod", Elementwise::Binary),
    ("BitShift", Elementwise::Binary),
    ("Max", Elementwise::Variadic),
    ("Min", Elementwise::Variadic),
    ("Sum", Elementwise::Variadic),
    ("Mean", Elementwise::Variadic),
];

/// The kind of `op_type` when it is element-wise.
pub fn elementwise(op_type: &str) -> Option<Elementwise> {
    ELEMENTWISE
        .iter()
        .find(|(op, _)| *op == op_type)
        .map(|&(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::{ShapeFacts, ShapeOptions};

    #[test]
    fn every_op_is_listed_once() {
        for (i, (op, _)) in ELEMENTWISE.iter().enumerate() {
            assert!(
                ELEMENTWISE[i + 1..].iter().all(|(other, _)| other != op),
                "{op} twice"
            );
        }
        assert_eq!(elementwise("Relu"), Some(Elementwise::Unary));
        assert_eq!(elementwise("Add"), Some(Elementwise::Binary));
        assert_eq!(elementwise("Softmax"), None, "mixes along an axis");
        assert_eq!(elementwise("PRelu"), None, "per-channel slope");
    }

    /// Shape inference reads the table: every op keeps its input's shape, and the binary and
    /// variadic ones broadcast.
    #[test]
    fn shape_inference_knows_every_op_of_the_table() {
        for &(op, kind) in ELEMENTWISE {
            let mut b = GraphBuilder::new(1);
            let x = b.input("x", &[2, 3, 4, 5]);
            let y = b.input("y", &[1, 3, 1, 1]);
            let inputs: Vec<&str> = if kind.is_unary() {
                vec![x.as_str()]
            } else {
                vec![x.as_str(), y.as_str()]
            };
            let attrs = match kind {
                Elementwise::Cast => vec![crate::attr::int("to", 1)],
                _ => Vec::new(),
            };
            let out = b.node(op, "/op", &inputs, 1, attrs);
            b.output(&out, &[2, 3, 4, 5]);
            let model = b.finish();
            let index = crate::GraphIndex::new(model.graph()).expect("a valid graph");
            let facts = ShapeFacts::infer(model.graph(), &index, &ShapeOptions::default())
                .unwrap_or_else(|e| panic!("{op}: {e}"));
            let dims = facts
                .known_dims(&out)
                .unwrap_or_else(|| panic!("{op}: no shape for its output"));
            assert_eq!(dims, [2, 3, 4, 5], "{op}");
        }
    }
}
