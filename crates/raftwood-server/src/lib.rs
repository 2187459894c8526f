//! A raftwood node: drives the Raft core, stores its log, talks to peers and serves etcd's v3 gRPC API.
