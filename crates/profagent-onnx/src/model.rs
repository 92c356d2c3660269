//! Loading and saving ONNX models losslessly, external data included.
//!
//! `Model::load` decodes a `ModelProto` and pulls external tensor data into memory (refusing
//! locations that escape the model's folder). `Model::save` writes atomically (temp file +
//! rename) and writes external data again when the model came with it or is too large for a
//! single protobuf (2 GiB).
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use prost::Message;

use crate::error::{OnnxError, Result};
use crate::index::GraphIndex;
use crate::output::write_atomic;
use crate::proto::{
    tensor_proto::DataLocation, GraphProto, ModelProto, StringStringEntryProto, TensorProto,
};

/// Protobuf messages cannot exceed 2 GiB; above this much tensor data we write external data.
pub const EXTERNAL_DATA_THRESHOLD_BYTES: usize = 1_800_000_000;
/// Tensors smaller than this stay inline when writing external data (as onnx's Python does).
pub const EXTERNAL_DATA_MIN_TENSOR_BYTES: usize = 1024;

/// An ONNX model held in memory, plus where it came from.
#[derive(Debug, Clone)]
pub struct Model {
    pub proto: ModelProto,
    /// The file it was loaded from, if any.
    pub path: Option<PathBuf>,
    /// Names of initializers that were stored as external data when loaded.
    pub external_tensors: HashSet<String>,
}

/// How `Model::save` treats external data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExternalData {
    /// External when the model was loaded with external data or is too big to inline.
    #[default]
    Auto,
    /// Always write tensors of at least `EXTERNAL_DATA_MIN_TENSOR_BYTES` to `<file>.data`.
    Always,
    /// Everything inline (fails for models over 2 GiB).
    Never,
}

impl Model {
    /// Wraps an in-memory proto (for models built in code).
    pub fn from_proto(proto: ModelProto) -> Self {
        Model {
            proto,
            path: None,
            external_tensors: HashSet::new(),
        }
    }

    /// Loads a model file, reading external data relative to its folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut model = Self::decode(&bytes, path)?;
        model.path = Some(path.to_path_buf());
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let mut external = HashSet::new();
        if let Some(graph) = model.proto.graph.as_mut() {
            load_external_graph(graph, &dir, path, &mut external)?;
        }
        model.external_tensors = external;
        Ok(model)
    }

    /// Decodes model bytes; `origin` names the source in errors. External data is not resolved.
    pub fn decode(bytes: &[u8], origin: &Path) -> Result<Self> {
        if bytes.is_empty() {
            return Err(OnnxError::Empty {
                path: origin.to_path_buf(),
            });
        }
        let proto = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        let Some(graph) = proto.graph.as_ref() else {
            return Err(OnnxError::NoGraph {
                path: origin.to_path_buf(),
            });
        };
        if proto.opset_import.is_empty() && proto.ir_version.is_none() {
            return Err(OnnxError::Decode {
                path: origin.to_path_buf(),
                reason: "no ir_version and no opset_import".into(),
            });
        }
        // Structural check: every input defined, no cycles, single assignment.
        GraphIndex::new(graph).map_err(|e| match e {
            OnnxError::DanglingInput { .. } | OnnxError::Cycle { .. } => OnnxError::Decode {
                path: origin.to_path_buf(),
                reason: e.to_string(),
            },
            other => other,
        })?;
        if let Some(reason) = duplicate_names(graph) {
            return Err(OnnxError::Decode {
                path: origin.to_path_buf(),
                reason,
            });
        }
        Ok(Model::from_proto(proto))
    }

    /// The main graph (always present for a loaded model).
    pub fn graph(&self) -> &GraphProto {
        self.proto
            .graph
            .as_ref()
            .expect("Model invariant: graph is present")
    }

    /// Mutable main graph.
    pub fn graph_mut(&mut self) -> &mut GraphProto {
        self.proto.graph.get_or_insert_with(Default::default)
    }

    /// Serialises the proto with all data inline.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Writes the model atomically (temp file in the same folder, then rename).
    pub fn save(&self, path: impl AsRef<Path>, external: ExternalData) -> Result<()> {
        let path = path.as_ref();
        // The model and its data file are one write: an exit on Ctrl-C waits for both.
        let _writing = crate::output::writing();
        let total: usize = self
            .graph()
            .initializer
            .iter()
            .map(crate::tensor::payload_bytes)
            .sum();
        let use_external = match external {
            ExternalData::Always => true,
            ExternalData::Never => false,
            ExternalData::Auto => {
                !self.external_tensors.is_empty() || total > EXTERNAL_DATA_THRESHOLD_BYTES
            }
        };
        if !use_external {
            return write_atomic(path, &self.to_bytes());
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "model.onnx".into());
        let data_name = format!("{file_name}.data");
        let data_path = path.with_file_name(&data_name);
        let mut proto = self.proto.clone();
        let mut data = Vec::new();
        if let Some(graph) = proto.graph.as_mut() {
            externalize_graph(graph, &data_name, &mut data);
        }
        write_atomic(&data_path, &data)?;
        write_atomic(path, &proto.encode_to_vec())
    }
}

/// A name given twice where ONNX requires it once: two initializers (which value wins is up to
/// the runtime) or one value listed twice as a graph output.
fn duplicate_names(graph: &GraphProto) -> Option<String> {
    let mut seen = HashSet::new();
    if let Some(t) = graph.initializer.iter().find(|t| !seen.insert(t.name())) {
        return Some(format!("initializer '{}' is defined twice", t.name()));
    }
    let mut seen = HashSet::new();
    if let Some(o) = graph.output.iter().find(|o| !seen.insert(o.name())) {
        return Some(format!("graph output '{}' is listed twice", o.name()));
    }
    None
}

fn external_entry(t: &TensorProto, key: &str) -> Option<String> {
    t.external_data
        .iter()
        .find(|e| e.key() == key)
        .map(|e| e.value().to_string())
}

fn load_external_graph(
    graph: &mut GraphProto,
    dir: &Path,
    model_path: &Path,
    external: &mut HashSet<String>,
) -> Result<()> {
    // One open file per data file, read by offset: a model with many tensors in one large
    // file reads each byte once.
    let mut readers: HashMap<PathBuf, DataFile> = HashMap::new();
    for t in graph.initializer.iter_mut() {
        if t.data_location() != DataLocation::External {
            continue;
        }
        let name = t.name().to_string();
        let location =
            external_entry(t, "location").ok_or_else(|| OnnxError::ExternalDataEntry {
                tensor: name.clone(),
                reason: "no 'location' key".into(),
            })?;
        let rel = Path::new(&location);
        let escapes = rel.is_absolute()
            || rel.components().any(|c| {
                matches!(
                    c,
                    Component::ParentDir | Component::RootDir | Component::Prefix(_)
                )
            });
        if escapes {
            return Err(OnnxError::ExternalDataEscapes {
                path: model_path.to_path_buf(),
                tensor: name,
                location,
            });
        }
        let parse = |key: &str| -> Result<Option<u64>> {
            external_entry(t, key)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| OnnxError::ExternalDataEntry {
                            tensor: t.name().to_string(),
                            reason: format!("'{key}' is not a number: {v}"),
                        })
                })
                .transpose()
        };
        let offset = parse("offset")?.unwrap_or(0);
        let length = parse("length")?;
        let file = dir.join(rel);
        // A symlink could still point outside; compare canonical paths.
        if let (Ok(canon_file), Ok(canon_dir)) = (file.canonicalize(), dir.canonicalize()) {
            if !canon_file.starts_with(&canon_dir) {
                return Err(OnnxError::ExternalDataEscapes {
                    path: model_path.to_path_buf(),
                    tensor: name,
                    location,
                });
            }
        }
        if !readers.contains_key(&file) {
            let reader = DataFile::open(&file, &name)?;
            readers.insert(file.clone(), reader);
        }
        let Some(reader) = readers.get_mut(&file) else {
            continue;
        };
        let file_len = reader.len;
        let length = length.unwrap_or(file_len.saturating_sub(offset));
        if offset.checked_add(length).is_none_or(|end| end > file_len) {
            return Err(OnnxError::ExternalDataRange {
                tensor: name,
                location,
                offset,
                length,
                file_len,
            });
        }
        let bytes = reader.read(offset, length)?;
        t.raw_data = Some(bytes);
        t.external_data.clear();
        t.data_location = None;
        external.insert(name);
    }
    Ok(())
}

/// An open external data file, read by seeking to each tensor's bytes.
struct DataFile {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
}

impl DataFile {
    /// Opens `path` if it is a regular file; a FIFO or device would block or never end.
    fn open(path: &Path, tensor: &str) -> Result<DataFile> {
        let not_file = || OnnxError::ExternalDataNotFile {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
        };
        let read_error = |source| OnnxError::Read {
            path: path.to_path_buf(),
            source,
        };
        // Checked before opening: opening a FIFO for reading blocks until a writer comes.
        if !std::fs::metadata(path).map_err(read_error)?.is_file() {
            return Err(not_file());
        }
        let file = std::fs::File::open(path).map_err(read_error)?;
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() {
            return Err(not_file());
        }
        Ok(DataFile {
            path: path.to_path_buf(),
            file,
            len: metadata.len(),
        })
    }

    /// The `length` bytes at `offset` (the caller checked they lie within the file).
    fn read(&mut self, offset: u64, length: u64) -> Result<Vec<u8>> {
        let read_error = |source| OnnxError::Read {
            path: self.path.clone(),
            source,
        };
        let length = usize::try_from(length)
            .map_err(|_| read_error(std::io::Error::other("tensor larger than memory")))?;
        let mut bytes = vec![0u8; length];
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(read_error)?;
        self.file.read_exact(&mut bytes).map_err(read_error)?;
        Ok(bytes)
    }
}

fn externalize_graph(graph: &mut GraphProto, data_name: &str, data: &mut Vec<u8>) {
    for t in graph.initializer.iter_mut() {
        let Some(raw) = t.raw_data.as_ref() else {
            continue;
        };
        if raw.len() < EXTERNAL_DATA_MIN_TENSOR_BYTES {
            continue;
        }
        // Align every tensor to 4 KiB, like onnx's Python writer, so it can be mmapped.
        while !data.len().is_multiple_of(4096) {
            data.push(0);
        }
        let offset = data.len();
        data.extend_from_slice(raw);
        let entry = |k: &str, v: String| StringStringEntryProto {
            key: Some(k.to_string()),
            value: Some(v),
        };
        t.external_data = vec![
            entry("location", data_name.to_string()),
            entry("offset", offset.to_string()),
            entry("length", raw.len().to_string()),
        ];
        t.data_location = Some(DataLocation::External as i32);
        t.raw_data = None;
    }
}
