//! A txn's duplicate check costs O(n log² n) in its operations, however
//! they are nested: the costliest txns that fit in etcd's default
//! `--max-request-bytes` are checked in well under a second (release
//! build; `examples/txn_validation` times them), where the check that
//! searched lists took over a minute each, on every member applying them.

#[path = "support/txn_shapes.rs"]
mod txn_shapes;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use raftwood_kv::EtcdError;
use raftwood_kv::validate::{RequestLimits, validate_request, validate_structure};

/// Well above what the check needs here unoptimized (about 7 s for all
/// shapes), below what a quadratic check needs for the first alone (58 s
/// optimized).
const BOUND: Duration = Duration::from_secs(30);

#[test]
fn the_costliest_txns_that_fit_are_checked_in_seconds_not_minutes() {
    let limits = RequestLimits::default();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        for (name, shape) in txn_shapes::SHAPES {
            let request = shape(limits.max_request_bytes);
            let applied = validate_structure(&request);
            let proposed = validate_request(&request, &limits);
            done.send((name, applied, proposed))
                .expect("the test waits");
        }
    });
    for _ in txn_shapes::SHAPES {
        let (name, applied, proposed) = finished
            .recv_timeout(BOUND)
            .expect("a txn that fits the request limit is checked within the bound");
        assert_eq!(applied, Ok(()), "{name}: every shape is a valid txn");
        // Flat shapes exceed etcd's 128 operations per level; the others
        // stay within it and are proposed.
        let expected = if name.starts_with("flat") {
            Err(EtcdError::TooManyOps)
        } else {
            Ok(())
        };
        assert_eq!(proposed, expected, "{name} at the edge");
    }
}
