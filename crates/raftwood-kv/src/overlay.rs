//! Writes of the apply call in progress, not yet in the LSM.
//!
//! One apply call turns many raft entries into one `WriteBatch`; while it
//! runs, later requests (and later operations of the same txn) must see the
//! earlier ones' writes. The overlay holds them in key order, is read before
//! the LSM, and becomes the batch at the end. An undo log lets a request
//! that is refused half-way (a txn whose third operation fails) leave no
//! trace; requests that are refused only before their first write skip it,
//! since it holds a copy of every key written (a delete of a huge range
//! writes several keys per deleted key).

use std::collections::BTreeMap;

/// What the overlay held for a key before a write: `None` if nothing,
/// else the pending write (`Some(value)` or `None` for a delete).
type Previous = Option<Option<Vec<u8>>>;

/// Whether the writes of a request may have to be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Undo {
    /// The request can be refused after writing: keep an undo log.
    #[default]
    Kept,
    /// The request is refused, if at all, before its first write.
    Skipped,
}

/// Pending writes: `Some(value)` a put, `None` a delete.
#[derive(Debug, Default)]
pub struct Overlay {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// For each write since [`Overlay::begin`], the key and what the overlay
    /// held for it before (`None`: nothing). Empty under [`Undo::Skipped`].
    undo: Vec<(Vec<u8>, Previous)>,
    /// The undo mode of the request in progress.
    mode: Undo,
    /// Whether the request in progress wrote anything.
    written: bool,
}

impl Overlay {
    /// Starts a request: under [`Undo::Kept`], later writes can be rolled
    /// back to here.
    pub fn begin(&mut self, mode: Undo) {
        self.undo.clear();
        self.mode = mode;
        self.written = false;
    }

    /// Forgets everything written since [`Overlay::begin`]. Returns false
    /// if that is impossible: an [`Undo::Skipped`] request wrote and was
    /// then refused, which breaks its promise (the caller must stop).
    #[must_use]
    pub fn rollback(&mut self) -> bool {
        if self.mode == Undo::Skipped {
            return !self.written;
        }
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
        true
    }

    /// Notes a write; `undo_key` is the key's copy under [`Undo::Kept`].
    fn record(&mut self, undo_key: Option<Vec<u8>>, previous: Previous) {
        self.written = true;
        if let Some(key) = undo_key {
            self.undo.push((key, previous));
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// An undo log only under [`Undo::Kept`], and only for a request that
    /// wrote.
    fn check_invariants(&self) {
        assert!(self.mode == Undo::Kept || self.undo.is_empty());
        assert!(self.written || self.undo.is_empty());
    }

    /// Records a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let undo_key = (self.mode == Undo::Kept).then(|| key.clone());
        let previous = self.writes.insert(key, Some(value));
        self.record(undo_key, previous);
    }

    /// Records a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        let undo_key = (self.mode == Undo::Kept).then(|| key.clone());
        let previous = self.writes.insert(key, None);
        self.record(undo_key, previous);
    }

    /// `Some(Some(v))` written, `Some(None)` deleted, `None` untouched.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|v| v.as_deref())
    }

    /// The pending writes in key order.
    pub fn writes(&self) -> &BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        &self.writes
    }

    /// The pending writes, consumed: moving them into the engine's batch
    /// frees each as it goes, so a huge apply does not hold both copies.
    pub fn into_writes(self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.writes
    }
}
