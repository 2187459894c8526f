//! A linearizability checker for key-value histories: the Wing–Gong search
//! with Lowe's memoisation, one key at a time (every operation touches one
//! key, and a history is linearizable exactly when each key's sub-history
//! is, as Porcupine exploits).
//!
//! The search walks a list of call and return events in time order. At a
//! call it tries to linearize that operation now (apply it to the model; if
//! the model's output matches the recorded one, remove the operation from
//! the list and continue from the front). Reaching a return means the
//! operation it closes should already have been linearized: undo the last
//! choice and try the next candidate. A cache of (set of linearized
//! operations, model state) pairs already explored prunes the search
//! (Lowe), which makes it fast on real histories.
//!
//! An operation whose outcome is unknown (the client gave up) may have
//! taken effect at any point after its invocation, or never: it gets a
//! return time of "never", so it is concurrent with everything after its
//! call, and it may always be linearized last (after every other
//! operation, where it changes nothing observable). Reads of unknown
//! outcome say nothing and are dropped.
//!
//! The search is bounded by steps and cache entries; running out gives the
//! verdict [`Verdict::Unknown`], which is never a pass.

use std::collections::{BTreeMap, HashSet};

use crate::model::{Key, KvOp, KvOutput, Value};

/// One client operation as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued it.
    pub client: u64,
    /// What it asked.
    pub op: KvOp,
    /// When the client sent it (simulated microseconds).
    pub invoke_us: u64,
    /// When the client received the answer. `None` if it never did: the
    /// outcome is unknown and the operation may take effect at any time
    /// after its invocation, or never. (With `output` `None` but a time
    /// here, the operation is known to have taken effect by then, with an
    /// unknown result.)
    pub complete_us: Option<u64>,
    /// The answer; `None` when the client never learned it.
    pub output: Option<KvOutput>,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let millis = |us: u64| us as f64 / 1000.0;
        match (self.complete_us, self.output) {
            (Some(end), Some(output)) => write!(
                f,
                "client {} [{:.3}ms .. {:.3}ms] {} -> {}",
                self.client,
                millis(self.invoke_us),
                millis(end),
                self.op,
                output
            ),
            (Some(end), None) => write!(
                f,
                "client {} [{:.3}ms .. {:.3}ms] {} -> took effect, result unknown",
                self.client,
                millis(self.invoke_us),
                millis(end),
                self.op
            ),
            _ => write!(
                f,
                "client {} [{:.3}ms .. never] {} -> unknown outcome",
                self.client,
                millis(self.invoke_us),
                self.op
            ),
        }
    }
}

/// How much work one key's search may do before giving up.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Search steps (candidate tries and backtracks) per key.
    pub max_steps_per_key: u64,
    /// Memoised (linearized set, state) pairs per key.
    pub max_cache_entries_per_key: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_steps_per_key: 2_000_000,
            max_cache_entries_per_key: 1_000_000,
        }
    }
}

/// The outcome of checking a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// Some key's sub-history has none.
    Violation {
        /// The key.
        key: Key,
        /// A sub-history of that key that is still not linearizable and
        /// from which no single operation can be removed without making it
        /// linearizable.
        minimal: Vec<Operation>,
    },
    /// The budget ran out before a verdict (never counts as a pass).
    Unknown {
        /// The key whose search ran out.
        key: Key,
    },
}

/// The verdict with what was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Operations that took part in the search (unknown reads excluded).
    pub operations_checked: usize,
}

impl Verdict {
    /// A readable account of a violation (empty otherwise).
    pub fn describe(&self) -> String {
        match self {
            Verdict::Linearizable => "linearizable".to_owned(),
            Verdict::Unknown { key } => format!("unknown: the search budget ran out on key {key}"),
            Verdict::Violation { key, minimal } => {
                let mut text = format!(
                    "not linearizable: key {key}, minimal failing sub-history ({} operations):\n",
                    minimal.len()
                );
                for op in minimal {
                    text.push_str(&format!("  {op}\n"));
                }
                text
            }
        }
    }
}

/// Checks a whole history, key by key (keys in ascending order, so the
/// verdict is deterministic). Stops at the first violation; an exhausted
/// budget on one key is reported only if no other key is a violation.
pub fn check_history(history: &[Operation], budget: Budget) -> CheckReport {
    let mut by_key: BTreeMap<Key, Vec<Operation>> = BTreeMap::new();
    for op in history {
        if op.output.is_none() && op.op.is_read() {
            continue;
        }
        by_key.entry(op.op.key()).or_default().push(*op);
    }
    let operations_checked = by_key.values().map(Vec::len).sum();
    let mut unknown = None;
    for (key, ops) in &by_key {
        match check_key(ops, budget) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Unknown => {
                unknown.get_or_insert(*key);
            }
            KeyVerdict::Violation => {
                return CheckReport {
                    verdict: Verdict::Violation {
                        key: *key,
                        minimal: minimize(ops, budget),
                    },
                    operations_checked,
                };
            }
        }
    }
    let verdict = match unknown {
        Some(key) => Verdict::Unknown { key },
        None => Verdict::Linearizable,
    };
    CheckReport {
        verdict,
        operations_checked,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyVerdict {
    Linearizable,
    Violation,
    Unknown,
}

/// Shrinks a failing sub-history: drops each operation in turn and keeps
/// the drop when the rest still fails for the same reason. A drop that
/// would leave an observed value without the write that produced it is
/// not taken (it would trade the real anomaly for a read of a value never
/// written, which explains nothing). The result is 1-minimal under that
/// rule.
fn minimize(ops: &[Operation], budget: Budget) -> Vec<Operation> {
    let keep_writers = values_have_writers(ops);
    let mut current = ops.to_vec();
    let mut position = 0;
    while position < current.len() {
        let mut candidate = current.clone();
        candidate.remove(position);
        let explains = !keep_writers || values_have_writers(&candidate);
        if explains && check_key(&candidate, budget) == KeyVerdict::Violation {
            current = candidate;
        } else {
            position += 1;
        }
    }
    current
}

/// Whether every value the history observes (read, or expected by a
/// compare-and-swap) is written by one of its operations — or the history
/// already lacked such a writer to begin with (then nothing is lost).
fn values_have_writers(ops: &[Operation]) -> bool {
    let written: HashSet<Value> = ops
        .iter()
        .filter_map(|o| match o.op {
            KvOp::Put { value, .. } => Some(value),
            KvOp::CompareAndSwap { new, .. } => Some(new),
            KvOp::Get { .. } | KvOp::Delete { .. } => None,
        })
        .collect();
    ops.iter().all(|o| {
        let observed = match (o.op, o.output) {
            (_, Some(KvOutput::Value(Some(value)))) => Some(value),
            (
                KvOp::CompareAndSwap {
                    expected: Some(value),
                    ..
                },
                Some(KvOutput::Swapped(true)),
            ) => Some(value),
            _ => None,
        };
        observed.is_none_or(|value| written.contains(&value))
    })
}

/// One node of the event list: a call or a return of operation `op`.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// Index of the matching event (call → return).
    partner: usize,
    prev: usize,
    next: usize,
}

/// The doubly linked event list, with a sentinel head at index 0.
struct EventList {
    events: Vec<Event>,
}

const NONE: usize = usize::MAX;

impl EventList {
    fn new(ops: &[Operation]) -> EventList {
        // (time, order, op, is_call): calls before returns at equal times,
        // so touching operations count as concurrent (the conservative
        // choice: it never invents a violation).
        let mut order: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            order.push((op.invoke_us, 0, index, true));
            let end = op.complete_us.map_or(u64::MAX, |end| end.max(op.invoke_us));
            order.push((end, 1, index, false));
        }
        order.sort_unstable();
        let mut events = vec![Event {
            op: NONE,
            is_call: false,
            partner: NONE,
            prev: NONE,
            next: NONE,
        }];
        let mut call_at = vec![NONE; ops.len()];
        for (_, _, op, is_call) in order {
            let at = events.len();
            if is_call {
                call_at[op] = at;
            } else if let Some(&call) = call_at.get(op)
                && let Some(call_event) = events.get_mut(call)
            {
                call_event.partner = at;
            }
            events.push(Event {
                op,
                is_call,
                partner: NONE,
                prev: at - 1,
                next: NONE,
            });
            if let Some(previous) = events.get_mut(at - 1) {
                previous.next = at;
            }
        }
        EventList { events }
    }

    fn get(&self, at: usize) -> Event {
        self.events[at]
    }

    fn set_next(&mut self, at: usize, next: usize) {
        if at != NONE {
            self.events[at].next = next;
        }
    }

    fn set_prev(&mut self, at: usize, prev: usize) {
        if at != NONE {
            self.events[at].prev = prev;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        let partner = self.get(call).partner;
        for at in [call, partner] {
            let event = self.get(at);
            self.set_next(event.prev, event.next);
            self.set_prev(event.next, event.prev);
        }
    }

    /// Puts back what [`EventList::lift`] took out (they are re-linked at
    /// their old neighbours, which works in reverse order of lifting).
    fn unlift(&mut self, call: usize) {
        let partner = self.get(call).partner;
        for at in [partner, call] {
            let event = self.get(at);
            self.set_next(event.prev, at);
            self.set_prev(event.next, at);
        }
    }
}

/// Wing–Gong–Lowe search over one key's operations.
fn check_key(ops: &[Operation], budget: Budget) -> KeyVerdict {
    if ops.is_empty() {
        return KeyVerdict::Linearizable;
    }
    let mut list = EventList::new(ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<Value>)> = HashSet::new();
    // (call event, state before it was linearized)
    let mut stack: Vec<(usize, Option<Value>)> = Vec::new();
    let mut state: Option<Value> = None;
    let mut steps: u64 = 0;
    let mut entry = list.get(0).next;
    while list.get(0).next != NONE {
        steps += 1;
        if steps > budget.max_steps_per_key || cache.len() > budget.max_cache_entries_per_key {
            return KeyVerdict::Unknown;
        }
        if entry == NONE {
            // Cannot happen: the list ends with a return, which is handled
            // below. Treat as exhaustion rather than looping.
            return KeyVerdict::Unknown;
        }
        let event = list.get(entry);
        if event.is_call {
            let operation = &ops[event.op];
            let (next_state, output) = operation.op.apply_to(state);
            let matches = operation.output.is_none_or(|recorded| recorded == output);
            if matches {
                let (word, bit) = (event.op / 64, 1u64 << (event.op % 64));
                linearized[word] |= bit;
                if cache.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    list.lift(entry);
                    entry = list.get(0).next;
                    continue;
                }
                linearized[word] &= !bit;
            }
            entry = event.next;
        } else {
            // The operation that returns here was not linearized before its
            // return: undo the latest choice.
            let Some((call, previous_state)) = stack.pop() else {
                return KeyVerdict::Violation;
            };
            let op = list.get(call).op;
            linearized[op / 64] &= !(1u64 << (op % 64));
            state = previous_state;
            list.unlift(call);
            entry = list.get(call).next;
        }
    }
    KeyVerdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(
        client: u64,
        op: KvOp,
        invoke_us: u64,
        complete_us: u64,
        output: KvOutput,
    ) -> Operation {
        Operation {
            client,
            op,
            invoke_us,
            complete_us: Some(complete_us),
            output: Some(output),
        }
    }

    fn unknown(client: u64, op: KvOp, invoke_us: u64) -> Operation {
        Operation {
            client,
            op,
            invoke_us,
            complete_us: None,
            output: None,
        }
    }

    fn put(value: Value) -> KvOp {
        KvOp::Put { key: 1, value }
    }

    const GET: KvOp = KvOp::Get { key: 1 };

    fn read(value: Option<Value>) -> KvOutput {
        KvOutput::Value(value)
    }

    fn verdict(history: &[Operation]) -> Verdict {
        check_history(history, Budget::default()).verdict
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let history = [
            done(1, put(1), 0, 10, KvOutput::Written),
            done(2, GET, 20, 30, read(Some(1))),
            done(1, KvOp::Delete { key: 1 }, 40, 50, KvOutput::Deleted(true)),
            done(2, GET, 60, 70, read(None)),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        for seen in [Some(1), Some(2)] {
            let history = [
                done(1, put(1), 0, 10, KvOutput::Written),
                done(2, put(2), 20, 50, KvOutput::Written),
                done(3, GET, 25, 45, read(seen)),
            ];
            assert_eq!(verdict(&history), Verdict::Linearizable, "{seen:?}");
        }
    }

    #[test]
    fn concurrent_writes_may_land_in_either_order() {
        // Two overlapping puts, then reads that agree on one order.
        let history = [
            done(1, put(1), 0, 30, KvOutput::Written),
            done(2, put(2), 10, 40, KvOutput::Written),
            done(3, GET, 50, 60, read(Some(1))),
            done(3, GET, 70, 80, read(Some(1))),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_is_a_violation() {
        let history = [
            done(1, put(1), 0, 10, KvOutput::Written),
            done(1, put(2), 20, 30, KvOutput::Written),
            done(2, GET, 40, 50, read(Some(1))),
        ];
        let Verdict::Violation { key, minimal } = verdict(&history) else {
            panic!("a stale read passed");
        };
        assert_eq!(key, 1);
        // Nothing can go: without put(2) the read is fine, and without
        // put(1) the read would see a value nobody wrote, which explains
        // nothing (the shrinker keeps the writers of observed values).
        assert_eq!(minimal, history.to_vec());
        // Without the second put, the same read is fine.
        assert_eq!(verdict(&history[..1]), Verdict::Linearizable);
        let fresh = [history[0], history[2]];
        assert_eq!(verdict(&fresh), Verdict::Linearizable);
    }

    #[test]
    fn lost_write_is_a_violation() {
        // An acknowledged put that a later read does not see, with nothing
        // concurrent that could have overwritten it.
        let history = [
            done(1, put(1), 0, 10, KvOutput::Written),
            done(2, GET, 20, 30, read(None)),
        ];
        assert!(matches!(verdict(&history), Verdict::Violation { .. }));
    }

    #[test]
    fn duplicated_write_is_a_violation() {
        // put(1) took effect twice: once before put(2), and again after it.
        let history = [
            done(1, put(1), 0, 10, KvOutput::Written),
            done(1, put(2), 20, 30, KvOutput::Written),
            done(2, GET, 40, 50, read(Some(2))),
            done(2, GET, 60, 70, read(Some(1))),
        ];
        assert!(matches!(verdict(&history), Verdict::Violation { .. }));
        // The same with compare-and-swap: two successful swaps from the
        // same expected value, one after the other.
        let cas = KvOp::CompareAndSwap {
            key: 1,
            expected: Some(1),
            new: 2,
        };
        let history = [
            done(1, put(1), 0, 10, KvOutput::Written),
            done(1, cas, 20, 30, KvOutput::Swapped(true)),
            done(2, cas, 40, 50, KvOutput::Swapped(true)),
        ];
        assert!(matches!(verdict(&history), Verdict::Violation { .. }));
    }

    #[test]
    fn read_of_a_never_written_value_is_a_violation() {
        let history = [
            done(1, put(1), 0, 10, KvOutput::Written),
            done(2, GET, 5, 30, read(Some(99))),
        ];
        let Verdict::Violation { minimal, .. } = verdict(&history) else {
            panic!("a read of a value never written passed");
        };
        assert_eq!(minimal, vec![history[1]]);
    }

    #[test]
    fn unknown_write_may_or_may_not_have_happened() {
        // Seen later...
        let seen = [unknown(1, put(7), 0), done(2, GET, 100, 110, read(Some(7)))];
        assert_eq!(verdict(&seen), Verdict::Linearizable);
        // ...or never seen.
        let unseen = [unknown(1, put(7), 0), done(2, GET, 100, 110, read(None))];
        assert_eq!(verdict(&unseen), Verdict::Linearizable);
        // But it cannot take effect before it was invoked.
        let too_early = [done(2, GET, 0, 10, read(Some(7))), unknown(1, put(7), 20)];
        assert!(matches!(verdict(&too_early), Verdict::Violation { .. }));
    }

    #[test]
    fn unknown_write_cannot_flip_back_and_forth() {
        // A write of unknown outcome happens at most once: the reads see 7,
        // then the older value, then 7 again.
        let history = [
            done(1, put(1), 0, 10, KvOutput::Written),
            unknown(2, put(7), 20),
            done(3, GET, 30, 40, read(Some(7))),
            done(3, GET, 50, 60, read(Some(1))),
        ];
        assert!(matches!(verdict(&history), Verdict::Violation { .. }));
    }

    #[test]
    fn keys_are_checked_independently() {
        let history = [
            done(1, KvOp::Put { key: 1, value: 1 }, 0, 10, KvOutput::Written),
            done(1, KvOp::Put { key: 2, value: 2 }, 20, 30, KvOutput::Written),
            done(2, KvOp::Get { key: 2 }, 40, 50, read(Some(2))),
            done(2, KvOp::Get { key: 1 }, 60, 70, read(Some(2))),
        ];
        let Verdict::Violation { key, .. } = verdict(&history) else {
            panic!("cross-key value passed");
        };
        assert_eq!(key, 1);
    }

    #[test]
    fn exhausted_budget_is_unknown_not_a_pass() {
        // Many concurrent writes and reads: more than a few steps to check.
        let mut history = Vec::new();
        for client in 0..12 {
            history.push(done(client, put(client), 0, 1000, KvOutput::Written));
        }
        history.push(done(99, GET, 2000, 2010, read(Some(5))));
        let tiny = Budget {
            max_steps_per_key: 5,
            max_cache_entries_per_key: 1_000,
        };
        assert_eq!(
            check_history(&history, tiny).verdict,
            Verdict::Unknown { key: 1 }
        );
        assert_eq!(
            check_history(&history, Budget::default()).verdict,
            Verdict::Linearizable
        );
    }

    #[test]
    fn many_concurrent_operations_finish_quickly() {
        // A long history of overlapping operations from a few clients, all
        // consistent with one order; memoisation keeps this fast.
        let mut history = Vec::new();
        let mut value = None;
        for step in 0..600u64 {
            let start = step * 10;
            let op = match step % 3 {
                0 => put(step),
                1 => GET,
                _ => KvOp::CompareAndSwap {
                    key: 1,
                    expected: value,
                    new: step,
                },
            };
            let (next, output) = op.apply_to(value);
            value = next;
            // Each operation overlaps its neighbours.
            history.push(done(step % 4, op, start, start + 25, output));
        }
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }
}
