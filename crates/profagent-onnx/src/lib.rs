//! ONNX models in memory: lossless load/save (external data too), a graph index, shape facts
//! and `Patch`, the one mechanism every transform uses to edit a graph.
//!
//! This crate knows nothing about runtimes, plans or LLMs; every other crate depends on it.
pub mod activations;
pub mod attr;
pub mod builder;
pub mod error;
pub mod index;
pub mod inputs;
pub mod locate;
pub mod model;
pub mod naming;
pub mod ops;
pub mod output;
pub mod patch;
pub mod progress;
pub mod proto;
pub mod shape;
pub mod tensor;
pub mod units;

pub use activations::{expose_values, ActivationSource, ValueVisitor};
pub use error::{OnnxError, Result};
pub use index::GraphIndex;
pub use inputs::fix_input_dims;
pub use locate::{locate_model, LocateError, LocatedModel};
pub use model::{ExternalData, Model};
pub use naming::layer_of_node;
pub use output::{finish_writes, write_atomic, OutputGuard, RunLock};
pub use patch::{NameGen, Patch};
pub use shape::{Dim, ShapeFacts, ShapeOptions, ValueFact};
