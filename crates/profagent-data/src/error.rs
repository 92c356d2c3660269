//! The one error type of `profagent-data`: every variant names the file, item or setting at fault
//! and, where it helps, what to do about it.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("dataset path '{path}' does not exist (give an ImageFolder directory, a labels file, or a .npy/.npz file)")]
    NotFound { path: PathBuf },

    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("'{path}' is not a usable dataset: {reason}")]
    BadDataset { path: PathBuf, reason: String },

    #[error("{path}:{line}: {reason}")]
    BadLabelsLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("cannot decode image '{path}': {reason} (pass --skip-bad to skip unreadable images)")]
    BadImage { path: PathBuf, reason: String },

    #[error("image '{path}' is {width}x{height} after preprocessing, but the batch needs {expected_width}x{expected_height}; add a resize/center crop to the preprocessing (e.g. --preset imagenet)")]
    SizeMismatch {
        path: PathBuf,
        width: u32,
        height: u32,
        expected_width: u32,
        expected_height: u32,
    },

    #[error("bad .npy/.npz data in '{path}': {reason}")]
    BadArray { path: PathBuf, reason: String },

    #[error("bad preprocessing config{}: {reason}", .path.as_ref().map(|p| format!(" '{}'", p.display())).unwrap_or_default())]
    BadPreprocess {
        path: Option<PathBuf>,
        reason: String,
    },

    #[error("no preprocessing known for '{model}' (no 3-channel image input of fixed size to guess from): pass --preprocess PRESET|FILE (presets: {presets}; or a JSON file), put a preprocessor_config.json beside the model, or size the input with --input-shape")]
    NoPreprocess { model: PathBuf, presets: String },

    #[error("model input '{input}' has dynamic dimensions {shape}: pass --input-shape {example} (a size for every dynamic dimension), or give data with that shape")]
    InputShapeNeeded {
        input: String,
        shape: String,
        example: String,
    },

    #[error("--input-shape '{text}': {reason}")]
    BadInputShape { text: String, reason: String },

    #[error("unknown preprocessing preset '{name}' (known: {known})")]
    UnknownPreset { name: String, known: String },

    #[error("label {label} of '{item}' is out of range: the model predicts {num_classes} classes")]
    LabelOutOfRange {
        item: String,
        label: usize,
        num_classes: usize,
    },

    #[error("model input '{input}' has shape {model_shape}, but the preprocessing produces {data_shape}{hint}")]
    InputShapeMismatch {
        input: String,
        model_shape: String,
        data_shape: String,
        hint: String,
    },

    #[error("model {model}: {reason}")]
    BadModel { model: String, reason: String },

    #[error("running the model failed: {0}")]
    Runtime(#[from] profagent_runtime::RuntimeError),

    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
