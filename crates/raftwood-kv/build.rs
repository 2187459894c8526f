//! Compiles the protobuf messages under `proto/` with a pure-Rust toolchain:
//! protox parses the files into descriptors, prost-build generates the
//! message types. No `protoc` is needed. Services are not generated here;
//! the server compiles the same files with its gRPC generator and refers to
//! these message types through `extern_path`.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "raftwoodpb/internal.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    for file in FILES {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(FILES, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
