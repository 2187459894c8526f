//! A compact binary encoding of the core's data: log entries, hard state,
//! snapshot points, membership changes and messages. The peer transport
//! frames messages with it and the log store (`raftwood-log`) writes entries,
//! hard states and snapshot points with it.
//!
//! The format is documented byte by byte in `docs/raft-log-format.md`
//! (section "Entry and message encoding"). In short: integers are fixed-width
//! little-endian (never `usize`), every encoded value starts with a tag byte
//! that names its kind and layout version, byte strings and lists carry a
//! `u32` length, and `Option`s and `bool`s are one byte that must be 0 or 1.
//! Every value has exactly one encoding, so decoding then encoding gives back
//! the same bytes.
//!
//! Decoding never panics and never allocates more than the input could
//! hold: every length is checked against the bytes that remain before
//! anything is allocated for it. A layout change takes a new tag, so an old
//! decoder rejects the new layout with [`DecodeError::UnknownTag`] instead of
//! misreading it.

mod conf_change;
mod entry;
mod error;
mod hard_state;
mod message;
mod reader;
mod snapshot;
mod writer;

#[cfg(test)]
mod tests;

pub use conf_change::{decode_conf_change, encode_conf_change};
pub use entry::{ENTRY_MIN_ENCODED_BYTES, decode_entry, encode_entry};
pub use error::DecodeError;
pub use hard_state::{HARD_STATE_ENCODED_BYTES, decode_hard_state, encode_hard_state};
pub use message::{decode_message, encode_message};
pub use snapshot::{
    decode_conf_state, decode_snapshot_meta, encode_conf_state, encode_snapshot_meta,
};
