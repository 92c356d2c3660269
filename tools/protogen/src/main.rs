//! Regenerates the committed prost code for ONNX's protobuf schema.
//! Run from the repository root: `cargo run --manifest-path tools/protogen/Cargo.toml`.
//! protox compiles the .proto in pure Rust, so no `protoc` is needed.
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/profagent-onnx");
    let proto_dir = root.join("proto");
    let out_dir = root.join("src/proto");
    std::fs::create_dir_all(&out_dir).expect("create output folder");
    let fds = protox::compile([proto_dir.join("onnx.proto")], [&proto_dir]).expect("compile onnx.proto");
    prost_build::Config::new()
        .out_dir(&out_dir)
        .compile_fds(fds)
        .expect("generate rust code");
    println!("wrote {}", out_dir.display());
}
