//! Model inputs made concrete: `--input-shape NAME=DIMS` values, the error that says which one
//! to pass, and the one builder of calibration batches.
//!
//! Every batched step feeds a model at the batch it accepts: a model exported with a fixed
//! batch dimension (often 1) gets batches of exactly that size (the last one padded by
//! repeating its last sample), whatever batch the command asked for.
use std::str::FromStr;

use profagent_runtime::{IoInfo, Tensor, TensorData};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// One `--input-shape` value: `NAME=1x3x224x224`, or just `1x3x224x224` for a model with one
/// input. Sizes are separated by `x` (or `,`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputShape {
    pub name: Option<String>,
    pub dims: Vec<usize>,
}

impl FromStr for InputShape {
    type Err = DataError;

    fn from_str(text: &str) -> Result<InputShape> {
        let bad = |reason: &str| DataError::BadInputShape {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (name, dims) = match text.rsplit_once('=') {
            Some((name, dims)) if !name.trim().is_empty() => (Some(name.trim().to_string()), dims),
            Some(_) => return Err(bad("the input name before '=' is empty")),
            None => (None, text),
        };
        let dims: Vec<usize> = dims
            .split(['x', 'X', ','])
            .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("expected NAME=DIMS with positive sizes, e.g. input=1x3x224x224"))?;
        Ok(InputShape { name, dims })
    }
}

impl std::fmt::Display for InputShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(usize::to_string).collect();
        match &self.name {
            Some(name) => write!(f, "{name}={}", dims.join("x")),
            None => f.write_str(&dims.join("x")),
        }
    }
}

/// The declared inputs with the given shapes applied. A shape without a name applies to a
/// model with exactly one input. Errors name the input: unknown name, wrong rank, a fixed
/// dimension given another size.
pub fn apply_input_shapes(declared: &[IoInfo], given: &[InputShape]) -> Result<Vec<IoInfo>> {
    let mut inputs = declared.to_vec();
    for shape in given {
        let bad = |reason: String| DataError::BadInputShape {
            text: shape.to_string(),
            reason,
        };
        let names = || {
            declared
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let target = match &shape.name {
            Some(name) => inputs.iter_mut().find(|i| &i.name == name).ok_or_else(|| {
                bad(format!(
                    "the model has no input '{name}' (its inputs: {})",
                    names()
                ))
            })?,
            None if inputs.len() == 1 => &mut inputs[0],
            None => {
                return Err(bad(format!(
                    "the model has {} inputs ({}): name the input, NAME=DIMS",
                    declared.len(),
                    names()
                )))
            }
        };
        if !target.shape.is_empty() && target.shape.len() != shape.dims.len() {
            return Err(bad(format!(
                "input '{}' has {} dimensions, {} were given",
                target.name,
                target.shape.len(),
                shape.dims.len()
            )));
        }
        for (axis, (&declared, &size)) in target.shape.iter().zip(&shape.dims).enumerate() {
            if let Some(fixed) = declared.filter(|&fixed| fixed != size) {
                return Err(bad(format!(
                    "dimension {axis} of input '{}' is fixed at {fixed} in the model",
                    target.name
                )));
            }
        }
        target.shape = shape.dims.iter().map(|&d| Some(d)).collect();
    }
    Ok(inputs)
}

/// Checks that every dimension but the batch (first) one is known, else an error giving the
/// exact `--input-shape` to pass (`N` where the user must pick a size).
pub fn require_known_shapes(inputs: &[IoInfo]) -> Result<()> {
    for input in inputs {
        if input.shape.iter().skip(1).all(Option::is_some) {
            continue;
        }
        let dims = |unknown: &str| {
            input
                .shape
                .iter()
                .enumerate()
                .map(|(axis, d)| match (d, axis) {
                    (Some(d), _) => d.to_string(),
                    (None, 0) => "1".to_string(),
                    (None, _) => unknown.to_string(),
                })
                .collect::<Vec<_>>()
                .join("x")
        };
        let shown: Vec<String> = input
            .shape
            .iter()
            .map(|d| d.map_or("?".into(), |d| d.to_string()))
            .collect();
        return Err(DataError::InputShapeNeeded {
            input: input.name.clone(),
            shape: format!("[{}]", shown.join(", ")),
            example: format!("{}={}", input.name, dims("N")),
        });
    }
    Ok(())
}

/// The batch a model runs: its fixed batch dimension when it has one, else `requested`.
pub fn model_batch(inputs: &[IoInfo], requested: usize) -> usize {
    inputs
        .first()
        .and_then(|i| i.shape.first().copied().flatten())
        .unwrap_or(requested.max(1))
}

/// Calibration batches of `dataset` for a model with these `inputs`: `requested` samples per
/// batch, or the model's fixed batch size (the last batch padded by repeating its last
/// sample). Images and single arrays feed a one-input model; an `.npz` with one array per
/// input name feeds several. Each input's sample shape is checked first, naming both shapes.
pub fn calibration_batches(
    dataset: &Dataset,
    inputs: &[IoInfo],
    requested: usize,
) -> Result<Vec<Vec<(String, Tensor)>>> {
    if dataset.is_empty() {
        return Err(DataError::Invalid(format!(
            "calibration data '{}' has no samples",
            dataset.origin().display()
        )));
    }
    let fixed = inputs
        .first()
        .and_then(|i| i.shape.first().copied().flatten());
    let batch_size = fixed.unwrap_or(requested.max(1));
    let mut batches = Vec::new();
    let step = profagent_onnx::progress::step(
        "loading calibration samples",
        Some(dataset.len() as u64),
        "samples",
    );
    let mut loaded = 0;
    for batch in dataset.batches(batch_size) {
        let batch = batch?;
        loaded += batch.items.len() + batch.skipped.len();
        step.set(loaded as u64);
        let feeds = batch.feeds_for(dataset.origin(), inputs)?;
        if batches.is_empty() {
            for (input, (_, tensor)) in inputs.iter().zip(&feeds) {
                crate::evaluate::check_input_shape(
                    input,
                    &tensor.shape[1..],
                    dataset.preprocess().layout,
                )?;
            }
        }
        batches.push(
            feeds
                .into_iter()
                .map(|(name, tensor)| (name, pad_rows(tensor, fixed)))
                .collect(),
        );
    }
    Ok(batches)
}

/// Pads a batch to `fixed` rows by repeating its last row (a model with a fixed batch runs
/// nothing else); the extra rows' outputs are not used.
pub fn pad_rows(mut tensor: Tensor, fixed: Option<usize>) -> Tensor {
    let Some(fixed) = fixed else { return tensor };
    let rows = tensor.shape[0];
    if rows >= fixed || rows == 0 {
        return tensor;
    }
    let width = tensor.shape[1..].iter().product::<usize>();
    match &mut tensor.data {
        TensorData::F32(values) => {
            let last = values[values.len() - width..].to_vec();
            for _ in rows..fixed {
                values.extend_from_slice(&last);
            }
        }
        TensorData::I64(values) => {
            let last = values[values.len() - width..].to_vec();
            for _ in rows..fixed {
                values.extend_from_slice(&last);
            }
        }
    }
    tensor.shape[0] = fixed;
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(name: &str, shape: &[Option<usize>]) -> IoInfo {
        IoInfo {
            name: name.into(),
            elem_type: "float".into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn input_shapes_parse_with_or_without_a_name() {
        let shape: InputShape = "input_ids=1x128".parse().unwrap();
        assert_eq!(shape.name.as_deref(), Some("input_ids"));
        assert_eq!(shape.dims, vec![1, 128]);
        assert_eq!(
            "1,3,224,224".parse::<InputShape>().unwrap().dims,
            vec![1, 3, 224, 224]
        );
        let err = "x=1x0".parse::<InputShape>().unwrap_err().to_string();
        assert!(err.contains("x=1x0") && err.contains("positive"), "{err}");
    }

    #[test]
    fn shapes_apply_by_name_and_missing_ones_say_which_flag_to_pass() {
        let declared = vec![io("ids", &[None, None]), io("mask", &[None, None])];
        let err = require_known_shapes(&declared).unwrap_err().to_string();
        assert!(err.contains("--input-shape ids=1xN"), "{err}");
        let given = vec!["ids=2x16".parse().unwrap(), "mask=2x16".parse().unwrap()];
        let inputs = apply_input_shapes(&declared, &given).unwrap();
        assert_eq!(inputs[1].shape, vec![Some(2), Some(16)]);
        require_known_shapes(&inputs).unwrap();
        let unnamed = vec!["2x16".parse().unwrap()];
        let err = apply_input_shapes(&declared, &unnamed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ids, mask"), "{err}");
        let fixed = vec![io("x", &[Some(1), Some(3), Some(8), Some(8)])];
        let err = apply_input_shapes(&fixed, &["1x3x9x8".parse().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dimension 2 of input 'x' is fixed at 8"),
            "{err}"
        );
    }

    #[test]
    fn short_batches_are_padded_to_a_fixed_batch() {
        let tensor = Tensor::f32(vec![1, 2], vec![1.0, 2.0]);
        let padded = pad_rows(tensor.clone(), Some(3));
        assert_eq!(padded.shape, vec![3, 2]);
        assert_eq!(padded.as_f32().unwrap(), &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
        assert_eq!(pad_rows(tensor.clone(), None), tensor);
    }
}
