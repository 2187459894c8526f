//! A Range request served at a read view: etcd's revision checks, then the
//! scan, filters, sort and limit in etcd's order.

use crate::error::{EtcdError, RequestError};
use crate::mvcc::{Mvcc, RangeEnd, ScanOptions};
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader, range_request};
use crate::proto::mvccpb::KeyValue;
use crate::validate::validate_range;

/// Checks a requested read revision against the view: 0 or less means
/// `current`; above it is a future revision; below `compacted` is gone.
pub fn resolve_revision(requested: i64, current: i64, compacted: i64) -> Result<i64, EtcdError> {
    debug_assert!(
        compacted <= current,
        "compacted {compacted} above current {current}"
    );
    if requested > current {
        return Err(EtcdError::FutureRevision);
    }
    let revision = if requested <= 0 { current } else { requested };
    if revision < compacted {
        return Err(EtcdError::Compacted);
    }
    Ok(revision)
}

/// Serves `request` from `mvcc`, whose newest revision is `current`.
pub fn serve(
    mvcc: &Mvcc<'_>,
    request: &RangeRequest,
    current: i64,
    compacted: i64,
) -> Result<RangeResponse, RequestError> {
    validate_range(request)?;
    let revision = resolve_revision(request.revision, current, compacted)?;
    let sort_order = range_request::SortOrder::try_from(request.sort_order)
        .map_err(|_| EtcdError::InvalidSortOption)?;
    let sort_target = range_request::SortTarget::try_from(request.sort_target)
        .map_err(|_| EtcdError::InvalidSortOption)?;
    let filtered = request.min_mod_revision != 0
        || request.max_mod_revision != 0
        || request.min_create_revision != 0
        || request.max_create_revision != 0;
    // As etcd: sorting or filtering needs every key; otherwise one key past
    // the limit tells whether there are more.
    let fetch_limit = if sort_order != range_request::SortOrder::None || filtered {
        None
    } else if request.limit > 0 {
        Some(
            usize::try_from(request.limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        )
    } else {
        None
    };
    let scan = mvcc.scan(
        &request.key,
        &RangeEnd::from_request(&request.range_end),
        revision,
        current,
        ScanOptions {
            fetch_limit,
            count_only: request.count_only,
            // Sorting by value needs the values even when only keys are
            // returned (etcd sorts first, then drops values).
            with_values: !request.keys_only || sort_target == range_request::SortTarget::Value,
        },
    )?;
    // The scan counts every key of the range and collects a prefix of them.
    debug_assert!(scan.kvs.len() as i64 <= scan.count);
    debug_assert!(fetch_limit.is_none_or(|limit| scan.kvs.len() <= limit));
    debug_assert!(!request.count_only || scan.kvs.is_empty());
    let mut kvs = scan.kvs;
    if request.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= request.max_mod_revision);
    }
    if request.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= request.min_mod_revision);
    }
    if request.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= request.max_create_revision);
    }
    if request.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= request.min_create_revision);
    }
    // etcd sorts ascending when a non-key target is named without an order;
    // keys arrive ascending already.
    let order = if sort_target != range_request::SortTarget::Key
        && sort_order == range_request::SortOrder::None
    {
        range_request::SortOrder::Ascend
    } else {
        sort_order
    };
    if order != range_request::SortOrder::None {
        sort(
            &mut kvs,
            sort_target,
            order == range_request::SortOrder::Descend,
        );
    }
    if request.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    let mut more = false;
    if request.limit > 0 {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        if kvs.len() > limit {
            kvs.truncate(limit);
            more = true;
        }
    }
    Ok(RangeResponse {
        header: Some(ResponseHeader {
            revision: current,
            ..Default::default()
        }),
        kvs,
        more,
        count: scan.count,
    })
}

/// A stable sort by `target`: keys with equal targets stay in key order
/// (in both directions), as etcd's insertion sort leaves them for small
/// results.
fn sort(kvs: &mut [KeyValue], target: range_request::SortTarget, descending: bool) {
    use range_request::SortTarget;
    let compare = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    if descending {
        kvs.sort_by(|a, b| compare(b, a));
    } else {
        kvs.sort_by(compare);
    }
}
