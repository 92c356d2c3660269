//! Shared helpers for the integration tests: locating ../shared, the deterministic input the
//! Python fixture script also uses, and the ORT-present check.
#![allow(dead_code)]
use std::path::PathBuf;

use profagent_runtime::Tensor;

/// ../shared/models. Tests that use it carry
/// `#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]` (the
/// crate's build script sets `shared_present`), so they show as ignored when it is absent.
pub fn shared_models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models")
}

/// x[i] = ((i * 7919) % 1000) / 500 - 1, in f32: the same as `make_input` in
/// fixtures/generate_reference.py.
pub fn deterministic_input(shape: &[usize]) -> Tensor {
    let count: usize = shape.iter().product();
    let data = (0..count as u64)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::f32(shape.to_vec(), data)
}

/// The ORT runtime, or None (with a printed reason) when the library cannot be found.
pub fn ort_runtime() -> Option<Box<dyn profagent_runtime::Runtime>> {
    match profagent_runtime::open_runtime(profagent_runtime::RuntimeKind::Ort) {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("skipping: {error}");
            None
        }
    }
}
