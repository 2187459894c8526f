//! etcd endpoints that do no work: Put and DeleteRange answer at once with a
//! header, Range of one key with a fixed 256-byte value (of several keys
//! with none), Status names the first address's member as the leader.
//!
//! A measuring instrument, not a server. It gives the ceiling a load tool
//! reaches on this machine when the server costs nothing but gRPC, which
//! is what a benchmark's ratio to etcd must be read against: a target of
//! "3x etcd" cannot be met if it is more than what a server doing nothing
//! gets. `bench/compare-etcd.sh` and `bench/check-perf.sh` run it beside
//! both systems. By hand:
//!
//! ```sh
//! cargo run --release -p raftwood-server --example null_kv_server -- \
//!     127.0.0.1:2379 127.0.0.1:22379 127.0.0.1:32379
//! ETCDCTL_API=3 etcdctl check perf --load=l
//! ```
//!
//! It prints the puts per second it answered every five seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use std::pin::Pin;

use raftwood_server::grpc::authority::AuthorityRewritingStream;
use raftwood_server::proto::etcdserverpb::kv_server::{Kv, KvServer};
use raftwood_server::proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use raftwood_server::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DefragmentRequest,
    DefragmentResponse, DeleteRangeRequest, DeleteRangeResponse, HashKvRequest, HashKvResponse,
    HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse, TxnRequest, TxnResponse,
};
use raftwood_server::proto::mvccpb::KeyValue;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};

/// The member that Status reports as the leader: the first address's.
const LEADER_MEMBER_ID: u64 = 1;

/// The size of the value every Range answers with: the size of the value
/// `bench/compare-etcd.sh` reads, so a range's response costs what it
/// costs against a real server.
const RANGE_VALUE_BYTES: usize = 256;

/// One member's endpoint. The put count is shared by all of them and is
/// the revision every header reports.
#[derive(Debug, Clone)]
struct NullKv {
    member_id: u64,
    puts: Arc<AtomicI64>,
}

impl NullKv {
    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 1,
            member_id: self.member_id,
            revision: self.puts.load(Ordering::Relaxed) + 1,
            raft_term: 1,
        })
    }
}

#[tonic::async_trait]
impl Kv for NullKv {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let request = request.into_inner();
        // A range of several keys finds none (`etcdctl check perf` starts by
        // checking that its prefix is empty); a single key is found.
        if !request.range_end.is_empty() {
            return Ok(Response::new(RangeResponse {
                header: self.header(),
                ..RangeResponse::default()
            }));
        }
        let key = request.key;
        Ok(Response::new(RangeResponse {
            header: self.header(),
            kvs: vec![KeyValue {
                key,
                create_revision: 1,
                mod_revision: 1,
                version: 1,
                value: vec![b'v'; RANGE_VALUE_BYTES],
                lease: 0,
            }],
            more: false,
            count: 1,
        }))
    }

    async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(PutResponse {
            header: self.header(),
            prev_kv: None,
        }))
    }

    async fn delete_range(
        &self,
        _: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Ok(Response::new(DeleteRangeResponse {
            header: self.header(),
            ..DeleteRangeResponse::default()
        }))
    }

    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(Status::unimplemented("the null KV server answers no Txn"))
    }

    async fn compact(
        &self,
        _: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented(
            "the null KV server answers no Compact",
        ))
    }
}

type SnapshotStream =
    Pin<Box<dyn futures::Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Maintenance for NullKv {
    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Ok(Response::new(AlarmResponse {
            header: self.header(),
            alarms: Vec::new(),
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(StatusResponse {
            header: self.header(),
            version: "3.4.0-null".to_owned(),
            leader: LEADER_MEMBER_ID,
            raft_term: 1,
            ..StatusResponse::default()
        }))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(Status::unimplemented("the null server does not defragment"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented("the null server does not hash"))
    }

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(Status::unimplemented("the null server does not hash"))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented("the null server has no snapshot"))
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("the null server has one leader"))
    }
}

/// Client connections as a raftwood member takes them: no Nagle delay, and
/// the `:authority` rewrite that lets etcdctl's per-endpoint commands
/// (`endpoint status`) through, so the ceiling pays what a member pays.
fn client_connections(
    listener: tokio::net::TcpListener,
    address: SocketAddr,
) -> impl futures::Stream<Item = std::io::Result<AuthorityRewritingStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |stream| {
        stream.map(|tcp| {
            let _ = tcp.set_nodelay(true);
            AuthorityRewritingStream::new(tcp, address.to_string())
        })
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addresses = Vec::new();
    for argument in std::env::args().skip(1) {
        let address: SocketAddr = argument
            .parse()
            .map_err(|e| format!("not an address (host:port): {argument}: {e}"))?;
        addresses.push(address);
    }
    if addresses.is_empty() {
        addresses.push(SocketAddr::from(([127, 0, 0, 1], 2379)));
    }
    let puts = Arc::new(AtomicI64::new(0));
    let mut servers = tokio::task::JoinSet::new();
    for (member_id, address) in (1..).zip(addresses) {
        let service = NullKv {
            member_id,
            puts: Arc::clone(&puts),
        };
        let listener = tokio::net::TcpListener::bind(address).await?;
        println!("null etcd member {member_id} on {address}");
        servers.spawn(
            tonic::transport::Server::builder()
                .add_service(KvServer::new(service.clone()))
                .add_service(MaintenanceServer::new(service))
                .serve_with_incoming(client_connections(listener, address)),
        );
    }
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        let mut last = (Instant::now(), 0);
        loop {
            interval.tick().await;
            let now = (Instant::now(), puts.load(Ordering::Relaxed));
            let seconds = now.0.duration_since(last.0).as_secs_f64();
            if now.1 > last.1 {
                println!("{:.0} puts/s", (now.1 - last.1) as f64 / seconds);
            }
            last = now;
        }
    });
    while let Some(served) = servers.join_next().await {
        served??;
    }
    Ok(())
}
