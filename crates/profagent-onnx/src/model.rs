//! Loading and saving ONNX models losslessly, external data included.
//!
//! `Model::load` decodes a `ModelProto` and pulls external tensor data into memory (refusing
//! locations that escape the model's folder). `Model::save` writes atomically (temp file +
//! rename) and writes external data again when the model came with it or is too large for a
//! single protobuf (2 GiB).
use std::collections::HashSet;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use prost::Message;

use crate::error::{OnnxError, Result};
use crate::index::GraphIndex;
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

/// Writes bytes to `path` via a temp file in the same folder and a rename, so readers never
/// see a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let wrap = |source| OnnxError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.profagent-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(wrap)
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
        let bytes = std::fs::read(&file).map_err(|source| OnnxError::Read {
            path: file.clone(),
            source,
        })?;
        let file_len = bytes.len() as u64;
        let length = length.unwrap_or(file_len.saturating_sub(offset));
        let end = offset.checked_add(length).filter(|&e| e <= file_len);
        let Some(end) = end else {
            return Err(OnnxError::ExternalDataRange {
                tensor: name,
                location,
                offset,
                length,
                file_len,
            });
        };
        t.raw_data = Some(bytes[offset as usize..end as usize].to_vec());
        t.external_data.clear();
        t.data_location = None;
        external.insert(name);
    }
    Ok(())
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
