//! Log framing (WAL and manifest) under arbitrary input, in two forms:
//! 1. the input itself read as a log;
//! 2. a well-formed log built from records cut out of the input, then
//!    damaged once (cut short, one bit flipped, or a stretch zeroed), so
//!    the recovery logic behind the checksums is reached too.
//!
//! `fuzz_read_log` asserts the reader's invariants in both recovery modes:
//! only corruption errors, the accepted prefix re-encodes to exactly the
//! input's prefix, and both modes agree up to where they stop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_lsm::WalRecovery;
use raftwood_lsm::log::{LogReader, format};

fuzz_target!(|data: &[u8]| {
    raftwood_lsm::log::fuzz_read_log(data);

    let Some((control, mut rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let mut log = Vec::new();
    let mut payloads = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let (payload, tail) = tail.split_at(usize::from(len % 48).min(tail.len()));
        format::encode_record(log.len() as u64, payload, &mut log);
        payloads.push(payload);
        rest = tail;
    }
    let position = usize::from(u16::from_le_bytes([control[0], control[1]])).min(log.len());
    match control[2] % 4 {
        0 => {
            // Intact: every record comes back, in both modes.
            for recovery in [WalRecovery::TolerateTornTail, WalRecovery::PointInTime] {
                let mut reader = LogReader::new(log.clone(), recovery);
                for payload in &payloads {
                    assert_eq!(reader.next_record().expect("an intact log reads"), Some(*payload));
                }
                assert!(matches!(reader.next_record(), Ok(None)));
            }
        }
        1 => log.truncate(position),
        2 => {
            if let Some(byte) = log.get_mut(position) {
                *byte ^= 1 << (control[3] % 8);
            }
        }
        _ => {
            let end = (position + usize::from(control[3])).min(log.len());
            log[position..end].fill(0);
        }
    }
    raftwood_lsm::log::fuzz_read_log(&log);
});
