//! Test support shared by the integration tests of `raftwood-raft`: an
//! in-memory cluster driver ([`cluster`]) and compact, stable text
//! renderings of messages, entries, effects and state ([`format`]).
//!
//! Each test binary includes this module with `mod support;` and uses only a
//! part of it, hence the `dead_code` allowance.
#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses only a part"
)]

pub mod cluster;
pub mod format;
