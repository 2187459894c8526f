//! The watchers of one stream, and which of them want an event.
//!
//! Watchers that continue from the same revision (after an apply, every
//! watcher that is caught up) form a group: the group's changes are read
//! once (`event_cache.rs`) and each event goes to the watchers that want
//! it, found through an index of the group's keys: a single-key watcher by
//! a hash lookup, a range watcher by a scan of the group's ranges. So an
//! event costs one lookup plus the ranged watchers, not every watcher.

use std::collections::{BTreeMap, HashMap};

use raftwood_kv::proto::mvccpb::Event;

/// etcd's event types (`mvccpb.Event.EventType`).
const EVENT_PUT: i32 = 0;

/// One watcher of a stream.
#[derive(Debug, Default)]
pub struct Watcher {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// The next revision to send changes from.
    pub next_revision: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    /// Wants periodic progress notifications (`progress_notify`).
    pub progress_notify: bool,
    /// Wants large responses split (`fragment`).
    pub fragment: bool,
    /// Was sent events since the last periodic progress notification
    /// (which it then does not need).
    pub sent_since_progress: bool,
}

impl Watcher {
    /// True if the watcher wants events of this type.
    fn wants_type(&self, event: &Event) -> bool {
        if event.r#type == EVENT_PUT {
            !self.no_put
        } else {
            !self.no_delete
        }
    }

    /// True if `key` is in the watcher's range.
    fn covers(&self, key: &[u8]) -> bool {
        if self.range_end.is_empty() {
            key == self.key.as_slice()
        } else if self.range_end == [0] {
            key >= self.key.as_slice()
        } else {
            key >= self.key.as_slice() && key < self.range_end.as_slice()
        }
    }
}

/// Watchers that continue from the same revision with the same
/// `prev_kv`: they read the same changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    pub next_revision: i64,
    pub prev_kv: bool,
}

impl Group {
    /// True if `watcher` is of this group.
    pub fn holds(&self, watcher: &Watcher) -> bool {
        watcher.next_revision == self.next_revision && watcher.prev_kv == self.prev_kv
    }
}

/// The group whose changes to read next: the one furthest behind, among
/// watchers not past `current`.
pub fn next_group(watchers: &BTreeMap<i64, Watcher>, current: i64) -> Option<Group> {
    watchers
        .values()
        .filter(|watcher| watcher.next_revision <= current)
        .map(|watcher| Group {
            next_revision: watcher.next_revision,
            prev_kv: watcher.prev_kv,
        })
        .min()
}

/// The events of a batch each watcher of `group` wants, by watcher id
/// (watchers that want none are absent).
pub fn dispatch(
    watchers: &BTreeMap<i64, Watcher>,
    group: Group,
    events: &[Event],
) -> BTreeMap<i64, Vec<Event>> {
    let mut single: HashMap<&[u8], Vec<i64>> = HashMap::new();
    let mut ranged: Vec<i64> = Vec::new();
    for (&id, watcher) in watchers {
        if !group.holds(watcher) {
            continue;
        }
        if watcher.range_end.is_empty() {
            single.entry(watcher.key.as_slice()).or_default().push(id);
        } else {
            ranged.push(id);
        }
    }
    let mut wanted: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    for event in events {
        let Some(kv) = &event.kv else {
            continue;
        };
        let key = kv.key.as_slice();
        let by_key = single.get(key).map(Vec::as_slice).unwrap_or_default();
        let by_range = ranged.iter().filter(|id| watchers[id].covers(key));
        for &id in by_key.iter().chain(by_range) {
            if watchers[&id].wants_type(event) {
                wanted.entry(id).or_default().push(event.clone());
            }
        }
    }
    debug_assert!(
        wanted.keys().all(|id| group.holds(&watchers[id])),
        "events for a watcher outside the group"
    );
    wanted
}

#[cfg(test)]
mod tests {
    use raftwood_kv::proto::mvccpb::KeyValue;

    use super::*;

    fn watcher(key: &str, range_end: &str, next_revision: i64) -> Watcher {
        Watcher {
            key: key.as_bytes().to_vec(),
            range_end: range_end.as_bytes().to_vec(),
            next_revision,
            no_put: false,
            no_delete: false,
            prev_kv: false,
            ..Watcher::default()
        }
    }

    fn event(key: &str, put: bool) -> Event {
        Event {
            r#type: if put { EVENT_PUT } else { 1 },
            kv: Some(KeyValue {
                key: key.as_bytes().to_vec(),
                ..KeyValue::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn each_watcher_of_the_group_gets_the_events_in_its_range_in_order() {
        let mut watchers = BTreeMap::new();
        watchers.insert(1, watcher("a", "", 5));
        watchers.insert(2, watcher("a", "c", 5));
        watchers.insert(3, watcher("b", "\0", 5));
        watchers.insert(4, watcher("a", "", 9)); // another group
        let mut no_deletes = watcher("a", "", 5);
        no_deletes.no_delete = true;
        watchers.insert(5, no_deletes);
        let group = next_group(&watchers, 10).unwrap();
        assert_eq!(group.next_revision, 5);
        let events = [
            event("a", true),
            event("b", true),
            event("a", false),
            event("z", true),
        ];
        let wanted = dispatch(&watchers, group, &events);
        let keys = |id: i64| -> Vec<(String, bool)> {
            wanted[&id]
                .iter()
                .map(|e| {
                    let key = String::from_utf8(e.kv.as_ref().unwrap().key.clone()).unwrap();
                    (key, e.r#type == EVENT_PUT)
                })
                .collect()
        };
        assert_eq!(keys(1), [("a".to_string(), true), ("a".to_string(), false)]);
        assert_eq!(
            keys(2),
            [("a".into(), true), ("b".into(), true), ("a".into(), false)]
        );
        assert_eq!(keys(3), [("b".to_string(), true), ("z".to_string(), true)]);
        assert!(!wanted.contains_key(&4));
        assert_eq!(keys(5), [("a".to_string(), true)]);
    }

    #[test]
    fn watchers_past_the_current_revision_are_not_read_for() {
        let mut watchers = BTreeMap::new();
        watchers.insert(1, watcher("a", "", 11));
        assert_eq!(next_group(&watchers, 10), None);
        watchers.insert(2, watcher("a", "", 3));
        assert_eq!(next_group(&watchers, 10).map(|g| g.next_revision), Some(3));
    }
}
