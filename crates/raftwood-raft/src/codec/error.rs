//! Why bytes could not be decoded.

use thiserror::Error;

/// Bytes that are not a valid encoding. Every variant names what was being
/// decoded, so a corrupt frame or record can be reported precisely.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("truncated {what}: needed {needed} more bytes, {remaining} remain")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the input.
        remaining: u64,
    },
    /// A tag byte names no known kind or layout version.
    #[error("unknown {what} tag {tag:#04x}")]
    UnknownTag {
        /// The kind of value whose tag it is.
        what: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// A length or count is larger than the rest of the input could hold.
    /// Nothing is allocated for it.
    #[error("{what} length {length} exceeds the {remaining} bytes that remain")]
    LengthTooLarge {
        /// The string or list whose length it is.
        what: &'static str,
        /// The length read.
        length: u64,
        /// Bytes left in the input.
        remaining: u64,
    },
    /// Bytes follow a complete value where the input should have ended.
    #[error("{count} trailing bytes after a complete {what}")]
    TrailingBytes {
        /// The value decoded.
        what: &'static str,
        /// How many bytes follow it.
        count: u64,
    },
    /// A field holds a value its type does not allow (a boolean other than
    /// 0 or 1, a set whose members are not strictly ascending).
    #[error("invalid {what}: {value}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
}
