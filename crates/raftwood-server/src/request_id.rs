//! The ids of state-machine requests (`InternalRequest.id`), which is how
//! a follower recognises, among the entries it applies, the ones it
//! forwarded to the leader for its clients (etcd matches its waiters the
//! same way).
//!
//! An id must not match a request this member proposed earlier — in this
//! life or an earlier one — whose entry may still be applied later: a
//! restarted member replays its log and receives entries its earlier life
//! forwarded, and such an entry must not answer a new client. Ids are
//! therefore laid out as etcd's are (`idutil.Generator`):
//!
//! ```text
//! bits 63..48: the low 16 bits of the member id
//! bits 47..0:  a counter, started at (milliseconds since the epoch,
//!              low 40 bits) << 8 and incremented per request
//! ```
//!
//! A restart starts the counter from the clock again, above every id the
//! earlier life issued as long as it issued fewer than 256 ids per
//! millisecond on average (256,000 per second, far above what one member
//! proposes). Two members whose ids share the low 16 bits could collide;
//! the waiters also compare the whole request bytes, so such a collision
//! cannot answer a client with another request's outcome.

use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message as _;

const COUNTER_BITS: u32 = 48;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;

/// Hands out request ids for one member.
#[derive(Debug)]
pub struct RequestIds {
    /// The member's bits, already shifted into place.
    prefix: u64,
    /// The next counter value. Invariant: only incremented.
    counter: AtomicU64,
}

impl RequestIds {
    /// Ids for `member_id`, started from `now_millis` (milliseconds since
    /// the Unix epoch; the caller reads the clock).
    pub fn new(member_id: u64, now_millis: u64) -> RequestIds {
        RequestIds {
            prefix: (member_id & 0xffff) << COUNTER_BITS,
            counter: AtomicU64::new((now_millis & 0xff_ffff_ffff) << 8),
        }
    }

    /// The next id; never 0 (0 means "no id" in the protobuf message).
    pub fn next(&self) -> u64 {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = self.prefix | (count & COUNTER_MASK);
        if id == 0 { self.next() } else { id }
    }
}

/// The `id` field alone of an `InternalRequest`. Decoding an entry into
/// it reads the id and skips every other field without copying it (prost
/// keeps no unknown fields).
#[derive(Clone, PartialEq, prost::Message)]
struct RequestIdOnly {
    #[prost(uint64, tag = "1")]
    id: u64,
}

/// The `id` field of an encoded `InternalRequest`, without decoding the
/// request: the apply thread looks at every entry a follower applies, and
/// a full decode would copy every value. `None` if the id is 0 (absent) or
/// the bytes are not a well-formed protobuf message.
pub fn request_id_of(encoded: &[u8]) -> Option<u64> {
    let id = RequestIdOnly::decode(encoded).ok()?.id;
    (id != 0).then_some(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use prost::Message as _;

    use super::*;
    use crate::proto::etcdserverpb::{PutRequest, TxnRequest};
    use crate::proto::raftwoodpb::{InternalRequest, internal_request};

    fn encoded(id: u64, request: internal_request::Request) -> Vec<u8> {
        InternalRequest {
            id,
            request: Some(request),
        }
        .encode_to_vec()
    }

    #[test]
    fn the_id_is_read_from_any_encoded_request() {
        let put = internal_request::Request::Put(PutRequest {
            key: b"k".to_vec(),
            value: vec![7; 300],
            lease: 9,
            ..PutRequest::default()
        });
        for id in [1, 127, 128, 0x1234_5678_9abc_def0, u64::MAX] {
            assert_eq!(request_id_of(&encoded(id, put.clone())), Some(id));
        }
        let txn = internal_request::Request::Txn(TxnRequest::default());
        assert_eq!(request_id_of(&encoded(42, txn)), Some(42));
        // Id 0 is not encoded at all.
        assert_eq!(request_id_of(&encoded(0, put)), None);
    }

    #[test]
    fn the_id_is_found_after_other_fields_and_garbage_is_refused() {
        // Field 2 (length-delimited, 3 bytes), then field 1 = 300.
        let bytes = [0x12, 3, 1, 2, 3, 0x08, 0xac, 0x02];
        assert_eq!(request_id_of(&bytes), Some(300));
        // A length past the end, a truncated varint, a wire type 7.
        assert_eq!(request_id_of(&[0x12, 9, 1]), None);
        assert_eq!(request_id_of(&[0x08, 0x80]), None);
        assert_eq!(request_id_of(&[0x0f]), None);
        assert_eq!(request_id_of(&[]), None);
    }

    #[test]
    fn ids_carry_the_member_and_increase_and_a_restart_starts_above() {
        let ids = RequestIds::new(0xabcd_0001, 1_000);
        let first = ids.next();
        let second = ids.next();
        assert_eq!(first >> 48, 0x0001);
        assert_eq!(second, first + 1);
        assert_eq!(first & COUNTER_MASK, 1_000 << 8);
        // 255 more ids within the same millisecond, then a restart one
        // millisecond later: the new life starts above all of them.
        let mut last = second;
        for _ in 0..254 {
            last = ids.next();
        }
        let restarted = RequestIds::new(0xabcd_0001, 1_001);
        assert!(restarted.next() > last);
        // Another member's ids differ in the high bits.
        assert_ne!(RequestIds::new(2, 1_000).next(), first);
    }
}
