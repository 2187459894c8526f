//! [`DbIterator`]: the user's view of the merged internal stream at one
//! snapshot — the newest visible version of each key, tombstones and
//! range-deleted keys hidden, clipped to optional bounds.

use std::sync::Arc;

use crate::db::{SeekCharges, SuperVersion};
use crate::error::Result;
use crate::iterator::InternalIterator;
use crate::iterator::merge::MergeIterator;
use crate::key::{self, MAX_SEQUENCE_NUMBER, RangeTombstone, ValueKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// The inner iterator is on the current entry (or just past it).
    Forward,
    /// The inner iterator is on the last entry before the current key.
    Reverse,
}

/// A bidirectional cursor over user keys and values.
pub struct DbIterator {
    inner: MergeIterator,
    snapshot_sequence_number: u64,
    /// Visible range tombstones (seq <= snapshot), sorted by start.
    tombstones: Vec<RangeTombstone>,
    lower_bound: Option<Vec<u8>>,
    upper_bound: Option<Vec<u8>>,
    direction: Direction,
    /// True if the cursor is on a key.
    valid: bool,
    /// The current key and value while moving backwards, when the inner
    /// iterator has moved past them. Moving forwards the inner iterator sits
    /// on the current entry, and `key`/`value` read it there, uncopied.
    key: Vec<u8>,
    value: Vec<u8>,
    /// The user key whose older versions a forward step skips; a buffer kept
    /// across steps so that stepping does not allocate.
    skip: Vec<u8>,
    /// The key a step leaves, to assert that it moved (debug builds only).
    #[cfg(debug_assertions)]
    left: Vec<u8>,
    // Holds the memtables and tables alive while iterating.
    _super_version: Arc<SuperVersion>,
    /// What each `seek` costs the level-0 tables (`None` if a seek touches
    /// at most one table).
    seek_charges: Option<SeekCharges>,
}

impl std::fmt::Debug for DbIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIterator")
            .field("snapshot_sequence_number", &self.snapshot_sequence_number)
            .field("valid", &self.valid)
            .finish()
    }
}

impl DbIterator {
    pub(crate) fn new(
        inner: MergeIterator,
        snapshot_sequence_number: u64,
        mut tombstones: Vec<RangeTombstone>,
        lower_bound: Option<Vec<u8>>,
        upper_bound: Option<Vec<u8>>,
        super_version: Arc<SuperVersion>,
        seek_charges: Option<SeekCharges>,
    ) -> Self {
        tombstones.retain(|t| t.sequence_number <= snapshot_sequence_number);
        tombstones.sort_by(|a, b| a.start.cmp(&b.start));
        DbIterator {
            inner,
            snapshot_sequence_number,
            tombstones,
            lower_bound,
            upper_bound,
            direction: Direction::Forward,
            valid: false,
            key: Vec::new(),
            value: Vec::new(),
            skip: Vec::new(),
            #[cfg(debug_assertions)]
            left: Vec::new(),
            _super_version: super_version,
            seek_charges,
        }
    }

    fn covered(&self, user_key: &[u8], sequence_number: u64) -> bool {
        self.tombstones
            .iter()
            .take_while(|t| t.start.as_slice() <= user_key)
            .any(|t| t.sequence_number > sequence_number && t.contains(user_key))
    }

    fn below_lower(&self, user_key: &[u8]) -> bool {
        self.lower_bound.as_deref().is_some_and(|l| user_key < l)
    }

    fn at_or_above_upper(&self, user_key: &[u8]) -> bool {
        self.upper_bound.as_deref().is_some_and(|u| user_key >= u)
    }

    /// Asserts what a positioned cursor shows: a key within the bounds,
    /// and, moving forwards, the inner entry it reads is a value visible
    /// at the snapshot.
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) || !self.valid {
            return;
        }
        let user_key = self.key();
        debug_assert!(
            !self.below_lower(user_key) && !self.at_or_above_upper(user_key),
            "a key outside the bounds"
        );
        if self.direction == Direction::Forward {
            let parsed = key::parse_internal_key(self.inner.key());
            debug_assert!(parsed.is_ok_and(|parsed| {
                parsed.kind == ValueKind::Value
                    && parsed.sequence_number <= self.snapshot_sequence_number
            }));
        }
    }

    #[cfg(debug_assertions)]
    fn note_left(&mut self) {
        let mut left = std::mem::take(&mut self.left);
        left.clear();
        left.extend_from_slice(self.key());
        self.left = left;
    }

    /// True if the cursor is on a key.
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The current key. Empty if not valid.
    pub fn key(&self) -> &[u8] {
        match (self.valid, self.direction) {
            (false, _) => &[],
            (true, Direction::Forward) => key::user_key(self.inner.key()),
            (true, Direction::Reverse) => &self.key,
        }
    }

    /// The current value. Empty if not valid.
    pub fn value(&self) -> &[u8] {
        match (self.valid, self.direction) {
            (false, _) => &[],
            (true, Direction::Forward) => self.inner.value(),
            (true, Direction::Reverse) => &self.value,
        }
    }

    /// Moves to the first key (at or after the lower bound).
    pub fn seek_to_first(&mut self) -> Result<()> {
        match self.lower_bound.clone() {
            Some(lower) => self.seek(&lower),
            None => {
                self.inner.seek_to_first()?;
                self.find_next_visible(false)
            }
        }
    }

    /// Moves to the last key (before the upper bound).
    pub fn seek_to_last(&mut self) -> Result<()> {
        match self.upper_bound.clone() {
            // The smallest internal key of `upper`: everything before it
            // has a smaller user key.
            Some(upper) => self.inner.seek_for_prev(&key::internal_key(
                &upper,
                MAX_SEQUENCE_NUMBER,
                ValueKind::Value,
            ))?,
            None => self.inner.seek_to_last()?,
        }
        self.find_prev_visible()
    }

    /// Moves to the first key >= `target`.
    pub fn seek(&mut self, target: &[u8]) -> Result<()> {
        let target = match self.lower_bound.as_deref() {
            Some(lower) if lower > target => lower,
            _ => target,
        };
        // Encoded into the `skip` buffer, unused until the next step.
        self.skip.clear();
        key::encode_internal_key(
            target,
            MAX_SEQUENCE_NUMBER,
            ValueKind::FOR_SEEK,
            &mut self.skip,
        );
        self.inner.seek(&self.skip)?;
        if let Some(charges) = &self.seek_charges {
            charges.charge_one_seek();
        }
        self.find_next_visible(false)
    }

    /// Moves to the last key <= `target`.
    pub fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        if self.at_or_above_upper(target) {
            return self.seek_to_last();
        }
        // The largest internal key of `target`: its oldest possible version.
        self.inner
            .seek_for_prev(&key::internal_key(target, 0, ValueKind::Deletion))?;
        self.find_prev_visible()
    }

    /// Moves to the next key.
    #[expect(
        clippy::should_implement_trait,
        reason = "a fallible two-way cursor; RangeIter is the Iterator"
    )]
    pub fn next(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        #[cfg(debug_assertions)]
        self.note_left();
        self.skip.clear();
        match self.direction {
            Direction::Forward => self.skip.extend_from_slice(key::user_key(self.inner.key())),
            Direction::Reverse => {
                self.skip.extend_from_slice(&self.key);
                self.inner.seek(&key::internal_key(
                    &self.skip,
                    MAX_SEQUENCE_NUMBER,
                    ValueKind::Value,
                ))?;
            }
        }
        self.find_next_visible(true)?;
        #[cfg(debug_assertions)]
        debug_assert!(
            !self.valid || self.key() > self.left.as_slice(),
            "next went back"
        );
        Ok(())
    }

    /// Moves to the previous key.
    pub fn prev(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        #[cfg(debug_assertions)]
        self.note_left();
        if self.direction == Direction::Forward {
            self.skip.clear();
            self.skip.extend_from_slice(key::user_key(self.inner.key()));
            self.inner.seek_for_prev(&key::internal_key(
                &self.skip,
                MAX_SEQUENCE_NUMBER,
                ValueKind::Value,
            ))?;
            // That lands on the last entry strictly before the current user
            // key unless an entry sorts exactly there; step past it if so.
            while self.inner.valid() && key::user_key(self.inner.key()) == self.skip.as_slice() {
                self.inner.prev()?;
            }
        }
        self.find_prev_visible()?;
        #[cfg(debug_assertions)]
        debug_assert!(
            !self.valid || self.key() < self.left.as_slice(),
            "prev went forward"
        );
        Ok(())
    }

    /// Forward: stops on the newest visible version of the first live key,
    /// skipping versions of `self.skip` if `skipping` (the key just left).
    /// Leaves the inner iterator on the entry found.
    fn find_next_visible(&mut self, mut skipping: bool) -> Result<()> {
        self.direction = Direction::Forward;
        self.valid = false;
        while self.inner.valid() {
            let parsed = key::parse_internal_key(self.inner.key())?;
            if parsed.sequence_number > self.snapshot_sequence_number
                || (skipping && parsed.user_key == self.skip.as_slice())
            {
                self.inner.next()?;
                continue;
            }
            if self.at_or_above_upper(parsed.user_key) {
                return Ok(());
            }
            // The newest version visible at the snapshot decides the key.
            let live = parsed.kind == ValueKind::Value
                && !self.covered(parsed.user_key, parsed.sequence_number);
            if live {
                self.valid = true;
                self.check_invariants();
                return Ok(());
            }
            self.skip.clear();
            self.skip.extend_from_slice(parsed.user_key);
            skipping = true;
            self.inner.next()?;
        }
        Ok(())
    }

    /// Reverse: walks back over whole user keys (meeting each key's versions
    /// oldest first) until one whose newest visible version is a live value.
    fn find_prev_visible(&mut self) -> Result<()> {
        self.direction = Direction::Reverse;
        self.valid = false;
        while self.inner.valid() {
            let user_key = key::user_key(self.inner.key()).to_vec();
            if self.below_lower(&user_key) {
                return Ok(());
            }
            let mut newest: Option<(u64, ValueKind, Vec<u8>)> = None;
            while self.inner.valid() {
                let parsed = key::parse_internal_key(self.inner.key())?;
                if parsed.user_key != user_key.as_slice() {
                    break;
                }
                if parsed.sequence_number <= self.snapshot_sequence_number {
                    newest = Some((
                        parsed.sequence_number,
                        parsed.kind,
                        self.inner.value().to_vec(),
                    ));
                }
                self.inner.prev()?;
            }
            if let Some((sequence_number, ValueKind::Value, value)) = newest
                && !self.covered(&user_key, sequence_number)
                && !self.at_or_above_upper(&user_key)
            {
                self.key = user_key;
                self.value = value;
                self.valid = true;
                self.check_invariants();
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A Rust iterator over `(key, value)` pairs, forward or backward, built on
/// [`DbIterator`]. Yields an error once and then stops.
#[derive(Debug)]
pub struct RangeIter {
    cursor: DbIterator,
    reverse: bool,
    started: bool,
    failed: bool,
}

impl RangeIter {
    pub(crate) fn new(cursor: DbIterator, reverse: bool) -> Self {
        RangeIter {
            cursor,
            reverse,
            started: false,
            failed: false,
        }
    }
}

impl Iterator for RangeIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let step = match (self.started, self.reverse) {
            (false, false) => self.cursor.seek_to_first(),
            (false, true) => self.cursor.seek_to_last(),
            (true, false) => self.cursor.next(),
            (true, true) => self.cursor.prev(),
        };
        self.started = true;
        if let Err(e) = step {
            self.failed = true;
            return Some(Err(e));
        }
        self.cursor
            .valid()
            .then(|| Ok((self.cursor.key().to_vec(), self.cursor.value().to_vec())))
    }
}
