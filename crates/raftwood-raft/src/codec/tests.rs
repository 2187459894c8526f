//! Round trips, robustness against arbitrary and truncated input, and the
//! specific errors of each kind of malformed input.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

use super::*;
use crate::{
    ConfChange, ConfChangeKind, ConfChangeSingle, ConfChangeTransition, ConfState, Entry,
    EntryPayload, HardState, Message, MessageBody, RejectHint, SnapshotMeta,
};

fn bytes_strategy() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn conf_change_strategy() -> impl Strategy<Value = ConfChange> {
    let transition = prop_oneof![
        Just(ConfChangeTransition::Auto),
        Just(ConfChangeTransition::JointImplicit),
        Just(ConfChangeTransition::JointExplicit),
    ];
    let kind = prop_oneof![
        Just(ConfChangeKind::AddVoter),
        Just(ConfChangeKind::AddLearner),
        Just(ConfChangeKind::RemoveNode),
    ];
    let single =
        (kind, any::<u64>()).prop_map(|(kind, node_id)| ConfChangeSingle { kind, node_id });
    (transition, vec(single, 0..5), bytes_strategy()).prop_map(|(transition, changes, context)| {
        ConfChange {
            transition,
            changes,
            context,
        }
    })
}

fn entry_strategy() -> impl Strategy<Value = Entry> {
    let payload = prop_oneof![
        Just(EntryPayload::Empty),
        bytes_strategy().prop_map(EntryPayload::Command),
        conf_change_strategy().prop_map(EntryPayload::ConfChange),
    ];
    (any::<u64>(), any::<u64>(), payload).prop_map(|(term, index, payload)| Entry {
        term,
        index,
        payload,
    })
}

fn hard_state_strategy() -> impl Strategy<Value = HardState> {
    (any::<u64>(), any::<Option<u64>>(), any::<u64>()).prop_map(|(term, vote, commit)| HardState {
        term,
        vote,
        commit,
    })
}

fn id_set() -> impl Strategy<Value = BTreeSet<u64>> {
    btree_set(any::<u64>(), 0..5)
}

fn conf_state_strategy() -> impl Strategy<Value = ConfState> {
    (id_set(), id_set(), id_set(), id_set(), any::<bool>()).prop_map(
        |(voters, learners, voters_outgoing, learners_next, auto_leave)| ConfState {
            voters,
            learners,
            voters_outgoing,
            learners_next,
            auto_leave,
        },
    )
}

fn snapshot_meta_strategy() -> impl Strategy<Value = SnapshotMeta> {
    (any::<u64>(), any::<u64>(), conf_state_strategy()).prop_map(|(index, term, conf_state)| {
        SnapshotMeta {
            index,
            term,
            conf_state,
        }
    })
}

fn body_strategy() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(last_log_index, last_log_term)| {
            MessageBody::PreVoteRequest {
                last_log_index,
                last_log_term,
            }
        }),
        any::<bool>().prop_map(|reject| MessageBody::PreVoteResponse { reject }),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(last_log_index, last_log_term, leadership_transfer)| MessageBody::VoteRequest {
                last_log_index,
                last_log_term,
                leadership_transfer,
            }
        ),
        any::<bool>().prop_map(|reject| MessageBody::VoteResponse { reject }),
        (
            any::<u64>(),
            any::<u64>(),
            vec(entry_strategy(), 0..4),
            any::<u64>()
        )
            .prop_map(|(prev_log_index, prev_log_term, entries, commit)| {
                MessageBody::AppendRequest {
                    prev_log_index,
                    prev_log_term,
                    entries,
                    commit,
                }
            }),
        (any::<u64>(), any::<Option<(u64, u64)>>()).prop_map(|(index, reject)| {
            MessageBody::AppendResponse {
                index,
                reject: reject.map(|(index, term)| RejectHint { index, term }),
            }
        }),
        (any::<u64>(), proptest::option::of(bytes_strategy())).prop_map(
            |(commit, read_context)| MessageBody::Heartbeat {
                commit,
                read_context
            }
        ),
        proptest::option::of(bytes_strategy())
            .prop_map(|read_context| MessageBody::HeartbeatResponse { read_context }),
        snapshot_meta_strategy().prop_map(|snapshot| MessageBody::InstallSnapshot { snapshot }),
        Just(MessageBody::TimeoutNow),
        bytes_strategy().prop_map(|context| MessageBody::ReadIndexRequest { context }),
        (bytes_strategy(), any::<Option<u64>>())
            .prop_map(|(context, index)| MessageBody::ReadIndexResponse { context, index }),
        (any::<u64>(), vec(bytes_strategy(), 0..4))
            .prop_map(|(batch_id, commands)| MessageBody::ProposeRequest { batch_id, commands }),
    ]
}

fn message_strategy() -> impl Strategy<Value = Message> {
    (any::<u64>(), any::<u64>(), any::<u64>(), body_strategy()).prop_map(
        |(from, to, term, body)| Message {
            from,
            to,
            term,
            body,
        },
    )
}

/// A decoder of one self-delimiting value.
type Decoder<T> = fn(&[u8]) -> Result<(T, usize), DecodeError>;

/// Checks what every self-delimiting encoding must satisfy: it decodes to
/// the value, consuming exactly its bytes even when more follow, and every
/// proper prefix fails to decode.
fn check_self_delimiting<T: PartialEq + std::fmt::Debug>(
    value: &T,
    encode: fn(&T, &mut Vec<u8>),
    decode: Decoder<T>,
) -> Result<(), TestCaseError> {
    let mut encoded = Vec::new();
    encode(value, &mut encoded);
    let (decoded, consumed) = decode(&encoded).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, value);
    prop_assert_eq!(consumed, encoded.len());

    let mut followed = encoded.clone();
    followed.extend_from_slice(&[0x11, 0xff, 0x00]);
    let (decoded, consumed) = decode(&followed).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, value);
    prop_assert_eq!(consumed, encoded.len());

    for len in 0..encoded.len() {
        prop_assert!(
            decode(&encoded[..len]).is_err(),
            "prefix of {} of {} bytes decoded",
            len,
            encoded.len()
        );
    }
    Ok(())
}

/// Checks that a decoder given arbitrary bytes returns (never panics), and
/// that whatever it accepts re-encodes to exactly the bytes it consumed.
fn check_arbitrary_input<T>(
    input: &[u8],
    encode: fn(&T, &mut Vec<u8>),
    decode: Decoder<T>,
) -> Result<(), TestCaseError> {
    if let Ok((value, consumed)) = decode(input) {
        prop_assert!(consumed <= input.len());
        let mut encoded = Vec::new();
        encode(&value, &mut encoded);
        prop_assert_eq!(&encoded[..], &input[..consumed]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn entry_round_trips(entry in entry_strategy()) {
        check_self_delimiting(&entry, encode_entry, decode_entry)?;
    }

    #[test]
    fn hard_state_round_trips(hard_state in hard_state_strategy()) {
        check_self_delimiting(&hard_state, encode_hard_state, decode_hard_state)?;
        let mut encoded = Vec::new();
        encode_hard_state(&hard_state, &mut encoded);
        let expected = HARD_STATE_ENCODED_BYTES + if hard_state.vote.is_some() { 8 } else { 0 };
        prop_assert_eq!(encoded.len(), expected);
    }

    #[test]
    fn snapshot_meta_round_trips(meta in snapshot_meta_strategy()) {
        check_self_delimiting(&meta, encode_snapshot_meta, decode_snapshot_meta)?;
    }

    #[test]
    fn conf_state_round_trips(conf_state in conf_state_strategy()) {
        check_self_delimiting(&conf_state, encode_conf_state, decode_conf_state)?;
    }

    #[test]
    fn conf_change_round_trips(change in conf_change_strategy()) {
        check_self_delimiting(&change, encode_conf_change, decode_conf_change)?;
    }

    #[test]
    fn message_round_trips(message in message_strategy()) {
        let mut encoded = Vec::new();
        encode_message(&message, &mut encoded);
        prop_assert_eq!(decode_message(&encoded), Ok(message.clone()));
        for len in 0..encoded.len() {
            prop_assert!(decode_message(&encoded[..len]).is_err(), "prefix of {} bytes decoded", len);
        }
        let mut followed = encoded.clone();
        followed.push(0);
        prop_assert_eq!(
            decode_message(&followed),
            Err(DecodeError::TrailingBytes { what: "message", count: 1 })
        );
    }

    #[test]
    fn concatenated_entries_decode_one_after_another(entries in vec(entry_strategy(), 0..8)) {
        let mut encoded = Vec::new();
        for entry in &entries {
            encode_entry(entry, &mut encoded);
        }
        let mut rest = &encoded[..];
        let mut decoded = Vec::new();
        while !rest.is_empty() {
            let (entry, consumed) = decode_entry(rest).map_err(|e| TestCaseError::fail(e.to_string()))?;
            decoded.push(entry);
            rest = &rest[consumed..];
        }
        prop_assert_eq!(decoded, entries);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in vec(any::<u8>(), 0..200)) {
        check_arbitrary_input(&input, encode_entry, decode_entry)?;
        check_arbitrary_input(&input, encode_hard_state, decode_hard_state)?;
        check_arbitrary_input(&input, encode_snapshot_meta, decode_snapshot_meta)?;
        check_arbitrary_input(&input, encode_conf_state, decode_conf_state)?;
        check_arbitrary_input(&input, encode_conf_change, decode_conf_change)?;
        if let Ok(message) = decode_message(&input) {
            let mut encoded = Vec::new();
            encode_message(&message, &mut encoded);
            prop_assert_eq!(encoded, input);
        }
    }

    /// Arbitrary bytes rarely get past the first tag byte; mutating valid
    /// encodings reaches the decoders' deeper fields.
    #[test]
    fn mutated_messages_never_panic(
        message in message_strategy(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut encoded = Vec::new();
        encode_message(&message, &mut encoded);
        for (position, value) in flips {
            let at = position.index(encoded.len());
            encoded[at] = value;
        }
        if let Ok(decoded) = decode_message(&encoded) {
            let mut again = Vec::new();
            encode_message(&decoded, &mut again);
            prop_assert_eq!(again, encoded);
        }
    }

    #[test]
    fn mutated_entries_never_panic(
        entry in entry_strategy(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut encoded = Vec::new();
        encode_entry(&entry, &mut encoded);
        for (position, value) in flips {
            let at = position.index(encoded.len());
            encoded[at] = value;
        }
        check_arbitrary_input(&encoded, encode_entry, decode_entry)?;
    }
}

fn append_with_count(count: u32) -> Vec<u8> {
    let message = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::AppendRequest {
            prev_log_index: 4,
            prev_log_term: 5,
            entries: Vec::new(),
            commit: 6,
        },
    };
    let mut encoded = Vec::new();
    encode_message(&message, &mut encoded);
    let count_at = encoded.len() - 4;
    encoded[count_at..].copy_from_slice(&count.to_le_bytes());
    encoded
}

#[test]
fn absurd_entry_count_is_refused_before_allocating() {
    let encoded = append_with_count(u32::MAX);
    assert_eq!(
        decode_message(&encoded),
        Err(DecodeError::LengthTooLarge {
            what: "append entries",
            length: u64::from(u32::MAX),
            remaining: 0,
        })
    );
}

#[test]
fn absurd_command_count_is_refused_before_allocating() {
    let message = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::ProposeRequest {
            batch_id: 4,
            commands: Vec::new(),
        },
    };
    let mut encoded = Vec::new();
    encode_message(&message, &mut encoded);
    let count_at = encoded.len() - 4;
    encoded[count_at..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode_message(&encoded),
        Err(DecodeError::LengthTooLarge {
            what: "propose commands",
            length: u64::from(u32::MAX),
            remaining: 0,
        })
    );
}

#[test]
fn a_propose_request_is_laid_out_as_documented() {
    let message = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::ProposeRequest {
            batch_id: 0x0102,
            commands: vec![Bytes::from_static(b"ab"), Bytes::new()],
        },
    };
    let mut encoded = Vec::new();
    encode_message(&message, &mut encoded);
    let mut expected = vec![0x5d];
    for field in [1u64, 2, 3, 0x0102] {
        expected.extend_from_slice(&field.to_le_bytes());
    }
    expected.extend_from_slice(&2u32.to_le_bytes());
    expected.extend_from_slice(&2u32.to_le_bytes());
    expected.extend_from_slice(b"ab");
    expected.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(encoded, expected);
    assert_eq!(decode_message(&encoded), Ok(message));
}

#[test]
fn absurd_byte_string_length_is_refused() {
    let entry = Entry {
        term: 1,
        index: 2,
        payload: EntryPayload::Command(Bytes::from_static(b"abc")),
    };
    let mut encoded = Vec::new();
    encode_entry(&entry, &mut encoded);
    // The length field sits after tag, term and index.
    encoded[17..21].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    assert_eq!(
        decode_entry(&encoded),
        Err(DecodeError::LengthTooLarge {
            what: "entry command",
            length: 0xffff_fff0,
            remaining: 3,
        })
    );
}

#[test]
fn unknown_tags_are_named() {
    assert_eq!(
        decode_entry(&[0u8; 40]),
        Err(DecodeError::UnknownTag {
            what: "entry",
            tag: 0
        })
    );
    assert_eq!(
        decode_message(&[0xff; 40]),
        Err(DecodeError::UnknownTag {
            what: "message",
            tag: 0xff
        })
    );
    // A hard state handed to the entry decoder is refused, not misread.
    let mut hard_state = Vec::new();
    encode_hard_state(&HardState::default(), &mut hard_state);
    assert_eq!(
        decode_entry(&hard_state),
        Err(DecodeError::UnknownTag {
            what: "entry",
            tag: 0x21
        })
    );
}

#[test]
fn non_canonical_values_are_refused() {
    // A boolean other than 0 or 1.
    let message = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::VoteResponse { reject: true },
    };
    let mut encoded = Vec::new();
    encode_message(&message, &mut encoded);
    let last = encoded.len() - 1;
    encoded[last] = 2;
    assert_eq!(
        decode_message(&encoded),
        Err(DecodeError::InvalidValue {
            what: "vote reject",
            value: 2
        })
    );

    // A set whose members are not strictly ascending.
    let mut encoded = vec![0x32];
    encoded.extend_from_slice(&2u32.to_le_bytes());
    encoded.extend_from_slice(&7u64.to_le_bytes());
    encoded.extend_from_slice(&7u64.to_le_bytes());
    assert_eq!(
        decode_conf_state(&encoded),
        Err(DecodeError::InvalidValue {
            what: "conf state voters",
            value: 7
        })
    );
}

#[test]
fn encoding_is_fixed_little_endian() {
    let entry = Entry {
        term: 0x0102,
        index: 0x0304,
        payload: EntryPayload::Command(Bytes::from_static(b"hi")),
    };
    let mut encoded = Vec::new();
    encode_entry(&entry, &mut encoded);
    let expected: Vec<u8> = [
        &[0x12][..],
        &[0x02, 0x01, 0, 0, 0, 0, 0, 0],
        &[0x04, 0x03, 0, 0, 0, 0, 0, 0],
        &[2, 0, 0, 0],
        b"hi",
    ]
    .concat();
    assert_eq!(encoded, expected);

    let hard_state = HardState {
        term: 5,
        vote: Some(2),
        commit: 4,
    };
    let mut encoded = Vec::new();
    encode_hard_state(&hard_state, &mut encoded);
    let expected: Vec<u8> = [
        &[0x21][..],
        &5u64.to_le_bytes(),
        &[1],
        &2u64.to_le_bytes(),
        &4u64.to_le_bytes(),
    ]
    .concat();
    assert_eq!(encoded, expected);
}
