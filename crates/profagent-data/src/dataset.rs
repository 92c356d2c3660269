//! Datasets: where samples come from (ImageFolder tree, labels file, `.npy`/`.npz` tensors),
//! deterministic subsets, and parallel loading of batches into one `Tensor`.
//!
//! A `Dataset` is a cheap view: the source (file list or tensor data) is shared behind an `Arc`
//! and the view holds the order of samples, so `subset` costs only an index vector and
//! calibration / evaluation slices taken with the same seed never overlap.
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use profagent_runtime::Tensor;

use crate::decode::decode_file;
use crate::error::{DataError, Result};
use crate::npy;
use crate::preprocess::{Preprocess, Size};

/// File extensions (lower case) an ImageFolder scan picks up; others are ignored, as in
/// torchvision.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];
/// Labels files looked for when a directory is given (`imagenet-val-1300/dataset.txt`).
const LABELS_FILE_NAMES: &[&str] = &["dataset.txt", "labels.txt"];
/// `.npz` member names accepted for the inputs and the labels.
const NPZ_INPUT_KEYS: &[&str] = &["x", "inputs", "input", "images", "data"];
const NPZ_LABEL_KEYS: &[&str] = &["y", "labels", "label", "targets"];

/// One image file and its class index, if labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub path: PathBuf,
    pub label: Option<usize>,
}

#[derive(Debug)]
enum Source {
    Images {
        entries: Vec<ImageEntry>,
        class_names: Option<Vec<String>>,
    },
    Tensors {
        sample_shape: Vec<usize>,
        values: Vec<f32>,
        labels: Option<Vec<usize>>,
    },
    /// One array per model input name (an `.npz` for a several-input model).
    Named {
        arrays: Vec<crate::named::NamedArray>,
        labels: Option<Vec<usize>>,
    },
}

/// A dataset view: a source plus the order (and subset) of its samples.
#[derive(Debug, Clone)]
pub struct Dataset {
    origin: PathBuf,
    source: Arc<Source>,
    order: Vec<usize>,
    preprocess: Preprocess,
    skip_bad: bool,
    /// A classes file (path, names in the model's order) mapping class folders to indices.
    classes: Option<(PathBuf, Arc<Vec<String>>)>,
}

/// A sample that was skipped (`skip_bad`) and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub item: String,
    pub reason: String,
}

/// A loaded batch: the input tensor (`[n, …sample shape]`), labels if the dataset has them,
/// the names of the samples, and what was skipped. Data for several inputs fills `named`
/// (one tensor per input name; `input` is then the first of them): feed a model with
/// `feeds_for`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub input: Tensor,
    pub named: Vec<(String, Tensor)>,
    pub labels: Option<Vec<usize>>,
    pub items: Vec<String>,
    pub skipped: Vec<Skipped>,
}

impl Batch {
    /// The model's feeds from this batch: arrays matched to `inputs` by name (several-input
    /// data), or the one tensor for a one-input model; element types converted to the declared
    /// ones (int64 token ids, float images). Errors name the data and the missing input.
    pub fn feeds_for(
        &self,
        origin: &Path,
        inputs: &[profagent_runtime::IoInfo],
    ) -> Result<Vec<(String, Tensor)>> {
        crate::named::feeds_for(origin, &self.input, &self.named, inputs)
    }
}

impl Dataset {
    /// Opens a dataset. A directory is an ImageFolder tree (class folders; see
    /// `class_indices` for how they become class indices), or a flat folder of unlabelled
    /// images, unless it holds `dataset.txt`/`labels.txt`; `.npy`/`.npz` are tensors (used as they are,
    /// `preprocess` does not apply); any other file is a labels file of `path, label` lines.
    pub fn open(path: &Path, preprocess: &Preprocess) -> Result<Dataset> {
        if !path.exists() {
            return Err(DataError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let source = if path.is_dir() {
            match LABELS_FILE_NAMES
                .iter()
                .map(|name| path.join(name))
                .find(|candidate| candidate.is_file())
            {
                Some(labels) => images(crate::sources::labels_file(&labels)?),
                None => images(crate::sources::image_folder(path)?),
            }
        } else {
            match extension(path).as_deref() {
                Some("npy") => tensors_from_npy(path)?,
                Some("npz") => tensors_from_npz(path)?,
                _ => images(crate::sources::labels_file(path)?),
            }
        };
        Ok(Dataset::from_source(path, source, preprocess))
    }

    /// Opens text data (`.txt` sentences, `.jsonl` with optional labels) tokenized for a text
    /// model: one array per model input, `options.seq_len` tokens each (see `crate::text`).
    pub fn open_text(path: &Path, options: &crate::text::TextOptions) -> Result<Dataset> {
        if !path.exists() {
            return Err(DataError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let (arrays, labels) = crate::text::text_arrays(path, options)?;
        let source = Source::Named { arrays, labels };
        // Token arrays are used as they are: no preprocessing applies.
        Ok(Dataset::from_source(
            path,
            source,
            &crate::preprocess::cifar10(),
        ))
    }

    /// Opens data for a model: text (`.txt`/`.jsonl`) tokenized with `text` when the model
    /// reads token ids and `text` is given, anything else as `open` does.
    pub fn open_for_model(
        path: &Path,
        preprocess: &Preprocess,
        text: Option<&crate::text::TextOptions>,
    ) -> Result<Dataset> {
        match text {
            Some(options) if crate::text::is_text_file(path) => Dataset::open_text(path, options),
            _ => Dataset::open(path, preprocess),
        }
    }

    /// A dataset over an explicit list of images (e.g. built by a caller).
    pub fn from_images(
        origin: &Path,
        entries: Vec<ImageEntry>,
        class_names: Option<Vec<String>>,
        preprocess: &Preprocess,
    ) -> Dataset {
        Dataset::from_source(
            origin,
            Source::Images {
                entries,
                class_names,
            },
            preprocess,
        )
    }

    fn from_source(origin: &Path, source: Source, preprocess: &Preprocess) -> Dataset {
        let len = match &source {
            Source::Images { entries, .. } => entries.len(),
            Source::Tensors {
                sample_shape,
                values,
                ..
            } => values.len() / sample_shape.iter().product::<usize>().max(1),
            Source::Named { arrays, .. } => crate::named::sample_count(arrays),
        };
        Dataset {
            origin: origin.to_path_buf(),
            source: Arc::new(source),
            order: (0..len).collect(),
            preprocess: preprocess.clone(),
            skip_bad: false,
            classes: None,
        }
    }

    /// Map class folders to model classes through a classes file (see `crate::labels`).
    pub fn with_classes(mut self, file: &Path) -> Result<Dataset> {
        let names = crate::labels::read_class_names(file)?;
        self.classes = Some((file.to_path_buf(), Arc::new(names)));
        Ok(self)
    }

    /// For an ImageFolder tree, the model class index of each class folder (indexed by the
    /// labels `load_batch` gives, i.e. sorted folder positions), decided against the model's
    /// `num_classes` (see `crate::labels`); `None` when the labels already are class indices
    /// (labels files, label arrays). An error when no mapping is known.
    pub fn class_indices(&self, num_classes: usize) -> Result<Option<Vec<usize>>> {
        match &*self.source {
            Source::Images {
                class_names: Some(folders),
                ..
            } => crate::labels::folder_class_indices(
                &self.origin,
                folders,
                num_classes,
                self.classes
                    .as_ref()
                    .map(|(file, names)| (file.as_path(), names.as_slice())),
            )
            .map(Some),
            _ => Ok(None),
        }
    }

    /// Skip unreadable images (reported in `Batch::skipped`) instead of failing.
    pub fn with_skip_bad(mut self, skip_bad: bool) -> Dataset {
        self.skip_bad = skip_bad;
        self
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }

    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Whether every sample carries a label.
    pub fn has_labels(&self) -> bool {
        match &*self.source {
            Source::Images { entries, .. } => entries.iter().all(|e| e.label.is_some()),
            Source::Tensors { labels, .. } | Source::Named { labels, .. } => labels.is_some(),
        }
    }

    /// Class names (ImageFolder folder names), if known.
    pub fn class_names(&self) -> Option<&[String]> {
        match &*self.source {
            Source::Images { class_names, .. } => class_names.as_deref(),
            Source::Tensors { .. } | Source::Named { .. } => None,
        }
    }

    /// The input names of several-input data (`None` for images and single arrays).
    pub fn input_names(&self) -> Option<Vec<String>> {
        match &*self.source {
            Source::Named { arrays, .. } => Some(arrays.iter().map(|a| a.name.clone()).collect()),
            _ => None,
        }
    }

    /// A deterministic slice: with `seed`, samples are first shuffled by a ChaCha8 generator
    /// seeded with it (the same permutation on every machine), then `offset..offset + limit`
    /// is kept. Slices with the same seed and non-overlapping ranges are disjoint.
    pub fn subset(
        &self,
        offset: usize,
        limit: Option<usize>,
        seed: Option<u64>,
    ) -> Result<Dataset> {
        let mut order = self.order.clone();
        if let Some(seed) = seed {
            order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        }
        if offset >= order.len() && !order.is_empty() {
            return Err(DataError::Invalid(format!(
                "offset {offset} is past the end of '{}' ({} samples)",
                self.origin.display(),
                order.len()
            )));
        }
        let end = limit.map_or(order.len(), |limit| (offset + limit).min(order.len()));
        Ok(Dataset {
            order: order[offset.min(order.len())..end].to_vec(),
            ..self.clone()
        })
    }

    /// Name of the sample at position `position` (its path, or `file[index]` for tensors).
    pub fn item_name(&self, position: usize) -> String {
        let index = self.order[position];
        match &*self.source {
            Source::Images { entries, .. } => entries[index].path.display().to_string(),
            Source::Tensors { .. } | Source::Named { .. } => {
                format!("{}[{index}]", self.origin.display())
            }
        }
    }

    /// Loads the samples at positions `range` into one batch, decoding and preprocessing images
    /// in parallel on rayon's pool.
    pub fn load_batch(&self, range: Range<usize>) -> Result<Batch> {
        let range = range.start.min(self.len())..range.end.min(self.len());
        let positions = &self.order[range.clone()];
        match &*self.source {
            Source::Tensors {
                sample_shape,
                values,
                labels,
            } => {
                let width: usize = sample_shape.iter().product();
                let mut data = Vec::with_capacity(width * positions.len());
                for &index in positions {
                    data.extend_from_slice(&values[index * width..(index + 1) * width]);
                }
                let mut shape = vec![positions.len()];
                shape.extend_from_slice(sample_shape);
                Ok(Batch {
                    input: Tensor::f32(shape, data),
                    named: Vec::new(),
                    labels: labels
                        .as_ref()
                        .map(|all| positions.iter().map(|&i| all[i]).collect()),
                    items: range.map(|p| self.item_name(p)).collect(),
                    skipped: Vec::new(),
                })
            }
            Source::Named { arrays, labels } => {
                let named: Vec<(String, Tensor)> = arrays
                    .iter()
                    .map(|array| (array.name.clone(), array.rows(positions)))
                    .collect();
                Ok(Batch {
                    input: named[0].1.clone(),
                    named,
                    labels: labels
                        .as_ref()
                        .map(|all| positions.iter().map(|&i| all[i]).collect()),
                    items: range.map(|p| self.item_name(p)).collect(),
                    skipped: Vec::new(),
                })
            }
            Source::Images { entries, .. } => self.load_images(entries, positions),
        }
    }

    fn load_images(&self, entries: &[ImageEntry], positions: &[usize]) -> Result<Batch> {
        let fixed = self.preprocess.fixed_size();
        let decoded: Vec<Result<(Size, Vec<f32>)>> = positions
            .par_iter()
            .map(|&index| {
                let path = &entries[index].path;
                let image = self.preprocess.geometry(decode_file(path)?, path)?;
                let size = Size {
                    height: image.height,
                    width: image.width,
                };
                let mut values = vec![0f32; image.pixels.len()];
                self.preprocess.normalize_into(&image, &mut values);
                Ok((size, values))
            })
            .collect();

        let mut expected = fixed;
        let mut data = Vec::new();
        let mut labels = Vec::with_capacity(positions.len());
        let mut items = Vec::with_capacity(positions.len());
        let mut skipped = Vec::new();
        for (&index, outcome) in positions.iter().zip(decoded) {
            let entry = &entries[index];
            let outcome = outcome.and_then(|(size, values)| {
                let want = *expected.get_or_insert(size);
                if want != size {
                    return Err(DataError::SizeMismatch {
                        path: entry.path.clone(),
                        width: size.width,
                        height: size.height,
                        expected_width: want.width,
                        expected_height: want.height,
                    });
                }
                Ok(values)
            });
            match outcome {
                Ok(values) => {
                    if data.is_empty() {
                        data.reserve(values.len() * positions.len());
                    }
                    data.extend_from_slice(&values);
                    labels.push(entry.label);
                    items.push(entry.path.display().to_string());
                }
                Err(error) if self.skip_bad => skipped.push(Skipped {
                    item: entry.path.display().to_string(),
                    reason: error.to_string(),
                }),
                Err(error) => return Err(error),
            }
        }
        let size = expected.unwrap_or(Size {
            height: 0,
            width: 0,
        });
        let mut shape = vec![items.len()];
        shape.extend(self.preprocess.sample_shape(size));
        let labels: Option<Vec<usize>> = labels.into_iter().collect();
        Ok(Batch {
            input: Tensor::f32(shape, data),
            named: Vec::new(),
            labels,
            items,
            skipped,
        })
    }

    /// Consecutive batches of `batch_size` over the whole view.
    pub fn batches(&self, batch_size: usize) -> impl Iterator<Item = Result<Batch>> + '_ {
        let batch_size = batch_size.max(1);
        (0..self.len())
            .step_by(batch_size)
            .map(move |start| self.load_batch(start..start + batch_size))
    }

    /// Shape of one sample (without the batch dimension), when known without decoding: tensor
    /// datasets and image datasets whose preprocessing fixes the size.
    pub fn sample_shape(&self) -> Option<Vec<usize>> {
        match &*self.source {
            Source::Tensors { sample_shape, .. } => Some(sample_shape.clone()),
            // Checked per input against the model, by name (`Batch::feeds_for`).
            Source::Named { .. } => None,
            Source::Images { .. } => self
                .preprocess
                .fixed_size()
                .map(|size| self.preprocess.sample_shape(size)),
        }
    }
}

fn images((entries, class_names): (Vec<ImageEntry>, Option<Vec<String>>)) -> Source {
    Source::Images {
        entries,
        class_names,
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

pub(crate) fn is_image_file(path: &Path) -> bool {
    extension(path).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

fn tensors_from_npy(path: &Path) -> Result<Source> {
    let inputs = npy::read_npy_file(path)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let labels = [format!("{stem}.labels.npy"), format!("{stem}_labels.npy")]
        .iter()
        .map(|name| path.with_file_name(name))
        .find(|candidate| candidate.is_file())
        .map(|labels_path| {
            let array = npy::read_npy_file(&labels_path)?;
            labels_from_array(&labels_path, &array)
        })
        .transpose()?;
    tensor_source(path, inputs, labels)
}

fn tensors_from_npz(path: &Path) -> Result<Source> {
    let arrays = npy::read_npz_file(path)?;
    let find = |keys: &[&str]| {
        arrays
            .iter()
            .find(|(name, _)| keys.contains(&name.as_str()))
    };
    let labels = find(NPZ_LABEL_KEYS)
        .map(|(_, array)| labels_from_array(path, array))
        .transpose()?;
    let Some((_, inputs)) = find(NPZ_INPUT_KEYS) else {
        // No single-input array: one array per model input name.
        let inputs: Vec<(String, npy::Array)> = arrays
            .iter()
            .filter(|(name, _)| !NPZ_LABEL_KEYS.contains(&name.as_str()))
            .cloned()
            .collect();
        let arrays = crate::named::named_arrays(path, &inputs)?;
        if let Some(labels) = &labels {
            let samples = crate::named::sample_count(&arrays);
            if labels.len() != samples {
                return Err(DataError::BadArray {
                    path: path.to_path_buf(),
                    reason: format!("{} labels for {samples} samples", labels.len()),
                });
            }
        }
        return Ok(Source::Named { arrays, labels });
    };
    tensor_source(path, inputs.clone(), labels)
}

fn labels_from_array(path: &Path, array: &npy::Array) -> Result<Vec<usize>> {
    let bad = |reason: String| DataError::BadArray {
        path: path.to_path_buf(),
        reason,
    };
    if !array.is_integer() || array.shape.len() != 1 {
        return Err(bad(format!(
            "labels must be a 1-D integer array, got dtype {} shape {:?}",
            array.dtype, array.shape
        )));
    }
    array
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v < 0.0 {
                Err(bad(format!("label {v} at index {i} is negative")))
            } else {
                Ok(v as usize)
            }
        })
        .collect()
}

fn tensor_source(path: &Path, inputs: npy::Array, labels: Option<Vec<usize>>) -> Result<Source> {
    if inputs.shape.len() < 2 {
        return Err(DataError::BadArray {
            path: path.to_path_buf(),
            reason: format!(
                "inputs must be [samples, ...], got shape {:?}",
                inputs.shape
            ),
        });
    }
    if let Some(labels) = &labels {
        if labels.len() != inputs.shape[0] {
            return Err(DataError::BadArray {
                path: path.to_path_buf(),
                reason: format!("{} labels for {} samples", labels.len(), inputs.shape[0]),
            });
        }
    }
    Ok(Source::Tensors {
        sample_shape: inputs.shape[1..].to_vec(),
        values: inputs.values.iter().map(|&v| v as f32).collect(),
        labels,
    })
}
