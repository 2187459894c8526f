//! etcd's `fragment` watch option: a response whose events exceed the
//! member's request size limit (`--max-request-bytes`) is split into
//! several, each within the limit where it can be (an event is never
//! split), all but the last marked `fragment`, so that a client whose gRPC
//! message limit matches the server's can still receive a huge revision.
//! Without the option the response goes whole, as in etcd.

use prost::Message as _;

use crate::proto::etcdserverpb::WatchResponse;

/// `response` as the responses to send: itself if it fits `max_bytes` or
/// holds fewer than two events, else fragments, in order.
pub fn fragments(response: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if response.encoded_len() < max_bytes || response.events.len() < 2 {
        return vec![response];
    }
    let mut template = response;
    let events = std::mem::take(&mut template.events);
    let event_count = events.len();
    template.fragment = true;
    let mut fragments = Vec::new();
    let mut current = template.clone();
    for event in events {
        current.events.push(event);
        if current.events.len() > 1 && current.encoded_len() >= max_bytes {
            // The last event does not fit: it starts the next fragment.
            let overflow = current.events.pop();
            let next = WatchResponse {
                events: overflow.into_iter().collect(),
                ..template.clone()
            };
            fragments.push(std::mem::replace(&mut current, next));
        }
    }
    current.fragment = false;
    fragments.push(current);
    assert_eq!(
        fragments.iter().map(|f| f.events.len()).sum::<usize>(),
        event_count,
        "fragments carry every event once"
    );
    fragments
}

#[cfg(test)]
mod tests {
    use raftwood_kv::proto::mvccpb::{Event, KeyValue};

    use super::*;

    fn response_of(events: usize, value_bytes: usize) -> WatchResponse {
        WatchResponse {
            watch_id: 7,
            events: (0..events)
                .map(|i| Event {
                    kv: Some(KeyValue {
                        key: format!("k{i}").into_bytes(),
                        value: vec![b'v'; value_bytes],
                        mod_revision: 5,
                        ..KeyValue::default()
                    }),
                    ..Event::default()
                })
                .collect(),
            ..WatchResponse::default()
        }
    }

    #[test]
    fn a_response_within_the_limit_or_of_one_event_is_sent_whole() {
        let small = response_of(3, 10);
        assert_eq!(fragments(small.clone(), 1 << 20), vec![small]);
        let one_huge = response_of(1, 4096);
        assert_eq!(fragments(one_huge.clone(), 100), vec![one_huge]);
    }

    #[test]
    fn a_large_response_is_split_in_order_within_the_limit_and_the_last_is_not_a_fragment() {
        let whole = response_of(10, 1000);
        let parts = fragments(whole.clone(), 3000);
        assert!(parts.len() >= 4, "{} parts", parts.len());
        for part in &parts[..parts.len() - 1] {
            assert!(part.fragment);
            assert!(part.encoded_len() < 3000 || part.events.len() == 1);
            assert_eq!(part.watch_id, 7);
        }
        assert!(!parts[parts.len() - 1].fragment);
        let rejoined: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(rejoined, whole.events);
    }
}
