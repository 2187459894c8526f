//! Snapshots: the state machine's checkpoint plus the log position and
//! membership it stands for.
//!
//! A member takes one when its applied index has moved `--snapshot-count`
//! entries past the last, then lets the raft core compact its log up to
//! it. A follower that needs entries the leader no longer has receives the
//! leader's latest snapshot as a stream of chunks (`docs/peer-protocol.md`,
//! sent and reassembled by `transport/`), installs it as its state machine,
//! and only then tells its raft core.

mod meta_file;
mod store;

pub use meta_file::{META_FILE, decode as decode_meta};
pub use store::SnapshotStore;
