//! Appends framed records to a log file (format: `docs/wal-format.md`).

use std::fmt;

use super::format::{self, HEADER_LEN, MAX_PAYLOAD_LEN_BYTES};
use crate::error::{Error, Result};
use crate::fs::WritableFile;

/// The encoding buffer keeps at most this much capacity between records, so
/// that one 64 MiB record does not pin 64 MiB for the life of the log.
const RETAINED_BUFFER_CAPACITY_BYTES: usize = 1 << 20;

/// Writes records to a log file. Each call hands its bytes to the file in a
/// single `append`; nothing is buffered across calls, so after
/// [`LogWriter::add_record`] returns the record is in the OS (it survives a
/// process crash) and after [`LogWriter::sync`] it is durable.
///
/// Fail-stop: once an append or a sync has failed, the file's content is
/// unknown (a prefix of the record may have been written, or dirty pages
/// dropped), so every later call returns [`Error::Poisoned`]. The caller
/// starts a new log after recovery; it must never append to a log whose tail
/// the reader dropped, or the old damage would sit in the middle.
pub struct LogWriter {
    file: Box<dyn WritableFile>,
    /// Reused to frame records so that each call makes one `append`.
    buffer: Vec<u8>,
    /// Bytes in the file. Invariant: equals `file.len()` while not poisoned;
    /// it is the offset stored in the next record's header.
    len_bytes: u64,
    /// Why the writer refuses further work, once an I/O call failed.
    poisoned: Option<String>,
}

impl LogWriter {
    /// Starts writing at the end of `file` (normally a freshly created,
    /// empty file).
    pub fn new(file: Box<dyn WritableFile>) -> LogWriter {
        let len_bytes = file.len();
        LogWriter {
            file,
            buffer: Vec::new(),
            len_bytes,
            poisoned: None,
        }
    }

    /// Appends one record. Payloads may be empty and at most
    /// [`MAX_PAYLOAD_LEN_BYTES`] long.
    pub fn add_record(&mut self, payload: &[u8]) -> Result<()> {
        self.add_records(&[payload])
    }

    /// Appends several records with one `append` call (group commit). Either
    /// every payload is accepted or, for an oversized one, none is written.
    pub fn add_records(&mut self, payloads: &[&[u8]]) -> Result<()> {
        self.check_not_poisoned()?;
        if let Some(oversized) = payloads.iter().find(|p| p.len() > MAX_PAYLOAD_LEN_BYTES) {
            return Err(Error::InvalidArgument(format!(
                "log record of {} bytes exceeds the limit of {MAX_PAYLOAD_LEN_BYTES} bytes",
                oversized.len()
            )));
        }
        if payloads.is_empty() {
            return Ok(());
        }
        self.buffer.clear();
        let mut offset = self.len_bytes;
        for payload in payloads {
            let before = self.buffer.len();
            format::encode_record(offset, payload, &mut self.buffer);
            let framed_len = self.buffer.len() - before;
            debug_assert_eq!(framed_len, HEADER_LEN + payload.len());
            offset += framed_len as u64;
        }
        let appended = self.file.append(&self.buffer);
        let buffer_len = self.buffer.len() as u64;
        self.buffer.clear();
        self.buffer.shrink_to(RETAINED_BUFFER_CAPACITY_BYTES);
        if let Err(error) = appended {
            self.poisoned = Some(format!("log append failed: {error}"));
            return Err(error);
        }
        self.len_bytes += buffer_len;
        assert_eq!(self.len_bytes, offset, "framing accounted every byte");
        debug_assert_eq!(self.len_bytes, self.file.len());
        Ok(())
    }

    /// Makes every record added so far durable (fdatasync). Making the log
    /// file's directory entry durable is the caller's job (`sync_dir`).
    pub fn sync(&mut self) -> Result<()> {
        self.check_not_poisoned()?;
        if let Err(error) = self.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty
            // pages; retrying could report success for lost data.
            self.poisoned = Some(format!("log sync failed: {error}"));
            return Err(error);
        }
        Ok(())
    }

    /// Bytes written to the file so far, framing included.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// True once an append or sync failed; every later call fails.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    fn check_not_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => Err(Error::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogWriter")
            .field("file", &self.file)
            .field("len_bytes", &self.len_bytes)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}
