//! Encoding of [`Message`]s, as the peer transport frames them.

use super::entry::{ENTRY_MIN_ENCODED_BYTES, encode_entry, read_entry};
use super::error::DecodeError;
use super::reader::Reader;
use super::snapshot::{encode_snapshot_meta, read_snapshot_meta};
use super::writer::{put_bool, put_bytes, put_len, put_option, put_u64};
use crate::message::{Message, MessageBody, RejectHint};

// One tag per message kind, layout version 1. A kind whose layout changes
// takes a new tag; these are never reused.
const PRE_VOTE_REQUEST_TAG_V1: u8 = 0x51;
const PRE_VOTE_RESPONSE_TAG_V1: u8 = 0x52;
const VOTE_REQUEST_TAG_V1: u8 = 0x53;
const VOTE_RESPONSE_TAG_V1: u8 = 0x54;
const APPEND_REQUEST_TAG_V1: u8 = 0x55;
const APPEND_RESPONSE_TAG_V1: u8 = 0x56;
const HEARTBEAT_TAG_V1: u8 = 0x57;
const HEARTBEAT_RESPONSE_TAG_V1: u8 = 0x58;
const INSTALL_SNAPSHOT_TAG_V1: u8 = 0x59;
const TIMEOUT_NOW_TAG_V1: u8 = 0x5a;
const READ_INDEX_REQUEST_TAG_V1: u8 = 0x5b;
const READ_INDEX_RESPONSE_TAG_V1: u8 = 0x5c;
const PROPOSE_REQUEST_TAG_V1: u8 = 0x5d;

/// Fewest bytes one command of a propose request takes (its `u32` length),
/// the bound the command count is checked against before allocating.
const COMMAND_MIN_ENCODED_BYTES: usize = 4;

fn tag_of(body: &MessageBody) -> u8 {
    match body {
        MessageBody::PreVoteRequest { .. } => PRE_VOTE_REQUEST_TAG_V1,
        MessageBody::PreVoteResponse { .. } => PRE_VOTE_RESPONSE_TAG_V1,
        MessageBody::VoteRequest { .. } => VOTE_REQUEST_TAG_V1,
        MessageBody::VoteResponse { .. } => VOTE_RESPONSE_TAG_V1,
        MessageBody::AppendRequest { .. } => APPEND_REQUEST_TAG_V1,
        MessageBody::AppendResponse { .. } => APPEND_RESPONSE_TAG_V1,
        MessageBody::Heartbeat { .. } => HEARTBEAT_TAG_V1,
        MessageBody::HeartbeatResponse { .. } => HEARTBEAT_RESPONSE_TAG_V1,
        MessageBody::InstallSnapshot { .. } => INSTALL_SNAPSHOT_TAG_V1,
        MessageBody::TimeoutNow => TIMEOUT_NOW_TAG_V1,
        MessageBody::ReadIndexRequest { .. } => READ_INDEX_REQUEST_TAG_V1,
        MessageBody::ReadIndexResponse { .. } => READ_INDEX_RESPONSE_TAG_V1,
        MessageBody::ProposeRequest { .. } => PROPOSE_REQUEST_TAG_V1,
    }
}

/// Appends the encoding of `message` to `out`: a tag naming the kind
/// (`0x51`..=`0x5d`), from (u64), to (u64), term (u64), then the kind's
/// fields in declaration order. The encoding is not self-delimiting at the
/// top level: the transport frames it with its length.
pub fn encode_message(message: &Message, out: &mut Vec<u8>) {
    out.push(tag_of(&message.body));
    put_u64(out, message.from);
    put_u64(out, message.to);
    put_u64(out, message.term);
    match &message.body {
        MessageBody::PreVoteRequest {
            last_log_index,
            last_log_term,
        } => {
            put_u64(out, *last_log_index);
            put_u64(out, *last_log_term);
        }
        MessageBody::PreVoteResponse { reject } | MessageBody::VoteResponse { reject } => {
            put_bool(out, *reject);
        }
        MessageBody::VoteRequest {
            last_log_index,
            last_log_term,
            leadership_transfer,
        } => {
            put_u64(out, *last_log_index);
            put_u64(out, *last_log_term);
            put_bool(out, *leadership_transfer);
        }
        MessageBody::AppendRequest {
            prev_log_index,
            prev_log_term,
            entries,
            commit,
        } => {
            put_u64(out, *prev_log_index);
            put_u64(out, *prev_log_term);
            put_u64(out, *commit);
            put_len(out, entries.len());
            for entry in entries {
                encode_entry(entry, out);
            }
        }
        MessageBody::AppendResponse { index, reject } => {
            put_u64(out, *index);
            put_option(out, reject.as_ref(), |out, hint| {
                put_u64(out, hint.index);
                put_u64(out, hint.term);
            });
        }
        MessageBody::Heartbeat {
            commit,
            read_context,
        } => {
            put_u64(out, *commit);
            put_option(out, read_context.as_ref(), |out, context| {
                put_bytes(out, context);
            });
        }
        MessageBody::HeartbeatResponse { read_context } => {
            put_option(out, read_context.as_ref(), |out, context| {
                put_bytes(out, context);
            });
        }
        MessageBody::InstallSnapshot { snapshot } => encode_snapshot_meta(snapshot, out),
        MessageBody::TimeoutNow => {}
        MessageBody::ReadIndexRequest { context } => put_bytes(out, context),
        MessageBody::ReadIndexResponse { context, index } => {
            put_bytes(out, context);
            put_option(out, index.as_ref(), |out, index| put_u64(out, *index));
        }
        MessageBody::ProposeRequest { batch_id, commands } => {
            put_u64(out, *batch_id);
            put_len(out, commands.len());
            for command in commands {
                put_bytes(out, command);
            }
        }
    }
}

/// Decodes a [`Message`] that must fill `input` exactly: bytes after the
/// message are [`DecodeError::TrailingBytes`].
pub fn decode_message(input: &[u8]) -> Result<Message, DecodeError> {
    let mut reader = Reader::new(input);
    let message = read_message(&mut reader)?;
    reader.finish("message")?;
    Ok(message)
}

fn read_message(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let tag = reader.u8("message tag")?;
    if !(PRE_VOTE_REQUEST_TAG_V1..=PROPOSE_REQUEST_TAG_V1).contains(&tag) {
        return Err(DecodeError::UnknownTag {
            what: "message",
            tag,
        });
    }
    let from = reader.u64("message from")?;
    let to = reader.u64("message to")?;
    let term = reader.u64("message term")?;
    let body = read_body(reader, tag)?;
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

fn read_body(reader: &mut Reader<'_>, tag: u8) -> Result<MessageBody, DecodeError> {
    let body = match tag {
        PRE_VOTE_REQUEST_TAG_V1 => MessageBody::PreVoteRequest {
            last_log_index: reader.u64("pre-vote last log index")?,
            last_log_term: reader.u64("pre-vote last log term")?,
        },
        PRE_VOTE_RESPONSE_TAG_V1 => MessageBody::PreVoteResponse {
            reject: reader.bool("pre-vote reject")?,
        },
        VOTE_REQUEST_TAG_V1 => MessageBody::VoteRequest {
            last_log_index: reader.u64("vote last log index")?,
            last_log_term: reader.u64("vote last log term")?,
            leadership_transfer: reader.bool("vote leadership transfer")?,
        },
        VOTE_RESPONSE_TAG_V1 => MessageBody::VoteResponse {
            reject: reader.bool("vote reject")?,
        },
        APPEND_REQUEST_TAG_V1 => {
            let prev_log_index = reader.u64("append prev log index")?;
            let prev_log_term = reader.u64("append prev log term")?;
            let commit = reader.u64("append commit")?;
            let count = reader.count("append entries", ENTRY_MIN_ENCODED_BYTES)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(read_entry(reader)?);
            }
            MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            }
        }
        APPEND_RESPONSE_TAG_V1 => MessageBody::AppendResponse {
            index: reader.u64("append response index")?,
            reject: reader.option("append reject hint", |reader| {
                Ok(RejectHint {
                    index: reader.u64("reject hint index")?,
                    term: reader.u64("reject hint term")?,
                })
            })?,
        },
        HEARTBEAT_TAG_V1 => MessageBody::Heartbeat {
            commit: reader.u64("heartbeat commit")?,
            read_context: reader.option("heartbeat read context", |reader| {
                reader.bytes("heartbeat read context")
            })?,
        },
        HEARTBEAT_RESPONSE_TAG_V1 => MessageBody::HeartbeatResponse {
            read_context: reader.option("heartbeat response read context", |reader| {
                reader.bytes("heartbeat response read context")
            })?,
        },
        INSTALL_SNAPSHOT_TAG_V1 => MessageBody::InstallSnapshot {
            snapshot: read_snapshot_meta(reader)?,
        },
        TIMEOUT_NOW_TAG_V1 => MessageBody::TimeoutNow,
        READ_INDEX_REQUEST_TAG_V1 => MessageBody::ReadIndexRequest {
            context: reader.bytes("read index context")?,
        },
        READ_INDEX_RESPONSE_TAG_V1 => MessageBody::ReadIndexResponse {
            context: reader.bytes("read index context")?,
            index: reader.option("read index", |reader| reader.u64("read index"))?,
        },
        PROPOSE_REQUEST_TAG_V1 => {
            let batch_id = reader.u64("propose batch id")?;
            let count = reader.count("propose commands", COMMAND_MIN_ENCODED_BYTES)?;
            let mut commands = Vec::with_capacity(count);
            for _ in 0..count {
                commands.push(reader.bytes("propose command")?);
            }
            MessageBody::ProposeRequest { batch_id, commands }
        }
        _ => {
            return Err(DecodeError::UnknownTag {
                what: "message",
                tag,
            });
        }
    };
    Ok(body)
}
