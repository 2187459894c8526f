//! Writes of the apply call in progress, not yet in the LSM.
//!
//! One apply call turns many raft entries into one `WriteBatch`; while it
//! runs, later requests (and later operations of the same txn) must see the
//! earlier ones' writes. The overlay holds them in key order, is read before
//! the LSM, and becomes the batch at the end. An undo log lets a request
//! that is refused half-way leave no trace.

use std::collections::BTreeMap;

/// What the overlay held for a key before a write: `None` if nothing,
/// else the pending write (`Some(value)` or `None` for a delete).
type Previous = Option<Option<Vec<u8>>>;

/// Pending writes: `Some(value)` a put, `None` a delete.
#[derive(Debug, Default)]
pub struct Overlay {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// For each write since [`Overlay::begin`], the key and what the overlay
    /// held for it before (`None`: nothing).
    undo: Vec<(Vec<u8>, Previous)>,
}

impl Overlay {
    /// Starts a request: later writes can be rolled back to here.
    pub fn begin(&mut self) {
        self.undo.clear();
    }

    /// Forgets everything written since [`Overlay::begin`].
    pub fn rollback(&mut self) {
        while let Some((key, previous)) = self.undo.pop() {
            match previous {
                Some(previous) => {
                    self.writes.insert(key, previous);
                }
                None => {
                    self.writes.remove(&key);
                }
            }
        }
    }

    /// Records a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let previous = self.writes.insert(key.clone(), Some(value));
        self.undo.push((key, previous));
    }

    /// Records a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        let previous = self.writes.insert(key.clone(), None);
        self.undo.push((key, previous));
    }

    /// `Some(Some(v))` written, `Some(None)` deleted, `None` untouched.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|v| v.as_deref())
    }

    /// The pending writes in key order.
    pub fn writes(&self) -> &BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        &self.writes
    }
}
