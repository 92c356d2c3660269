//! The one error type of this crate. Every variant names the file, node or value at fault.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to write {output}: it is the input {input} (same file); write the output to another path")]
    OutputIsInput { output: PathBuf, input: PathBuf },
    #[error(
        "refusing to write a {what} to stdout ('-'): give a path (only --json - prints to stdout)"
    )]
    OutputIsStdout { what: &'static str },
    #[error("refusing to use {output} as the run folder: it holds the input {input}, and an earlier run's files are moved to history/ there; choose a folder that holds no input")]
    OutputDirHoldsInput { output: PathBuf, input: PathBuf },
    #[error("{folder} is in use by another profagent run (pid {pid}); wait for it to finish or choose another folder (if no such process runs, remove {folder}/.profagent.lock)")]
    Locked { folder: PathBuf, pid: u32 },
    #[error("external data file {path} of initializer '{tensor}' is not a regular file (a FIFO, device or folder); refusing to read it: point the location at a data file")]
    ExternalDataNotFile { path: PathBuf, tensor: String },
    #[error("{path} is empty: expected an ONNX model (a protobuf ModelProto)")]
    Empty { path: PathBuf },
    #[error(
        "{path} is not a valid ONNX model ({reason}); is the file truncated or not an .onnx file?"
    )]
    Decode { path: PathBuf, reason: String },
    #[error("{path} has no graph: it is not an ONNX model (or it is an empty ModelProto)")]
    NoGraph { path: PathBuf },
    #[error("initializer '{tensor}' in {path} points to external data at '{location}', which escapes the model's folder; refusing to read it (move the data file next to the model and use a relative location)")]
    ExternalDataEscapes {
        path: PathBuf,
        tensor: String,
        location: String,
    },
    #[error("initializer '{tensor}': external data {location} (offset {offset}, length {length}) is out of range of the {file_len}-byte file")]
    ExternalDataRange {
        tensor: String,
        location: String,
        offset: u64,
        length: u64,
        file_len: u64,
    },
    #[error("initializer '{tensor}': invalid external_data entry: {reason}")]
    ExternalDataEntry { tensor: String, reason: String },
    #[error(
        "the graph has a cycle through node '{node}' ({op_type}); ONNX graphs must be acyclic"
    )]
    Cycle { node: String, op_type: String },
    #[error("node '{node}' ({op_type}) reads '{value}', which no node, graph input or initializer produces")]
    DanglingInput {
        node: String,
        op_type: String,
        value: String,
    },
    #[error("value '{value}' is produced twice (by '{first}' and '{second}'); ONNX requires single assignment")]
    DoubleAssignment {
        value: String,
        first: String,
        second: String,
    },
    #[error("tensor '{tensor}': {reason}")]
    Tensor { tensor: String, reason: String },
    #[error("patch: {0}")]
    Patch(String),
    #[error("model input '{input}': {reason}")]
    InputShape { input: String, reason: String },
    #[error("shape inference at node '{node}' ({op_type}): {reason}")]
    Shape {
        node: String,
        op_type: String,
        reason: String,
    },
}

pub type Result<T, E = OnnxError> = std::result::Result<T, E>;
