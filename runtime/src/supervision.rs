//! The bridge between the `supervisor` host interface and supervisors.
//!
//! Supervisors live in plasmoid-supervisor, above this crate; it installs a
//! `Supervision` service on the node so that particles can reach them. The
//! supervision vocabulary (strategy, restart type, shutdown, a child's row
//! and counts) is defined here, once, and plasmoid-supervisor re-exports it.

use crate::pid::Pid;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How a supervisor restarts its children (OTP's strategies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    OneForOne,
    OneForAll,
    RestForOne,
    /// One template child, instances added at run time with `start_child`.
    SimpleOneForOne,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one-for-one",
            Strategy::OneForAll => "one-for-all",
            Strategy::RestForOne => "rest-for-one",
            Strategy::SimpleOneForOne => "simple-one-for-one",
        }
    }
}

/// When a child is restarted after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Always.
    #[default]
    Permanent,
    /// Only after an abnormal exit (not `normal`, not `shutdown`).
    Transient,
    /// Never; its spec is removed when it exits.
    Temporary,
}

/// How a child is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shutdown {
    /// Killed at once (untrappable `kill`).
    BrutalKill,
    /// Sent `shutdown`, killed if still alive after this long.
    Timeout(Duration),
    /// Sent `shutdown` and waited for, however long it takes (for supervisors).
    Infinity,
}

/// One row of `which_children`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildInfo {
    pub id: String,
    /// `None` while it is not running (stopped, or waiting for a restart).
    pub pid: Option<Pid>,
    pub supervisor: bool,
    pub restarts: u32,
    /// The component of a worker; `None` for a supervisor.
    pub component: Option<String>,
    /// The strategy of a nested supervisor.
    pub strategy: Option<Strategy>,
    /// Its restart type, as in its spec.
    pub restart: Restart,
}

/// `count_children`, as OTP counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChildCounts {
    pub specs: usize,
    pub active: usize,
    pub supervisors: usize,
    pub workers: usize,
}

/// What a particle asks of a supervisor through the WIT `supervisor` interface.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SupRequest {
    Which,
    Count,
    Start {
        id: String,
        component: String,
        init: String,
        restart: Restart,
        shutdown: Shutdown,
    },
    Terminate(String),
    Restart(String),
    Delete(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SupReply {
    Rows(Vec<ChildInfo>),
    Counts(ChildCounts),
    Pid(Pid),
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupError {
    NotASupervisor,
    NotFound(String),
    AlreadyPresent(String),
    Running(String),
    StartFailed(String),
    Invalid(String),
    /// The supervisor's node refused (its Cedar policy for this node).
    Denied(String),
    /// The supervisor's node did not answer (not connected, or too slow).
    Unreachable(String),
}

pub type SupFuture = Pin<Box<dyn Future<Output = Result<SupReply, SupError>> + Send>>;

/// What [`Supervision::start_remote`] returns: the new supervisor's pid.
pub type SupStartFuture = Pin<Box<dyn Future<Output = Result<Pid, String>> + Send>>;

/// Implemented by plasmoid-supervisor: answer a request for supervisor `sup`.
pub trait Supervision: Send + Sync {
    fn request(&self, sup: Pid, req: SupRequest) -> SupFuture;
    /// Start a supervisor (and its subtree) on `node` for a parent on
    /// node `from`, linked to `parent`. `spec` is the service's own
    /// encoding of the supervisor spec (remote_sup.rs carries it opaque).
    /// It returns once every child has started.
    fn start_remote(
        &self,
        node: crate::node::Node,
        from: crate::pid::NodeId,
        spec: Vec<u8>,
        parent: Pid,
    ) -> SupStartFuture {
        let _ = (node, from, spec, parent);
        Box::pin(async {
            Err("this node's supervision service starts no supervisors for other nodes".into())
        })
    }
    /// The service itself, so its owner can find its own type again on a
    /// node (each node has its own supervisors).
    fn as_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync>;
}
