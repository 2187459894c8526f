//! Where the writer's pages go: allocated in increasing page-id order and
//! written at once, so the file grows front to back with no gaps (every
//! page below the high-water mark is in use, as bbolt's check demands).

use std::io::{BufWriter, Seek, SeekFrom, Write};

use crate::error::Result;

/// Allocates page ids and writes pages at their offsets.
#[derive(Debug)]
pub struct PageSink<W: Write + Seek> {
    out: BufWriter<W>,
    page_size: usize,
    /// The next page id to allocate: the high-water mark so far.
    next_page: u64,
}

impl<W: Write + Seek> PageSink<W> {
    /// A sink whose first allocated page is `first_page`; `out` is
    /// positioned at the start of the file.
    pub fn new(out: W, page_size: usize, first_page: u64) -> Result<PageSink<W>> {
        // The writer's options were checked: a page size bbolt reads.
        assert!(
            page_size.is_power_of_two() && (512..=65_536).contains(&page_size),
            "page size {page_size}"
        );
        // Pages 0 and 1 are the meta pages, written last.
        assert!(first_page >= 2, "data pages start after the meta pages");
        let mut out = BufWriter::with_capacity(16 * page_size, out);
        out.seek(SeekFrom::Start(first_page * page_size as u64))?;
        Ok(PageSink {
            out,
            page_size,
            next_page: first_page,
        })
    }

    /// Bytes per page.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The id the next page will get.
    pub fn next_page(&self) -> u64 {
        self.next_page
    }

    /// Writes `bytes` (a whole number of pages, laid out for the id
    /// [`next_page`](Self::next_page) returned) and allocates them.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        assert!(
            !bytes.is_empty() && bytes.len().is_multiple_of(self.page_size),
            "a page write of {} bytes is not whole pages",
            bytes.len()
        );
        let id = self.next_page;
        self.out.write_all(bytes)?;
        self.next_page += (bytes.len() / self.page_size) as u64;
        Ok(id)
    }

    /// Writes whole pages at page `id` below the high-water mark (the meta
    /// and freelist pages, known last), then returns the sink, flushed and
    /// positioned at the end of the data.
    pub fn overwrite_and_finish(mut self, writes: &[(u64, &[u8])]) -> Result<W> {
        for (id, bytes) in writes {
            assert!(*id < self.next_page, "page {id} was never allocated");
            assert!(
                !bytes.is_empty() && bytes.len().is_multiple_of(self.page_size),
                "an overwrite of page {id} is not whole pages"
            );
            self.out.seek(SeekFrom::Start(id * self.page_size as u64))?;
            self.out.write_all(bytes)?;
        }
        self.out
            .seek(SeekFrom::Start(self.next_page * self.page_size as u64))?;
        self.out.flush()?;
        self.out.into_inner().map_err(|e| e.into_error().into())
    }
}
