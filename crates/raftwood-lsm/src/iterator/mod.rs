//! Iterators over internal entries. Every source (memtable, SSTable, level)
//! implements [`InternalIterator`]; [`MergeIterator`](merge::MergeIterator)
//! combines them; [`DbIterator`](crate::DbIterator) turns the merged stream
//! into the user's view at a snapshot.

mod db_iter;

pub use db_iter::{DbIterator, RangeIter};

pub mod level;
pub mod merge;

use crate::error::Result;

/// A bidirectional cursor over encoded internal keys in
/// [`compare_internal_keys`](crate::key::compare_internal_keys) order.
///
/// Positioning methods return errors (a block that fails its checksum);
/// after an error the iterator is invalid.
pub trait InternalIterator: Send {
    /// True if the cursor is on an entry.
    fn valid(&self) -> bool;
    /// Moves to the first entry.
    fn seek_to_first(&mut self) -> Result<()>;
    /// Moves to the last entry.
    fn seek_to_last(&mut self) -> Result<()>;
    /// Moves to the first entry whose key is >= `target` (an internal key).
    fn seek(&mut self, target: &[u8]) -> Result<()>;
    /// Moves to the last entry whose key is <= `target` (an internal key).
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()>;
    /// Advances. Requires `valid()`.
    fn next(&mut self) -> Result<()>;
    /// Steps back. Requires `valid()`.
    fn prev(&mut self) -> Result<()>;
    /// The current internal key. Requires `valid()`.
    fn key(&self) -> &[u8];
    /// The current value. Requires `valid()`.
    fn value(&self) -> &[u8];
}

impl<T: InternalIterator + ?Sized> InternalIterator for Box<T> {
    fn valid(&self) -> bool {
        (**self).valid()
    }
    fn seek_to_first(&mut self) -> Result<()> {
        (**self).seek_to_first()
    }
    fn seek_to_last(&mut self) -> Result<()> {
        (**self).seek_to_last()
    }
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        (**self).seek(target)
    }
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        (**self).seek_for_prev(target)
    }
    fn next(&mut self) -> Result<()> {
        (**self).next()
    }
    fn prev(&mut self) -> Result<()> {
        (**self).prev()
    }
    fn key(&self) -> &[u8] {
        (**self).key()
    }
    fn value(&self) -> &[u8] {
        (**self).value()
    }
}
