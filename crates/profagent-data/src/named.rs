//! Data for models with several inputs (text encoders: `input_ids`, `attention_mask`,
//! `token_type_ids`): an `.npz` holding one array per input name, `[samples, …]` each, and
//! optionally a label array. Integer arrays stay integers (token ids are fed as int64); each
//! array is converted to the element type the model declares for its input when fed.
use std::path::Path;

use profagent_runtime::{IoInfo, Tensor, TensorData};

use crate::error::{DataError, Result};
use crate::npy::Array;

/// One model input's samples.
#[derive(Debug)]
pub(crate) struct NamedArray {
    pub name: String,
    pub sample_shape: Vec<usize>,
    pub integer: bool,
    pub values: Vec<f64>,
}

impl NamedArray {
    fn width(&self) -> usize {
        self.sample_shape.iter().product::<usize>()
    }

    /// The rows at `positions`, as int64 (integer arrays) or float32.
    pub fn rows(&self, positions: &[usize]) -> Tensor {
        let width = self.width();
        let mut shape = vec![positions.len()];
        shape.extend_from_slice(&self.sample_shape);
        let values = positions
            .iter()
            .flat_map(|&i| &self.values[i * width..(i + 1) * width]);
        if self.integer {
            Tensor::i64(shape, values.map(|&v| v as i64).collect())
        } else {
            Tensor::f32(shape, values.map(|&v| v as f32).collect())
        }
    }
}

/// The input arrays of an `.npz` without a single-input array: every array that is not the
/// labels. All must hold the same number of samples.
pub(crate) fn named_arrays(path: &Path, arrays: &[(String, Array)]) -> Result<Vec<NamedArray>> {
    let bad = |reason: String| DataError::BadArray {
        path: path.to_path_buf(),
        reason,
    };
    let mut named = Vec::new();
    for (name, array) in arrays {
        if array.shape.is_empty() {
            return Err(bad(format!(
                "array '{name}' is a scalar; inputs are [samples, ...]"
            )));
        }
        named.push(NamedArray {
            name: name.clone(),
            sample_shape: array.shape[1..].to_vec(),
            integer: array.is_integer(),
            values: array.values.clone(),
        });
    }
    let samples = |a: &NamedArray| a.values.len() / a.width().max(1);
    if let Some(first) = named.first() {
        if let Some(other) = named.iter().find(|a| samples(a) != samples(first)) {
            return Err(bad(format!(
                "array '{}' holds {} samples but '{}' holds {}: every input array needs one row per sample",
                other.name,
                samples(other),
                first.name,
                samples(first)
            )));
        }
    } else {
        return Err(bad("no input arrays".into()));
    }
    Ok(named)
}

pub(crate) fn sample_count(arrays: &[NamedArray]) -> usize {
    arrays
        .first()
        .map_or(0, |a| a.values.len() / a.width().max(1))
}

/// The feeds for a model's `inputs` from a batch: named arrays matched by input name and
/// converted to the declared element type; a single unnamed tensor goes to a one-input model.
pub(crate) fn feeds_for(
    origin: &Path,
    single: &Tensor,
    named: &[(String, Tensor)],
    inputs: &[IoInfo],
) -> Result<Vec<(String, Tensor)>> {
    if named.is_empty() {
        return match inputs {
            [one] => Ok(vec![(one.name.clone(), convert(single.clone(), one))]),
            _ => Err(DataError::BadArray {
                path: origin.to_path_buf(),
                reason: format!(
                    "the model has {} inputs ({}), but the data holds one array: give an .npz with one array per input name",
                    inputs.len(),
                    names(inputs.iter().map(|i| i.name.as_str()))
                ),
            }),
        };
    }
    inputs
        .iter()
        .map(|input| {
            let (_, tensor) = named
                .iter()
                .find(|(name, _)| *name == input.name)
                .ok_or_else(|| DataError::BadArray {
                    path: origin.to_path_buf(),
                    reason: format!(
                        "no array named '{}' for the model input of that name (arrays: {})",
                        input.name,
                        names(named.iter().map(|(n, _)| n.as_str()))
                    ),
                })?;
            Ok((input.name.clone(), convert(tensor.clone(), input)))
        })
        .collect()
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// Converts a tensor to the declared element type (int64 or float; others as they are).
fn convert(tensor: Tensor, input: &IoInfo) -> Tensor {
    let wants_integer = input.elem_type == "int64";
    let wants_float = input.elem_type.contains("float") || input.elem_type == "f32";
    match tensor.data {
        TensorData::F32(values) if wants_integer => {
            Tensor::i64(tensor.shape, values.into_iter().map(|v| v as i64).collect())
        }
        TensorData::I64(values) if wants_float => {
            Tensor::f32(tensor.shape, values.into_iter().map(|v| v as f32).collect())
        }
        data => Tensor {
            shape: tensor.shape,
            data,
        },
    }
}
