//! etcd's v3 gRPC API, wire-compatible: KV, Maintenance.Status and
//! Cluster.MemberList. Services and methods not implemented yet answer
//! `Unimplemented`, as tonic does for any unknown method.

pub mod authority;
mod cluster;
mod forward;
mod kv;
mod lease;
mod maintenance;
mod status;
mod watch;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::node::NodeContext;
use crate::proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};

pub use status::{from_etcd, no_leader};

/// Serves the client API on `listener` until `shutdown` fires; then stops
/// accepting, lets requests in flight finish and closes the connections
/// (which releases the services' hold on the state machine).
pub async fn serve(
    listener: TcpListener,
    context: NodeContext,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let max_bytes = usize::try_from(context.config.max_request_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    let forwarder = forward::Forwarder::default();
    let authority = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    let incoming = TcpListenerStream::new(listener).map(move |stream| {
        stream.map(|tcp| {
            let _ = tcp.set_nodelay(true);
            authority::AuthorityRewritingStream::new(tcp, authority.clone())
        })
    });
    let kv = kv::KvService::new(context.clone());
    let clock = std::sync::Arc::new(crate::lease_clock::LeaseClock::default());
    let leases = lease::LeaseService::new(context.clone(), kv.clone(), forwarder, clock.clone());
    let expiry = tokio::spawn(lease::expire_leases(context.clone(), kv.clone(), clock));
    let result = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            KvServer::new(kv)
                .max_decoding_message_size(max_bytes)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(MaintenanceServer::new(
            maintenance::MaintenanceService::new(context.clone()),
        ))
        .add_service(ClusterServer::new(cluster::ClusterService::new(
            context.clone(),
        )))
        .add_service(WatchServer::new(watch::WatchService::new(context)))
        .add_service(LeaseServer::new(leases))
        .serve_with_incoming_shutdown(incoming, async move {
            let mut shutdown = shutdown;
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    expiry.abort();
    let _ = expiry.await;
    if let Err(error) = result {
        tracing::error!(%error, "client server stopped");
    }
}
