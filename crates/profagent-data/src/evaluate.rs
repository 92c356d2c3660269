//! Running a model over a dataset: accuracy (with labels), fidelity (with a reference model),
//! end-to-end throughput, then latency at batch 1 and at the user's batch.
//!
//! Batches are decoded on a loader thread (itself using rayon for the images) while the
//! session runs the previous batch, so decoding and inference overlap.
use std::sync::{mpsc, Arc};
use std::time::Instant;

use profagent_runtime::{IoInfo, Session, Tensor};

use crate::dataset::{Batch, Dataset, Skipped};
use crate::error::{DataError, Result};
use crate::metrics::{Accuracy, FidelityAccumulator};
use crate::preprocess::Layout;
use crate::record::{EvalRecord, LatencyPoint};

/// Batches kept decoded ahead of the model: one is enough to hide decoding behind inference.
const PREFETCH_BATCHES: usize = 1;

/// How to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Samples per inference call during the accuracy pass.
    pub batch_size: usize,
    /// Batch sizes to time (median/p90); an empty list skips latency measurement.
    pub latency_batches: Vec<usize>,
    /// Untimed runs before timing each batch size.
    pub warmup_runs: usize,
    /// Timed runs per batch size.
    pub timed_runs: usize,
    /// Keep every evaluated sample's logits in the record (`EvalRecord::logits`), e.g. to
    /// compare later models against this one without running it again.
    pub keep_logits: bool,
    /// Logits of a reference model on the same dataset, in the same sample order (from a
    /// record made with `keep_logits`): fidelity is measured against them instead of running a
    /// reference session.
    pub reference_logits: Option<Arc<Vec<f32>>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: 64,
            latency_batches: vec![1, 64],
            warmup_runs: 3,
            timed_runs: 20,
            keep_logits: false,
            reference_logits: None,
        }
    }
}

/// Evaluates `session` on `dataset` (see `evaluate_with_progress`).
pub fn evaluate(
    session: &mut dyn Session,
    reference: Option<&mut dyn Session>,
    dataset: &Dataset,
    options: &EvalOptions,
) -> Result<EvalRecord> {
    evaluate_with_progress(session, reference, dataset, options, &mut |_, _| {})
}

/// Evaluates `session` on `dataset`; `progress(done, total)` is called after every batch.
/// The record's model facts (file, size, params, MACs, runtime) are left for the caller.
pub fn evaluate_with_progress(
    session: &mut dyn Session,
    mut reference: Option<&mut dyn Session>,
    dataset: &Dataset,
    options: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalRecord> {
    if dataset.is_empty() {
        return Err(DataError::Invalid(format!(
            "dataset '{}' has no samples to evaluate",
            dataset.origin().display()
        )));
    }
    // One image tensor, or (an .npz with one array per input name) several inputs by name.
    let several = dataset.input_names().is_some();
    let declared = model_inputs(session.inputs(), several, "model")?;
    let input = declared[0].clone();
    let reference_inputs = match reference.as_deref() {
        Some(r) => Some(model_inputs(r.inputs(), several, "reference model")?),
        None => None,
    };
    // A model exported with a fixed batch dimension can only run that batch.
    let fixed_batch = input.shape.first().copied().flatten();
    let batch_size = fixed_batch.unwrap_or(options.batch_size.max(1));
    // Refuse a batch (a fixed one of 2^62, say) that cannot be held before padding to it.
    let largest_batch = options
        .latency_batches
        .iter()
        .map(|&b| fixed_batch.unwrap_or(b.max(1)))
        .fold(batch_size, usize::max);
    let mut batch_shape = vec![largest_batch];
    batch_shape.extend(input.shape.iter().skip(1).map(|d| d.unwrap_or(1)));
    profagent_runtime::checked_elements(&input.name, &batch_shape)?;
    if let Some(shape) = dataset.sample_shape() {
        check_input_shape(&input, &shape, dataset.preprocess().layout)?;
    }

    if reference.is_some() && options.reference_logits.is_some() {
        return Err(DataError::Invalid(
            "give either a reference session or reference logits, not both".into(),
        ));
    }
    let mut accuracy = Accuracy::default();
    let mut agreement = FidelityAccumulator::default();
    let mut kept: Vec<f32> = Vec::new();
    let mut correct: Vec<bool> = Vec::new();
    // Offset into `options.reference_logits` of the next sample.
    let mut reference_offset = 0usize;
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut samples = 0usize;
    let total = dataset.len();
    let step = profagent_onnx::progress::step("evaluating", Some(total as u64), "samples");
    let started = Instant::now();
    let mut checked_shape = dataset.sample_shape().is_some();
    let mut class_indices: Option<Option<Vec<usize>>> = None;

    std::thread::scope(|scope| -> Result<()> {
        let (sender, receiver) = mpsc::sync_channel::<Result<Batch>>(PREFETCH_BATCHES);
        scope.spawn(move || {
            for batch in dataset.batches(batch_size) {
                let failed = batch.is_err();
                if sender.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        for batch in receiver {
            let batch = batch?;
            skipped.extend(batch.skipped.iter().cloned());
            if batch.items.is_empty() {
                continue;
            }
            let feeds = padded_feeds(&batch, dataset, &declared, fixed_batch)?;
            if !checked_shape {
                for (declared, (_, tensor)) in declared.iter().zip(&feeds) {
                    check_input_shape(declared, &tensor.shape[1..], dataset.preprocess().layout)?;
                }
                checked_shape = true;
            }
            let batch_rows = feeds[0].1.shape[0];
            let logits = run_feeds(session, &feeds)?;
            let rows = batch.items.len();
            let num_classes = logits.len() / batch_rows;
            let logits = &logits[..rows * num_classes];
            if let Some(labels) = &batch.labels {
                // Class folders become model class indices once the class count is known.
                if class_indices.is_none() {
                    class_indices = Some(dataset.class_indices(num_classes)?);
                }
                let labels: Vec<usize> = match class_indices.as_ref().and_then(Option::as_ref) {
                    Some(map) => labels.iter().map(|&l| map[l]).collect(),
                    None => labels.clone(),
                };
                check_labels(&labels, &batch.items, num_classes)?;
                accuracy.update(logits, num_classes, &labels);
                correct.extend(
                    logits
                        .chunks_exact(num_classes)
                        .zip(&labels)
                        .map(|(row, &label)| crate::metrics::argmax(row) == label),
                );
            }
            if let (Some(reference), Some(reference_inputs)) =
                (reference.as_deref_mut(), reference_inputs.as_ref())
            {
                let feeds = padded_feeds(&batch, dataset, reference_inputs, fixed_batch)?;
                let expected = run_feeds(reference, &feeds)?;
                if expected.len() != batch_rows * num_classes {
                    return Err(DataError::BadModel {
                        model: "reference".into(),
                        reason: format!(
                            "it predicts {} values per sample, the model {num_classes}",
                            expected.len() / batch_rows
                        ),
                    });
                }
                agreement.update(&expected[..rows * num_classes], logits, num_classes);
            }
            if let Some(expected) = &options.reference_logits {
                let end = reference_offset + rows * num_classes;
                let Some(expected) = expected.get(reference_offset..end) else {
                    return Err(DataError::Invalid(format!(
                        "the reference logits cover {} values, but sample {} of '{}' needs {end} ({num_classes} classes per sample): they come from another dataset or model",
                        expected.len(),
                        samples + rows,
                        dataset.origin().display()
                    )));
                };
                agreement.update(expected, logits, num_classes);
                reference_offset = end;
            }
            if options.keep_logits {
                kept.extend_from_slice(logits);
            }
            samples += rows;
            progress(samples + skipped.len(), total);
            step.set((samples + skipped.len()) as u64);
        }
        Ok(())
    })?;
    let eval_seconds = started.elapsed().as_secs_f64();
    drop(step);
    if let Some(expected) = &options.reference_logits {
        if reference_offset != expected.len() {
            return Err(DataError::Invalid(format!(
                "the reference logits cover {} values but the {samples} samples of '{}' used {reference_offset}: they come from another dataset or model",
                expected.len(),
                dataset.origin().display()
            )));
        }
    }
    if samples == 0 {
        return Err(DataError::Invalid(format!(
            "no sample of '{}' could be evaluated ({} skipped)",
            dataset.origin().display(),
            skipped.len()
        )));
    }

    let mut latency = Vec::new();
    for &requested in &options.latency_batches {
        let batch = fixed_batch.unwrap_or(requested.max(1));
        if latency.iter().any(|p: &LatencyPoint| p.batch == batch) {
            continue;
        }
        latency.push(measure_latency(
            session, &declared, dataset, batch, options,
        )?);
    }

    Ok(EvalRecord {
        dataset: dataset.origin().display().to_string(),
        samples,
        skipped: skipped.len(),
        skipped_items: skipped,
        top1: dataset.has_labels().then(|| accuracy.top1()),
        top5: dataset.has_labels().then(|| accuracy.top5()),
        top1_interval: dataset
            .has_labels()
            .then(|| {
                profagent_stats::wilson(
                    accuracy.top1_correct,
                    accuracy.samples,
                    profagent_stats::REPORT_CONFIDENCE,
                )
            })
            .flatten(),
        top5_interval: dataset
            .has_labels()
            .then(|| {
                profagent_stats::wilson(
                    accuracy.top5_correct,
                    accuracy.samples,
                    profagent_stats::REPORT_CONFIDENCE,
                )
            })
            .flatten(),
        correct: dataset.has_labels().then_some(correct),
        nll: dataset.has_labels().then(|| accuracy.mean_nll()),
        fidelity: (reference_inputs.is_some() || options.reference_logits.is_some())
            .then(|| agreement.finish()),
        logits: options.keep_logits.then_some(kept),
        latency_ms: latency.first().map(|p| p.median_ms),
        throughput_images_per_s: latency
            .iter()
            .max_by_key(|p| p.batch)
            .map(|p| p.batch as f64 * 1000.0 / p.median_ms),
        latency,
        eval_images_per_s: samples as f64 / eval_seconds.max(f64::MIN_POSITIVE),
        eval_batch_size: batch_size,
        peak_rss_bytes: profagent_runtime::memory::rss().peak_bytes,
        machine: Some(profagent_runtime::machine_info()),
        ..EvalRecord::default()
    })
}

/// Runs one batch and returns the first output as f32 values (`[batch, classes]` row-major).
pub fn run_logits(session: &mut dyn Session, input_name: &str, input: &Tensor) -> Result<Vec<f32>> {
    run_feeds(session, &[(input_name.to_string(), input.clone())])
}

/// Runs one batch of named feeds and returns the first output as f32 values, one row of
/// `values / batch` per sample (`[batch, classes]` for a classifier; a text encoder's
/// `[batch, sequence, hidden]` flattened per sample).
pub fn run_feeds(session: &mut dyn Session, feeds: &[(String, Tensor)]) -> Result<Vec<f32>> {
    let input = &feeds
        .first()
        .ok_or_else(|| DataError::BadModel {
            model: "model".into(),
            reason: "it has no inputs".into(),
        })?
        .1;
    let outputs = session.run(feeds)?;
    let (name, output) = outputs
        .into_iter()
        .next()
        .ok_or_else(|| DataError::BadModel {
            model: "model".into(),
            reason: "it has no outputs".into(),
        })?;
    match output.as_f32() {
        Some(values) if !values.is_empty() && values.len() % input.shape[0].max(1) == 0 => {
            Ok(values.to_vec())
        }
        _ => Err(DataError::BadModel {
            model: "model".into(),
            reason: format!(
                "output '{name}' ({} of shape {:?}) is not float logits of shape [batch, classes]",
                output.elem_type(),
                output.shape
            ),
        }),
    }
}

/// The inputs evaluation feeds: one float image input, or with several-input data every
/// declared input (matched to the data's arrays by name).
fn model_inputs(inputs: Vec<IoInfo>, several: bool, which: &str) -> Result<Vec<IoInfo>> {
    if several && !inputs.is_empty() {
        return Ok(inputs);
    }
    Ok(vec![single_input(&inputs, which)?])
}

/// A batch's feeds for `inputs`, padded to the model's fixed batch.
fn padded_feeds(
    batch: &Batch,
    dataset: &Dataset,
    inputs: &[IoInfo],
    fixed: Option<usize>,
) -> Result<Vec<(String, Tensor)>> {
    Ok(batch
        .feeds_for(dataset.origin(), inputs)?
        .into_iter()
        .map(|(name, tensor)| (name, crate::inputs::pad_rows(tensor, fixed)))
        .collect())
}

fn single_input(inputs: &[IoInfo], which: &str) -> Result<IoInfo> {
    match inputs {
        [only] if only.elem_type.contains("float") || only.elem_type == "f32" => Ok(only.clone()),
        [only] => Err(DataError::BadModel {
            model: which.into(),
            reason: format!(
                "input '{}' is {}, but images are fed as float32",
                only.name, only.elem_type
            ),
        }),
        _ => Err(DataError::BadModel {
            model: which.into(),
            reason: format!(
                "it has {} inputs ({}); evaluation feeds exactly one image tensor",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

fn format_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Checks the model input against `[batch, …sample]`, naming both shapes on a mismatch.
pub fn check_input_shape(input: &IoInfo, sample: &[usize], layout: Layout) -> Result<()> {
    let model_sample = input.shape.get(1..).unwrap_or(&[]);
    let fits = model_sample.len() == sample.len()
        && model_sample
            .iter()
            .zip(sample)
            .all(|(m, d)| m.is_none_or(|m| m == *d));
    if fits {
        return Ok(());
    }
    let looks_nhwc = model_sample.len() == 3 && model_sample[2] == Some(3);
    let looks_nchw = model_sample.len() == 3 && model_sample[0] == Some(3);
    let hint = match layout {
        Layout::Nchw if looks_nhwc && !looks_nchw => {
            "; the model looks NHWC: set \"layout\": \"nhwc\""
        }
        Layout::Nhwc if looks_nchw && !looks_nhwc => {
            "; the model looks NCHW: set \"layout\": \"nchw\""
        }
        _ => "; pick the preset or preprocessing config the model was trained with",
    };
    let data: Vec<Option<usize>> = std::iter::once(None)
        .chain(sample.iter().map(|&d| Some(d)))
        .collect();
    Err(DataError::InputShapeMismatch {
        input: input.name.clone(),
        model_shape: format_dims(&input.shape),
        data_shape: format_dims(&data),
        hint: hint.to_string(),
    })
}

fn check_labels(labels: &[usize], items: &[String], num_classes: usize) -> Result<()> {
    match labels
        .iter()
        .zip(items)
        .find(|(&label, _)| label >= num_classes)
    {
        Some((&label, item)) => Err(DataError::LabelOutOfRange {
            item: item.clone(),
            label,
            num_classes,
        }),
        None => Ok(()),
    }
}

/// Median and p90 latency of `session` at `batch` samples (the dataset's first samples, repeated
/// if it is smaller than the batch).
fn measure_latency(
    session: &mut dyn Session,
    inputs: &[IoInfo],
    dataset: &Dataset,
    batch: usize,
    options: &EvalOptions,
) -> Result<LatencyPoint> {
    let loaded = dataset.load_batch(0..batch.min(dataset.len()))?;
    let feeds: Vec<(String, Tensor)> = loaded
        .feeds_for(dataset.origin(), inputs)?
        .into_iter()
        .map(|(name, tensor)| (name, repeat_to(tensor, batch)))
        .collect();
    let stats = profagent_runtime::measure_latency(
        session,
        &feeds,
        options.warmup_runs,
        options.timed_runs.max(1),
    )?;
    Ok(LatencyPoint::from_stats(batch, &stats))
}

fn repeat_to(tensor: Tensor, batch: usize) -> Tensor {
    let rows = tensor.shape[0].max(1);
    if rows >= batch {
        return tensor;
    }
    let mut shape = tensor.shape.clone();
    shape[0] = batch;
    match &tensor.data {
        profagent_runtime::TensorData::F32(values) => {
            let take = values.len() / rows * batch;
            Tensor::f32(shape, values.iter().copied().cycle().take(take).collect())
        }
        profagent_runtime::TensorData::I64(values) => {
            let take = values.len() / rows * batch;
            Tensor::i64(shape, values.iter().copied().cycle().take(take).collect())
        }
    }
}
