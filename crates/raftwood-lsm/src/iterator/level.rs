//! Iterates a sorted level (1 and deeper) as one stream: its files are
//! disjoint and ordered, so it concatenates their iterators, opening each
//! table only when the cursor reaches it.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::cache::TableCache;
use crate::error::Result;
use crate::iterator::InternalIterator;
use crate::key::compare_internal_keys;
use crate::version::FileMetadata;

/// A cursor over the files of one sorted level.
pub struct LevelIterator {
    tables: Arc<TableCache>,
    files: Vec<Arc<FileMetadata>>,
    index: usize,
    current: Option<Box<dyn InternalIterator>>,
}

impl std::fmt::Debug for LevelIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelIterator")
            .field("files", &self.files.len())
            .field("index", &self.index)
            .finish()
    }
}

impl LevelIterator {
    /// A cursor over `files` (disjoint, sorted by key).
    pub fn new(tables: Arc<TableCache>, files: Vec<Arc<FileMetadata>>) -> Self {
        // Concatenating the files' streams is a sorted stream only if they
        // are (the binary searches below rely on it too).
        debug_assert!(
            files.windows(2).all(|pair| compare_internal_keys(
                &pair[0].largest_key,
                &pair[1].smallest_key
            ) == Ordering::Less),
            "a level's files overlap or are out of order"
        );
        LevelIterator {
            tables,
            files,
            index: 0,
            current: None,
        }
    }

    fn open(&mut self, index: usize) -> Result<()> {
        self.index = index;
        self.current = None;
        if let Some(file) = self.files.get(index) {
            let table = self.tables.get(file)?;
            self.current = Some(Box::new(table.iter()));
        }
        Ok(())
    }

    fn skip_forward(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            if self.index + 1 >= self.files.len() {
                self.current = None;
                return Ok(());
            }
            self.open(self.index + 1)?;
            if let Some(c) = self.current.as_mut() {
                c.seek_to_first()?;
            }
        }
        Ok(())
    }

    fn skip_backward(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            if self.index == 0 {
                self.current = None;
                return Ok(());
            }
            self.open(self.index - 1)?;
            if let Some(c) = self.current.as_mut() {
                c.seek_to_last()?;
            }
        }
        Ok(())
    }
}

impl InternalIterator for LevelIterator {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.valid())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.open(0)?;
        if let Some(c) = self.current.as_mut() {
            c.seek_to_first()?;
        }
        self.skip_forward()
    }

    fn seek_to_last(&mut self) -> Result<()> {
        if self.files.is_empty() {
            self.current = None;
            return Ok(());
        }
        self.open(self.files.len() - 1)?;
        if let Some(c) = self.current.as_mut() {
            c.seek_to_last()?;
        }
        self.skip_backward()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let index = self
            .files
            .partition_point(|f| compare_internal_keys(&f.largest_key, target) == Ordering::Less);
        if index >= self.files.len() {
            self.current = None;
            return Ok(());
        }
        self.open(index)?;
        if let Some(c) = self.current.as_mut() {
            c.seek(target)?;
        }
        self.skip_forward()
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let index = self.files.partition_point(|f| {
            compare_internal_keys(&f.smallest_key, target) != Ordering::Greater
        });
        if index == 0 {
            self.current = None;
            return Ok(());
        }
        self.open(index - 1)?;
        if let Some(c) = self.current.as_mut() {
            c.seek_for_prev(target)?;
        }
        self.skip_backward()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.next()?;
        }
        self.skip_forward()
    }

    fn prev(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.prev()?;
        }
        self.skip_backward()
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map(|c| c.key()).unwrap_or(&[])
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map(|c| c.value()).unwrap_or(&[])
    }
}
