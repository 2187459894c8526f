//! Lengths as the fixed-width integers of on-disk and wire formats. Every
//! encoder that writes a length goes through these, so a length that does
//! not fit its field stops the process instead of being written wrong.

/// `len` as the `u32` of a format field (`what` names it for the panic).
///
/// # Panics
///
/// If `len` exceeds `u32::MAX`. Callers bound what they encode far below
/// 4 GiB (keys, values, batches, records, frames), so reaching this is a
/// bug, not bad input.
pub fn len_u32(len: usize, what: &str) -> u32 {
    let fitted = u32::try_from(len);
    assert!(
        fitted.is_ok(),
        "{what}: a length of {len} does not fit a u32 field"
    );
    fitted.unwrap_or(u32::MAX)
}

/// `len` as the `u16` of a format field; see [`len_u32`].
///
/// # Panics
///
/// If `len` exceeds `u16::MAX`.
pub fn len_u16(len: usize, what: &str) -> u16 {
    let fitted = u16::try_from(len);
    assert!(
        fitted.is_ok(),
        "{what}: a length of {len} does not fit a u16 field"
    );
    fitted.unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_that_fit_are_kept() {
        assert_eq!(len_u32(4096, "block"), 4096);
        assert_eq!(len_u16(65_535, "count"), 65_535);
    }

    #[test]
    #[should_panic(expected = "does not fit a u16 field")]
    fn a_length_that_does_not_fit_stops() {
        len_u16(65_536, "count");
    }
}
