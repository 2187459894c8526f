//! raftwood-server: one member of a raftwood cluster.
//!
//! [`node::start`] opens the member's raft log (`raftwood-log`) and state
//! machine (`raftwood-kv`), bootstraps a new cluster, and starts:
//! - the drive loop ([`driver::DriveLoop`]), which owns the raft core and
//!   carries out its effects;
//! - the persistence thread (group commit: many requests, one fsync) and
//!   the apply thread;
//! - the peer transport ([`transport`]), one TCP connection per peer;
//! - etcd's v3 gRPC API ([`grpc`]) on the client URLs.

pub mod accept;
pub mod bootstrap;
pub mod config;
pub mod driver;
pub mod durable;
pub mod error;
pub mod grpc;
pub mod membership;
pub mod node;
pub mod recovery;
pub mod request_id;
pub mod snapshot;
pub mod state_dir;
pub mod threads;
pub mod timings;
pub mod transport;
pub mod url;

/// etcd's protobuf API: message types from raftwood-kv, gRPC services
/// generated here.
pub mod proto {
    /// etcd's `etcdserverpb` package: messages and services.
    pub mod etcdserverpb {
        pub use raftwood_kv::proto::etcdserverpb::*;

        #[allow(
            clippy::all,
            missing_debug_implementations,
            missing_docs,
            reason = "generated code"
        )]
        mod services {
            tonic::include_proto!("etcdserverpb");
        }
        pub use services::*;
    }
    pub use raftwood_kv::proto::{authpb, mvccpb, raftwoodpb};
}

pub use config::ServerConfig;
pub use error::{ConfigError, ServerError};
pub use grpc::MemberHandle;
pub use node::{RunningNode, start};
