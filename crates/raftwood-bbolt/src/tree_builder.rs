//! Bulk-loads one bucket's B+tree bottom-up from keys given in order, with
//! one page in memory per level: when a level's page is full it is written
//! out and its first key goes up into the branch page of the level above.
//! Memory is the tree's height times a page (plus the largest value), never
//! the bucket's size.

use std::io::{Seek, Write};

use crate::error::Result;
use crate::page::{ELEMENT_SIZE, MAX_ELEMENTS_PER_PAGE};
use crate::page_builder::PageBuilder;
use crate::page_sink::PageSink;

/// One level of the tree under construction.
#[derive(Debug)]
struct Level {
    page: PageBuilder,
    /// Pages of this level already written.
    written: u64,
}

/// How full a page gets before the next element starts a new one.
#[derive(Debug, Clone, Copy)]
pub struct FillRule {
    /// Bytes a page may hold before it counts as full (`page_size` times
    /// the fill percentage).
    pub threshold: usize,
    /// Bytes per page.
    pub page_size: usize,
}

/// A finished tree, as its parent records it.
#[derive(Debug)]
pub enum FinishedTree {
    /// The bytes of its single leaf page, to store inline.
    Inline(Vec<u8>),
    /// The id of its root page.
    Root(u64),
}

/// A bucket's tree under construction.
#[derive(Debug)]
pub struct TreeBuilder {
    /// `levels[0]` holds leaf pages; each further level the branch pages
    /// above it.
    levels: Vec<Level>,
    /// Whether a leaf element is a nested bucket (bbolt never inlines a
    /// bucket that has nested buckets).
    has_nested_buckets: bool,
    fill: FillRule,
}

impl TreeBuilder {
    /// An empty tree.
    pub fn new(fill: FillRule) -> TreeBuilder {
        TreeBuilder {
            levels: vec![Level {
                page: PageBuilder::new(true),
                written: 0,
            }],
            has_nested_buckets: false,
            fill,
        }
    }

    /// Appends a leaf element; its key is above every key appended before
    /// (the writer checks).
    pub fn push_leaf<W: Write + Seek>(
        &mut self,
        sink: &mut PageSink<W>,
        flags: u32,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        if flags != 0 {
            self.has_nested_buckets = true;
        }
        let added = PageBuilder::element_size(key, value);
        self.make_room(sink, 0, added)?;
        self.levels[0].page.push_leaf(flags, key, value);
        debug_assert!(
            self.levels[0].page.len() < MAX_ELEMENTS_PER_PAGE,
            "make_room keeps a page's element count in its u16 field"
        );
        Ok(())
    }

    /// Writes out level `level`'s page first when `added` more bytes would
    /// overfill it. A lone element larger than a page still gets a page of
    /// its own, which then spans overflow pages.
    fn make_room<W: Write + Seek>(
        &mut self,
        sink: &mut PageSink<W>,
        level: usize,
        added: usize,
    ) -> Result<()> {
        let page = &self.levels[level].page;
        let full =
            page.size() + added > self.fill.threshold || page.len() + 1 >= MAX_ELEMENTS_PER_PAGE;
        if !page.is_empty() && full {
            self.write_page(sink, level)?;
            assert!(
                self.levels[level].page.is_empty(),
                "a page written out leaves its level empty"
            );
        }
        Ok(())
    }

    /// Writes level `level`'s page and records it in the level above.
    fn write_page<W: Write + Seek>(&mut self, sink: &mut PageSink<W>, level: usize) -> Result<()> {
        assert!(
            !self.levels[level].page.is_empty(),
            "writing an empty page below the root"
        );
        let first_key = self.levels[level].page.first_key().to_vec();
        let laid_out_for = sink.next_page();
        let bytes = self.levels[level]
            .page
            .take_page(laid_out_for, sink.page_size());
        let id = sink.append(&bytes)?;
        // A page's header names its own id: the one it was laid out for.
        assert_eq!(id, laid_out_for, "a page written at another id");
        self.levels[level].written += 1;
        if self.levels.len() == level + 1 {
            self.levels.push(Level {
                page: PageBuilder::new(false),
                written: 0,
            });
        }
        self.make_room(sink, level + 1, ELEMENT_SIZE + first_key.len())?;
        // A branch points only at pages already written.
        assert!(
            id < sink.next_page(),
            "a branch to page {id}, not yet written"
        );
        self.levels[level + 1].page.push_branch(&first_key, id);
        Ok(())
    }

    /// Whether bbolt would store this bucket inline in its parent: a single
    /// leaf, no nested buckets, at most a quarter page (bbolt's
    /// `Bucket.inlineable`).
    fn is_inlineable(&self) -> bool {
        let leaf = &self.levels[0];
        self.levels.len() == 1
            && leaf.written == 0
            && !self.has_nested_buckets
            && leaf.page.size() <= self.fill.page_size / 4
    }

    /// Finishes the tree: inline when `allow_inline` and bbolt would inline
    /// it, otherwise written out down to its root page.
    pub fn finish<W: Write + Seek>(
        mut self,
        sink: &mut PageSink<W>,
        allow_inline: bool,
    ) -> Result<FinishedTree> {
        if allow_inline && self.is_inlineable() {
            let inline = self.levels[0].page.take_inline();
            // bbolt inlines at most a quarter page (plus the page header
            // an inline bucket carries).
            assert!(
                inline.len() <= self.fill.page_size / 4 + crate::page::PAGE_HEADER_SIZE,
                "an inline bucket of {} bytes",
                inline.len()
            );
            return Ok(FinishedTree::Inline(inline));
        }
        let root = self.write_remaining(sink)?;
        assert!(root < sink.next_page(), "the root {root} was written");
        Ok(FinishedTree::Root(root))
    }

    /// Writes every partly filled page, bottom-up, and returns the root: the
    /// first level that is its level's only page.
    fn write_remaining<W: Write + Seek>(&mut self, sink: &mut PageSink<W>) -> Result<u64> {
        let mut level = 0;
        loop {
            let is_top = level + 1 == self.levels.len();
            if is_top && self.levels[level].written == 0 {
                let bytes = self.levels[level]
                    .page
                    .take_page(sink.next_page(), sink.page_size());
                return sink.append(&bytes);
            }
            // Below the top a level's last page always holds an element: a
            // page is only written out when an element arrives for the next
            // (write_page asserts it).
            self.write_page(sink, level)?;
            level += 1;
        }
    }
}
