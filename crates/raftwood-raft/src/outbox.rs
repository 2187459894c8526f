//! Holds back every message that depends on local durable state until the
//! persistence requests issued before it have completed. This is the
//! "persist before you speak" rule of Raft (paper Figure 2: respond to RPCs
//! only after updating stable storage) made structural: the node cannot hand
//! out such a message early, because it never sees it.

use std::collections::VecDeque;

use crate::effects::PersistTicket;
use crate::message::Message;

/// Outgoing messages, sorted by what they wait for.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Free to send.
    released: Vec<Message>,
    /// Created since the last [`Outbox::seal`]; they will wait for the latest
    /// persistence request outstanding at that point.
    unsealed: Vec<Message>,
    /// Waiting for a request to complete, oldest request first. Invariant:
    /// tickets strictly increase along the queue.
    held: VecDeque<(PersistTicket, Vec<Message>)>,
}

impl Outbox {
    /// A message that depends on no local durable state (the leader's
    /// replication traffic), free to go at once.
    pub fn send_now(&mut self, message: Message) {
        self.released.push(message);
    }

    /// A message that may be sent only once everything persisted so far,
    /// and everything about to be, is durable.
    pub fn send_after_persist(&mut self, message: Message) {
        self.unsealed.push(message);
    }

    /// Attaches the unsealed messages to `latest` (the newest persistence
    /// request issued, if it has not completed), or releases them if nothing
    /// is outstanding.
    pub fn seal(&mut self, latest: Option<PersistTicket>) {
        if self.unsealed.is_empty() {
            return;
        }
        let messages = std::mem::take(&mut self.unsealed);
        match latest {
            None => self.released.extend(messages),
            Some(ticket) => match self.held.back_mut() {
                Some((last, held)) if *last == ticket => held.extend(messages),
                Some((last, _)) => {
                    assert!(*last < ticket, "tickets increase");
                    self.held.push_back((ticket, messages));
                }
                None => self.held.push_back((ticket, messages)),
            },
        }
    }

    /// Request `ticket` completed: returns the messages that waited for it
    /// (or for an earlier one).
    pub fn complete(&mut self, ticket: PersistTicket) -> Vec<Message> {
        let mut ready = Vec::new();
        while self.held.front().is_some_and(|(t, _)| *t <= ticket) {
            if let Some((_, messages)) = self.held.pop_front() {
                ready.extend(messages);
            }
        }
        ready
    }

    /// Takes the messages free to send.
    pub fn take_released(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.released)
    }

    /// Whether any message is free to send or waiting to be sealed.
    pub fn has_pending(&self) -> bool {
        !self.released.is_empty() || !self.unsealed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageBody;

    fn message(to: u64) -> Message {
        Message {
            from: 1,
            to,
            term: 1,
            body: MessageBody::TimeoutNow,
        }
    }

    #[test]
    fn held_messages_wait_for_their_ticket_and_no_longer() {
        let mut outbox = Outbox::default();
        outbox.send_after_persist(message(2));
        outbox.seal(Some(PersistTicket(1)));
        outbox.send_now(message(3));
        assert_eq!(outbox.take_released(), vec![message(3)]);
        outbox.send_after_persist(message(4));
        outbox.seal(Some(PersistTicket(2)));
        assert_eq!(outbox.complete(PersistTicket(1)), vec![message(2)]);
        assert_eq!(outbox.complete(PersistTicket(2)), vec![message(4)]);
        outbox.send_after_persist(message(5));
        outbox.seal(None);
        assert_eq!(outbox.take_released(), vec![message(5)]);
    }
}
