//! What every command does the same way before touching data: the model's inputs with
//! `--input-shape` applied, and the one preprocessing resolution (`profagent_data::resolve`),
//! announced once on stderr.
use std::path::Path;

use profagent_data::{InputShape, ResolvedPreprocess};
use profagent_onnx::Model;
use profagent_runtime::IoInfo;

/// The model's graph inputs with the `--input-shape` values applied.
pub fn model_inputs(model: &Model, given: &[InputShape]) -> anyhow::Result<Vec<IoInfo>> {
    let (declared, _) = profagent_runtime::onnx_io::graph_io(model.graph());
    Ok(profagent_data::inputs::apply_input_shapes(
        &declared, given,
    )?)
}

/// The preprocessing for `model` (flag, file beside the model, tensors, guess from the input
/// shape), printed once: `preprocessing: <what> (<where from>)`.
pub fn preprocess(
    choice: Option<&str>,
    model_path: &Path,
    inputs: &[IoInfo],
    data: Option<&Path>,
) -> anyhow::Result<ResolvedPreprocess> {
    let resolved = profagent_data::resolve_preprocess(choice, model_path, inputs, data)?;
    super::info(format_args!("preprocessing: {}", resolved.origin));
    Ok(resolved)
}

/// `--input-shape` values as the model-editing form (`profagent_onnx::fix_input_dims`),
/// naming the input of a nameless value after the model's only input.
pub fn named_dims(inputs: &[IoInfo], given: &[InputShape]) -> Vec<(String, Vec<i64>)> {
    given
        .iter()
        .filter_map(|shape| {
            let name = match &shape.name {
                Some(name) => name.clone(),
                None => inputs.first()?.name.clone(),
            };
            Some((name, shape.dims.iter().map(|&d| d as i64).collect()))
        })
        .collect()
}
