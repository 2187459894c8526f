//! Checks etcd makes before a request enters the raft log. They need no
//! state, so the server runs them before proposing ([`validate_request`]),
//! and the state machine re-runs the structural ones when applying
//! ([`validate_structure`]) so that an unchecked entry is refused alike on
//! every member. The size limits are left out of apply on purpose: they are
//! configuration, and members with different settings must still apply the
//! same log identically.

use prost::Message;

use crate::encoding;
use crate::error::EtcdError;
use crate::mvcc::RangeEnd;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, range_request, request_op,
};
use crate::proto::raftwoodpb::{InternalRequest, internal_request};

/// Limits on requests (etcd's `--max-txn-ops` and `--max-request-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most compares, or operations of one branch, in one txn level.
    pub max_txn_ops: usize,
    /// Largest encoded request.
    pub max_request_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        // etcd's defaults: 128 operations, 1.5 MiB.
        RequestLimits {
            max_txn_ops: 128,
            max_request_bytes: 1536 * 1024,
        }
    }
}

/// Checks a request the server is about to propose: its encoded size, then
/// everything [`validate_structure`] checks, with the txn op limit.
pub fn validate_request(
    request: &InternalRequest,
    limits: &RequestLimits,
) -> Result<(), EtcdError> {
    if request.encoded_len() > limits.max_request_bytes {
        return Err(EtcdError::RequestTooLarge);
    }
    validate_with(request, limits.max_txn_ops)
}

/// The checks that need no configuration (every limit off).
pub fn validate_structure(request: &InternalRequest) -> Result<(), EtcdError> {
    validate_with(request, usize::MAX)
}

fn validate_with(request: &InternalRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &request.request {
        Some(internal_request::Request::Put(put)) => validate_put(put),
        Some(internal_request::Request::DeleteRange(delete)) => validate_delete_range(delete),
        Some(internal_request::Request::Txn(txn)) => validate_txn(txn, max_txn_ops),
        Some(internal_request::Request::Compaction(_))
        | Some(internal_request::Request::LeaseGrant(_))
        | Some(internal_request::Request::LeaseRevoke(_)) => Ok(()),
        None => Err(EtcdError::EmptyRequest),
    }
}

/// etcd's checks of a Range: a key, and sort options from the enums.
pub fn validate_range(request: &RangeRequest) -> Result<(), EtcdError> {
    if request.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if range_request::SortOrder::try_from(request.sort_order).is_err()
        || range_request::SortTarget::try_from(request.sort_target).is_err()
    {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

/// etcd's checks of a Put: a key; no value with ignore_value; no lease with
/// ignore_lease. And raftwood's own: a key the store can hold (see
/// [`EtcdError::KeyTooLarge`]) — a fixed property of the format, not
/// configuration, so it is checked when applying too.
pub fn validate_put(request: &PutRequest) -> Result<(), EtcdError> {
    if request.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if encoding::history_key_len(&request.key) > encoding::MAX_STORED_KEY_BYTES {
        return Err(EtcdError::KeyTooLarge);
    }
    if request.ignore_value && !request.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

/// etcd's check of a DeleteRange: a key.
pub fn validate_delete_range(request: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if request.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// etcd's checks of a Txn: the op limit per level, keys of compares, every
/// operation (recursively), then that no key is written twice.
pub fn validate_txn(request: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    check_txn_ops(request, max_txn_ops)?;
    // Overlaps are checked after the cheap checks, as etcd does.
    check_overlaps(&request.success)?;
    check_overlaps(&request.failure)?;
    Ok(())
}

fn check_txn_ops(request: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    let ops = request
        .compare
        .len()
        .max(request.success.len())
        .max(request.failure.len());
    if ops > max_txn_ops {
        return Err(EtcdError::TooManyOps);
    }
    if request.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in request.success.iter().chain(&request.failure) {
        check_op(op, max_txn_ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &op.request {
        Some(request_op::Request::RequestRange(range)) => validate_range(range),
        Some(request_op::Request::RequestPut(put)) => validate_put(put),
        Some(request_op::Request::RequestDeleteRange(delete)) => validate_delete_range(delete),
        Some(request_op::Request::RequestTxn(txn)) => check_txn_ops(txn, max_txn_ops),
        // etcd answers an operation without a request this way.
        None => Err(EtcdError::KeyNotFound),
    }
}

/// Deleted key ranges of one txn level.
#[derive(Debug, Default)]
struct Deletes {
    ranges: Vec<(Vec<u8>, RangeEnd)>,
}

impl Deletes {
    fn covers(&self, key: &[u8]) -> bool {
        self.ranges
            .iter()
            .any(|(start, end)| end.contains(start, key))
    }
}

/// The keys put by one list of operations (and its nested txns) and the
/// ranges it deletes; a put that meets another put or a delete of the same
/// key in the same branch path is a duplicate. Then/else branches of a
/// nested txn exclude each other, so they may put the same key.
fn check_overlaps(ops: &[RequestOp]) -> Result<(Vec<Vec<u8>>, Deletes), EtcdError> {
    let mut deletes = Deletes::default();
    for op in ops {
        if let Some(request_op::Request::RequestDeleteRange(delete)) = &op.request {
            deletes.ranges.push((
                delete.key.clone(),
                RangeEnd::from_request(&delete.range_end),
            ));
        }
    }
    let mut puts: Vec<Vec<u8>> = Vec::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(txn)) = &op.request else {
            continue;
        };
        let (puts_then, deletes_then) = check_overlaps(&txn.success)?;
        let (puts_else, deletes_else) = check_overlaps(&txn.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deletes.covers(key) {
                return Err(EtcdError::DuplicateKey);
            }
        }
        for key in &puts_else {
            if (puts.contains(key) && !puts_then.contains(key)) || deletes.covers(key) {
                return Err(EtcdError::DuplicateKey);
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        deletes.ranges.extend(deletes_then.ranges);
        deletes.ranges.extend(deletes_else.ranges);
    }
    for op in ops {
        if let Some(request_op::Request::RequestPut(put)) = &op.request {
            if puts.contains(&put.key) || deletes.covers(&put.key) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.push(put.key.clone());
        }
    }
    Ok((puts, deletes))
}
