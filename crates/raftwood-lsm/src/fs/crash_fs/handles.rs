//! Open files of the modelled filesystem: appending, positional reads,
//! and advisory locks. A crash makes every handle opened before it stale.

use super::*;

pub(super) struct CrashWritableFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) inode: InodeId,
    pub(super) path: PathBuf,
    /// The epoch the file was opened in.
    pub(super) epoch: u64,
    /// Bytes appended through this handle.
    pub(super) len: u64,
}

impl fmt::Debug for CrashWritableFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashWritableFile")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("epoch", &self.epoch)
            .field("len", &self.len)
            .finish()
    }
}

impl WritableFile for CrashWritableFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        let mut state = self.state.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle(&self.path));
        }
        let (inode, path) = (self.inode, &self.path);
        let appended_through_handle = self.len + data.len() as u64;
        state.mutate(
            OpKind::Write,
            || format!("appending to {}", path.display()),
            |state| {
                // The inode outlives a removal of its entry (POSIX unlink
                // semantics); only a crash collects it, and that changes the
                // epoch.
                let file = state
                    .file_mut(inode)
                    .ok_or_else(|| not_found("appending to", path))?;
                file.content.extend_from_slice(data);
                // Appending at the end models a file with one writer since
                // it was created (the engine's rule); a second handle, or a
                // truncation under this one, would need write offsets.
                debug_assert_eq!(
                    file.content.len() as u64,
                    appended_through_handle,
                    "{} has another writer",
                    path.display()
                );
                Ok(())
            },
        )?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> Result<()> {
        let mut state = self.state.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle(&self.path));
        }
        let (inode, path) = (self.inode, &self.path);
        state.mutate(
            OpKind::Sync,
            || format!("syncing {}", path.display()),
            |state| {
                let file = state
                    .file_mut(inode)
                    .ok_or_else(|| not_found("syncing", path))?;
                file.make_durable();
                Ok(())
            },
        )
    }

    fn zero_extend(&mut self, len: u64) -> Result<()> {
        let mut state = self.state.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle(&self.path));
        }
        let (inode, path) = (self.inode, &self.path);
        let len = usize::try_from(len).map_err(|_| {
            Error::InvalidArgument(format!(
                "cannot zero-extend {} to {len} bytes",
                path.display()
            ))
        })?;
        state.mutate(
            OpKind::Write,
            || format!("zero-extending {}", path.display()),
            |state| {
                let file = state
                    .file_mut(inode)
                    .ok_or_else(|| not_found("zero-extending", path))?;
                file.zeroed_to = file.zeroed_to.max(len);
                Ok(())
            },
        )
    }

    fn len(&self) -> u64 {
        self.len
    }
}

pub(super) struct CrashRandomAccessFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) inode: InodeId,
    pub(super) path: PathBuf,
    pub(super) epoch: u64,
    /// Size when opened, like `StdFs`.
    pub(super) size: u64,
}

impl fmt::Debug for CrashRandomAccessFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashRandomAccessFile")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("epoch", &self.epoch)
            .field("size", &self.size)
            .finish()
    }
}

impl RandomAccessFile for CrashRandomAccessFile {
    fn read_exact_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let state = self.state.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle(&self.path));
        }
        let file = state
            .file(self.inode)
            .ok_or_else(|| not_found("reading", &self.path))?;
        let end = offset.checked_add(len as u64);
        let limit = self.size.min(file.visible_len() as u64);
        match end {
            Some(end) if end <= limit => {
                // Both bounds fit in usize: they are at most the file's size.
                Ok(file.visible_range(offset as usize, end as usize))
            }
            _ => Err(Error::corruption(
                self.path.display().to_string(),
                format!("read of {len} bytes at offset {offset} is past the end ({limit} bytes)"),
            )),
        }
    }

    fn size(&self) -> u64 {
        self.size
    }
}

pub(super) struct CrashFileLock {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) key: String,
    /// Distinguishes this guard from a later lock of the same path taken
    /// after a crash released this one.
    pub(super) lock_id: u64,
}

impl fmt::Debug for CrashFileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashFileLock")
            .field("key", &self.key)
            .field("lock_id", &self.lock_id)
            .finish()
    }
}

impl FileLock for CrashFileLock {}

impl Drop for CrashFileLock {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        if state.locks.get(&self.key) == Some(&self.lock_id) {
            state.locks.remove(&self.key);
        }
    }
}
