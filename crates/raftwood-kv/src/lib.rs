//! etcd's MVCC key-value model (revisions, versions, txns, compaction) as a
//! deterministic state machine on raftwood-lsm.
//!
//! The server checks a request with [`KvStore::validate`], proposes it
//! through raft as an encoded [`proto::raftwoodpb::InternalRequest`], and
//! hands committed entries to [`KvStore::apply`], which answers each with
//! the etcd response (or etcd's refusal). Reads go to [`KvStore::range`],
//! watchers to [`KvStore::events`]. The key layout on disk is specified in
//! `docs/kv-format.md`.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use prost::Message;
//! use raftwood_kv::proto::etcdserverpb::{PutRequest, RangeRequest};
//! use raftwood_kv::proto::raftwoodpb::{InternalRequest, internal_request};
//! use raftwood_kv::{ApplyResponse, CommittedEntry, KvOptions, KvStore};
//!
//! let dir = tempfile::tempdir()?;
//! let store = KvStore::open(dir.path(), KvOptions::default())?;
//! let put = InternalRequest {
//!     id: 1,
//!     request: Some(internal_request::Request::Put(PutRequest {
//!         key: b"foo".to_vec(),
//!         value: b"bar".to_vec(),
//!         ..Default::default()
//!     })),
//! };
//! store.validate(&put)?;
//! let payload = put.encode_to_vec();
//! // Raft commits the entry at index 1; every member applies it.
//! let outcomes = store.apply(&[CommittedEntry { index: 1, request: Some(&payload) }])?;
//! let Ok(ApplyResponse::Put(response)) = &outcomes[0] else { panic!() };
//! assert_eq!(response.header.as_ref().map(|h| h.revision), Some(2)); // as etcd: first write is revision 2
//!
//! let read = store.range(&RangeRequest { key: b"foo".to_vec(), ..Default::default() })?;
//! assert_eq!(read.kvs[0].value, b"bar");
//! assert_eq!(store.applied_index(), 1);
//! # Ok(()) }
//! ```

mod apply;
mod compaction;
mod cursor;
mod encoding;
pub mod error;
mod hash;
mod key_intervals;
mod live_cache;
pub mod members;
mod mvcc;
mod overlay;
pub mod proto;
mod range;
mod store;
pub mod validate;

pub use error::{Code, EtcdError, KvError, RequestError};
pub use hash::etcd_revision_key;
pub use range::resolve_revision;
pub use store::{
    ApplyOutcome, ApplyResponse, CommittedEntry, EventBatch, HashKv, KvOptions, KvStore, LeaseInfo,
};
pub use validate::{
    RequestLimits, validate_delete_range, validate_put, validate_range, validate_request,
    validate_txn,
};

/// Runs every decoder of the store's key layout (`docs/kv-format.md`) on
/// `data`, checking that what they accept re-encodes as it was read. The
/// fuzz targets' entry point (`fuzz/`); not an API.
#[doc(hidden)]
pub fn fuzz_decode_records(data: &[u8]) {
    use encoding::{CompactionProgress, DeleteProgress};
    let _ = encoding::Record::decode(data, true);
    let _ = encoding::Record::decode(data, false);
    let _ = encoding::decode_lease_key(data);
    let _ = encoding::decode_revision_key(data);
    let _ = encoding::decode_change(data);
    let _ = encoding::decode_meta(data);
    if let Ok((key, revision)) = encoding::decode_history_key(data) {
        assert_eq!(
            encoding::history_key(&key, revision),
            data,
            "history key round trip"
        );
    }
    if let Ok(progress) = DeleteProgress::decode(data) {
        assert_eq!(progress.encode(), data, "delete progress round trip");
    }
    if let Ok(progress) = CompactionProgress::decode(data) {
        assert_eq!(progress.encode(), data, "compaction progress round trip");
    }
}
