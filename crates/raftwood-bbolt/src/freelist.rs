//! The freelist page: the ids of pages below the high-water mark that no
//! tree uses. Its header's count holds the number of ids, except that a
//! count of 0xFFFF means the real count is the first u64 after the header.
//!
//! ```text
//! page header (flags = FREELIST_PAGE, count = n or 0xFFFF)
//! [count u64, when the header's count is 0xFFFF]
//! n page ids, u64 each
//! ```

use crate::error::{Error, Result};
use crate::meta::NO_FREELIST;
use crate::page::{FREELIST_PAGE, PAGE_HEADER_SIZE, read_u64};
use crate::reader::Reader;
use crate::source::ReadAt;

/// The header count that says the real count follows the header.
const COUNT_ESCAPE: u16 = 0xFFFF;

impl<S: ReadAt> Reader<S> {
    /// The free page ids the freelist page lists, sorted; `None` when the
    /// file keeps no freelist (bbolt's `NoFreelistSync`, which etcd uses).
    pub fn free_pages(&self) -> Result<Option<Vec<u64>>> {
        let id = self.meta().freelist;
        if id == NO_FREELIST {
            return Ok(None);
        }
        let header = self.read_header(id)?;
        if header.flags != FREELIST_PAGE {
            return Err(Error::WrongPageType {
                page: id,
                flags: header.flags,
                expected: "freelist",
            });
        }
        let bytes = self.read_span(id, header)?;
        let (first, count) = if header.count == COUNT_ESCAPE {
            let count = read_u64(&bytes, PAGE_HEADER_SIZE)
                .ok_or(Error::BadFreelist { page: id, count: 0 })?;
            (1, count)
        } else {
            (0, u64::from(header.count))
        };
        let capacity = ((bytes.len() - PAGE_HEADER_SIZE) / 8) as u64;
        if first + count > capacity {
            return Err(Error::BadFreelist { page: id, count });
        }
        let mut ids: Vec<u64> = (first..first + count)
            .map(|index| {
                read_u64(&bytes, PAGE_HEADER_SIZE + index as usize * 8).unwrap_or_default()
            })
            .collect();
        ids.sort_unstable();
        Ok(Some(ids))
    }
}
