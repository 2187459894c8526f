//! Writes a complete bbolt file from buckets and keys given in order,
//! streaming: pages go to the sink as they fill, so memory holds one page
//! per tree level of each open bucket, never the database.
//!
//! File layout: pages 0 and 1 are the meta pages (written last, once the
//! root is known), page 2 the freelist (empty: every page is in use), then
//! the buckets' pages in the order they fill, each tree's root after its
//! children. Both meta pages describe the same tree, with consecutive
//! transaction ids, as if two transactions had committed it.

use std::io::{Seek, Write};

use crate::bucket::encode_header;
use crate::error::Result;
use crate::meta::Meta;
use crate::page::{BUCKET_LEAF_FLAG, FREELIST_PAGE, MAX_KEY_SIZE, MAX_VALUE_SIZE, PageHeader};
use crate::page_sink::PageSink;
use crate::tree_builder::{FillRule, FinishedTree, TreeBuilder};

/// The page id of the freelist this writer writes.
const FREELIST_PAGE_ID: u64 = 2;

/// How the writer lays the file out.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Bytes per page: a power of two from 1 KiB to 64 KiB. bbolt uses the
    /// OS page size, 4096 on the platforms etcd ships for.
    pub page_size: usize,
    /// How full a page gets before the next key starts a new one, from 0.1
    /// to 1.0. bbolt fills split pages to half (its `DefaultFillPercent`)
    /// because it expects random inserts; a snapshot is written once, in
    /// order, so the default fills pages whole, as `bbolt compact` does.
    pub fill_percent: f64,
    /// The transaction id of the newer meta page (the older one gets one
    /// less); at least 1.
    pub txid: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            page_size: 4096,
            fill_percent: 1.0,
            txid: 1,
        }
    }
}

/// A bucket being written, and the last key it received.
#[derive(Debug)]
struct OpenBucket {
    name: Vec<u8>,
    tree: TreeBuilder,
    /// Empty until the first key (keys are never empty).
    last_key: Vec<u8>,
    sequence: u64,
}

impl OpenBucket {
    fn new(name: &[u8], fill: FillRule) -> OpenBucket {
        OpenBucket {
            name: name.to_vec(),
            tree: TreeBuilder::new(fill),
            last_key: Vec::new(),
            sequence: 0,
        }
    }
}

/// Writes a bbolt file. Call [`begin_bucket`](Self::begin_bucket),
/// [`put`](Self::put) and [`end_bucket`](Self::end_bucket) in key order,
/// then [`finish`](Self::finish). A writer dropped before `finish` leaves
/// zeroed meta pages, which no bbolt reader opens: an unfinished file is
/// never mistaken for a snapshot.
///
/// # Panics
///
/// The methods panic on caller bugs: a key (or bucket name) not above the
/// previous one in its bucket, an empty key, a key or value over bbolt's
/// limits, a put outside any bucket (bbolt's root bucket holds only
/// buckets), unbalanced begin/end, or invalid options.
#[derive(Debug)]
pub struct Writer<W: Write + Seek> {
    sink: PageSink<W>,
    options: WriterOptions,
    fill: FillRule,
    /// The root bucket: it holds only buckets.
    root: OpenBucket,
    /// The buckets begun and not ended, outermost first; puts go to the
    /// last.
    nested: Vec<OpenBucket>,
}

impl<W: Write + Seek> Writer<W> {
    /// A writer with the default options, at the start of `out`.
    pub fn new(out: W) -> Result<Writer<W>> {
        Writer::with_options(out, WriterOptions::default())
    }

    /// A writer laying the file out as `options` say, at the start of `out`.
    pub fn with_options(out: W, options: WriterOptions) -> Result<Writer<W>> {
        let page_size = options.page_size;
        assert!(
            page_size.is_power_of_two() && (1024..=65_536).contains(&page_size),
            "page size {page_size} is not a power of two from 1 KiB to 64 KiB"
        );
        assert!(
            (0.1..=1.0).contains(&options.fill_percent),
            "fill percent {} is outside 0.1..=1.0",
            options.fill_percent
        );
        assert!(options.txid >= 1, "the transaction id must be at least 1");
        let fill = FillRule {
            threshold: (page_size as f64 * options.fill_percent) as usize,
            page_size,
        };
        let mut sink = PageSink::new(out, page_size, FREELIST_PAGE_ID)?;
        sink.append(&empty_freelist_page(page_size))?;
        Ok(Writer {
            sink,
            options,
            fill,
            root: OpenBucket::new(&[], fill),
            nested: Vec::new(),
        })
    }

    /// Opens a nested bucket named `name` in the current bucket (the root
    /// bucket at first); later puts go into it until
    /// [`end_bucket`](Self::end_bucket).
    pub fn begin_bucket(&mut self, name: &[u8]) {
        self.claim_key(name);
        self.nested.push(OpenBucket::new(name, self.fill));
    }

    /// Sets the current bucket's sequence (bbolt's `NextSequence` counter).
    pub fn set_sequence(&mut self, sequence: u64) {
        self.current().sequence = sequence;
    }

    /// Adds `key` = `value` to the current bucket.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        assert!(
            !self.nested.is_empty(),
            "put outside a bucket: bbolt's root bucket holds only buckets"
        );
        assert!(
            value.len() <= MAX_VALUE_SIZE,
            "a value of {} bytes is over bbolt's limit",
            value.len()
        );
        self.claim_key(key);
        let sink = &mut self.sink;
        let current = self.nested.last_mut().unwrap_or(&mut self.root);
        current.tree.push_leaf(sink, 0, key, value)
    }

    /// Closes the current bucket and records it in its parent.
    pub fn end_bucket(&mut self) -> Result<()> {
        let Some(bucket) = self.nested.pop() else {
            panic!("end_bucket without a matching begin_bucket");
        };
        let value = match bucket.tree.finish(&mut self.sink, true)? {
            FinishedTree::Inline(page) => [&encode_header(0, bucket.sequence)[..], &page].concat(),
            FinishedTree::Root(root) => encode_header(root, bucket.sequence).to_vec(),
        };
        let sink = &mut self.sink;
        let parent = self.nested.last_mut().unwrap_or(&mut self.root);
        parent
            .tree
            .push_leaf(sink, BUCKET_LEAF_FLAG, &bucket.name, &value)
    }

    /// Writes the root bucket, the meta pages, and returns the sink
    /// positioned after the last page (where etcd appends its SHA-256).
    pub fn finish(mut self) -> Result<W> {
        assert!(
            self.nested.is_empty(),
            "finish with {} buckets still open",
            self.nested.len()
        );
        // bbolt keeps the root bucket in pages, never inline: the meta page
        // holds only a page id.
        let root_sequence = self.root.sequence;
        let FinishedTree::Root(root_page) = self.root.tree.finish(&mut self.sink, false)? else {
            unreachable!("inlining was not allowed");
        };
        // What bbolt's meta.write asserts before writing a meta page.
        assert!(
            root_page < self.sink.next_page(),
            "root page {root_page} above the high-water mark"
        );
        let meta_for = |txid| Meta {
            page_size: self.options.page_size as u32,
            flags: 0,
            root: root_page,
            root_sequence,
            freelist: FREELIST_PAGE_ID,
            high_water: self.sink.next_page(),
            txid,
        };
        // The meta names the freelist page, which bbolt's check wants below
        // the high-water mark: it was the first page allocated.
        assert!(
            FREELIST_PAGE_ID < self.sink.next_page(),
            "the freelist page was never allocated"
        );
        // bbolt writes transaction t's meta to page t % 2.
        let newer = meta_for(self.options.txid);
        let older = meta_for(self.options.txid - 1);
        let newer_page = newer.txid % 2;
        let pages = [
            (newer_page, newer.encode_page(newer_page)),
            (1 - newer_page, older.encode_page(1 - newer_page)),
        ];
        let writes: Vec<(u64, &[u8])> = pages
            .iter()
            .map(|(id, bytes)| (*id, bytes.as_slice()))
            .collect();
        self.sink.overwrite_and_finish(&writes)
    }

    fn current(&mut self) -> &mut OpenBucket {
        self.nested.last_mut().unwrap_or(&mut self.root)
    }

    /// Checks `key` may come next in the current bucket and remembers it.
    fn claim_key(&mut self, key: &[u8]) {
        assert!(
            !key.is_empty(),
            "bbolt keys and bucket names are never empty"
        );
        assert!(
            key.len() <= MAX_KEY_SIZE,
            "a key of {} bytes is over bbolt's limit",
            key.len()
        );
        let last_key = &mut self.current().last_key;
        assert!(
            key > last_key.as_slice(),
            "keys must strictly increase within a bucket: {key:?} after {last_key:?}"
        );
        last_key.clear();
        last_key.extend_from_slice(key);
    }
}

/// A freelist page listing no free page.
fn empty_freelist_page(page_size: usize) -> Vec<u8> {
    let mut page = vec![0; page_size];
    PageHeader {
        id: FREELIST_PAGE_ID,
        flags: FREELIST_PAGE,
        count: 0,
        overflow: 0,
    }
    .encode(&mut page);
    page
}
