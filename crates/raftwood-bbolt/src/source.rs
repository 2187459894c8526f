//! Where the reader's bytes come from: positioned reads, so pages are read
//! on demand and several cursors can read one file at once.

use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom};

/// A byte source read at arbitrary offsets.
pub trait ReadAt {
    /// Fills `buf` from `offset`; an error when the source ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// The source's length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the source is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let bytes = self.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(Vec::len(self) as u64)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// Adapts any `Read + Seek` (one position, so reads take turns).
#[derive(Debug)]
pub struct SeekSource<R>(RefCell<R>);

impl<R: Read + Seek> SeekSource<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> SeekSource<R> {
        SeekSource(RefCell::new(inner))
    }
}

impl<R: Read + Seek> ReadAt for SeekSource<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut inner = self.0.borrow_mut();
        inner.seek(SeekFrom::Start(offset))?;
        inner.read_exact(buf)
    }

    fn len(&self) -> io::Result<u64> {
        self.0.borrow_mut().seek(SeekFrom::End(0))
    }
}
