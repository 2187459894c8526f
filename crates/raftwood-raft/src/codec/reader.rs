//! A cursor over input bytes that checks every read against what remains.

use bytes::Bytes;

use super::error::DecodeError;

/// Reads fixed-width little-endian fields from a byte slice. Every method
/// returns [`DecodeError`] instead of reading past the end.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    /// Invariant: `position <= input.len()`.
    position: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Reader<'a> {
        Reader { input, position: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    /// Fails unless every byte has been consumed.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                what,
                count: count as u64,
            }),
        }
    }

    fn take(&mut self, what: &'static str, len: usize) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if len > remaining {
            return Err(DecodeError::Truncated {
                what,
                needed: len as u64,
                remaining: remaining as u64,
            });
        }
        let start = self.position;
        self.position += len;
        debug_assert!(self.position <= self.input.len());
        Ok(&self.input[start..start + len])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(what, N)?);
        Ok(array)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// One byte that must be 0 (false) or 1 (true).
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::InvalidValue {
                what,
                value: u64::from(other),
            }),
        }
    }

    /// A `u32` count of items each at least `min_item_bytes` long, checked
    /// against the input that remains so a caller may allocate for it.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        debug_assert!(min_item_bytes > 0);
        let count = self.u32(what)?;
        let remaining = self.remaining();
        let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
        if count_usize > remaining / min_item_bytes {
            return Err(DecodeError::LengthTooLarge {
                what,
                length: u64::from(count),
                remaining: remaining as u64,
            });
        }
        Ok(count_usize)
    }

    /// A byte string: a `u32` length, then that many bytes.
    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(what)?;
        let remaining = self.remaining();
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize > remaining {
            return Err(DecodeError::LengthTooLarge {
                what,
                length: u64::from(len),
                remaining: remaining as u64,
            });
        }
        Ok(Bytes::copy_from_slice(self.take(what, len_usize)?))
    }

    /// An optional value: a presence byte (0 or 1), then the value if 1.
    pub(crate) fn option<T>(
        &mut self,
        what: &'static str,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.bool(what)? {
            Ok(Some(read(self)?))
        } else {
            Ok(None)
        }
    }
}
