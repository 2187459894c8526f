//! The caller's side of durability: persist requests and their completion,
//! apply progress, and log compaction.

use super::{OutstandingPersist, RaftNode};
use crate::effects::{PersistRequest, PersistTicket};
use crate::entry::EntryPayload;
use crate::error::Error;
use crate::ids::Index;
use crate::role::Role;
use crate::snapshot::SnapshotMeta;

impl RaftNode {
    /// Builds the next persist request, if anything changed since the last.
    pub(super) fn make_persist_request(&mut self) -> Option<PersistRequest> {
        let hard_state = self.hard_state();
        let hard_state_changed = hard_state != self.handed_hard_state;
        if !hard_state_changed && !self.log.has_entries_to_persist() {
            return None;
        }
        let snapshot = self.log.take_pending_snapshot();
        let entries = self.log.take_entries_to_persist();
        let ticket = PersistTicket(self.next_ticket);
        self.next_ticket += 1;
        self.handed_hard_state = hard_state;
        self.outstanding.push_back(OutstandingPersist {
            ticket,
            last_entry: entries.last().map(|e| (e.index, e.term)),
            snapshot: snapshot.clone(),
        });
        Some(PersistRequest {
            ticket,
            snapshot,
            entries,
            hard_state: hard_state_changed.then_some(hard_state),
        })
    }

    /// The caller made the request `ticket` durable. Requests must complete
    /// in the order they were issued.
    pub fn on_persisted(&mut self, ticket: PersistTicket) -> Result<(), Error> {
        let result = self.persisted_checked(ticket);
        self.debug_check_invariants();
        result
    }

    fn persisted_checked(&mut self, ticket: PersistTicket) -> Result<(), Error> {
        let Some(oldest) = self.outstanding.front() else {
            return Err(Error::OutOfOrderCompletion(format!(
                "{ticket:?} completed but none is outstanding"
            )));
        };
        if oldest.ticket != ticket {
            return Err(Error::OutOfOrderCompletion(format!(
                "{ticket:?} completed before {:?}",
                oldest.ticket
            )));
        }
        let Some(done) = self.outstanding.pop_front() else {
            return Ok(());
        };
        if let Some(snapshot) = &done.snapshot {
            self.log.snapshot_persisted(snapshot);
        }
        if let Some((index, term)) = done.last_entry {
            self.log.persisted_to(index, term);
        }
        if self.role == Role::Leader {
            self.leader_persisted(self.log.persisted());
        }
        for message in self.outbox.complete(ticket) {
            if message.to == self.id() {
                // The candidate's own vote, now durable.
                self.deliver(message)?;
            } else {
                self.outbox.send_now(message);
            }
        }
        Ok(())
    }

    /// The caller applied every entry handed out up to `index`.
    /// Configuration changes among them take effect now.
    pub fn on_applied(&mut self, index: Index) -> Result<(), Error> {
        let before = self.log.applied();
        self.log
            .applied_to(index)
            .map_err(Error::OutOfOrderCompletion)?;
        self.apply_conf_changes_between(before, self.log.applied())?;
        self.maybe_auto_leave_joint();
        self.debug_check_invariants();
        Ok(())
    }

    /// Applies the configuration changes among entries `(from, to]`.
    pub(super) fn apply_conf_changes_between(
        &mut self,
        from: Index,
        to: Index,
    ) -> Result<(), Error> {
        for index in from + 1..=to {
            let Some(entry) = self.log.entry(index) else {
                return Err(Error::OutOfOrderCompletion(format!(
                    "entry {index} is not in the log"
                )));
            };
            if let EntryPayload::ConfChange(change) = &entry.payload {
                let change = change.clone();
                self.apply_conf_change(index, &change);
            }
        }
        Ok(())
    }

    /// The caller captured its state machine up to `index` (at most the
    /// applied index) in a snapshot: the log before it is dropped. Returns
    /// the snapshot's metadata (term and membership at `index`), which the
    /// caller stores with the snapshot data.
    pub fn compact_log(&mut self, index: Index) -> Result<SnapshotMeta, Error> {
        let invalid = |reason: String| Error::InvalidCompaction { index, reason };
        let term = self
            .log
            .term(index)
            .map_err(|_| invalid("the entry is not in the log".to_owned()))?;
        let conf_state = self
            .conf_history
            .iter()
            .rev()
            .find(|(at, _)| *at <= index)
            .map(|(_, conf)| conf.clone())
            .ok_or_else(|| invalid("the configuration at that index is unknown".to_owned()))?;
        let snapshot = SnapshotMeta {
            index,
            term,
            conf_state,
        };
        self.log.compact_to(snapshot.clone()).map_err(invalid)?;
        // Keep the configuration in force at the snapshot and every later one.
        let keep_from = self
            .conf_history
            .iter()
            .rposition(|(at, _)| *at <= index)
            .unwrap_or(0);
        self.conf_history.drain(..keep_from);
        Ok(snapshot)
    }
}
