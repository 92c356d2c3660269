//! Giving a model's graph inputs concrete shapes: `fix_input_dims` returns a copy whose inputs
//! declare the given sizes, so shape inference (and with it MACs and activation bytes) and the
//! runtimes see the shape a user asked for (`--input-shape`) instead of symbolic dimensions.
//!
//! A symbolic dimension (`batch`, `sequence`) bound to a size here is bound everywhere it is
//! named in the graph's declarations (other inputs, outputs, `value_info`), so dims that the
//! exporter tied together stay tied. A dimension that is already fixed must be given its own
//! size: a model exported at 224x224 cannot be asked to run at 256x256.
use std::collections::HashMap;

use crate::error::{OnnxError, Result};
use crate::model::Model;
use crate::proto::{tensor_shape_proto::dimension::Value as DimValue, type_proto, ValueInfoProto};

/// A copy of `model` whose graph inputs named in `shapes` declare those dims. Errors name the
/// input and the axis: an unknown input (the inputs are listed), a rank that differs, a fixed
/// dim given another size, a size below 1.
pub fn fix_input_dims(model: &Model, shapes: &[(String, Vec<i64>)]) -> Result<Model> {
    let mut fixed = model.clone();
    let graph = fixed.graph_mut();
    let initializers: std::collections::HashSet<String> = graph
        .initializer
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    let mut bound: HashMap<String, i64> = HashMap::new();
    for (name, dims) in shapes {
        let bad = |reason: String| OnnxError::InputShape {
            input: name.clone(),
            reason,
        };
        let Some(input) = graph
            .input
            .iter_mut()
            .find(|i| i.name() == name && !initializers.contains(i.name()))
        else {
            let known: Vec<&str> = model
                .graph()
                .input
                .iter()
                .map(|i| i.name())
                .filter(|n| !initializers.contains(*n))
                .collect();
            return Err(bad(format!(
                "the model has no such input (its inputs: {})",
                known.join(", ")
            )));
        };
        if let Some(&size) = dims.iter().find(|&&d| d < 1) {
            return Err(bad(format!("size {size} is not a positive number")));
        }
        let Some(shape) = tensor_shape_mut(input) else {
            return Err(bad("its type is not a tensor".into()));
        };
        if !shape.dim.is_empty() && shape.dim.len() != dims.len() {
            return Err(bad(format!(
                "it has {} dimensions, {} were given",
                shape.dim.len(),
                dims.len()
            )));
        }
        shape.dim.resize_with(dims.len(), Default::default);
        for (axis, (dim, &size)) in shape.dim.iter_mut().zip(dims).enumerate() {
            match &dim.value {
                Some(DimValue::DimValue(v)) if *v > 0 && *v != size => {
                    return Err(bad(format!(
                        "dimension {axis} is fixed at {v} in the model, {size} was given"
                    )))
                }
                Some(DimValue::DimParam(symbol)) if !symbol.is_empty() => {
                    if let Some(&earlier) = bound.get(symbol) {
                        if earlier != size {
                            return Err(bad(format!(
                                "dimension {axis} ('{symbol}') was given {size}, but another input binds '{symbol}' to {earlier}"
                            )));
                        }
                    }
                    bound.insert(symbol.clone(), size);
                }
                _ => {}
            }
            dim.value = Some(DimValue::DimValue(size));
        }
    }
    // The same symbol elsewhere in the declarations takes the same size.
    let declarations = graph
        .input
        .iter_mut()
        .chain(graph.output.iter_mut())
        .chain(graph.value_info.iter_mut());
    for value in declarations {
        if let Some(shape) = tensor_shape_mut(value) {
            for dim in &mut shape.dim {
                if let Some(DimValue::DimParam(symbol)) = &dim.value {
                    if let Some(&size) = bound.get(symbol) {
                        dim.value = Some(DimValue::DimValue(size));
                    }
                }
            }
        }
    }
    Ok(fixed)
}

fn tensor_shape_mut(value: &mut ValueInfoProto) -> Option<&mut crate::proto::TensorShapeProto> {
    match value.r#type.as_mut()?.value.as_mut()? {
        type_proto::Value::TensorType(tensor) => {
            Some(tensor.shape.get_or_insert_with(Default::default))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::shape::{Dim, ShapeFacts, ShapeOptions};

    fn dims_of(model: &Model, value: &str) -> Vec<Dim> {
        ShapeFacts::for_model(model, &ShapeOptions::default())
            .unwrap()
            .dims(value)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn symbolic_dims_become_the_given_sizes_and_fixed_ones_must_match() {
        let mut b = GraphBuilder::new(0);
        let x = b.input("x", &[-1, 3, 8, 8]);
        let y = b.unary("Relu", "/relu", &x);
        b.output(&y, &[-1, 3, 8, 8]);
        let model = b.finish();
        let fixed = fix_input_dims(&model, &[("x".into(), vec![2, 3, 8, 8])]).unwrap();
        let known = [2, 3, 8, 8].map(Dim::Known).to_vec();
        assert_eq!(dims_of(&fixed, &y), known);
        // The output declaration names the same symbol: it is bound too.
        let declared = crate::shape::fact_from_value_info(&fixed.graph().output[0]);
        assert_eq!(declared.dims, Some(known));
        // The original is untouched.
        assert!(matches!(dims_of(&model, &y)[0], Dim::Symbolic(_)));

        let err = fix_input_dims(&model, &[("x".into(), vec![1, 3, 9, 8])]).unwrap_err();
        assert!(
            err.to_string().contains("dimension 2 is fixed at 8"),
            "{err}"
        );
        let err = fix_input_dims(&model, &[("image".into(), vec![1, 3, 8, 8])]).unwrap_err();
        assert!(err.to_string().contains("its inputs: x"), "{err}");
        let err = fix_input_dims(&model, &[("x".into(), vec![1, 3, 8])]).unwrap_err();
        assert!(
            err.to_string().contains("4 dimensions, 3 were given"),
            "{err}"
        );
    }
}
