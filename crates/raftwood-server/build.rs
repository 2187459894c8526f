//! Generates the gRPC service code (servers and clients) for etcd's v3 API
//! from the .proto files that raftwood-kv owns. The message types are
//! raftwood-kv's (`extern_path`), so one type is shared by the state
//! machine, the raft log payloads and the wire.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?)
        .join("..")
        .join("raftwood-kv")
        .join("proto");
    let file = "etcdserverpb/rpc.proto";
    println!("cargo:rerun-if-changed={}", root.join(file).display());
    let descriptors = protox::compile([file], [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .extern_path(".etcdserverpb", "::raftwood_kv::proto::etcdserverpb")
        .extern_path(".mvccpb", "::raftwood_kv::proto::mvccpb")
        .extern_path(".authpb", "::raftwood_kv::proto::authpb")
        .compile_fds(descriptors)?;
    Ok(())
}
