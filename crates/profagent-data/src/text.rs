//! Text data for text encoders: a `.txt` file (one sentence per line) or a `.jsonl` file
//! (`{"text": ..., "label": ...}` per line, the label optional), tokenized with a Hugging Face
//! `tokenizer.json` (the `tokenizers` crate, no Python), padded and truncated to one sequence
//! length. The result is one array per model input (`input_ids`, `attention_mask`,
//! `token_type_ids`, `position_ids`), the same form an `.npz` with one array per input name
//! has, so calibration, evaluation and `compress` take text wherever they take that `.npz`.
use std::path::{Path, PathBuf};

use profagent_runtime::IoInfo;
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::error::{DataError, Result};
use crate::named::NamedArray;

/// Sequence length used when neither the model (a fixed sequence dimension) nor the user
/// (`--seq-len`, `--input-shape`) gives one.
pub const DEFAULT_SEQ_LEN: usize = 128;
/// Longest sequence accepted (a typo such as 1e6 would allocate gigabytes).
pub const MAX_SEQ_LEN: usize = 1 << 16;
/// Model input names that mark a text model (token ids).
const TOKEN_INPUTS: &[&str] = &["input_ids"];
/// File names a tokenizer is looked for under, beside the model.
const TOKENIZER_FILE: &str = "tokenizer.json";

/// How text becomes model inputs: the tokenizer, the sequence length, the model's inputs.
#[derive(Debug, Clone)]
pub struct TextOptions {
    pub tokenizer: PathBuf,
    pub seq_len: usize,
    pub inputs: Vec<IoInfo>,
}

/// Whether `path` names text data (`.txt`, `.jsonl`).
pub fn is_text_file(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("txt" | "jsonl")
        )
}

/// Whether a model input is one a tokenizer fills (`input_ids`, `attention_mask`, ...).
pub fn is_token_input(name: &str) -> bool {
    matches!(
        name,
        "input_ids" | "attention_mask" | "token_type_ids" | "position_ids"
    )
}

/// Whether the model reads token ids (an input named `input_ids`).
pub fn is_text_model(inputs: &[IoInfo]) -> bool {
    inputs
        .iter()
        .any(|i| TOKEN_INPUTS.contains(&i.name.as_str()))
}

/// The tokenizer for a model: `given`, else `tokenizer.json` beside the model, else in the
/// folder above when the model sits in an `onnx/` sub-folder (a Hugging Face repository).
pub fn find_tokenizer(model: &Path, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(DataError::NotFound {
                path: path.to_path_buf(),
            })
        };
    }
    let folder = model.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![folder.join(TOKENIZER_FILE)];
    if folder.file_name().is_some_and(|n| n == "onnx") {
        if let Some(above) = folder.parent() {
            candidates.push(above.join(TOKENIZER_FILE));
        }
    }
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| {
            DataError::Invalid(format!(
                "text data needs a tokenizer: no {TOKENIZER_FILE} beside {}; pass --tokenizer FILE (a Hugging Face tokenizer.json)",
                model.display()
            ))
        })
}

/// The sequence length: `given`, else the fixed sequence dimension of the model's token input
/// (also after `--input-shape`), else `DEFAULT_SEQ_LEN`.
pub fn sequence_length(inputs: &[IoInfo], given: Option<usize>) -> Result<usize> {
    let fixed = inputs
        .iter()
        .find(|i| TOKEN_INPUTS.contains(&i.name.as_str()))
        .and_then(|i| i.shape.get(1).copied().flatten());
    let seq_len = given.or(fixed).unwrap_or(DEFAULT_SEQ_LEN);
    if seq_len == 0 || seq_len > MAX_SEQ_LEN {
        return Err(DataError::Invalid(format!(
            "--seq-len {seq_len}: give a sequence length from 1 to {MAX_SEQ_LEN}"
        )));
    }
    if let (Some(given), Some(fixed)) = (given, fixed) {
        if given != fixed {
            return Err(DataError::Invalid(format!(
                "--seq-len {given}: the model's input_ids has a fixed sequence length of {fixed}; pass --seq-len {fixed} or leave it out"
            )));
        }
    }
    Ok(seq_len)
}

/// One line of text data: the text and its label, if any.
struct Line {
    text: String,
    label: Option<usize>,
}

/// Reads, tokenizes and lays out `path` as one array per model input, with labels when every
/// line of a `.jsonl` has one.
pub(crate) fn text_arrays(
    path: &Path,
    options: &TextOptions,
) -> Result<(Vec<NamedArray>, Option<Vec<usize>>)> {
    let lines = read_lines(path)?;
    let tokenizer = load_tokenizer(&options.tokenizer, options.seq_len)?;
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let encodings = tokenizer
        .encode_batch(texts, true)
        .map_err(|e| DataError::BadDataset {
            path: path.to_path_buf(),
            reason: format!(
                "tokenizing with {} failed: {e}",
                options.tokenizer.display()
            ),
        })?;
    let seq_len = options.seq_len;
    let mut arrays = Vec::new();
    for input in &options.inputs {
        let column = |pick: &dyn Fn(&tokenizers::Encoding) -> Vec<f64>| -> Vec<f64> {
            encodings.iter().flat_map(pick).collect()
        };
        let values = match input.name.as_str() {
            "input_ids" => column(&|e| e.get_ids().iter().map(|&v| f64::from(v)).collect()),
            "attention_mask" => column(&|e| {
                e.get_attention_mask()
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect()
            }),
            "token_type_ids" => {
                column(&|e| e.get_type_ids().iter().map(|&v| f64::from(v)).collect())
            }
            "position_ids" => column(&|_| (0..seq_len).map(|p| p as f64).collect()),
            other => {
                return Err(DataError::BadDataset {
                    path: path.to_path_buf(),
                    reason: format!(
                        "the model input '{other}' is not one a tokenizer fills (input_ids, attention_mask, token_type_ids, position_ids): give an .npz with one array per input name"
                    ),
                })
            }
        };
        arrays.push(NamedArray {
            name: input.name.clone(),
            sample_shape: vec![seq_len],
            integer: true,
            values,
        });
    }
    let labelled = lines.iter().filter(|l| l.label.is_some()).count();
    let labels = if labelled == 0 {
        None
    } else if labelled == lines.len() {
        Some(lines.iter().filter_map(|l| l.label).collect())
    } else {
        return Err(DataError::BadDataset {
            path: path.to_path_buf(),
            reason: format!(
                "{labelled} of {} lines have a label: label every line or none",
                lines.len()
            ),
        });
    };
    Ok((arrays, labels))
}

/// The tokenizer with fixed-length padding (its own pad token when it names one, else
/// `[PAD]`/`<pad>`, else id 0) and truncation to `seq_len`.
fn load_tokenizer(path: &Path, seq_len: usize) -> Result<Tokenizer> {
    let bad = |reason: String| DataError::BadDataset {
        path: path.to_path_buf(),
        reason,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
        bad(format!(
            "not a Hugging Face tokenizer.json ({e}); pass --tokenizer with the model's tokenizer.json"
        ))
    })?;
    let (pad_id, pad_type_id, pad_token) = match tokenizer.get_padding() {
        Some(p) => (p.pad_id, p.pad_type_id, p.pad_token.clone()),
        None => ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t).map(|id| (id, 0, t.to_string())))
            .unwrap_or((0, 0, "[PAD]".to_string())),
    };
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::Fixed(seq_len),
        direction: PaddingDirection::Right,
        pad_to_multiple_of: None,
        pad_id,
        pad_type_id,
        pad_token,
    }));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: seq_len,
            ..TruncationParams::default()
        }))
        .map_err(|e| bad(format!("cannot truncate to {seq_len} tokens: {e}")))?;
    Ok(tokenizer)
}

/// `.txt`: every non-empty line is a sentence. `.jsonl`: every non-empty line is an object
/// with `text` (or `sentence`) and an optional integer `label`.
fn read_lines(path: &Path) -> Result<Vec<Line>> {
    let content = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let mut lines = Vec::new();
    for (number, raw) in content.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        if !jsonl {
            lines.push(Line {
                text: raw.to_string(),
                label: None,
            });
            continue;
        }
        let bad = |reason: &str| DataError::BadLabelsLine {
            path: path.to_path_buf(),
            line: number + 1,
            reason: reason.to_string(),
        };
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|_| bad("not a JSON object; expected {\"text\": \"...\", \"label\": 0}"))?;
        let text = ["text", "sentence"]
            .iter()
            .find_map(|k| value.get(*k).and_then(|t| t.as_str()))
            .ok_or_else(|| bad("no \"text\" string"))?;
        let label = match value.get("label") {
            None | Some(serde_json::Value::Null) => None,
            Some(l) => Some(
                l.as_u64()
                    .map(|l| l as usize)
                    .ok_or_else(|| bad("\"label\" is not a non-negative integer class index"))?,
            ),
        };
        lines.push(Line {
            text: text.to_string(),
            label,
        });
    }
    if lines.is_empty() {
        return Err(DataError::BadDataset {
            path: path.to_path_buf(),
            reason: "no text lines".into(),
        });
    }
    Ok(lines)
}
