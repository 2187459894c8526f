//! Checks etcd makes before a request enters the raft log. They need no
//! state, so the server runs them before proposing ([`validate_request`]),
//! and the state machine re-runs the structural ones when applying
//! ([`validate_structure`]) so that an unchecked entry is refused alike on
//! every member. The size limits are left out of apply on purpose: they are
//! configuration, and members with different settings must still apply the
//! same log identically.

use std::collections::BTreeSet;

use prost::Message;

use crate::encoding;
use crate::error::EtcdError;
use crate::key_intervals::KeyIntervals;
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
        | Some(internal_request::Request::LeaseRevoke(_))
        | Some(internal_request::Request::MemberChange(_))
        | Some(internal_request::Request::MemberAttributes(_))
        | Some(internal_request::Request::MemberPeerUrls(_)) => Ok(()),
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

/// What one list of operations (with its nested txns) writes.
/// Keys are borrowed from the request.
#[derive(Debug, Default)]
struct Writes<'a> {
    puts: BTreeSet<&'a [u8]>,
    deletes: KeyIntervals,
}

impl<'a> Writes<'a> {
    /// True if a key of `puts` is put or deleted here.
    fn meets(&self, puts: &BTreeSet<&'a [u8]>) -> bool {
        let (fewer, more) = if puts.len() <= self.puts.len() {
            (puts, &self.puts)
        } else {
            (&self.puts, puts)
        };
        fewer.iter().any(|key| more.contains(key)) || self.deletes.covers_any(puts)
    }

    /// Everything both write, the smaller merged into the larger.
    fn union(self, other: Writes<'a>) -> Writes<'a> {
        Writes {
            puts: merge_sets(self.puts, other.puts),
            deletes: self.deletes.union(other.deletes),
        }
    }
}

fn merge_sets<'a>(a: BTreeSet<&'a [u8]>, b: BTreeSet<&'a [u8]>) -> BTreeSet<&'a [u8]> {
    let (mut larger, smaller) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    larger.extend(smaller);
    larger
}

/// The keys put by one list of operations (and its nested txns) and the
/// ranges it deletes, refusing etcd's duplicates: a put of a key that the
/// same branch path already puts, or deletes in this list or an earlier
/// nested txn of it. The then and else branches of a nested txn exclude
/// each other, so they may put the same key.
///
/// Every check looks up the members of the smaller side in the larger, and
/// every merge inserts the smaller into the larger, so a key is touched
/// O(log n) times however deep it is nested: O(n log² n) in all.
fn check_overlaps(ops: &[RequestOp]) -> Result<Writes<'_>, EtcdError> {
    let mut level = Writes::default();
    for op in ops {
        if let Some(request_op::Request::RequestDeleteRange(delete)) = &op.request {
            level.deletes.insert_request(&delete.key, &delete.range_end);
        }
    }
    for op in ops {
        let Some(request_op::Request::RequestTxn(txn)) = &op.request else {
            continue;
        };
        let branches = check_overlaps(&txn.success)?.union(check_overlaps(&txn.failure)?);
        if level.meets(&branches.puts) {
            return Err(EtcdError::DuplicateKey);
        }
        level = level.union(branches);
    }
    for op in ops {
        if let Some(request_op::Request::RequestPut(put)) = &op.request {
            if level.puts.contains(put.key.as_slice()) || level.deletes.covers(&put.key) {
                return Err(EtcdError::DuplicateKey);
            }
            level.puts.insert(&put.key);
        }
    }
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::RangeEnd;
    use proptest::prelude::*;

    /// etcd's duplicate check as it reads, with every lookup a linear
    /// search: the model the fast check must agree with.
    type ModelWrites = (Vec<Vec<u8>>, Vec<(Vec<u8>, RangeEnd)>);

    fn model(ops: &[RequestOp]) -> Option<ModelWrites> {
        let covers = |deletes: &[(Vec<u8>, RangeEnd)], key: &[u8]| {
            deletes.iter().any(|(start, end)| end.contains(start, key))
        };
        let mut deletes = Vec::new();
        for op in ops {
            if let Some(request_op::Request::RequestDeleteRange(delete)) = &op.request {
                deletes.push((
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
            let (puts_then, deletes_then) = model(&txn.success)?;
            let (puts_else, deletes_else) = model(&txn.failure)?;
            for key in &puts_then {
                if puts.contains(key) || covers(&deletes, key) {
                    return None;
                }
            }
            for key in &puts_else {
                if (puts.contains(key) && !puts_then.contains(key)) || covers(&deletes, key) {
                    return None;
                }
            }
            puts.extend(puts_then);
            puts.extend(puts_else);
            deletes.extend(deletes_then);
            deletes.extend(deletes_else);
        }
        for op in ops {
            if let Some(request_op::Request::RequestPut(put)) = &op.request {
                if puts.contains(&put.key) || covers(&deletes, &put.key) {
                    return None;
                }
                puts.push(put.key.clone());
            }
        }
        Some((puts, deletes))
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0u8)], 1..3)
    }

    fn leaf() -> impl Strategy<Value = RequestOp> {
        prop_oneof![
            key().prop_map(|key| request_op::Request::RequestPut(PutRequest {
                key,
                ..Default::default()
            })),
            (key(), prop_oneof![Just(Vec::new()), Just(vec![0]), key()]).prop_map(
                |(key, range_end)| request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    range_end,
                    prev_kv: false,
                })
            ),
        ]
        .prop_map(|request| RequestOp {
            request: Some(request),
        })
    }

    fn ops() -> impl Strategy<Value = Vec<RequestOp>> {
        let op = leaf().prop_recursive(4, 24, 4, |inner| {
            (
                prop::collection::vec(inner.clone(), 0..4),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(success, failure)| RequestOp {
                    request: Some(request_op::Request::RequestTxn(TxnRequest {
                        compare: Vec::new(),
                        success,
                        failure,
                    })),
                })
        });
        prop::collection::vec(op, 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn duplicates_are_refused_exactly_as_etcd_refuses_them(success in ops()) {
            let txn = TxnRequest { success, ..Default::default() };
            let expected = model(&txn.success).is_some();
            prop_assert_eq!(validate_txn(&txn, usize::MAX).is_ok(), expected, "{:?}", txn);
        }
    }
}
