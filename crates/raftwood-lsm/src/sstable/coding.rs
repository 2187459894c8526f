//! Integer encodings shared by every SSTable structure.
//!
//! Two encodings are used (see `docs/sstable-format.md`, "Integers"):
//! fixed-width little-endian `u32`/`u64`, and LEB128 varints for `u32`
//! lengths inside blocks (at most 5 bytes). Every decoder here returns `None`
//! instead of panicking on short or malformed input; callers turn `None` into
//! a corruption error that names the file and offset.

/// Longest LEB128 encoding of a `u32`.
pub(crate) const MAX_VARINT32_LEN: usize = 5;

/// Appends `value` as a LEB128 varint.
pub(crate) fn put_varint32(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes a LEB128 varint starting at `pos`. Returns the value and the
/// position just after it, or `None` if the input ends early, the encoding
/// is longer than 5 bytes, or the value does not fit in 32 bits.
#[inline]
pub(crate) fn decode_varint32(data: &[u8], pos: usize) -> Option<(u32, usize)> {
    // Fast path: most lengths in a block are below 128.
    let first = *data.get(pos)?;
    if first < 0x80 {
        return Some((u32::from(first), pos + 1));
    }
    let mut result: u32 = 0;
    for index in 0..MAX_VARINT32_LEN {
        let byte = *data.get(pos + index)?;
        let payload = u32::from(byte & 0x7f);
        // The fifth byte may carry only the top 4 bits of a u32.
        if index == MAX_VARINT32_LEN - 1 && payload > 0x0f {
            return None;
        }
        result |= payload << (7 * index);
        if byte < 0x80 {
            return Some((result, pos + index + 1));
        }
    }
    None
}

/// Reads a little-endian `u32` at `pos`.
#[inline]
pub(crate) fn read_u32_le(data: &[u8], pos: usize) -> Option<u32> {
    let bytes = data.get(pos..pos.checked_add(4)?)?;
    let mut array = [0u8; 4];
    array.copy_from_slice(bytes);
    Some(u32::from_le_bytes(array))
}

/// Reads a little-endian `u64` at `pos`.
#[inline]
pub(crate) fn read_u64_le(data: &[u8], pos: usize) -> Option<u64> {
    let bytes = data.get(pos..pos.checked_add(8)?)?;
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    Some(u64::from_le_bytes(array))
}

/// Appends `bytes` preceded by their length as a `u32` little-endian.
/// The caller guarantees the length fits (keys and values are < 2^31 bytes).
pub(crate) fn put_length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(u32::try_from(bytes.len()).is_ok());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A forward-only cursor over untrusted bytes. Every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        ByteReader { data, position: 0 }
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let value = read_u32_le(self.data, self.position)?;
        self.position += 4;
        Some(value)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let value = read_u64_le(self.data, self.position)?;
        self.position += 8;
        Some(value)
    }

    /// Takes the next `len` bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.position.checked_add(len)?;
        let bytes = self.data.get(self.position..end)?;
        self.position = end;
        Some(bytes)
    }

    /// A `u32` little-endian length followed by that many bytes.
    pub(crate) fn length_prefixed(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.bytes(len)
    }

    /// True once every byte has been consumed.
    pub(crate) fn is_at_end(&self) -> bool {
        self.position == self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_boundaries() {
        for value in [
            0u32,
            1,
            127,
            128,
            255,
            16_383,
            16_384,
            1 << 21,
            (1 << 28) - 1,
            1 << 28,
            u32::MAX,
        ] {
            let mut out = Vec::new();
            put_varint32(&mut out, value);
            assert!(out.len() <= MAX_VARINT32_LEN);
            assert_eq!(decode_varint32(&out, 0), Some((value, out.len())));
            // Every strict prefix is incomplete.
            for cut in 0..out.len() {
                assert_eq!(decode_varint32(&out[..cut], 0), None);
            }
        }
    }

    #[test]
    fn varint_rejects_overlong_and_overflowing_encodings() {
        assert_eq!(
            decode_varint32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], 0),
            None
        );
        assert_eq!(decode_varint32(&[0xff, 0xff, 0xff, 0xff, 0x1f], 0), None);
        assert_eq!(
            decode_varint32(&[0xff, 0xff, 0xff, 0xff, 0x0f], 0),
            Some((u32::MAX, 5))
        );
    }

    #[test]
    fn fixed_reads_are_bounds_checked() {
        assert_eq!(read_u32_le(&[1, 0, 0], 0), None);
        assert_eq!(read_u32_le(&[1, 0, 0, 0], 0), Some(1));
        assert_eq!(read_u64_le(&[0; 8], 1), None);
        assert_eq!(read_u64_le(&[0; 8], usize::MAX), None);
        let mut reader = ByteReader::new(&[3, 0, 0, 0, b'a', b'b']);
        assert_eq!(reader.length_prefixed(), None);
        let mut reader = ByteReader::new(&[2, 0, 0, 0, b'a', b'b']);
        assert_eq!(reader.length_prefixed(), Some(&b"ab"[..]));
        assert!(reader.is_at_end());
    }
}
