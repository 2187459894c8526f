//! Accepting connections without spinning when accept fails.
//!
//! A listener whose backlog holds a connection stays readable, so a loop
//! that retries a failed accept at once (out of file descriptors, EMFILE;
//! out of memory for socket buffers) burns a core until the cause goes away
//! and starves the member's ticks and heartbeats. Both the client and the
//! peer listeners accept through [`accept`], which waits after a failure,
//! 5 ms doubling to 1 s, as Go's `net/http` server (and so etcd) does.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};

/// The first wait after a failed accept.
const FIRST_WAIT: Duration = Duration::from_millis(5);
/// The longest wait between failed accepts.
const LONGEST_WAIT: Duration = Duration::from_secs(1);

/// How long to wait before the next accept; reset by a success.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    wait: Option<Duration>,
}

impl AcceptBackoff {
    /// Records a failure; returns how long to wait before trying again.
    pub fn failed(&mut self) -> Duration {
        let wait = self
            .wait
            .map_or(FIRST_WAIT, |wait| (wait * 2).min(LONGEST_WAIT));
        debug_assert!((FIRST_WAIT..=LONGEST_WAIT).contains(&wait));
        self.wait = Some(wait);
        wait
    }

    /// Records a success.
    pub fn succeeded(&mut self) {
        self.wait = None;
    }
}

/// The next connection on `listener`. A failed accept is logged and
/// retried after `backoff`'s wait; this only returns a connection.
pub async fn accept(
    listener: &TcpListener,
    backoff: &mut AcceptBackoff,
) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => {
                backoff.succeeded();
                let _ = accepted.0.set_nodelay(true);
                return accepted;
            }
            Err(error) => {
                let wait = backoff.failed();
                let local = listener.local_addr().ok();
                tracing::warn!(?local, %error, ?wait, "accept failed; waiting before the next");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Every connection `listener` accepts, as a stream for servers that take
/// one (tonic's); accept failures are waited out as [`accept`] does, so the
/// stream never ends and never yields an error.
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> {
    futures::stream::unfold(
        (listener, AcceptBackoff::default()),
        |(listener, mut backoff)| async move {
            let (stream, _) = accept(&listener, &mut backoff).await;
            Some((Ok(stream), (listener, backoff)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_second_and_a_success_starts_over() {
        let mut backoff = AcceptBackoff::default();
        let waits: Vec<u128> = (0..10).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), FIRST_WAIT);
    }
}
