//! etcd's v3 gRPC API, wire-compatible: KV, Maintenance.Status and
//! Cluster.MemberList. Services and methods not implemented yet answer
//! `Unimplemented`, as tonic does for any unknown method.

pub mod authority;
mod cluster;
mod kv;
mod learner_gate;
mod lease;
mod maintenance;
pub mod member;
mod watch;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use crate::proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};

pub use member::MemberHandle;
pub use member::status::{from_etcd, no_leader};

/// The client API of one member. Every client listener serves clones of
/// these same services, so that what a member keeps outside raft (the
/// leader's lease deadlines, the relay connections, the watchers' event
/// cache) exists once per member, however many client URLs it listens on.
#[derive(Debug, Clone)]
pub struct ClientApi {
    member: MemberHandle,
    leases: lease::LeaseService,
    watch: watch::WatchService,
}

impl ClientApi {
    /// The services of `member`.
    pub fn new(member: MemberHandle) -> ClientApi {
        ClientApi {
            leases: lease::LeaseService::new(member.clone()),
            watch: watch::WatchService::new(member.clone()),
            member,
        }
    }

    /// The member's one lease-expiry task (see
    /// `LeaseService::expire_leases`).
    pub fn expire_leases(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.leases.expire_leases()
    }
}

/// What etcd lets gRPC add to a request on the wire beyond
/// `--max-request-bytes` (its `grpcOverheadBytes`): a request in that gap
/// is decoded and then refused with "etcdserver: request is too large",
/// one above it is refused by gRPC.
const GRPC_OVERHEAD_BYTES: u64 = 512 * 1024;

/// The largest message a client listener decodes, as etcd sets gRPC's
/// receive limit: the request limit plus [`GRPC_OVERHEAD_BYTES`].
fn receive_limit_bytes(max_request_bytes: u64) -> usize {
    usize::try_from(max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES)).unwrap_or(usize::MAX)
}

/// Serves `api` on `listener` until `shutdown` fires; then stops
/// accepting, lets requests in flight finish and closes the connections
/// (which releases the services' hold on the state machine).
pub async fn serve(
    listener: TcpListener,
    api: ClientApi,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let member = api.member;
    let max_bytes = receive_limit_bytes(member.config.max_request_bytes);
    let authority = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    let incoming = crate::accept::incoming(listener).map(move |stream| {
        stream.map(|tcp| authority::AuthorityRewritingStream::new(tcp, authority.clone()))
    });
    // Nodelay is set as each connection is accepted (`accept.rs`): tonic
    // ignores its own setting for an incoming stream it did not bind.
    let result = tonic::transport::Server::builder()
        .layer(learner_gate::LearnerGateLayer::new(member.clone()))
        .add_service(
            KvServer::new(kv::KvService::new(member.clone()))
                .max_decoding_message_size(max_bytes)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            MaintenanceServer::new(maintenance::MaintenanceService::new(member.clone()))
                .max_decoding_message_size(max_bytes)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            ClusterServer::new(cluster::ClusterService::new(member.clone()))
                .max_decoding_message_size(max_bytes)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            WatchServer::new(api.watch)
                .max_decoding_message_size(max_bytes)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            LeaseServer::new(api.leases)
                .max_decoding_message_size(max_bytes)
                .max_encoding_message_size(usize::MAX),
        )
        .serve_with_incoming_shutdown(incoming, async move {
            let mut shutdown = shutdown;
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "client server stopped");
    }
}
