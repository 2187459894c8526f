//! A small interactive shell over a raftwood-lsm database: the quick way to
//! poke at the engine (README, "Quick start").
//!
//! ```text
//! cargo run --release -p raftwood-lsm --example lsm-shell -- ./raftwood-data/lsm
//! > put greeting hello
//! > get greeting
//! > scan a z
//! ```
//!
//! Commands are read from standard input, one per line, so the shell also
//! runs scripts: `printf 'put a 1\nget a\n' | cargo run ... -- DIR`.

use std::io::{BufRead, Write};

use raftwood_lsm::{Db, Options, WriteOptions};

const HELP: &str = "\
commands:
  put KEY VALUE        set KEY (fsynced)
  get KEY              print KEY's value
  del KEY              delete KEY
  delrange START END   delete keys in [START, END)
  scan [START [END]]   list keys in [START, END)
  rscan [START [END]]  the same, descending
  flush                write the memtable to a table
  compact              compact everything to the last level
  checkpoint DIR       write a consistent copy to DIR
  stats                levels, amplification, cache
  help | quit";

fn run_command(db: &Db, words: &[&str]) -> Result<bool, Box<dyn std::error::Error>> {
    let sync = WriteOptions { sync: true };
    match words {
        [] => {}
        ["put", key, value @ ..] if !value.is_empty() => db.put(key, value.join(" "), sync)?,
        ["get", key] => match db.get(key)? {
            Some(value) => println!("{}", String::from_utf8_lossy(&value)),
            None => println!("(not found)"),
        },
        ["del", key] => db.delete(key, sync)?,
        ["delrange", start, end] => db.delete_range(start, end, sync)?,
        [cmd @ ("scan" | "rscan"), bounds @ ..] if bounds.len() <= 2 => {
            let start = bounds.first().map(|s| s.as_bytes());
            let end = bounds.get(1).map(|s| s.as_bytes());
            let entries = if *cmd == "scan" {
                db.range(start, end)?
            } else {
                db.range_rev(start, end)?
            };
            let mut count = 0;
            for entry in entries {
                let (key, value) = entry?;
                println!(
                    "{} = {}",
                    String::from_utf8_lossy(&key),
                    String::from_utf8_lossy(&value)
                );
                count += 1;
            }
            println!("({count} keys)");
        }
        ["flush"] => db.flush()?,
        ["compact"] => db.compact_range(None, None)?,
        ["checkpoint", dir] => db.checkpoint(dir)?,
        ["stats"] => {
            let stats = db.stats();
            for (level, l) in stats.levels.iter().enumerate() {
                if l.files > 0 {
                    println!("L{level}: {} files, {} bytes", l.files, l.size_bytes);
                }
            }
            println!(
                "writes {} in {} groups, {} fsyncs; write amplification {:.2}; block cache {} bytes ({} hits, {} misses)",
                stats.writes,
                stats.write_groups,
                stats.wal_syncs,
                stats.write_amplification(),
                stats.block_cache_usage_bytes,
                stats.block_cache_hits,
                stats.block_cache_misses
            );
        }
        ["help"] => println!("{HELP}"),
        ["quit" | "exit"] => return Ok(false),
        _ => println!("unknown command; type help"),
    }
    Ok(true)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./raftwood-data/lsm".to_string());
    let db = Db::open(&dir, Options::default()).map_err(|e| format!("opening {dir}: {e}"))?;
    println!("raftwood-lsm shell on {dir}; type help");
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match run_command(&db, &words) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => println!("error: {error}"),
        }
    }
    db.close()?;
    Ok(())
}
