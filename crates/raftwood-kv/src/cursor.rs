//! A forward cursor over one key space that merges the pending writes of
//! the apply in progress ([`Overlay`]) over the LSM, the overlay winning.

use std::collections::BTreeMap;
use std::ops::Bound;

use raftwood_lsm::{Db, DbIterator, ReadOptions, Snapshot};

use crate::error::KvError;
use crate::live_cache::LiveCache;
use crate::overlay::Overlay;

/// Where a read looks: the LSM (at a snapshot, or its latest state while
/// the apply lock is held) and, during apply, the pending writes.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The engine.
    pub db: &'a Db,
    /// Read at this snapshot (server reads); `None` during apply.
    pub snapshot: Option<&'a Snapshot>,
    /// Pending writes of the apply in progress.
    pub overlay: Option<&'a Overlay>,
    /// During apply, the engine's live entries known from earlier applies
    /// (the engine's latest state, like `snapshot: None`).
    pub live_cache: Option<&'a LiveCache>,
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("snapshot", &self.snapshot.map(Snapshot::sequence_number))
            .field("overlay", &self.overlay.is_some())
            .finish()
    }
}

impl<'a> Source<'a> {
    /// The value of a raw key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(pending) = self.overlay.and_then(|o| o.get(key)) {
            return Ok(pending.map(<[u8]>::to_vec));
        }
        // Invariant: the cache describes the engine's latest state, so it
        // may answer only reads of that state.
        debug_assert!(self.live_cache.is_none() || self.snapshot.is_none());
        if let Some(known) = self.live_cache.and_then(|cache| cache.get(key)) {
            return Ok(known.map(<[u8]>::to_vec));
        }
        Ok(match self.snapshot {
            Some(snapshot) => self.db.get_at(key, snapshot)?,
            None => self.db.get(key)?,
        })
    }

    /// A cursor over raw keys in `[lower, upper)`, not yet positioned.
    pub fn cursor(&self, lower: Vec<u8>, upper: Vec<u8>) -> Result<Cursor<'a>, KvError> {
        let lsm = self.db.iter(ReadOptions {
            lower_bound: Some(lower),
            upper_bound: Some(upper.clone()),
            snapshot: self.snapshot,
        })?;
        Ok(Cursor {
            overlay: self.overlay.map(Overlay::writes),
            lsm,
            upper,
            overlay_entry: None,
            on: On::Nothing,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Nothing,
    Lsm,
    Overlay,
}

/// See the module comment. Moves forward only.
pub struct Cursor<'a> {
    overlay: Option<&'a BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    lsm: DbIterator,
    upper: Vec<u8>,
    /// The overlay entry at or after the position (below `upper`).
    overlay_entry: Option<(&'a [u8], Option<&'a [u8]>)>,
    on: On,
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("on", &self.on).finish()
    }
}

impl<'a> Cursor<'a> {
    fn overlay_from(&self, bound: Bound<&[u8]>) -> Option<(&'a [u8], Option<&'a [u8]>)> {
        let overlay = self.overlay?;
        // An empty or inverted interval holds nothing (and BTreeMap::range
        // would panic on it).
        let empty = match bound {
            Bound::Included(start) => start >= self.upper.as_slice(),
            Bound::Excluded(start) => start >= self.upper.as_slice(),
            Bound::Unbounded => false,
        };
        if empty {
            return None;
        }
        let (key, value) = overlay
            .range::<[u8], _>((bound, Bound::Excluded(self.upper.as_slice())))
            .next()?;
        Some((key.as_slice(), value.as_deref()))
    }

    /// Moves to the first key at or after `target`.
    pub fn seek(&mut self, target: &[u8]) -> Result<(), KvError> {
        self.lsm.seek(target)?;
        self.overlay_entry = self.overlay_from(Bound::Included(target));
        self.settle()?;
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        Ok(())
    }

    /// Moves past the current key.
    pub fn next(&mut self) -> Result<(), KvError> {
        let before = cfg!(debug_assertions).then(|| self.key().to_vec());
        match self.on {
            On::Nothing => return Ok(()),
            On::Lsm => self.lsm.next()?,
            On::Overlay => {
                if let Some((key, _)) = self.overlay_entry {
                    if self.lsm.valid() && self.lsm.key() == key {
                        self.lsm.next()?;
                    }
                    self.overlay_entry = self.overlay_from(Bound::Excluded(key));
                }
            }
        }
        self.settle()?;
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        debug_assert!(
            !self.valid() || before.is_none_or(|before| self.key() > before.as_slice()),
            "the cursor did not move forward"
        );
        Ok(())
    }

    /// The merge's invariants at a position: on the smaller of the two
    /// sources' keys (the overlay's on a tie), never on a pending delete,
    /// below the upper bound.
    fn check_invariants(&self) {
        let lsm_key = self.lsm.valid().then(|| self.lsm.key());
        match self.on {
            On::Nothing => assert!(self.overlay_entry.is_none() && lsm_key.is_none()),
            On::Lsm => assert!(
                lsm_key.is_some_and(|lsm| self.overlay_entry.is_none_or(|(key, _)| lsm < key))
            ),
            On::Overlay => assert!(self.overlay_entry.is_some_and(|(key, value)| {
                value.is_some() && lsm_key.is_none_or(|lsm| lsm >= key)
            })),
        }
        assert!(!self.valid() || self.key() < self.upper.as_slice());
    }

    /// Picks the smaller of the two sources' keys, skipping overlay deletes
    /// and the LSM entries they hide.
    fn settle(&mut self) -> Result<(), KvError> {
        loop {
            let lsm_key = self.lsm.valid().then(|| self.lsm.key());
            match (self.overlay_entry, lsm_key) {
                (None, None) => {
                    self.on = On::Nothing;
                    return Ok(());
                }
                (None, Some(_)) => {
                    self.on = On::Lsm;
                    return Ok(());
                }
                (Some((key, value)), lsm_key) => {
                    if lsm_key.is_some_and(|l| l < key) {
                        self.on = On::Lsm;
                        return Ok(());
                    }
                    if value.is_some() {
                        self.on = On::Overlay;
                        return Ok(());
                    }
                    // A pending delete: hide the LSM's entry of the same key.
                    if lsm_key == Some(key) {
                        self.lsm.next()?;
                    }
                    self.overlay_entry = self.overlay_from(Bound::Excluded(key));
                }
            }
        }
    }

    /// True if the cursor is on a key.
    pub fn valid(&self) -> bool {
        self.on != On::Nothing
    }

    /// The current raw key (empty if not valid).
    pub fn key(&self) -> &[u8] {
        match self.on {
            On::Nothing => &[],
            On::Lsm => self.lsm.key(),
            On::Overlay => self.overlay_entry.map_or(&[], |(k, _)| k),
        }
    }

    /// The current value (empty if not valid).
    pub fn value(&self) -> &[u8] {
        match self.on {
            On::Nothing => &[],
            On::Lsm => self.lsm.value(),
            On::Overlay => self.overlay_entry.and_then(|(_, v)| v).unwrap_or(&[]),
        }
    }
}
