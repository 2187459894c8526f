//! Encoding of [`HardState`].

use super::error::DecodeError;
use super::reader::Reader;
use super::writer::{put_option, put_u64};
use crate::hard_state::HardState;

/// Tag of a [`HardState`], layout version 1.
const HARD_STATE_TAG_V1: u8 = 0x21;

/// Bytes of an encoded hard state without a vote (tag, term, vote
/// presence, commit); a vote adds 8.
pub const HARD_STATE_ENCODED_BYTES: usize = 1 + 8 + 1 + 8;

/// Appends the encoding of `hard_state` to `out`: tag `0x21`, term (u64),
/// vote as a presence byte (0 or 1) followed by the node id (u64) if 1,
/// commit (u64).
pub fn encode_hard_state(hard_state: &HardState, out: &mut Vec<u8>) {
    out.push(HARD_STATE_TAG_V1);
    put_u64(out, hard_state.term);
    put_option(out, hard_state.vote.as_ref(), |out, vote| {
        put_u64(out, *vote)
    });
    put_u64(out, hard_state.commit);
}

/// Decodes one [`HardState`] from the front of `input`, returning it and the
/// number of bytes it took.
pub fn decode_hard_state(input: &[u8]) -> Result<(HardState, usize), DecodeError> {
    let mut reader = Reader::new(input);
    let hard_state = read_hard_state(&mut reader)?;
    Ok((hard_state, reader.position()))
}

pub(crate) fn read_hard_state(reader: &mut Reader<'_>) -> Result<HardState, DecodeError> {
    let tag = reader.u8("hard state tag")?;
    if tag != HARD_STATE_TAG_V1 {
        return Err(DecodeError::UnknownTag {
            what: "hard state",
            tag,
        });
    }
    let term = reader.u64("hard state term")?;
    let vote = reader.option("hard state vote", |reader| reader.u64("hard state vote"))?;
    let commit = reader.u64("hard state commit")?;
    Ok(HardState { term, vote, commit })
}
