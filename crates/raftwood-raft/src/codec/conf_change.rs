//! Encoding of [`ConfChange`], the payload of a membership-change entry.

use super::error::DecodeError;
use super::reader::Reader;
use super::writer::{put_bytes, put_len, put_u64};
use crate::membership::{ConfChange, ConfChangeKind, ConfChangeSingle, ConfChangeTransition};

/// Tag of a [`ConfChange`], layout version 1.
pub(crate) const CONF_CHANGE_TAG_V1: u8 = 0x41;

/// Bytes of one encoded [`ConfChangeSingle`]: kind, node id.
const SINGLE_ENCODED_BYTES: usize = 1 + 8;

/// Appends the encoding of `change` to `out`:
/// tag `0x41`, transition (u8), change count (u32), each change as kind
/// (u8) and node id (u64), then the context as a byte string.
pub fn encode_conf_change(change: &ConfChange, out: &mut Vec<u8>) {
    out.push(CONF_CHANGE_TAG_V1);
    out.push(match change.transition {
        ConfChangeTransition::Auto => 0,
        ConfChangeTransition::JointImplicit => 1,
        ConfChangeTransition::JointExplicit => 2,
    });
    put_len(out, change.changes.len());
    for single in &change.changes {
        out.push(match single.kind {
            ConfChangeKind::AddVoter => 0,
            ConfChangeKind::AddLearner => 1,
            ConfChangeKind::RemoveNode => 2,
        });
        put_u64(out, single.node_id);
    }
    put_bytes(out, &change.context);
}

/// Decodes one [`ConfChange`] from the front of `input`, returning it and
/// the number of bytes it took. Bytes after it are left to the caller.
pub fn decode_conf_change(input: &[u8]) -> Result<(ConfChange, usize), DecodeError> {
    let mut reader = Reader::new(input);
    let change = read_conf_change(&mut reader)?;
    Ok((change, reader.position()))
}

pub(crate) fn read_conf_change(reader: &mut Reader<'_>) -> Result<ConfChange, DecodeError> {
    let tag = reader.u8("conf change tag")?;
    if tag != CONF_CHANGE_TAG_V1 {
        return Err(DecodeError::UnknownTag {
            what: "conf change",
            tag,
        });
    }
    let transition = match reader.u8("conf change transition")? {
        0 => ConfChangeTransition::Auto,
        1 => ConfChangeTransition::JointImplicit,
        2 => ConfChangeTransition::JointExplicit,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "conf change transition",
                tag,
            });
        }
    };
    let count = reader.count("conf change list", SINGLE_ENCODED_BYTES)?;
    let mut changes = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = match reader.u8("conf change kind")? {
            0 => ConfChangeKind::AddVoter,
            1 => ConfChangeKind::AddLearner,
            2 => ConfChangeKind::RemoveNode,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "conf change kind",
                    tag,
                });
            }
        };
        let node_id = reader.u64("conf change node id")?;
        changes.push(ConfChangeSingle { kind, node_id });
    }
    let context = reader.bytes("conf change context")?;
    Ok(ConfChange {
        transition,
        changes,
        context,
    })
}
