//! Encoding of [`SnapshotMeta`] and the [`ConfState`] inside it.

use std::collections::BTreeSet;

use super::error::DecodeError;
use super::reader::Reader;
use super::writer::{put_bool, put_len, put_u64};
use crate::ids::NodeId;
use crate::membership::ConfState;
use crate::snapshot::SnapshotMeta;

/// Tag of a [`SnapshotMeta`], layout version 1.
const SNAPSHOT_META_TAG_V1: u8 = 0x31;
/// Tag of a [`ConfState`], layout version 1.
const CONF_STATE_TAG_V1: u8 = 0x32;

/// Appends the encoding of `meta` to `out`: tag `0x31`, index (u64), term
/// (u64), then the encoded [`ConfState`].
pub fn encode_snapshot_meta(meta: &SnapshotMeta, out: &mut Vec<u8>) {
    out.push(SNAPSHOT_META_TAG_V1);
    put_u64(out, meta.index);
    put_u64(out, meta.term);
    encode_conf_state(&meta.conf_state, out);
}

/// Decodes one [`SnapshotMeta`] from the front of `input`, returning it and
/// the number of bytes it took.
pub fn decode_snapshot_meta(input: &[u8]) -> Result<(SnapshotMeta, usize), DecodeError> {
    let mut reader = Reader::new(input);
    let meta = read_snapshot_meta(&mut reader)?;
    Ok((meta, reader.position()))
}

pub(crate) fn read_snapshot_meta(reader: &mut Reader<'_>) -> Result<SnapshotMeta, DecodeError> {
    let tag = reader.u8("snapshot meta tag")?;
    if tag != SNAPSHOT_META_TAG_V1 {
        return Err(DecodeError::UnknownTag {
            what: "snapshot meta",
            tag,
        });
    }
    let index = reader.u64("snapshot index")?;
    let term = reader.u64("snapshot term")?;
    let conf_state = read_conf_state(reader)?;
    Ok(SnapshotMeta {
        index,
        term,
        conf_state,
    })
}

/// Appends the encoding of `conf_state` to `out`: tag `0x32`, the four
/// member sets (voters, learners, outgoing voters, next learners) each as a
/// count (u32) and its node ids (u64) in ascending order, then `auto_leave`
/// (u8, 0 or 1).
pub fn encode_conf_state(conf_state: &ConfState, out: &mut Vec<u8>) {
    out.push(CONF_STATE_TAG_V1);
    put_set(out, &conf_state.voters);
    put_set(out, &conf_state.learners);
    put_set(out, &conf_state.voters_outgoing);
    put_set(out, &conf_state.learners_next);
    put_bool(out, conf_state.auto_leave);
}

/// Decodes one [`ConfState`] from the front of `input`, returning it and the
/// number of bytes it took. The configuration is not validated: that is the
/// core's business ([`ConfState::validate`]).
pub fn decode_conf_state(input: &[u8]) -> Result<(ConfState, usize), DecodeError> {
    let mut reader = Reader::new(input);
    let conf_state = read_conf_state(&mut reader)?;
    Ok((conf_state, reader.position()))
}

pub(crate) fn read_conf_state(reader: &mut Reader<'_>) -> Result<ConfState, DecodeError> {
    let tag = reader.u8("conf state tag")?;
    if tag != CONF_STATE_TAG_V1 {
        return Err(DecodeError::UnknownTag {
            what: "conf state",
            tag,
        });
    }
    Ok(ConfState {
        voters: read_set(reader, "conf state voters")?,
        learners: read_set(reader, "conf state learners")?,
        voters_outgoing: read_set(reader, "conf state outgoing voters")?,
        learners_next: read_set(reader, "conf state next learners")?,
        auto_leave: reader.bool("conf state auto_leave")?,
    })
}

fn put_set(out: &mut Vec<u8>, set: &BTreeSet<NodeId>) {
    put_len(out, set.len());
    for id in set {
        put_u64(out, *id);
    }
}

/// Reads a set written by `put_set`. Members must be strictly ascending, so
/// that every set has exactly one encoding.
fn read_set(reader: &mut Reader<'_>, what: &'static str) -> Result<BTreeSet<NodeId>, DecodeError> {
    let count = reader.count(what, 8)?;
    let mut set = BTreeSet::new();
    let mut previous: Option<NodeId> = None;
    for _ in 0..count {
        let id = reader.u64(what)?;
        if previous.is_some_and(|previous| previous >= id) {
            return Err(DecodeError::InvalidValue { what, value: id });
        }
        previous = Some(id);
        set.insert(id);
    }
    Ok(set)
}
