//! SSTable footers under arbitrary input. The first 8 bytes choose where the
//! footer claims the data region ends; then two forms are decoded:
//! 1. the next 80 bytes as they are (mostly stopped by the magic number or
//!    the checksum);
//! 2. the next 68 bytes (handles and version) completed with a valid
//!    checksum and magic number, so the checks behind the checksum (format
//!    version, handle bounds) are reached.
//!
//! A footer the decoder accepts must be the canonical encoding of what it
//! decoded to, with every block handle inside the data region.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwood_lsm::sstable::{FOOTER_LEN, Footer, TABLE_MAGIC};

fn check(footer: &[u8], data_end: u64) {
    let Ok(decoded) = Footer::decode(footer, data_end, "fuzz") else {
        return;
    };
    assert_eq!(footer.len(), FOOTER_LEN);
    assert_eq!(&decoded.encode()[..], footer, "an accepted footer is canonical");
    let handles = [Some(decoded.index), decoded.filter, Some(decoded.range_deletions), Some(decoded.properties)];
    for handle in handles.into_iter().flatten() {
        let end = handle.end_with_trailer().expect("an accepted handle does not overflow");
        assert!(end <= data_end, "{handle:?} ends past the data region ({data_end})");
    }
}

fuzz_target!(|data: &[u8]| {
    raftwood_lsm::sstable::fuzz_decode_footer(data);

    let Some((data_end, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let data_end = u64::from_le_bytes(*data_end);
    check(rest, data_end);

    if let Some(body) = rest.get(..FOOTER_LEN - 12) {
        let mut footer = body.to_vec();
        let checksum = crc32c::crc32c(&footer);
        footer.extend_from_slice(&checksum.to_le_bytes());
        footer.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
        check(&footer, data_end);
    }
});
