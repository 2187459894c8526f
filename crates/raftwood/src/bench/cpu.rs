//! The process's own CPU time (user and system), from `/proc/self/stat`,
//! so a report can show that the load generator was not the bottleneck.
//!
//! `/proc/self/stat` counts in clock ticks of `USER_HZ`, which the kernel
//! fixes at 100 per second for user space on every architecture Linux
//! ships (the value `sysconf(_SC_CLK_TCK)` returns); reading it through
//! libc would need unsafe code, which the workspace denies. Resolution is
//! therefore 10 ms, fine for runs of a second or more.

use std::time::Duration;

/// Clock ticks per second in `/proc/<pid>/stat`.
const USER_HZ: u64 = 100;

/// CPU time used by the whole process (all threads, living and exited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTimes {
    /// The process's CPU time now, or `None` where `/proc` is missing
    /// (not Linux) or unreadable.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        parse_stat(&stat)
    }

    /// The time used between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

/// Parses the `utime` and `stime` fields (14 and 15) of a
/// `/proc/<pid>/stat` line. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`.
fn parse_stat(stat: &str) -> Option<CpuTimes> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name come field 3 (state) onwards; utime is the 12th.
    let utime_ticks: u64 = fields.nth(11)?.parse().ok()?;
    let stime_ticks: u64 = fields.next()?.parse().ok()?;
    Some(CpuTimes {
        user: ticks_to_duration(utime_ticks),
        system: ticks_to_duration(stime_ticks),
    })
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * (1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn parses_utime_and_stime_after_an_awkward_name() {
        let line = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 532 0 0 0 \
                    250 37 0 0 20 0 4 0 1000 10000000 500 18446744073709551615";
        let times = parse_stat(line).unwrap();
        assert_eq!(times.user, Duration::from_millis(2500));
        assert_eq!(times.system, Duration::from_millis(370));
        assert_eq!(times.total(), Duration::from_millis(2870));
    }

    #[test]
    fn garbage_is_not_parsed() {
        assert_eq!(parse_stat("no parenthesis here"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        // Burn a little CPU so the counter moves past one tick.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let now = CpuTimes::now().unwrap();
        assert!(now.total() > Duration::ZERO, "{now:?}");
        let later = CpuTimes::now().unwrap();
        assert!(later.since(&now).total() <= later.total());
    }
}
