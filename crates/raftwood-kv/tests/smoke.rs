#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use support::Harness;

#[test]
fn first_put_is_revision_two_like_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(dir.path());
    assert_eq!(h.store.current_revision(), 1);
    assert_eq!(h.put(b"foo", b"bar"), 2);
    assert_eq!(h.get(b"foo"), Some(b"bar".to_vec()));
    assert_eq!(h.store.current_revision(), 2);
    assert_eq!(h.store.applied_index(), 1);
}
