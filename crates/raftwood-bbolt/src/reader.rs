//! Opens a bbolt file: picks the meta page bbolt would trust, then reads
//! pages on demand, each checked against the high-water mark, its own id and
//! its type before anything in it is used.

use crate::bucket::{Bucket, BucketRoot};
use crate::cursor::{Cursor, Entry, Value};
use crate::error::{Error, Result};
use crate::meta::{MAX_PAGE_SIZE, META_SIZE, MIN_PAGE_SIZE, Meta};
use crate::page::{BRANCH_PAGE, LEAF_PAGE, PAGE_HEADER_SIZE, Page, PageHeader};
use crate::source::ReadAt;

/// A bbolt file opened for reading.
#[derive(Debug)]
pub struct Reader<S> {
    source: S,
    meta: Meta,
    /// Which meta page (0 or 1) was chosen.
    meta_page: u64,
    file_len: u64,
}

impl<S: ReadAt> Reader<S> {
    /// Opens `source`: validates both meta pages and uses the valid one with
    /// the higher transaction id, as bbolt does. Bytes after the pages the
    /// meta accounts for (etcd's SHA-256 trailer on a snapshot) are left
    /// alone; see [`data_len`](Self::data_len).
    pub fn open(source: S) -> Result<Reader<S>> {
        let file_len = source.len()?;
        let (meta_page, meta) = choose_meta(&source, file_len)?;
        let needed = meta.data_len().ok_or(Error::BadMeta {
            page: meta_page,
            detail: "high-water mark overflows",
        })?;
        if file_len < needed {
            return Err(Error::Truncated {
                needed,
                len: file_len,
            });
        }
        Ok(Reader {
            source,
            meta,
            meta_page,
            file_len,
        })
    }

    /// The meta page in use.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Which meta page (0 or 1) is in use.
    pub fn meta_page(&self) -> u64 {
        self.meta_page
    }

    /// Bytes per page.
    pub fn page_size(&self) -> u64 {
        u64::from(self.meta.page_size)
    }

    /// Bytes of bbolt data: every page below the high-water mark. An etcd
    /// snapshot's SHA-256 covers exactly these bytes and follows them.
    pub fn data_len(&self) -> u64 {
        self.meta.high_water * self.page_size()
    }

    /// Bytes in the source, trailer included.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The root bucket, which holds the top-level buckets.
    pub fn root_bucket(&self) -> Bucket {
        Bucket {
            root: BucketRoot::Page(self.meta.root),
            sequence: self.meta.root_sequence,
            depth: 0,
        }
    }

    /// A cursor over `bucket`'s entries in key order.
    pub fn cursor(&self, bucket: &Bucket) -> Cursor<'_, S> {
        Cursor::new(self, bucket)
    }

    /// The bucket at `path` (names from the root down); `None` when a name
    /// is missing or names a plain key, as bbolt's `Bucket()` returns nil.
    pub fn bucket(&self, path: &[&[u8]]) -> Result<Option<Bucket>> {
        let mut bucket = self.root_bucket();
        for name in path {
            match self.get(&bucket, name)? {
                Some(Value::Bucket(child)) => bucket = child,
                _ => return Ok(None),
            }
        }
        Ok(Some(bucket))
    }

    /// The value of `key` in `bucket`, found by descending the tree.
    pub fn get(&self, bucket: &Bucket, key: &[u8]) -> Result<Option<Value>> {
        // The descent reads one page per level; the path check stops a
        // cycle (a page is never its own ancestor in a valid tree).
        let mut path = Vec::new();
        let mut page = self.root_page(bucket)?;
        while !page.is_leaf() {
            let child = branch_child_for(&page, key)?;
            if path.contains(&child) {
                return Err(Error::PageReachedTwice { page: child });
            }
            path.push(child);
            page = self.read_tree_page(child)?;
        }
        for index in 0..page.count() {
            let element = page.leaf_element(index)?;
            if element.key == key {
                return Entry::from_leaf(&page, index, bucket.depth).map(|entry| Some(entry.value));
            }
        }
        Ok(None)
    }

    /// The page a bucket's tree starts at.
    pub(crate) fn root_page(&self, bucket: &Bucket) -> Result<Page> {
        match &bucket.root {
            BucketRoot::Page(id) => self.read_tree_page(*id),
            BucketRoot::Inline(bytes) => {
                let page = Page::from_bytes(0, bytes.clone())?;
                if !page.is_leaf() {
                    return Err(Error::WrongPageType {
                        page: 0,
                        flags: BRANCH_PAGE,
                        expected: "inline leaf",
                    });
                }
                Ok(page)
            }
        }
    }

    /// Reads branch or leaf page `id` with its overflow pages.
    pub(crate) fn read_tree_page(&self, id: u64) -> Result<Page> {
        let header = self.read_header(id)?;
        if header.flags != BRANCH_PAGE && header.flags != LEAF_PAGE {
            return Err(Error::WrongPageType {
                page: id,
                flags: header.flags,
                expected: "branch or leaf",
            });
        }
        let bytes = self.read_span(id, header)?;
        Page::from_bytes(id, bytes)
    }

    /// Reads page `id`'s header, checking the page exists and is page `id`.
    pub(crate) fn read_header(&self, id: u64) -> Result<PageHeader> {
        let high_water = self.meta.high_water;
        if id >= high_water {
            return Err(Error::PageOutOfBounds {
                page: id,
                overflow: 0,
                high_water,
            });
        }
        let mut bytes = [0; PAGE_HEADER_SIZE];
        self.source
            .read_exact_at(&mut bytes, id * self.page_size())?;
        let header = PageHeader::decode(&bytes);
        if header.id != id {
            return Err(Error::PageIdMismatch {
                page: id,
                found: header.id,
            });
        }
        Ok(header)
    }

    /// Reads page `id` and its overflow pages, checked to end below the
    /// high-water mark (so never more than the file holds).
    pub(crate) fn read_span(&self, id: u64, header: PageHeader) -> Result<Vec<u8>> {
        let high_water = self.meta.high_water;
        let span = u64::from(header.overflow) + 1;
        if id + span > high_water {
            return Err(Error::PageOutOfBounds {
                page: id,
                overflow: header.overflow,
                high_water,
            });
        }
        let mut bytes = vec![0; (span * self.page_size()) as usize];
        self.source
            .read_exact_at(&mut bytes, id * self.page_size())?;
        Ok(bytes)
    }
}

/// The child of branch `page` whose range holds `key`: the last element
/// whose key is at most `key`, or the first (as bbolt's cursor seeks).
fn branch_child_for(page: &Page, key: &[u8]) -> Result<u64> {
    if page.count() == 0 {
        return Err(Error::EmptyPage {
            page: page.id,
            kind: "branch",
        });
    }
    let mut chosen = page.branch_element(0)?.child;
    for index in 1..page.count() {
        let element = page.branch_element(index)?;
        if element.key > key {
            break;
        }
        chosen = element.child;
    }
    Ok(chosen)
}

/// Reads both meta pages and returns the one bbolt would use: the valid one
/// with the higher transaction id; when neither is valid, meta 0's error.
fn choose_meta(source: &impl ReadAt, file_len: u64) -> Result<(u64, Meta)> {
    let first = read_meta(source, file_len, 0, 0);
    let second = match &first {
        Ok(meta) => read_meta(source, file_len, 1, u64::from(meta.page_size)),
        Err(_) => find_second_meta(source, file_len),
    };
    match (first, second) {
        (Ok(a), Ok(b)) if b.page_size == a.page_size && b.txid > a.txid => Ok((1, b)),
        (Ok(a), _) => Ok((0, a)),
        (Err(_), Ok(b)) => Ok((1, b)),
        (Err(error), Err(_)) => Err(error),
    }
}

/// Meta page 1 when meta page 0 is unreadable: its offset is its own page
/// size, so try each size the reader supports.
fn find_second_meta(source: &impl ReadAt, file_len: u64) -> Result<Meta> {
    let mut size = MIN_PAGE_SIZE;
    let mut last_error = Error::Truncated {
        needed: u64::from(MIN_PAGE_SIZE) * 2,
        len: file_len,
    };
    while size <= MAX_PAGE_SIZE {
        match read_meta(source, file_len, 1, u64::from(size)) {
            Ok(meta) if meta.page_size == size => return Ok(meta),
            Ok(_) => {}
            Err(error) => last_error = error,
        }
        size *= 2;
    }
    Err(last_error)
}

/// Reads and validates meta page `page` at byte `offset`.
fn read_meta(source: &impl ReadAt, file_len: u64, page: u64, offset: u64) -> Result<Meta> {
    let needed = offset + (PAGE_HEADER_SIZE + META_SIZE) as u64;
    if file_len < needed {
        return Err(Error::Truncated {
            needed,
            len: file_len,
        });
    }
    let mut bytes = [0; PAGE_HEADER_SIZE + META_SIZE];
    source.read_exact_at(&mut bytes, offset)?;
    let meta = Meta::decode_page(page, &bytes)?;
    meta.check_layout(page)?;
    Ok(meta)
}
