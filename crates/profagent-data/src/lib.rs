//! `profagent-data`: datasets, preprocessing, metrics and evaluation records.
//!
//! - `dataset`: ImageFolder trees, labels files, `.npy`/`.npz` tensors; deterministic subsets;
//!   batches decoded and preprocessed in parallel (rayon).
//! - `decode` + `resize` + `preprocess`: pixels identical to PIL + torchvision (libjpeg-turbo
//!   decoding, Pillow's resampling ported bit for bit), presets and Hugging Face configs.
//! - `labels`: class folders to model class indices (classes files, synset ids, integers).
//! - `resolve`: the one preprocessing resolution every command uses (flag, file beside the
//!   model, guess from the input shape).
//! - `inputs`: `--input-shape` values, model inputs made concrete, and the one builder of
//!   calibration batches (at the model's fixed batch when it has one).
//! - `text`: `.txt`/`.jsonl` sentences tokenized with a `tokenizer.json` into one array per
//!   model input (`input_ids`, `attention_mask`, `token_type_ids`), padded to one length.
//! - `metrics`: top-1/top-5 accuracy, fidelity to a reference model (agreement, KL, cosine).
//! - `evaluate` + `record`: run a model over a dataset, measure latency and memory, and
//!   compare two records. This is the only part that touches `profagent-runtime`.
//!
//! It knows nothing about plans or the agent; callers give it a session and a dataset.
pub mod dataset;
pub mod decode;
pub mod error;
pub mod evaluate;
mod hf;
pub mod inputs;
pub mod labels;
pub mod metrics;
mod named;
pub mod npy;
pub mod preprocess;
pub mod record;
pub mod resize;
pub mod resolve;
mod sources;
pub mod text;

pub use dataset::{Batch, Dataset, ImageEntry, Skipped};
pub use error::{DataError, Result};

pub use inputs::{calibration_batches, InputShape};
pub use metrics::{fidelity, Accuracy, Fidelity, FidelityAccumulator};
pub use preprocess::{ChannelOrder, Layout, Preprocess, Resize, Size};

pub use evaluate::{evaluate, evaluate_with_progress, run_logits, EvalOptions};
pub use record::{compare, Comparison, EvalRecord, LatencyPoint};
pub use resize::{Filter, RgbImage};
pub use resolve::{resolve_preprocess, ResolvedPreprocess};
pub use text::TextOptions;
