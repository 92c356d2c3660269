//! Generated prost types for `onnx-ml.proto` (proto2, so optional fields keep presence and
//! a load → save round trip re-encodes exactly what was read).
//!
//! Regenerate with `cargo run --manifest-path tools/protogen/Cargo.toml`; the output is
//! committed so a build needs no `protoc`.
#![allow(clippy::all, missing_docs, rustdoc::all)]
include!("generated.rs");
