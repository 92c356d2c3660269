//! Regenerates the committed prost code for ONNX's protobuf schema: compiles
//! `crates/profagent-onnx/proto/onnx.proto` and writes `crates/profagent-onnx/src/proto/generated.rs`,
//! the file `src/proto/mod.rs` includes. protox compiles the .proto in pure Rust, so no `protoc`
//! is needed.
//!
//! Run from anywhere: `cargo run --manifest-path tools/protogen/Cargo.toml` (write) or
//! `... -- --check` (exit 1 when the committed file is stale; CI runs this).
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/profagent-onnx");
    let proto_dir = root.join("proto");
    let target = root.join("src/proto/generated.rs");
    let scratch = std::env::temp_dir().join(format!("protogen-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        eprintln!("error: cannot create {}: {e}", scratch.display());
        return ExitCode::from(2);
    }
    let generated = protox::compile([proto_dir.join("onnx.proto")], [&proto_dir])
        .map_err(|e| format!("cannot compile {}: {e}", proto_dir.join("onnx.proto").display()))
        .and_then(|fds| {
            prost_build::Config::new()
                .out_dir(&scratch)
                .compile_fds(fds)
                .map_err(|e| format!("cannot generate Rust code: {e}"))
        })
        // prost names the file after the proto package: `onnx`.
        .and_then(|()| {
            std::fs::read_to_string(scratch.join("onnx.rs"))
                .map_err(|e| format!("cannot read the generated code: {e}"))
        });
    let _ = std::fs::remove_dir_all(&scratch);
    let generated = match generated {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let committed = std::fs::read_to_string(&target).unwrap_or_default();
    if check {
        if committed == generated {
            println!("{} is up to date", target.display());
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "error: {} is stale: regenerate it with `cargo run --manifest-path tools/protogen/Cargo.toml`",
            target.display()
        );
        return ExitCode::from(1);
    }
    if let Err(e) = std::fs::write(&target, generated) {
        eprintln!("error: cannot write {}: {e}", target.display());
        return ExitCode::from(2);
    }
    println!("wrote {}", target.display());
    ExitCode::SUCCESS
}
