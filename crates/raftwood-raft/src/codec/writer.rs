//! Appending fixed-width little-endian fields to an output buffer.

/// Appends `value` as 8 little-endian bytes.
pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends `value` as 4 little-endian bytes.
pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends `value` as one byte, 0 or 1.
pub(crate) fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

/// Appends a list or string length as a `u32`.
///
/// # Panics
///
/// If `len` exceeds `u32::MAX`: no entry, context or list may be 4 GiB or
/// longer. The server caps requests far below that (etcd's default is
/// 1.5 MiB), so reaching this is a bug, not bad input.
pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len);
    assert!(len.is_ok(), "encoded lengths are limited to u32::MAX");
    put_u32(out, len.unwrap_or(u32::MAX));
}

/// Appends a byte string: its `u32` length, then its bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends an optional value: a presence byte, then the value if present.
pub(crate) fn put_option<T>(
    out: &mut Vec<u8>,
    value: Option<&T>,
    write: impl FnOnce(&mut Vec<u8>, &T),
) {
    match value {
        None => put_bool(out, false),
        Some(value) => {
            put_bool(out, true);
            write(out, value);
        }
    }
}
