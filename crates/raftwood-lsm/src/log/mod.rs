//! Checksummed record framing shared by the WAL and the manifest: an
//! append-only file of arbitrary byte payloads. The format, and how a torn
//! or damaged log is recovered, is specified in `docs/wal-format.md`.
//!
//! [`LogWriter`] frames records onto a [`WritableFile`](crate::fs::WritableFile);
//! [`LogReader`] verifies and returns them from a whole file's bytes.

pub mod format;
mod reader;
mod writer;

pub use reader::LogReader;
pub use writer::LogWriter;

use crate::options::WalRecovery;

/// Entry point for a cargo-fuzz target: reads `data` as a log in both
/// recovery modes and checks the reader's invariants. Panics only if an
/// invariant is violated.
#[doc(hidden)]
pub fn fuzz_read_log(data: &[u8]) {
    let mut records_by_mode = Vec::new();
    for recovery in [WalRecovery::TolerateTornTail, WalRecovery::PointInTime] {
        let mut reader = LogReader::new(data.to_vec(), recovery);
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut reencoded = Vec::new();
        let failed = loop {
            match reader.next_record() {
                Ok(Some(payload)) => {
                    format::encode_record(reencoded.len() as u64, payload, &mut reencoded);
                    records.push(payload.to_vec());
                }
                Ok(None) => break false,
                Err(error) => {
                    assert!(error.is_corruption(), "only corruption errors: {error}");
                    break true;
                }
            }
        };
        assert!(reader.is_finished());
        assert!(!(failed && recovery == WalRecovery::PointInTime));
        let valid_prefix_len = reader.valid_prefix_len() as usize;
        assert_eq!(
            valid_prefix_len as u64 + reader.dropped_tail_bytes(),
            data.len() as u64
        );
        // The accepted prefix is exactly what the writer would have written
        // for the returned records: nothing was skipped or reinterpreted.
        assert_eq!(reencoded.as_slice(), &data[..valid_prefix_len]);
        assert_eq!(reader.records_read(), records.len() as u64);
        assert!(matches!(reader.next_record(), Ok(None)) != failed);
        records_by_mode.push(records);
    }
    // Both modes read the same records up to where they stop.
    assert_eq!(records_by_mode[0], records_by_mode[1]);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::format::HEADER_LEN;
    use super::*;
    use crate::Error;
    use crate::fs::{CrashFs, CrashMode, FileSystem};

    const LOG: &str = "/db/000001.log";

    fn new_fs() -> CrashFs {
        let fs = CrashFs::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs
    }

    /// Writes `payloads` as a log and returns its bytes and each record's
    /// start offset.
    fn write_log(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
        let fs = new_fs();
        let mut writer = LogWriter::new(fs.create_file(Path::new(LOG)).unwrap());
        let mut starts = Vec::new();
        for payload in payloads {
            starts.push(writer.len_bytes() as usize);
            writer.add_record(payload).unwrap();
        }
        let bytes = fs.read_file(Path::new(LOG)).unwrap();
        assert_eq!(bytes.len() as u64, writer.len_bytes());
        (bytes, starts)
    }

    /// Reads every record; the error, if any, ends the list.
    fn read_all(
        data: &[u8],
        recovery: WalRecovery,
    ) -> (Vec<Vec<u8>>, Result<(), Error>, LogReader) {
        let mut reader = LogReader::new(data.to_vec(), recovery).with_file_name(LOG);
        let mut records = Vec::new();
        let outcome = loop {
            match reader.next_record() {
                Ok(Some(payload)) => records.push(payload.to_vec()),
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        (records, outcome, reader)
    }

    fn sample_payloads() -> Vec<Vec<u8>> {
        vec![
            b"first".to_vec(),
            Vec::new(),
            (0..300u32).map(|i| (i * 7) as u8).collect(),
            b"middle".to_vec(),
            vec![0u8; 64],
            b"last record".to_vec(),
        ]
    }

    #[test]
    fn records_round_trip_including_empty_ones() {
        let payloads = sample_payloads();
        let (bytes, starts) = write_log(&payloads);
        assert_eq!(starts[1], HEADER_LEN + 5);
        for recovery in [WalRecovery::TolerateTornTail, WalRecovery::PointInTime] {
            let (records, outcome, reader) = read_all(&bytes, recovery);
            outcome.unwrap();
            assert_eq!(records, payloads);
            assert_eq!(reader.valid_prefix_len(), bytes.len() as u64);
            assert_eq!(reader.dropped_tail_bytes(), 0);
            assert_eq!(reader.records_read(), payloads.len() as u64);
        }
        fuzz_read_log(&bytes);
    }

    #[test]
    fn an_empty_file_is_an_empty_log() {
        let (records, outcome, reader) = read_all(&[], WalRecovery::TolerateTornTail);
        outcome.unwrap();
        assert!(records.is_empty());
        assert!(reader.is_finished());
    }

    #[test]
    fn a_64_mib_record_round_trips_and_its_truncation_is_a_torn_tail() {
        let big: Vec<u8> = (0..(64usize << 20) + 3).map(|i| (i % 253) as u8).collect();
        let payloads = vec![b"before".to_vec(), big];
        let (mut bytes, starts) = write_log(&payloads);
        let (records, outcome, _) = read_all(&bytes, WalRecovery::TolerateTornTail);
        outcome.unwrap();
        assert!(records == payloads);
        bytes.pop();
        let (records, outcome, reader) = read_all(&bytes, WalRecovery::TolerateTornTail);
        outcome.unwrap();
        assert_eq!(records, vec![b"before".to_vec()]);
        assert_eq!(reader.valid_prefix_len(), starts[1] as u64);
    }

    #[test]
    fn truncating_inside_the_last_record_drops_only_that_record() {
        let payloads = sample_payloads();
        let (bytes, starts) = write_log(&payloads);
        let last_start = starts[starts.len() - 1];
        for cut in last_start..bytes.len() {
            for recovery in [WalRecovery::TolerateTornTail, WalRecovery::PointInTime] {
                let (records, outcome, reader) = read_all(&bytes[..cut], recovery);
                outcome.unwrap();
                assert_eq!(records, payloads[..payloads.len() - 1], "cut at {cut}");
                assert_eq!(reader.valid_prefix_len(), last_start as u64);
                assert_eq!(reader.dropped_tail_bytes(), (cut - last_start) as u64);
            }
        }
    }

    #[test]
    fn a_bit_flip_in_a_middle_record_is_corruption_or_a_point_in_time_prefix() {
        let payloads = sample_payloads();
        let (bytes, starts) = write_log(&payloads);
        let damaged = 3;
        for bit in starts[damaged] * 8..starts[damaged + 1] * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);

            let (records, outcome, mut reader) = read_all(&flipped, WalRecovery::TolerateTornTail);
            assert!(outcome.unwrap_err().is_corruption(), "bit {bit}");
            assert_eq!(records, payloads[..damaged]);
            assert!(reader.next_record().is_err(), "the error repeats");

            let (records, outcome, reader) = read_all(&flipped, WalRecovery::PointInTime);
            outcome.unwrap();
            assert_eq!(records, payloads[..damaged]);
            assert_eq!(reader.valid_prefix_len(), starts[damaged] as u64);
            assert_eq!(
                reader.dropped_tail_bytes(),
                (bytes.len() - starts[damaged]) as u64
            );
        }
    }

    #[test]
    fn a_bit_flip_in_the_last_record_reads_as_a_torn_tail() {
        // Indistinguishable from a garbled unsynced tail, so it is dropped.
        let payloads = sample_payloads();
        let (mut bytes, starts) = write_log(&payloads);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        let (records, outcome, reader) = read_all(&bytes, WalRecovery::TolerateTornTail);
        outcome.unwrap();
        assert_eq!(records, payloads[..payloads.len() - 1]);
        assert_eq!(reader.valid_prefix_len(), starts[starts.len() - 1] as u64);
    }

    #[test]
    fn a_zero_filled_tail_ends_the_log_cleanly() {
        let payloads = sample_payloads();
        let (mut bytes, _) = write_log(&payloads);
        let len = bytes.len();
        bytes.resize(len + 4096, 0);
        let (records, outcome, reader) = read_all(&bytes, WalRecovery::TolerateTornTail);
        outcome.unwrap();
        assert_eq!(records, payloads);
        assert_eq!(reader.dropped_tail_bytes(), 4096);
    }

    #[test]
    fn a_log_inside_a_payload_is_not_mistaken_for_records_of_the_outer_log() {
        // The inner records store offsets of the inner log, which do not
        // match their positions in the outer file, so damage to the outer
        // record's header is still a torn tail and not "damage followed by
        // valid records".
        let (inner, _) = write_log(&sample_payloads());
        let (mut outer, starts) = write_log(&[b"a".to_vec(), inner]);
        outer[starts[1]] ^= 1;
        let (records, outcome, _) = read_all(&outer, WalRecovery::TolerateTornTail);
        outcome.unwrap();
        assert_eq!(records, vec![b"a".to_vec()]);
    }

    #[test]
    fn add_records_frames_many_records_in_one_append() {
        let fs = new_fs();
        let mut writer = LogWriter::new(fs.create_file(Path::new(LOG)).unwrap());
        writer.add_record(b"single").unwrap();
        let before = fs.operation_count();
        writer.add_records(&[b"one", b"", b"three"]).unwrap();
        assert_eq!(fs.operation_count(), before + 1, "one append");
        writer.add_records(&[]).unwrap();
        assert_eq!(fs.operation_count(), before + 1, "nothing to append");
        let (records, outcome, _) = read_all(
            &fs.read_file(Path::new(LOG)).unwrap(),
            WalRecovery::TolerateTornTail,
        );
        outcome.unwrap();
        assert_eq!(
            records,
            vec![
                b"single".to_vec(),
                b"one".to_vec(),
                Vec::new(),
                b"three".to_vec()
            ]
        );
    }

    #[test]
    fn a_failed_append_or_sync_poisons_the_writer() {
        let fs = new_fs();
        let mut writer = LogWriter::new(fs.create_file(Path::new(LOG)).unwrap());
        writer.add_record(b"ok").unwrap();
        fs.set_fail_writes(true);
        assert!(matches!(writer.add_record(b"x"), Err(Error::Io { .. })));
        fs.clear_faults();
        assert!(writer.is_poisoned());
        assert!(matches!(writer.add_record(b"x"), Err(Error::Poisoned(_))));
        assert!(matches!(writer.sync(), Err(Error::Poisoned(_))));

        let mut writer = LogWriter::new(fs.create_file(Path::new("/db/2.log")).unwrap());
        writer.add_record(b"ok").unwrap();
        fs.set_fail_syncs(true);
        assert!(matches!(writer.sync(), Err(Error::Io { .. })));
        fs.clear_faults();
        assert!(matches!(writer.sync(), Err(Error::Poisoned(_))));
        assert!(matches!(writer.add_record(b"x"), Err(Error::Poisoned(_))));
    }

    /// Writes records to a log on `CrashFs`, syncing some, crashes with a
    /// torn tail and checks that every synced record comes back in order,
    /// followed only by a gap-free prefix of the unsynced ones.
    /// Returns (unsynced records recovered, dropped tail bytes).
    fn torn_crash_round(seed: u64) -> (usize, u64) {
        let fs = new_fs();
        let mut writer = LogWriter::new(fs.create_file(Path::new(LOG)).unwrap());
        fs.sync_dir(Path::new("/db")).unwrap();
        let mut written = Vec::new();
        let mut synced_count = 0;
        let mut rng = seed;
        let mut next = || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rng >> 33
        };
        for i in 0..40u64 {
            let len = (next() % 200) as usize;
            let payload: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
            if next() % 4 == 0 {
                writer.add_records(&[&payload, b"pair"]).unwrap();
                written.push(payload);
                written.push(b"pair".to_vec());
            } else {
                writer.add_record(&payload).unwrap();
                written.push(payload);
            }
            if next() % 5 == 0 {
                writer.sync().unwrap();
                synced_count = written.len();
            }
        }
        fs.crash(CrashMode::TornTail { seed });
        let bytes = fs.read_file(Path::new(LOG)).unwrap();
        let (records, outcome, reader) = read_all(&bytes, WalRecovery::TolerateTornTail);
        outcome.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(
            records.len() >= synced_count,
            "seed {seed}: lost synced records"
        );
        assert!(records.len() <= written.len());
        assert_eq!(
            records,
            written[..records.len()],
            "seed {seed}: gap or reorder"
        );
        assert_eq!(
            reader.valid_prefix_len() + reader.dropped_tail_bytes(),
            bytes.len() as u64
        );
        fuzz_read_log(&bytes);
        (records.len() - synced_count, reader.dropped_tail_bytes())
    }

    #[test]
    fn synced_records_survive_a_torn_crash_in_order_and_without_gaps() {
        let mut rounds_keeping_unsynced_records = 0;
        let mut rounds_dropping_a_tail = 0;
        for seed in 0..300 {
            let (unsynced_recovered, dropped_tail_bytes) = torn_crash_round(seed);
            rounds_keeping_unsynced_records += usize::from(unsynced_recovered > 0);
            rounds_dropping_a_tail += usize::from(dropped_tail_bytes > 0);
        }
        // The crash model must exercise both outcomes for the test to mean anything.
        assert!(
            rounds_keeping_unsynced_records > 30,
            "{rounds_keeping_unsynced_records}"
        );
        assert!(rounds_dropping_a_tail > 30, "{rounds_dropping_a_tail}");
    }

    proptest! {
        #[test]
        fn random_records_round_trip(
            payloads in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..2000), 0..20),
        ) {
            let (bytes, _) = write_log(&payloads);
            let (records, outcome, _) = read_all(&bytes, WalRecovery::TolerateTornTail);
            prop_assert!(outcome.is_ok());
            prop_assert_eq!(records, payloads);
            fuzz_read_log(&bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            fuzz_read_log(&data);
        }

        #[test]
        fn garbage_after_a_valid_log_is_a_torn_tail(
            payloads in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..300), 0..10),
            garbage in proptest::collection::vec(any::<u8>(), 1..600),
        ) {
            let (mut bytes, _) = write_log(&payloads);
            let valid_len = bytes.len();
            bytes.extend_from_slice(&garbage);
            let (records, outcome, reader) = read_all(&bytes, WalRecovery::TolerateTornTail);
            prop_assert!(outcome.is_ok());
            prop_assert_eq!(records, payloads);
            prop_assert_eq!(reader.valid_prefix_len(), valid_len as u64);
            fuzz_read_log(&bytes);
        }

        #[test]
        fn damage_before_valid_records_is_detected(
            payloads in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..300), 2..10),
            victim_seed in any::<u64>(),
            bit_seed in any::<u64>(),
        ) {
            let (mut bytes, starts) = write_log(&payloads);
            // Any record but the last.
            let victim = (victim_seed % (payloads.len() as u64 - 1)) as usize;
            let span = (starts[victim + 1] - starts[victim]) * 8;
            let bit = starts[victim] * 8 + (bit_seed % span as u64) as usize;
            bytes[bit / 8] ^= 1 << (bit % 8);
            let (records, outcome, _) = read_all(&bytes, WalRecovery::TolerateTornTail);
            prop_assert!(outcome.is_err_and(|e| e.is_corruption()));
            prop_assert_eq!(&records[..], &payloads[..victim]);
            let (records, outcome, _) = read_all(&bytes, WalRecovery::PointInTime);
            prop_assert!(outcome.is_ok());
            prop_assert_eq!(&records[..], &payloads[..victim]);
        }
    }
}
