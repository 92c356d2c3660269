//! Load/save round trips, external data, and bad-input errors.
use profagent_onnx::{ExternalData, Model, OnnxError};
use std::path::PathBuf;

/// ../shared/models; tests that use it are ignored (with the reason) when it is absent.
fn shared_models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models")
}

#[test]
#[cfg_attr(not(shared_present), ignore = "needs ../shared (models and data)")]
fn shared_models_round_trip_byte_identical() {
    let dir = shared_models();
    for name in [
        "resnet20_cifar10.onnx",
        "resnet20_cifar10_bn.onnx",
        "resnet18_cifar10.onnx",
        "vit_tiny_cifar10.onnx",
        "mobilenet_v2_imagenet.onnx",
    ] {
        let path = dir.join(name);
        let original = std::fs::read(&path).unwrap();
        let model = Model::load(&path).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join(name);
        model.save(&out, ExternalData::Auto).unwrap();
        let reloaded = Model::load(&out).unwrap();
        assert_eq!(
            model.proto, reloaded.proto,
            "{name}: proto differs after round trip"
        );
        let written = std::fs::read(&out).unwrap();
        assert_eq!(original, written, "{name}: bytes differ after round trip");
    }
}

#[test]
fn external_data_round_trip_and_escape_refused() {
    let mut b = profagent_onnx::builder::GraphBuilder::new(1);
    let x = b.input("input", &[1, 3, 8, 8]);
    let y = b.conv("/conv1", &x, 3, 16, 3, 1, 1);
    let y = b.unary("Relu", "/relu", &y);
    b.output(&y, &[1, 16, 8, 8]);
    let model = b.finish();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.onnx");
    model.save(&path, ExternalData::Always).unwrap();
    assert!(tmp.path().join("m.onnx.data").exists());
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.graph().initializer, model.graph().initializer);
    assert!(!loaded.external_tensors.is_empty());
    // Saving again (Auto) keeps external data.
    let path2 = tmp.path().join("again.onnx");
    loaded.save(&path2, ExternalData::Auto).unwrap();
    assert!(tmp.path().join("again.onnx.data").exists());
    assert_eq!(
        Model::load(&path2).unwrap().graph().initializer,
        model.graph().initializer
    );

    // A location escaping the folder is refused.
    let mut evil = Model::load(&path).unwrap();
    let t = &mut evil.graph_mut().initializer[0];
    t.raw_data = None;
    t.data_location = Some(1);
    t.external_data = vec![profagent_onnx::proto::StringStringEntryProto {
        key: Some("location".into()),
        value: Some("../secret.bin".into()),
    }];
    let evil_path = tmp.path().join("evil.onnx");
    std::fs::write(&evil_path, evil.to_bytes()).unwrap();
    let err = Model::load(&evil_path).unwrap_err();
    assert!(
        matches!(err, OnnxError::ExternalDataEscapes { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("escapes"), "{err}");
    let t = &mut evil.graph_mut().initializer[0];
    t.external_data[0].value = Some("/etc/passwd".into());
    std::fs::write(&evil_path, evil.to_bytes()).unwrap();
    assert!(matches!(
        Model::load(&evil_path).unwrap_err(),
        OnnxError::ExternalDataEscapes { .. }
    ));
}

#[test]
fn bad_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let e = Model::load(&empty).unwrap_err().to_string();
    assert!(e.contains("empty") && e.contains("empty.onnx"), "{e}");

    let text = tmp.path().join("text.onnx");
    std::fs::write(&text, b"hello, this is not a model\n").unwrap();
    let e = Model::load(&text).unwrap_err().to_string();
    assert!(e.contains("text.onnx"), "{e}");

    let missing = tmp.path().join("missing.onnx");
    let e = Model::load(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.onnx"), "{e}");

    // Truncated model.
    let mut b = profagent_onnx::builder::GraphBuilder::new(2);
    let x = b.input("input", &[1, 3, 8, 8]);
    let y = b.conv("/conv1", &x, 3, 8, 3, 1, 1);
    b.output(&y, &[1, 8, 8, 8]);
    let bytes = b.finish().to_bytes();
    for cut in [1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let p = tmp.path().join("trunc.onnx");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = Model::load(&p).unwrap_err().to_string();
        assert!(e.contains("trunc.onnx"), "{e}");
    }
}

#[test]
fn cycle_is_an_error() {
    use profagent_onnx::attr;
    let mut b = profagent_onnx::builder::GraphBuilder::new(3);
    b.input("x", &[1, 4]);
    b.graph
        .node
        .push(attr::node("Add", "a", &["x", "c"], &["b"], vec![]));
    b.graph
        .node
        .push(attr::node("Relu", "r", &["b"], &["c"], vec![]));
    b.output("c", &[1, 4]);
    let bytes = b.finish().to_bytes();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("cycle.onnx");
    std::fs::write(&p, bytes).unwrap();
    let e = Model::load(&p).unwrap_err().to_string();
    assert!(e.contains("cycle"), "{e}");
    assert!(e.contains("cycle.onnx"), "{e}");
}
