//! What a learner serves: etcd 3.4 answers only Status and serializable
//! Range on a learner, and refuses every other RPC (streams included)
//! with "etcdserver: rpc not supported for learner" (Unavailable), so
//! that clients move on to a voter. A learner's state lags and it takes
//! no part in quorum: it can neither order a linearizable read nor
//! accept a write.
//!
//! A tower layer under every client service, deciding by the gRPC method
//! path; Range is let through and checks `serializable` itself (`kv.rs`),
//! since only the decoded request says.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::member::{MemberHandle, status};

/// The methods a learner serves (Range only when serializable).
const LEARNER_METHODS: [&str; 2] = ["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"];

/// Whether a learner may answer the gRPC method at `path`.
pub fn learner_serves(path: &str) -> bool {
    LEARNER_METHODS.contains(&path)
}

/// The layer: wraps every client service of `member`.
#[derive(Debug, Clone)]
pub struct LearnerGateLayer {
    member: MemberHandle,
}

impl LearnerGateLayer {
    /// The gate of `member`.
    pub fn new(member: MemberHandle) -> LearnerGateLayer {
        LearnerGateLayer { member }
    }
}

impl<S> Layer<S> for LearnerGateLayer {
    type Service = LearnerGate<S>;

    fn layer(&self, inner: S) -> LearnerGate<S> {
        LearnerGate {
            inner,
            member: self.member.clone(),
        }
    }
}

/// The gate around one service.
#[derive(Debug, Clone)]
pub struct LearnerGate<S> {
    inner: S,
    member: MemberHandle,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> Service<http::Request<B>> for LearnerGate<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if self.member.is_learner() && !learner_serves(request.uri().path()) {
            let refusal = status::not_supported_for_learner().into_http();
            return Box::pin(async move { Ok(refusal) });
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learner_serves_status_and_range_only() {
        assert!(learner_serves("/etcdserverpb.Maintenance/Status"));
        assert!(learner_serves("/etcdserverpb.KV/Range"));
        for refused in [
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.KV/Txn",
            "/etcdserverpb.Watch/Watch",
            "/etcdserverpb.Lease/LeaseKeepAlive",
            "/etcdserverpb.Cluster/MemberList",
            "/etcdserverpb.Maintenance/Snapshot",
            "/etcdserverpb.Maintenance/HashKV",
        ] {
            assert!(!learner_serves(refused), "{refused}");
        }
    }
}
