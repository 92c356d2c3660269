//! Backend-independent input/output facts: a model's declared inputs and outputs read from the
//! ONNX graph, and the check every backend applies to a tensor before running.
use profagent_onnx::proto::{tensor_shape_proto, type_proto, GraphProto, ValueInfoProto};

use crate::{IoInfo, Result, RuntimeError, Tensor};

/// ONNX `TensorProto.DataType` code → the lower-case name `IoInfo::elem_type` uses.
pub fn elem_type_name(code: i32) -> String {
    match code {
        1 => "float",
        2 => "uint8",
        3 => "int8",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        9 => "bool",
        10 => "float16",
        11 => "double",
        16 => "bfloat16",
        _ => return format!("type#{code}"),
    }
    .to_string()
}

fn io_info(value: &ValueInfoProto) -> IoInfo {
    let tensor = value.r#type.as_ref().and_then(|t| match &t.value {
        Some(type_proto::Value::TensorType(tensor)) => Some(tensor),
        _ => None,
    });
    IoInfo {
        name: value.name().to_string(),
        elem_type: tensor.map_or("unknown".to_string(), |t| elem_type_name(t.elem_type())),
        shape: tensor
            .and_then(|t| t.shape.as_ref())
            .map(|shape| {
                shape
                    .dim
                    .iter()
                    .map(|d| match d.value {
                        Some(tensor_shape_proto::dimension::Value::DimValue(v)) if v >= 0 => {
                            Some(v as usize)
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The graph's real inputs (initializers excluded) and its outputs.
pub fn graph_io(graph: &GraphProto) -> (Vec<IoInfo>, Vec<IoInfo>) {
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name()))
        .map(io_info)
        .collect();
    let outputs = graph.output.iter().map(io_info).collect();
    (inputs, outputs)
}

/// Checks a tensor against a declared input: element count, rank, fixed dims, element type.
pub fn check_input(declared: &IoInfo, tensor: &Tensor) -> Result<()> {
    let bad = |reason: String| RuntimeError::BadInput {
        name: declared.name.clone(),
        reason,
    };
    if tensor.len() != tensor.element_count() {
        return Err(bad(format!(
            "shape {:?} needs {} elements but {} were given",
            tensor.shape,
            tensor.element_count(),
            tensor.len()
        )));
    }
    if !declared.shape.is_empty() || tensor.shape.is_empty() {
        let fits = declared.shape.len() == tensor.shape.len()
            && declared
                .shape
                .iter()
                .zip(&tensor.shape)
                .all(|(want, got)| want.is_none_or(|w| w == *got));
        if !fits {
            return Err(bad(format!(
                "shape {:?} does not fit the model's declared shape {}",
                tensor.shape,
                format_dims(&declared.shape)
            )));
        }
    }
    if declared.elem_type != tensor.elem_type() {
        return Err(bad(format!(
            "element type {} given, the model expects {}",
            tensor.elem_type(),
            declared.elem_type
        )));
    }
    Ok(())
}

fn format_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_shapes_and_types() {
        let declared = IoInfo {
            name: "input".into(),
            elem_type: "float".into(),
            shape: vec![None, Some(3)],
        };
        assert!(check_input(&declared, &Tensor::f32(vec![2, 3], vec![0.0; 6])).is_ok());
        assert!(check_input(&declared, &Tensor::f32(vec![2, 4], vec![0.0; 8])).is_err());
        assert!(check_input(&declared, &Tensor::f32(vec![2, 3], vec![0.0; 5])).is_err());
        let error = check_input(&declared, &Tensor::i64(vec![1, 3], vec![0; 3])).unwrap_err();
        assert!(error.to_string().contains("input"), "{error}");
    }
}
