//! Lease expiry. Leases are granted and revoked through raft (the state
//! machine holds them and their keys), but time is not replicated: the
//! leader alone keeps each lease's deadline, extends it on keep-alive, and
//! proposes a revoke when it passes. A new leader gives every lease a full
//! TTL from the moment it takes over, as etcd does, so a lease never
//! expires early because leadership moved.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Deadlines of the leases this member tracks as leader.
#[derive(Debug, Default)]
pub struct LeaseClock {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The term in which the deadlines were set; a new term starts over.
    term: u64,
    deadlines: HashMap<i64, Instant>,
}

impl LeaseClock {
    /// Lease `id` (granted with `ttl_seconds`) was kept alive now.
    pub fn refresh(&self, term: u64, id: i64, ttl_seconds: i64, now: Instant) {
        // Granted and kept-alive leases have a TTL (at least the minimum).
        debug_assert!(
            ttl_seconds > 0,
            "lease {id} refreshed with TTL {ttl_seconds}"
        );
        let mut state = self.state.lock();
        state.restart_if_new_term(term);
        state.deadlines.insert(id, now + ttl(ttl_seconds));
    }

    /// Seconds left for lease `id` (as the leader in `term` sees it).
    pub fn remaining_seconds(&self, term: u64, id: i64, ttl_seconds: i64, now: Instant) -> i64 {
        let mut state = self.state.lock();
        state.restart_if_new_term(term);
        let deadline = *state.deadlines.entry(id).or_insert(now + ttl(ttl_seconds));
        let left = deadline.saturating_duration_since(now);
        i64::try_from(left.as_secs()).unwrap_or(i64::MAX)
    }

    /// Given every lease the state machine holds (id, granted TTL), the
    /// ids whose deadline passed. Leases seen for the first time in this
    /// term get a full TTL from now; leases gone from the state machine
    /// are forgotten.
    pub fn expired(&self, term: u64, leases: &[(i64, i64)], now: Instant) -> Vec<i64> {
        let mut state = self.state.lock();
        state.restart_if_new_term(term);
        let live: std::collections::HashSet<i64> = leases.iter().map(|(id, _)| *id).collect();
        state.deadlines.retain(|id, _| live.contains(id));
        let mut expired = Vec::new();
        for (id, ttl_seconds) in leases {
            let deadline = *state
                .deadlines
                .entry(*id)
                .or_insert(now + ttl(*ttl_seconds));
            if deadline <= now {
                expired.push(*id);
            }
        }
        // Deadlines are kept for leases the store holds only.
        debug_assert!(state.deadlines.len() <= live.len());
        expired
    }
}

impl State {
    fn restart_if_new_term(&mut self, term: u64) {
        if term != self.term {
            self.term = term;
            self.deadlines.clear();
        }
    }
}

fn ttl(seconds: i64) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_after_their_ttl_and_keep_alive_extends_them() {
        let clock = LeaseClock::default();
        let start = Instant::now();
        let leases = [(1, 2), (2, 10)];
        assert!(clock.expired(5, &leases, start).is_empty());
        clock.refresh(5, 1, 2, start + Duration::from_secs(1));
        assert!(
            clock
                .expired(5, &leases, start + Duration::from_secs(2))
                .is_empty()
        );
        assert_eq!(
            clock.expired(5, &leases, start + Duration::from_secs(3)),
            vec![1]
        );
        assert_eq!(
            clock.remaining_seconds(5, 2, 10, start + Duration::from_secs(4)),
            6
        );
    }

    #[test]
    fn a_new_term_gives_every_lease_a_full_ttl() {
        let clock = LeaseClock::default();
        let start = Instant::now();
        assert!(clock.expired(1, &[(1, 2)], start).is_empty());
        let later = start + Duration::from_secs(5);
        assert!(
            clock.expired(2, &[(1, 2)], later).is_empty(),
            "new leader, fresh TTL"
        );
        assert_eq!(
            clock.expired(2, &[(1, 2)], later + Duration::from_secs(2)),
            vec![1]
        );
    }
}
