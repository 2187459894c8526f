//! Measures the memtable alone: inserts of `--num` 16-byte keys with
//! 100-byte values (the keys of `lsm-bench`), in random or ascending
//! order, then point gets of every key, and prints the time per operation.
//! No disk, no WAL: what a skiplist change does to an insert, with less
//! noise than `lsm-bench`.
//!
//! `cargo run --release -p raftwood-lsm --example memtable_insert -- [num] [rounds]`
#![allow(
    clippy::unwrap_used,
    reason = "a measuring example fails loudly on any unexpected error"
)]

use std::time::Instant;

use raftwood_lsm::key::ValueKind;
use raftwood_lsm::memtable::MemTable;

fn key(number: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut n = number;
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let num: u64 = args.next().map(|a| a.parse().unwrap()).unwrap_or(400_000);
    let rounds: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(3);
    // A fixed permutation of 0..num (multiplicative hashing by an odd
    // constant modulo a power of two, then filtered).
    let modulus = num.next_power_of_two();
    let random: Vec<u64> = (0..modulus)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & (modulus - 1))
        .filter(|&n| n < num)
        .collect();
    let ascending: Vec<u64> = (0..num).collect();
    let value = [b'v'; 100];
    for round in 0..rounds {
        for (name, order) in [("random", &random), ("ascending", &ascending)] {
            let memtable = MemTable::new(1);
            let start = Instant::now();
            for (sequence_number, &n) in (1..).zip(order.iter()) {
                memtable
                    .insert(&key(2 * n), sequence_number, ValueKind::Value, &value)
                    .unwrap();
            }
            let insert_ns = start.elapsed().as_nanos() as f64 / num as f64;
            let start = Instant::now();
            let mut found = 0u64;
            for &n in &random {
                found += u64::from(memtable.get(&key(2 * n), u64::MAX >> 8).unwrap().is_some());
            }
            let get_ns = start.elapsed().as_nanos() as f64 / num as f64;
            assert_eq!(found, num);
            println!(
                "round {round} {name:>9}: insert {insert_ns:6.0} ns, get {get_ns:6.0} ns ({num} keys, {} MiB)",
                memtable.approximate_size_bytes() >> 20
            );
        }
    }
}
