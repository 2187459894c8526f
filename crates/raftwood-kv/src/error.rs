//! Errors. Two kinds, never mixed:
//!
//! - [`EtcdError`]: a request is refused, deterministically, with etcd's
//!   message text and a transport-free status [`Code`]. Every member refuses
//!   the same request the same way, so applying the log stays deterministic.
//! - [`KvError`]: the storage failed or holds damaged data. The store is
//!   fail-stop: after a storage error during apply it refuses further applies
//!   and the server must stop and reopen from what is durable.

/// A status code with the meaning of the gRPC code of the same name, so the
/// server maps it one to one without this crate knowing gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request is malformed or names something invalid.
    InvalidArgument,
    /// A revision outside the range the store holds.
    OutOfRange,
    /// A named entity (a lease) does not exist.
    NotFound,
    /// The system is not in the state the request requires.
    FailedPrecondition,
    /// The request is not supported by this version.
    Unimplemented,
    /// An invariant was broken (for example a raft log entry that does not
    /// decode).
    Internal,
}

/// A request refused with one of etcd's errors. `Display` is etcd's exact
/// message text, which clients (etcdctl) print and some match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// A key (of a request, a txn operation or a compare) is empty.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` or `ignore_lease` on a key that does not exist, or a
    /// txn operation without a request.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// More compares or operations in one txn level than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn that would change one key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A sort order or target outside the enums.
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    /// The request's encoded size exceeds the configured limit.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// A put's key is longer than the store can hold: its history key (the
    /// key with each zero byte doubled, plus 11 bytes) would pass the
    /// engine's 64 KiB key limit. etcd has no such limit, hence raftwood's
    /// own text.
    #[error("raftwood: key is too large (at most 65525 bytes, each zero byte counting twice)")]
    KeyTooLarge,
    /// A read or compaction below the compacted revision.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// A read or compaction above the current revision.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// A lease id that is not granted.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease grant for an id that is already granted.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A lease grant with a TTL above etcd's maximum (9,000,000,000 s).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// A member id the registry does not hold.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// Peer URLs another member already has.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// A raft log entry whose payload does not decode. Not an etcd error:
    /// etcd would crash; raftwood refuses the entry on every member alike.
    #[error("raftwood: malformed request in raft log entry {index}")]
    MalformedEntry {
        /// The raft log index of the entry.
        index: u64,
    },
    /// A request to propose that carries no operation (checked before
    /// proposing; not an etcd error, etcd's API cannot express it).
    #[error("raftwood: request carries no operation")]
    EmptyRequest,
    /// A raft log entry that carries no request this version understands.
    #[error("raftwood: unsupported request in raft log entry {index}")]
    UnsupportedRequest {
        /// The raft log index of the entry.
        index: u64,
    },
}

impl EtcdError {
    /// The status code etcd answers this error with.
    pub fn code(&self) -> Code {
        match self {
            EtcdError::EmptyKey
            | EtcdError::KeyNotFound
            | EtcdError::ValueProvided
            | EtcdError::LeaseProvided
            | EtcdError::TooManyOps
            | EtcdError::DuplicateKey
            | EtcdError::InvalidSortOption
            | EtcdError::RequestTooLarge
            | EtcdError::KeyTooLarge
            | EtcdError::EmptyRequest => Code::InvalidArgument,
            EtcdError::Compacted | EtcdError::FutureRevision | EtcdError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            EtcdError::LeaseNotFound | EtcdError::MemberNotFound => Code::NotFound,
            EtcdError::LeaseExists | EtcdError::PeerUrlExists => Code::FailedPrecondition,
            EtcdError::UnsupportedRequest { .. } => Code::Unimplemented,
            EtcdError::MalformedEntry { .. } => Code::Internal,
        }
    }
}

/// A storage failure or damaged data. Fail-stop: see the module comment.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The storage engine failed.
    #[error("storage engine: {0}")]
    Storage(#[from] raftwood_lsm::Error),
    /// A record in the store does not decode (see docs/kv-format.md).
    #[error("corrupt kv record: {0}")]
    Corruption(String),
    /// The store was written in a layout this code does not read (see
    /// docs/kv-format.md, "Format version").
    #[error(
        "kv store written in format version {found}; this raftwood reads version {supported} only"
    )]
    UnsupportedFormat {
        /// The store's version (1 for a store without a format key).
        found: i64,
        /// The version this code reads.
        supported: i64,
    },
    /// An earlier apply failed; the store must be reopened.
    #[error("an earlier apply failed with a storage error; reopen the store")]
    Poisoned,
    /// The caller broke the apply contract (entries out of order).
    #[error("invalid apply call: {0}")]
    InvalidApply(String),
    /// An I/O error outside the engine (for example creating a directory).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A request that failed: refused deterministically, or a storage failure.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Refused with one of etcd's errors.
    #[error(transparent)]
    Refused(#[from] EtcdError),
    /// The storage failed (see [`KvError`]).
    #[error(transparent)]
    Storage(#[from] KvError),
}

impl RequestError {
    /// The status code to answer with: the refusal's, or `Internal`.
    pub fn code(&self) -> Code {
        match self {
            RequestError::Refused(error) => error.code(),
            RequestError::Storage(_) => Code::Internal,
        }
    }
}

impl From<raftwood_lsm::Error> for RequestError {
    fn from(error: raftwood_lsm::Error) -> Self {
        RequestError::Storage(KvError::Storage(error))
    }
}
