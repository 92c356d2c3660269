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

/// How text data (`.txt` sentences, `.jsonl` with optional labels) becomes a text model's
/// inputs; flattened into every command that reads data.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TextArgs {
    /// Tokenizer for text data (.txt, .jsonl): a Hugging Face tokenizer.json. Default: the
    /// tokenizer.json beside the model (or above its onnx/ folder).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<std::path::PathBuf>,

    /// Tokens per text sample (padded or truncated). Default: the model's fixed sequence
    /// length, else 128. `profile` also sizes the model's token inputs with it.
    #[arg(long, value_name = "N")]
    pub seq_len: Option<usize>,
}

/// Opens `data` for `model`: text files tokenized for a text model (the tokenizer and the
/// sequence length announced once), anything else as `Dataset::open` does.
pub fn open_dataset(
    data: &Path,
    preprocess: &profagent_data::Preprocess,
    model_path: &Path,
    inputs: &[IoInfo],
    text: &TextArgs,
) -> anyhow::Result<profagent_data::Dataset> {
    use profagent_data::text;
    if !(text::is_text_model(inputs) && text::is_text_file(data)) {
        return Ok(profagent_data::Dataset::open(data, preprocess)?);
    }
    let options = profagent_data::TextOptions {
        tokenizer: text::find_tokenizer(model_path, text.tokenizer.as_deref())?,
        seq_len: text::sequence_length(inputs, text.seq_len)?,
        inputs: inputs.to_vec(),
    };
    let dataset = profagent_data::Dataset::open_text(data, &options)?;
    super::info(format_args!(
        "text: {} sentences from {}, tokenized by {} to {} tokens",
        dataset.len(),
        data.display(),
        options.tokenizer.display(),
        options.seq_len
    ));
    Ok(dataset)
}

/// `--seq-len` as `--input-shape` values for the model's token inputs (`[batch, seq_len]`)
/// that `given` does not already size: `profile` counts MACs at that length.
pub fn seq_len_shapes(
    inputs: &[IoInfo],
    given: &[InputShape],
    seq_len: Option<usize>,
    batch: usize,
) -> Vec<InputShape> {
    let Some(seq_len) = seq_len else {
        return Vec::new();
    };
    inputs
        .iter()
        .filter(|i| profagent_data::text::is_token_input(&i.name) && i.shape.len() == 2)
        .filter(|i| {
            !given
                .iter()
                .any(|g| g.name.as_deref() == Some(i.name.as_str()))
        })
        .map(|i| InputShape {
            name: Some(i.name.clone()),
            dims: vec![i.shape[0].unwrap_or(batch), seq_len],
        })
        .collect()
}

/// Resolves a MODEL argument (an .onnx file, a model folder, or `hf:ORG/NAME` from the local
/// Hugging Face cache) to its .onnx file, announcing the file when it was not named directly.
pub fn locate_model(model: &mut std::path::PathBuf) -> anyhow::Result<()> {
    let located = profagent_onnx::locate_model(model)?;
    if let Some(named) = &located.named_as {
        super::info(format_args!(
            "model: {} (from {named})",
            located.file.display()
        ));
    }
    *model = located.file;
    Ok(())
}
