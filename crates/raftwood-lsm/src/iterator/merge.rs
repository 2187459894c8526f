//! Merges sorted children into one sorted, bidirectional stream.
//!
//! Children are few (one per memtable, one per level-0 table, one per deeper
//! level), so the smallest (or largest) is found by a linear scan.
//! Duplicate keys cannot occur: every entry has a unique sequence number.

use std::cmp::Ordering;

use crate::error::Result;
use crate::iterator::InternalIterator;
use crate::key::compare_internal_keys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Reverse,
}

/// The merge of several [`InternalIterator`]s.
pub struct MergeIterator {
    children: Vec<Box<dyn InternalIterator>>,
    current: Option<usize>,
    direction: Direction,
    /// The key a step leaves, to assert that it moved (debug builds only;
    /// a buffer kept across steps, so that stepping does not allocate).
    #[cfg(debug_assertions)]
    left: Vec<u8>,
}

impl std::fmt::Debug for MergeIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeIterator")
            .field("children", &self.children.len())
            .field("current", &self.current)
            .finish()
    }
}

impl MergeIterator {
    /// Merges `children` (none of them positioned yet).
    pub fn new(children: Vec<Box<dyn InternalIterator>>) -> Self {
        MergeIterator {
            children,
            current: None,
            direction: Direction::Forward,
            #[cfg(debug_assertions)]
            left: Vec::new(),
        }
    }

    fn find_smallest(&mut self) {
        let mut best: Option<usize> = None;
        for (i, child) in self.children.iter().enumerate() {
            if !child.valid() {
                continue;
            }
            best = match best {
                Some(b)
                    if compare_internal_keys(self.children[b].key(), child.key())
                        != Ordering::Greater =>
                {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }

    fn find_largest(&mut self) {
        let mut best: Option<usize> = None;
        for (i, child) in self.children.iter().enumerate() {
            if !child.valid() {
                continue;
            }
            best = match best {
                Some(b)
                    if compare_internal_keys(self.children[b].key(), child.key())
                        != Ordering::Less =>
                {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }

    #[cfg(debug_assertions)]
    fn note_left(&mut self, current: usize) {
        self.left.clear();
        self.left.extend_from_slice(self.children[current].key());
    }

    fn current_index(&self) -> usize {
        debug_assert!(
            self.current.is_some(),
            "positioning call on an invalid iterator"
        );
        self.current.unwrap_or(0)
    }
}

impl InternalIterator for MergeIterator {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        for child in &mut self.children {
            child.seek_to_first()?;
        }
        self.direction = Direction::Forward;
        self.find_smallest();
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        for child in &mut self.children {
            child.seek_to_last()?;
        }
        self.direction = Direction::Reverse;
        self.find_largest();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        for child in &mut self.children {
            child.seek(target)?;
        }
        self.direction = Direction::Forward;
        self.find_smallest();
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        for child in &mut self.children {
            child.seek_for_prev(target)?;
        }
        self.direction = Direction::Reverse;
        self.find_largest();
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        let current = self.current_index();
        #[cfg(debug_assertions)]
        self.note_left(current);
        if self.direction == Direction::Reverse {
            // Every other child sits at or before key(); move each to the
            // first entry after key() so they all point forward again.
            let key = self.children[current].key().to_vec();
            for (i, child) in self.children.iter_mut().enumerate() {
                if i == current {
                    continue;
                }
                child.seek(&key)?;
                if child.valid() && compare_internal_keys(child.key(), &key) == Ordering::Equal {
                    child.next()?;
                }
            }
            self.direction = Direction::Forward;
        }
        self.children[current].next()?;
        self.find_smallest();
        // Sources hold distinct keys (every entry has its own sequence
        // number), so the merge moves strictly forward.
        #[cfg(debug_assertions)]
        debug_assert!(
            !self.valid() || compare_internal_keys(&self.left, self.key()) == Ordering::Less,
            "the merge went back or repeated a key"
        );
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        let current = self.current_index();
        #[cfg(debug_assertions)]
        self.note_left(current);
        if self.direction == Direction::Forward {
            // Every other child sits after key(); move each to the last entry
            // before key().
            let key = self.children[current].key().to_vec();
            for (i, child) in self.children.iter_mut().enumerate() {
                if i == current {
                    continue;
                }
                child.seek_for_prev(&key)?;
                if child.valid() && compare_internal_keys(child.key(), &key) == Ordering::Equal {
                    child.prev()?;
                }
            }
            self.direction = Direction::Reverse;
        }
        self.children[current].prev()?;
        self.find_largest();
        #[cfg(debug_assertions)]
        debug_assert!(
            !self.valid() || compare_internal_keys(self.key(), &self.left) == Ordering::Less,
            "the merge went forward or repeated a key"
        );
        Ok(())
    }

    fn key(&self) -> &[u8] {
        match self.current {
            Some(i) => self.children[i].key(),
            None => &[],
        }
    }

    fn value(&self) -> &[u8] {
        match self.current {
            Some(i) => self.children[i].value(),
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, internal_key};
    use crate::memtable::MemTable;
    use std::sync::Arc;

    fn collect_forward(it: &mut MergeIterator) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        it.seek_to_first().unwrap();
        while it.valid() {
            out.push(it.key().to_vec());
            it.next().unwrap();
        }
        out
    }

    #[test]
    fn merges_and_switches_direction() {
        let a = Arc::new(MemTable::new(1));
        let b = Arc::new(MemTable::new(2));
        let mut expected = Vec::new();
        for i in 0..50u64 {
            let table = if i % 3 == 0 { &a } else { &b };
            let k = format!("k{:03}", i / 2);
            table
                .insert(k.as_bytes(), i + 1, ValueKind::Value, b"v")
                .unwrap();
            expected.push(internal_key(k.as_bytes(), i + 1, ValueKind::Value));
        }
        expected.sort_by(|x, y| compare_internal_keys(x, y));
        let mut it = MergeIterator::new(vec![Box::new(a.iter()), Box::new(b.iter())]);
        assert_eq!(collect_forward(&mut it), expected);

        // Zig-zag: forward 10, back 5, forward 3.
        it.seek_to_first().unwrap();
        for _ in 0..10 {
            it.next().unwrap();
        }
        assert_eq!(it.key(), expected[10].as_slice());
        for _ in 0..5 {
            it.prev().unwrap();
        }
        assert_eq!(it.key(), expected[5].as_slice());
        for _ in 0..3 {
            it.next().unwrap();
        }
        assert_eq!(it.key(), expected[8].as_slice());

        let mut backward = Vec::new();
        it.seek_to_last().unwrap();
        while it.valid() {
            backward.push(it.key().to_vec());
            it.prev().unwrap();
        }
        backward.reverse();
        assert_eq!(backward, expected);
    }
}
