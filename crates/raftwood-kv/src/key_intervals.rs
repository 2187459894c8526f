//! A set of key ranges that answers "is this key in any of them?" in
//! logarithmic time: the deleted ranges of a txn, checked against every key
//! the txn puts ([`crate::validate`]). Ranges are kept merged, so the set
//! never holds two that overlap or touch, and a lookup looks at one.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::mvcc::RangeEnd;

/// Disjoint, non-adjacent half-open key ranges `[start, end)`, keyed by
/// start; an end of `None` is unbounded (every key from start on).
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyIntervals {
    ranges: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl KeyIntervals {
    /// Adds the range etcd names by `key` and `range_end` (see [`RangeEnd`]).
    pub(crate) fn insert_request(&mut self, key: &[u8], range_end: &[u8]) {
        let end = RangeEnd::from_request(range_end);
        // etcd's empty range: nothing to cover.
        let empty = matches!(&end, RangeEnd::Before(end) if end.as_slice() <= key);
        match end {
            RangeEnd::Single => self.insert(key.to_vec(), Some(successor(key))),
            RangeEnd::Before(end) => self.insert(key.to_vec(), Some(end)),
            RangeEnd::Unbounded => self.insert(key.to_vec(), None),
        }
        debug_assert!(
            empty || self.covers(key),
            "{key:?} not covered once its range is added"
        );
    }

    /// True if some range holds `key`.
    pub(crate) fn covers(&self, key: &[u8]) -> bool {
        match self.ranges.range::<[u8], _>(up_to(key)).next_back() {
            Some((_, end)) => end_after(end, key),
            None => false,
        }
    }

    /// True if some range holds a key of `keys`; looks up each key or each
    /// range, whichever are fewer.
    pub(crate) fn covers_any(&self, keys: &BTreeSet<&[u8]>) -> bool {
        if keys.len() <= self.ranges.len() {
            return keys.iter().any(|key| self.covers(key));
        }
        self.ranges.iter().any(|(start, end)| {
            let start = start.as_slice();
            let after = keys.range::<&[u8], _>(&start..).next();
            after.is_some_and(|key| end_after(end, key))
        })
    }

    /// Every range of both, the smaller set inserted into the larger.
    pub(crate) fn union(self, other: KeyIntervals) -> KeyIntervals {
        let (mut larger, smaller) = if self.ranges.len() >= other.ranges.len() {
            (self, other)
        } else {
            (other, self)
        };
        for (start, end) in smaller.ranges {
            larger.insert(start, end);
        }
        larger
    }

    /// Adds `[start, end)`, merging it with every range it overlaps or
    /// touches. Each stored range is removed at most once, so a series of
    /// inserts costs O(log n) each, amortized.
    fn insert(&mut self, mut start: Vec<u8>, mut end: Option<Vec<u8>>) {
        if end.as_deref().is_some_and(|end| end <= start.as_slice()) {
            return; // An empty range (etcd's interval tree holds no key of it either).
        }
        if let Some((before_start, before_end)) =
            self.ranges.range::<[u8], _>(up_to(&start)).next_back()
            && !end_before(before_end, &start)
        {
            start = before_start.clone();
            end = later_end(before_end.clone(), end);
        }
        let touched: Vec<Vec<u8>> = self
            .ranges
            .range::<[u8], _>((Bound::Included(&start[..]), Bound::Unbounded))
            .take_while(|(next_start, _)| !end_before(&end, next_start))
            .map(|(next_start, _)| next_start.clone())
            .collect();
        for next_start in touched {
            if let Some(next_end) = self.ranges.remove(&next_start) {
                end = later_end(end, next_end);
            }
        }
        debug_assert!(
            self.apart_from_neighbours(&start, &end),
            "a merged key range overlaps or touches its neighbours"
        );
        self.ranges.insert(start, end);
    }

    /// True if `[start, end)` neither overlaps nor touches the ranges
    /// stored before and after it: what keeps the whole set disjoint.
    fn apart_from_neighbours(&self, start: &[u8], end: &Option<Vec<u8>>) -> bool {
        let before = self.ranges.range::<[u8], _>(up_to(start)).next_back();
        let after = self
            .ranges
            .range::<[u8], _>((Bound::Excluded(start), Bound::Unbounded))
            .next();
        before.is_none_or(|(_, before_end)| end_before(before_end, start))
            && after.is_none_or(|(after_start, _)| end_before(end, after_start))
    }

    /// Every range ends before the next one starts.
    #[cfg(test)]
    fn is_disjoint(&self) -> bool {
        let mut previous_end: Option<&Option<Vec<u8>>> = None;
        for (start, end) in &self.ranges {
            if let Some(previous) = previous_end
                && !end_before(previous, start)
            {
                return false;
            }
            previous_end = Some(end);
        }
        true
    }
}

/// Every start at or before `key`, as a range of the map's keys.
fn up_to(key: &[u8]) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (Bound::Unbounded, Bound::Included(key))
}

/// The least key after `key`: it with a zero byte appended.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// True if a range ending at `end` holds keys after `key` (so `key` is in
/// it, when its start is at or before `key`).
fn end_after(end: &Option<Vec<u8>>, key: &[u8]) -> bool {
    end.as_deref().is_none_or(|end| end > key)
}

/// True if a range ending at `end` ends strictly before `key`: neither
/// holds nor touches it.
fn end_before(end: &Option<Vec<u8>>, key: &[u8]) -> bool {
    end.as_deref().is_some_and(|end| end < key)
}

/// The later of two ends (unbounded is latest).
fn later_end(a: Option<Vec<u8>>, b: Option<Vec<u8>>) -> Option<Vec<u8>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious model: every range kept, each one checked.
    fn model_covers(ranges: &[(Vec<u8>, Vec<u8>)], key: &[u8]) -> bool {
        ranges
            .iter()
            .any(|(start, end)| RangeEnd::from_request(end).contains(start, key))
    }

    fn small_key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(0xFF)],
            0..4,
        )
    }

    proptest! {
        #[test]
        fn covers_what_the_model_covers(
            ranges in proptest::collection::vec((small_key(), small_key()), 0..24),
            keys in proptest::collection::vec(small_key(), 1..32),
            split in 0usize..24,
        ) {
            // Built in two halves joined by union, as nested txns are.
            let mut set = KeyIntervals::default();
            let mut other = KeyIntervals::default();
            for (index, (start, end)) in ranges.iter().enumerate() {
                let half = if index < split { &mut set } else { &mut other };
                half.insert_request(start, end);
            }
            let set = set.union(other);
            prop_assert!(set.is_disjoint());
            for key in &keys {
                prop_assert_eq!(set.covers(key), model_covers(&ranges, key), "key {:?}", key);
            }
            // Both ways of answering for many keys agree with the model.
            let wanted: BTreeSet<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let expected = keys.iter().any(|key| model_covers(&ranges, key));
            prop_assert_eq!(set.covers_any(&wanted), expected);
            let one_range: BTreeSet<&[u8]> = wanted.iter().take(1).copied().collect();
            prop_assert_eq!(
                set.covers_any(&one_range),
                one_range.iter().any(|key| model_covers(&ranges, key))
            );
        }
    }

    #[test]
    fn touching_ranges_merge_into_one() {
        let mut set = KeyIntervals::default();
        set.insert_request(b"a", b"c");
        set.insert_request(b"c", b"e");
        set.insert_request(b"e", b"");
        assert_eq!(set.ranges.len(), 1);
        assert!(set.covers(b"d") && set.covers(b"e"));
        assert!(!set.covers(b"e\0") && !set.covers(b"f"));
    }

    #[test]
    fn an_unbounded_range_swallows_what_follows() {
        let mut set = KeyIntervals::default();
        set.insert_request(b"x", b"y");
        set.insert_request(b"m", b"n");
        set.insert_request(b"b", b"\0");
        assert_eq!(set.ranges.len(), 1);
        assert!(set.covers(b"zzzz"));
        assert!(!set.covers(b"a"));
    }

    #[test]
    fn an_empty_range_holds_nothing() {
        let mut set = KeyIntervals::default();
        set.insert_request(b"k", b"a");
        set.insert_request(b"k", b"k");
        assert!(!set.covers(b"k"));
        assert!(set.ranges.is_empty());
    }
}
