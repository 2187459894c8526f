//! Protobuf messages generated at build time from `proto/` (see build.rs).
//!
//! Each package is a sibling module because prost refers across packages
//! with `super::`.

#![allow(clippy::all, clippy::pedantic, missing_docs, reason = "generated code")]

/// `mvccpb`: KeyValue and Event.
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// `authpb`: users, roles and permissions (used by the Auth service).
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// `etcdserverpb`: every request and response of etcd 3.4's client API.
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// `raftwoodpb`: the raft log entry payload.
pub mod raftwoodpb {
    include!(concat!(env!("OUT_DIR"), "/raftwoodpb.rs"));
}
