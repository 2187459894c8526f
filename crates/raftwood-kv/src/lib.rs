//! etcd's MVCC key-value model (revisions, versions, txns, compaction) as a
//! deterministic state machine on raftwood-lsm.
//!
//! The server proposes [`proto::raftwoodpb::InternalRequest`]s through raft
//! (after [`KvStore::validate`]) and hands committed entries to
//! [`KvStore::apply`]; reads go to [`KvStore::range`]. The key layout on
//! disk is specified in `docs/kv-format.md`.

mod apply;
mod cursor;
mod encoding;
pub mod error;
mod mvcc;
mod overlay;
pub mod proto;
mod range;
mod store;
pub mod validate;

pub use error::{Code, EtcdError, KvError, RequestError};
pub use range::resolve_revision;
pub use store::{ApplyOutcome, ApplyResponse, CommittedEntry, EventBatch, KvOptions, KvStore};
pub use validate::{
    RequestLimits, validate_delete_range, validate_put, validate_range, validate_request,
    validate_txn,
};
