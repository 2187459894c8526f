//! Encoding of log [`Entry`]s.

use super::conf_change::{encode_conf_change, read_conf_change};
use super::error::DecodeError;
use super::reader::Reader;
use super::writer::{put_bytes, put_u64};
use crate::entry::{Entry, EntryPayload};

/// Tag of an entry with an empty payload, layout version 1.
const ENTRY_EMPTY_TAG_V1: u8 = 0x11;
/// Tag of an entry carrying a command, layout version 1.
const ENTRY_COMMAND_TAG_V1: u8 = 0x12;
/// Tag of an entry carrying a membership change, layout version 1.
const ENTRY_CONF_CHANGE_TAG_V1: u8 = 0x13;

/// The fewest bytes an encoded entry takes (an empty entry: tag, term,
/// index). Decoders of entry lists bound their counts with it.
pub const ENTRY_MIN_ENCODED_BYTES: usize = 1 + 8 + 8;

/// Appends the encoding of `entry` to `out`: a tag naming the payload kind
/// (`0x11` empty, `0x12` command, `0x13` membership change), term (u64),
/// index (u64), then the payload: nothing, a byte string, or an encoded
/// [`ConfChange`](crate::ConfChange).
pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    let start = out.len();
    let tag = match &entry.payload {
        EntryPayload::Empty => ENTRY_EMPTY_TAG_V1,
        EntryPayload::Command(_) => ENTRY_COMMAND_TAG_V1,
        EntryPayload::ConfChange(_) => ENTRY_CONF_CHANGE_TAG_V1,
    };
    out.push(tag);
    put_u64(out, entry.term);
    put_u64(out, entry.index);
    match &entry.payload {
        EntryPayload::Empty => {}
        EntryPayload::Command(data) => put_bytes(out, data),
        EntryPayload::ConfChange(change) => encode_conf_change(change, out),
    }
    debug_assert!(out.len() - start >= ENTRY_MIN_ENCODED_BYTES);
}

/// Decodes one [`Entry`] from the front of `input`, returning it and the
/// number of bytes it took. Bytes after it are left to the caller, so
/// entries can be decoded one after another from a concatenation.
pub fn decode_entry(input: &[u8]) -> Result<(Entry, usize), DecodeError> {
    let mut reader = Reader::new(input);
    let entry = read_entry(&mut reader)?;
    Ok((entry, reader.position()))
}

pub(crate) fn read_entry(reader: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    let tag = reader.u8("entry tag")?;
    if !matches!(
        tag,
        ENTRY_EMPTY_TAG_V1 | ENTRY_COMMAND_TAG_V1 | ENTRY_CONF_CHANGE_TAG_V1
    ) {
        return Err(DecodeError::UnknownTag { what: "entry", tag });
    }
    let term = reader.u64("entry term")?;
    let index = reader.u64("entry index")?;
    let payload = match tag {
        ENTRY_COMMAND_TAG_V1 => EntryPayload::Command(reader.bytes("entry command")?),
        ENTRY_CONF_CHANGE_TAG_V1 => EntryPayload::ConfChange(read_conf_change(reader)?),
        _ => EntryPayload::Empty,
    };
    Ok(Entry {
        term,
        index,
        payload,
    })
}
