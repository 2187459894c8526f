//! The membership query: how a member started with
//! `--initial-cluster-state existing` learns the cluster it was added to
//! (its own id, the cluster's id, the other members and their addresses)
//! before it has a raft log — etcd asks its peers the same over HTTP.
//!
//! The joining member dials a peer URL and writes a query header
//! (`RWMEMB`, the protocol version, a zero length); the peer answers with
//! the membership it last applied, in the same framing, and closes. Byte
//! layout in `docs/peer-protocol.md`, "The membership query".

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::BufMut;
use raftwood_lsm::length::{len_u16, len_u32};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::FrameError;
use super::frame::{PROTOCOL_VERSION, get_string, get_u8, get_u16, get_u32, get_u64, put_string};
use super::reader::read_body;
use crate::membership::{Member, Membership};
use crate::url::PeerUrl;

/// The first six bytes of a membership query and of its answer.
pub const QUERY_MAGIC: &[u8; 6] = b"RWMEMB";
/// Largest answer accepted (a thousand members with long URLs fit).
pub const MAX_ANSWER_BYTES: u32 = 4 * 1024 * 1024;

fn header(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(QUERY_MAGIC);
    out.put_u16_le(PROTOCOL_VERSION);
    out.put_u32_le(len_u32(len, "membership answer"));
    // As long as a hello's header, so a peer tells them apart by it.
    debug_assert_eq!(out.len(), 12);
    out
}

/// The query: a header with no body.
pub fn encode_query() -> Vec<u8> {
    let query = header(0);
    debug_assert!(
        <&[u8; 12]>::try_from(query.as_slice())
            .is_ok_and(|first| matches!(is_query(first), Ok(true))),
        "a peer takes the query for one"
    );
    query
}

/// Whether a connection's first 12 bytes are a membership query (rather
/// than a member's hello); a query of another version is refused.
pub fn is_query(first: &[u8; 12]) -> Result<bool, FrameError> {
    if &first[..6] != QUERY_MAGIC {
        return Ok(false);
    }
    let version = u16::from_le_bytes([first[6], first[7]]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::BadHello(format!(
            "membership query of version {version}, this member speaks {PROTOCOL_VERSION}"
        )));
    }
    Ok(true)
}

/// The answer: header, then the membership.
pub fn encode_answer(membership: &Membership) -> Vec<u8> {
    membership.check_invariants();
    let mut body = Vec::new();
    body.put_u64_le(membership.cluster_id);
    body.put_u32_le(len_u32(membership.members.len(), "member count"));
    for (id, member) in &membership.members {
        assert_eq!(*id, member.id, "a member is filed under its own id");
        body.put_u64_le(member.id);
        put_string(&mut body, &member.name);
        body.put_u8(u8::from(member.is_learner));
        for urls in [&member.peer_urls, &member.client_urls] {
            body.put_u16_le(len_u16(urls.len(), "member URL count"));
            for url in urls {
                put_string(&mut body, &url.to_string());
            }
        }
    }
    body.put_u32_le(len_u32(membership.removed.len(), "removed count"));
    for id in &membership.removed {
        body.put_u64_le(*id);
    }
    let mut out = header(body.len());
    out.extend_from_slice(&body);
    debug_assert!(
        decode_answer(&out[12..])
            .is_ok_and(|decoded| decoded.members.len() == membership.members.len()),
        "the answer decodes, every member in it"
    );
    out
}

/// Parses an answer's body.
pub fn decode_answer(mut body: &[u8]) -> Result<Membership, FrameError> {
    let malformed = |what: String| FrameError::Malformed(format!("membership answer: {what}"));
    let cluster_id = get_u64(&mut body)?;
    let count = get_u32(&mut body)?;
    let mut members = BTreeMap::new();
    for _ in 0..count {
        let id = get_u64(&mut body)?;
        let name = get_string(&mut body)?;
        let is_learner = match get_u8(&mut body)? {
            0 => false,
            1 => true,
            other => return Err(malformed(format!("learner flag {other}"))),
        };
        let mut url_lists = [Vec::new(), Vec::new()];
        for urls in &mut url_lists {
            for _ in 0..get_u16(&mut body)? {
                let text = get_string(&mut body)?;
                urls.push(
                    text.parse()
                        .map_err(|e| malformed(format!("URL {text:?}: {e}")))?,
                );
            }
        }
        let [peer_urls, client_urls] = url_lists;
        let member = Member {
            id,
            name,
            peer_urls,
            client_urls,
            is_learner,
        };
        // What a membership cannot hold (`Membership::check_invariants`)
        // is a malformed answer, not an assertion: it comes from a peer.
        if id == 0 {
            return Err(malformed("member id 0".into()));
        }
        if members.insert(id, member).is_some() {
            return Err(malformed(format!("member {id:x} twice")));
        }
    }
    let mut removed = BTreeSet::new();
    for _ in 0..get_u32(&mut body)? {
        let id = get_u64(&mut body)?;
        if members.contains_key(&id) {
            return Err(malformed(format!("member {id:x} both present and removed")));
        }
        removed.insert(id);
    }
    if !body.is_empty() {
        return Err(malformed("trailing bytes".into()));
    }
    Ok(Membership {
        cluster_id,
        members,
        removed,
    })
}

/// Answers a query whose header was read: writes the membership, then
/// the connection is closed by the caller.
pub async fn answer(
    stream: &mut (impl AsyncWrite + Unpin),
    membership: &Membership,
) -> std::io::Result<()> {
    stream.write_all(&encode_answer(membership)).await?;
    stream.flush().await
}

/// Asks each of `peers` in turn for its membership (etcd asks the same of
/// its peers' `/members`) until one answers with a membership that
/// `includes_me`: a peer that has not yet applied the MemberAdd the leader
/// already answered does not know the new member, so the peers are asked
/// again, a few times within `patience`. Returns the last answer if none
/// includes it (the caller says why it cannot join), and an error if no
/// peer answers at all.
pub async fn ask_any(
    peers: &[PeerUrl],
    timeout: Duration,
    patience: Duration,
    includes_me: impl Fn(&Membership) -> bool,
) -> Result<Membership, String> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut failures = Vec::new();
    loop {
        let mut last_answer = None;
        for url in peers {
            match ask(&url.authority(), timeout).await {
                Ok(membership) if includes_me(&membership) => return Ok(membership),
                Ok(membership) => last_answer = Some(membership),
                Err(error) => failures.push(format!("{url}: {error}")),
            }
        }
        match last_answer {
            Some(answer) if tokio::time::Instant::now() >= deadline => return Ok(answer),
            Some(_) => tokio::time::sleep(ASK_AGAIN_AFTER).await,
            None => {
                return Err(format!(
                    "could not learn the cluster's membership from any peer of --initial-cluster ({})",
                    failures.join("; ")
                ));
            }
        }
    }
}

/// The pause before asking the peers again for a membership that includes
/// the joining member.
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(200);

/// Asks the member at `address` (host:port) for its membership.
pub async fn ask(address: &str, timeout: Duration) -> Result<Membership, String> {
    let asking = async {
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        stream
            .write_all(&encode_query())
            .await
            .map_err(|e| format!("sending the query: {e}"))?;
        read_answer(&mut stream).await
    };
    match tokio::time::timeout(timeout, asking).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> Result<Membership, String> {
    let mut first = [0u8; 12];
    stream
        .read_exact(&mut first)
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    if !is_query(&first).map_err(|e| e.to_string())? {
        return Err("the answer is not a membership answer".into());
    }
    let len = u32::from_le_bytes([first[8], first[9], first[10], first[11]]);
    if len > MAX_ANSWER_BYTES {
        return Err(format!("an answer of {len} bytes"));
    }
    let mut body = Vec::new();
    read_body(stream, len, &mut body)
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    decode_answer(&body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Membership {
        let mut members = BTreeMap::new();
        members.insert(
            7,
            Member {
                id: 7,
                name: "a".into(),
                peer_urls: vec![PeerUrl::localhost(2380)],
                client_urls: vec![PeerUrl::localhost(2379)],
                is_learner: false,
            },
        );
        members.insert(
            9,
            Member {
                id: 9,
                name: String::new(),
                peer_urls: vec![PeerUrl::localhost(2480)],
                client_urls: Vec::new(),
                is_learner: true,
            },
        );
        Membership {
            cluster_id: 42,
            members,
            removed: [3, 5].into_iter().collect(),
        }
    }

    #[tokio::test]
    async fn an_answer_round_trips_and_every_cut_of_it_is_refused() {
        let membership = sample();
        let encoded = encode_answer(&membership);
        let mut reader: &[u8] = &encoded;
        assert_eq!(read_answer(&mut reader).await.unwrap(), membership);
        let body = &encoded[12..];
        for cut in 0..body.len() {
            assert!(
                decode_answer(&body[..cut]).is_err(),
                "cut at {cut} accepted"
            );
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(decode_answer(&longer).is_err());
    }

    #[tokio::test]
    async fn a_peer_answers_a_query_over_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let membership = sample();
        let served = membership.clone();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 12];
            stream.read_exact(&mut first).await.unwrap();
            assert!(is_query(&first).unwrap());
            answer(&mut stream, &served).await.unwrap();
        });
        let learned = ask(&address, Duration::from_secs(5)).await.unwrap();
        assert_eq!(learned, membership);
    }

    /// What a membership cannot hold is a malformed answer from a peer,
    /// never a panic (found by the membership_answer fuzz target: an answer
    /// with member id 0 reached the encoder's invariant check).
    #[test]
    fn an_answer_a_membership_cannot_hold_is_malformed() {
        let body = encode_answer(&sample())[12..].to_vec();
        // The first member's id follows the cluster id (8 bytes) and the
        // member count (4).
        let mut zero = body.clone();
        zero[12..20].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            decode_answer(&zero),
            Err(FrameError::Malformed(_))
        ));
        // The last removed id made one of the members' (7).
        let mut both = body;
        let last = both.len() - 8;
        both[last..].copy_from_slice(&7u64.to_le_bytes());
        assert!(matches!(
            decode_answer(&both),
            Err(FrameError::Malformed(_))
        ));
    }
}
