//! The bridge between the `supervisor` host interface and supervisors.
//!
//! Supervisors live in plasmoid-supervisor, above this crate; it installs a
//! `Supervision` service on the node so that particles can reach them.

use crate::pid::Pid;
use std::future::Future;
use std::pin::Pin;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRow {
    pub id: String,
    pub pid: Option<Pid>,
    pub supervisor: bool,
    pub restarts: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChildCounts {
    pub specs: u32,
    pub active: u32,
    pub supervisors: u32,
    pub workers: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildRestart {
    Permanent,
    Transient,
    Temporary,
}

#[derive(Clone, Debug)]
pub enum SupRequest {
    Which,
    Count,
    Start {
        id: String,
        component: String,
        init: String,
        restart: ChildRestart,
        /// None = brutal kill.
        shutdown_ms: Option<u64>,
    },
    Terminate(String),
    Restart(String),
    Delete(String),
}

#[derive(Clone, Debug)]
pub enum SupReply {
    Rows(Vec<ChildRow>),
    Counts(ChildCounts),
    Pid(Pid),
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupError {
    NotASupervisor,
    NotFound(String),
    AlreadyPresent(String),
    Running(String),
    StartFailed(String),
    Invalid(String),
}

pub type SupFuture = Pin<Box<dyn Future<Output = Result<SupReply, SupError>> + Send>>;

/// Implemented by plasmoid-supervisor: answer a request for supervisor `sup`.
pub trait Supervision: Send + Sync {
    fn request(&self, sup: Pid, req: SupRequest) -> SupFuture;
    /// The service itself, so its owner can find its own type again on a
    /// node (each node has its own supervisors).
    fn as_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync>;
}
