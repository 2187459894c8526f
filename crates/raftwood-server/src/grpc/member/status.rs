//! etcd's gRPC errors: the same status codes and message texts, because
//! clients match on them (etcd's clientv3 turns the texts back into typed
//! errors; etcdctl prints them).

use raftwood_kv::{Code, EtcdError, RequestError};
use tonic::Status;

pub use crate::driver::MembershipRefusal;
use crate::driver::{ProposeError, ReadError};

/// "etcdserver: no leader".
pub fn no_leader() -> Status {
    Status::unavailable("etcdserver: no leader")
}

/// "etcdserver: request timed out".
pub fn timed_out() -> Status {
    Status::unavailable("etcdserver: request timed out")
}

/// "etcdserver: request timed out, possibly due to previous leader
/// failure" (etcd's `ErrGRPCTimeoutDueToLeaderFail`, code Unavailable): a
/// write forwarded to the leader was not seen applied in time. It may
/// still be applied; clients treat the outcome as unknown.
pub fn timed_out_leader_fail() -> Status {
    Status::unavailable("etcdserver: request timed out, possibly due to previous leader failure")
}

/// "etcdserver: leader changed".
pub fn leader_changed() -> Status {
    Status::unavailable("etcdserver: leader changed")
}

/// "etcdserver: too many requests".
pub fn too_many_requests() -> Status {
    Status::resource_exhausted("etcdserver: too many requests")
}

/// A learner asked for what only voters serve (etcd 3.4: everything but
/// Status and serializable Range, and no stream at all).
pub fn not_supported_for_learner() -> Status {
    Status::unavailable("etcdserver: rpc not supported for learner")
}

/// The member is stopping (etcd: "etcdserver: server stopped").
pub fn stopped() -> Status {
    Status::unavailable("etcdserver: server stopped")
}

/// A state-machine refusal, with etcd's code and text.
pub fn from_etcd(error: &EtcdError) -> Status {
    with_code(error.code(), error.to_string())
}

/// A read's failure: a refusal, or a storage error (internal).
pub fn from_request(error: &RequestError) -> Status {
    with_code(error.code(), error.to_string())
}

fn with_code(code: Code, message: String) -> Status {
    match code {
        Code::InvalidArgument => Status::invalid_argument(message),
        Code::OutOfRange => Status::out_of_range(message),
        Code::NotFound => Status::not_found(message),
        Code::FailedPrecondition => Status::failed_precondition(message),
        Code::Unimplemented => Status::unimplemented(message),
        Code::Internal => Status::internal(message),
    }
}

/// Why a proposal failed, for a client.
pub fn from_propose(error: &ProposeError) -> Status {
    match error {
        ProposeError::NotLeader { .. } => no_leader(),
        ProposeError::LeaderChanged => leader_changed(),
        ProposeError::Busy => too_many_requests(),
        ProposeError::ForwardTimedOut => timed_out_leader_fail(),
        ProposeError::Stopped => stopped(),
        ProposeError::Membership(refusal) => from_membership(refusal),
    }
}

/// A refused membership change, with etcd's codes.
pub fn from_membership(refusal: &MembershipRefusal) -> Status {
    let text = refusal.to_string();
    match refusal {
        MembershipRefusal::Unhealthy | MembershipRefusal::ChangePending => {
            Status::unavailable(text)
        }
        MembershipRefusal::InvalidUrls => Status::invalid_argument(text),
        MembershipRefusal::TooManyLearners
        | MembershipRefusal::NotLearner
        | MembershipRefusal::NotEnoughStarted
        | MembershipRefusal::LearnerNotReady
        | MembershipRefusal::Invalid(_) => Status::failed_precondition(text),
    }
}

/// Why a linearizable read failed, for a client.
pub fn from_read(error: &ReadError) -> Status {
    match error {
        ReadError::NoLeader => no_leader(),
        ReadError::Stopped => stopped(),
        ReadError::TimedOut => timed_out(),
    }
}
