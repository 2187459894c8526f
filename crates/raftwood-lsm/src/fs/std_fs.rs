//! [`FileSystem`] on the real operating system.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileLock, FileSystem, RandomAccessFile, WritableFile};
use crate::error::{Error, Result};

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

fn ctx(what: &str, path: &Path) -> String {
    format!("{what} {}", path.display())
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(ctx("creating directory", path), e))
    }

    fn create_file(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(ctx("creating", path), e))?;
        Ok(Box::new(StdWritableFile {
            file,
            path: path.to_path_buf(),
            len: 0,
            zeroed_to: 0,
        }))
    }

    fn open_random_access(&self, path: &Path) -> Result<Arc<dyn RandomAccessFile>> {
        let file = File::open(path).map_err(|e| Error::io(ctx("opening", path), e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(ctx("reading metadata of", path), e))?
            .len();
        Ok(Arc::new(StdRandomAccessFile {
            file,
            path: path.to_path_buf(),
            size,
        }))
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| Error::io(ctx("reading", path), e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", from.display(), to.display()),
                e,
            )
        })
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        std::fs::remove_dir(path).map_err(|e| Error::io(ctx("removing directory", path), e))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io(ctx("removing", path), e))
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(ctx("listing", path), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(ctx("listing", path), e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        path.try_exists()
            .map_err(|e| Error::io(ctx("checking existence of", path), e))
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        match std::fs::metadata(path) {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(ctx("reading metadata of", path), e)),
        }
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        let dir = File::open(path).map_err(|e| Error::io(ctx("opening directory", path), e))?;
        dir.sync_all()
            .map_err(|e| Error::io(ctx("syncing directory", path), e))
    }

    fn sync_file(&self, path: &Path) -> Result<()> {
        // fdatasync works on a read-only descriptor on the platforms we
        // support (Linux, macOS).
        let file = File::open(path).map_err(|e| Error::io(ctx("opening", path), e))?;
        file.sync_data()
            .map_err(|e| Error::io(ctx("syncing", path), e))
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::hard_link(from, to)
            .map_err(|e| Error::io(format!("linking {} to {}", from.display(), to.display()), e))
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| Error::io(ctx("reading metadata of", path), e))
    }

    fn lock_file(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(ctx("opening lock file", path), e))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdFileLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(Error::Locked(path.parent().unwrap_or(path).to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(ctx("locking", path), e)),
        }
    }
}

#[derive(Debug)]
struct StdWritableFile {
    file: File,
    path: PathBuf,
    /// The append position: the file cursor.
    len: u64,
    /// The file's size as `zero_extend` left it; the bytes from `len` to
    /// here are zeros. Invariant: only meaningful while above `len`.
    zeroed_to: u64,
}

/// Zeros written per `write_at` call by `zero_extend`.
const ZERO_BLOCK_BYTES: usize = 64 * 1024;

impl WritableFile for StdWritableFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| Error::io(ctx("appending to", &self.path), e))?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(ctx("syncing", &self.path), e))
    }

    fn zero_extend(&mut self, len: u64) -> Result<()> {
        static ZEROS: [u8; ZERO_BLOCK_BYTES] = [0; ZERO_BLOCK_BYTES];
        // Writes at the file's current end; the cursor, which appends use,
        // stays where it is.
        let mut at = self.zeroed_to.max(self.len);
        while at < len {
            let n = usize::try_from(len - at).map_or(ZERO_BLOCK_BYTES, |n| n.min(ZERO_BLOCK_BYTES));
            self.file
                .write_all_at(&ZEROS[..n], at)
                .map_err(|e| Error::io(ctx("zero-extending", &self.path), e))?;
            at += n as u64;
        }
        self.zeroed_to = self.zeroed_to.max(len);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

#[derive(Debug)]
struct StdRandomAccessFile {
    file: File,
    path: PathBuf,
    size: u64,
}

impl RandomAccessFile for StdRandomAccessFile {
    fn read_exact_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(Error::corruption(
                self.path.display().to_string(),
                format!(
                    "read of {len} bytes at offset {offset} is past the end ({} bytes)",
                    self.size
                ),
            ));
        }
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io(ctx("reading", &self.path), e))?;
        Ok(buf)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

#[derive(Debug)]
struct StdFileLock {
    // The lock is released when the file is closed.
    _file: File,
}

impl FileLock for StdFileLock {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_file_syncs_an_existing_file_and_refuses_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let mut file = StdFs.create_file(&path).unwrap();
        file.append(b"data").unwrap();
        StdFs.sync_file(&path).unwrap();
        assert_eq!(StdFs.read_file(&path).unwrap(), b"data");
        assert!(StdFs.sync_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn appends_overwrite_the_zeros_of_zero_extend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let mut file = StdFs.create_file(&path).unwrap();
        file.append(b"head").unwrap();
        // More than one block of zeros, so the loop runs more than once.
        let len = ZERO_BLOCK_BYTES as u64 * 2 + 10;
        file.zero_extend(len).unwrap();
        assert_eq!(file.len(), 4);
        assert_eq!(StdFs.file_size(&path).unwrap(), len);
        file.append(b"-body").unwrap();
        file.zero_extend(8).unwrap(); // already longer: nothing changes
        file.sync_data().unwrap();
        let bytes = StdFs.read_file(&path).unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert_eq!(&bytes[..9], b"head-body");
        assert!(bytes[9..].iter().all(|&b| b == 0));
        // An append past the zeros grows the file.
        file.append(&vec![7u8; len as usize]).unwrap();
        assert_eq!(StdFs.file_size(&path).unwrap(), len + 9);
        assert_eq!(file.len(), len + 9);
    }
}
