//! The crate's error type. Every way a file can be malformed is a variant:
//! the reader never panics and never loops on its input. Caller bugs on the
//! writing side (keys out of order, a put outside a bucket) are assertions,
//! not errors.

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a bbolt file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source or the sink refused an I/O operation.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The file is shorter than what it claims to hold: the two meta pages,
    /// or the pages below the meta page's high-water mark.
    #[error("truncated file: {needed} bytes needed, {len} present")]
    Truncated {
        /// Bytes the file would need.
        needed: u64,
        /// Bytes the file has.
        len: u64,
    },

    /// A meta page does not start with bbolt's magic number.
    #[error("meta page {page}: bad magic {found:#010x}")]
    BadMagic {
        /// Meta page 0 or 1.
        page: u64,
        /// The number found.
        found: u32,
    },

    /// A meta page carries a format version other than 2.
    #[error("meta page {page}: unsupported version {found}")]
    BadVersion {
        /// Meta page 0 or 1.
        page: u64,
        /// The version found.
        found: u32,
    },

    /// A meta page's FNV-64a checksum does not match its contents.
    #[error("meta page {page}: checksum {stored:#018x} does not match computed {computed:#018x}")]
    BadChecksum {
        /// Meta page 0 or 1.
        page: u64,
        /// The checksum stored in the page.
        stored: u64,
        /// The checksum of the page's contents.
        computed: u64,
    },

    /// A meta page names a page size this crate does not read (not a power
    /// of two between 512 bytes and 64 KiB).
    #[error("meta page {page}: unsupported page size {size}")]
    BadPageSize {
        /// Meta page 0 or 1.
        page: u64,
        /// The page size found.
        size: u32,
    },

    /// A valid meta page describes an impossible layout (a root or freelist
    /// page at or above the high-water mark, a high-water mark below the
    /// first data page).
    #[error("meta page {page}: {detail}")]
    BadMeta {
        /// Meta page 0 or 1.
        page: u64,
        /// What is inconsistent.
        detail: &'static str,
    },

    /// A page reference (or a page's overflow run) reaches at or beyond the
    /// high-water mark.
    #[error(
        "page {page} (with {overflow} overflow pages) is beyond the high-water mark {high_water}"
    )]
    PageOutOfBounds {
        /// The page referenced.
        page: u64,
        /// Its overflow count (0 when the header was not read yet).
        overflow: u32,
        /// The meta page's high-water mark.
        high_water: u64,
    },

    /// A page's header names another page id than where it was found.
    #[error("page {page}: header says it is page {found}")]
    PageIdMismatch {
        /// Where the page was read.
        page: u64,
        /// The id in its header.
        found: u64,
    },

    /// A page reached as part of a bucket's tree is not a branch or leaf
    /// page (or, for the freelist, not a freelist page).
    #[error("page {page}: flags {flags:#06x}, expected a {expected} page")]
    WrongPageType {
        /// The page (0 for an inline bucket's page).
        page: u64,
        /// The flags found.
        flags: u16,
        /// What was expected there.
        expected: &'static str,
    },

    /// An inline bucket's page is shorter than a page header.
    #[error("page {page}: {len} bytes, shorter than a page header")]
    ShortPage {
        /// The page (0 for an inline bucket's page).
        page: u64,
        /// Its length.
        len: usize,
    },

    /// A page element, or the key and value it points at, lies outside its
    /// page.
    #[error("page {page}: element {index} lies outside the page")]
    ElementOutOfBounds {
        /// The page (0 for an inline bucket's page).
        page: u64,
        /// The element's index.
        index: usize,
    },

    /// A non-root page holds no elements (bbolt removes emptied pages; only a
    /// bucket's root leaf may be empty).
    #[error("page {page}: empty {kind} page below a bucket's root")]
    EmptyPage {
        /// The page.
        page: u64,
        /// "branch" or "leaf".
        kind: &'static str,
    },

    /// An element has a zero-length key, which bbolt never writes.
    #[error("page {page}: element {index} has an empty key")]
    EmptyKey {
        /// The page (0 for an inline bucket's page).
        page: u64,
        /// The element's index.
        index: usize,
    },

    /// A bucket's keys, as its tree yields them, do not strictly increase.
    #[error("page {page}: keys out of order")]
    KeysOutOfOrder {
        /// The leaf page holding the offending key (0 when inline).
        page: u64,
    },

    /// A page is reached a second time in one walk: a cycle, or two parents
    /// sharing a child (bbolt's check calls it "multiple references").
    #[error("page {page} is reached twice (a cycle or a shared page)")]
    PageReachedTwice {
        /// The page.
        page: u64,
    },

    /// An element flagged as a bucket has a value too short for a bucket
    /// header, or an inline bucket whose page is not a leaf.
    #[error("bucket {name:?}: malformed bucket value: {detail}")]
    BadBucketValue {
        /// The bucket's key, lossily as text.
        name: String,
        /// What is wrong.
        detail: &'static str,
    },

    /// Buckets nest deeper than this crate follows.
    #[error("buckets nest deeper than {max} levels")]
    BucketsTooDeep {
        /// The limit.
        max: usize,
    },

    /// The freelist page's count exceeds the page.
    #[error("freelist page {page}: {count} ids do not fit in the page")]
    BadFreelist {
        /// The freelist page.
        page: u64,
        /// The count it claims.
        count: u64,
    },

    /// A key or value read from a file is over bbolt's limits, so a writer
    /// cannot take it.
    #[error("a {what} of {len} bytes is over bbolt's limit")]
    TooLarge {
        /// "key" or "value".
        what: &'static str,
        /// Its length.
        len: usize,
    },
}
