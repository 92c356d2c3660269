//! Build script shared by the crates whose tests need `../shared` (the models and data next
//! to the repository, see ARCHITECTURE.md): it sets `cfg(shared_present)` when
//! `../shared/models` exists, so those tests carry
//! `#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]` and show
//! as ignored, with the reason, instead of passing without running anything.
//!
//! Cargo re-runs it when `../shared/models` changes. When the folder is absent it watches
//! only this file (a missing path would re-run it, and rebuild the crate, on every build):
//! after adding `../shared` to a checkout that was already built, `touch` this file.
use std::path::Path;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(shared_present)");
    let Ok(manifest) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    // crates/<name>/ → the repository root → its parent, where shared/ lives.
    let models = Path::new(&manifest).join("../../../shared/models");
    if models.is_dir() {
        println!("cargo:rustc-cfg=shared_present");
        println!("cargo:rerun-if-changed={}", models.display());
    } else {
        println!("cargo:rerun-if-changed=../../tools/build/shared_present.rs");
    }
}
