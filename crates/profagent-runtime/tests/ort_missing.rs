//! With no ONNX Runtime library to be found, opening the runtime is a clear error carrying the
//! install hint, not a panic. Its own test binary, because the library is loaded once per
//! process and the environment must be set before that.
use profagent_runtime::{open_runtime, RuntimeKind, ORT_INSTALL_HINT};

#[test]
fn missing_library_gives_install_hint() {
    std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so");
    std::env::set_var("PROFAGENT_ORT_NO_DISCOVERY", "1");
    let error = match open_runtime(RuntimeKind::Ort) {
        Ok(_) => panic!("ONNX Runtime opened although no library can be found"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains(ORT_INSTALL_HINT), "{error}");
    assert!(error.contains("/nonexistent/libonnxruntime.so"), "{error}");
    // Asking again gives the same answer, not a panic from a half-initialised state.
    assert!(open_runtime(RuntimeKind::Ort).is_err());
}

#[test]
fn fallback_follows_the_build() {
    std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so");
    std::env::set_var("PROFAGENT_ORT_NO_DISCOVERY", "1");
    let result = profagent_runtime::open_runtime_with_fallback(RuntimeKind::Ort);
    if cfg!(feature = "tract") {
        let (runtime, notice) = result.unwrap();
        assert_eq!(runtime.kind(), RuntimeKind::Tract);
        assert!(notice.unwrap().contains(ORT_INSTALL_HINT));
    } else {
        let error = result.err().expect("no runtime available").to_string();
        assert!(error.contains(ORT_INSTALL_HINT), "{error}");
    }
}
