//! Applying a pass's `Patch` to a copy of the model and dropping the float initializers the
//! rewrite no longer reads (so the file really shrinks).
use profagent_onnx::{Model, Patch};

use crate::error::Result;
use crate::linear::unused_after;

/// Applies `patch` to a copy of `model`, then removes those of `replaced` that nothing reads.
pub fn apply(model: &Model, patch: &Patch, replaced: &[String]) -> Result<Model> {
    let mut out = model.clone();
    patch.apply(out.graph_mut())?;
    let unused = unused_after(out.graph(), replaced);
    if !unused.is_empty() {
        let mut cleanup = Patch::new();
        for name in &unused {
            cleanup.remove_initializer(name);
        }
        cleanup.apply(out.graph_mut())?;
    }
    for name in &unused {
        out.external_tensors.remove(name);
    }
    Ok(out)
}
