//! The handle to a running supervisor and its operations (OTP's
//! `which_children`, `start_child`, `terminate_child` …).
//!
//! Reading operations (`which_children`, `count_children`) read a table the
//! supervisor publishes at every change, so they answer at once even while
//! the supervisor is busy starting a child. Changing operations are queued
//! to the supervisor's loop (server.rs) and answered in order.

use crate::SupervisorError;
use crate::spec::{ChildSpec, Strategy};
pub use crate::update::Flags;
use parking_lot::RwLock;
use plasmoid_runtime::Pid;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How many changing operations may wait for one supervisor; past that a
/// caller gets [`SupervisorError::Busy`] instead of queueing without end.
pub const MAX_QUEUED_OPS: usize = 1024;

/// A handle to a running supervisor; cheap to clone.
#[derive(Clone)]
pub struct SupervisorRef {
    pub(crate) pid: Pid,
    pub(crate) ops: mpsc::Sender<Op>,
    /// Shared with the loop: an in-place update may change it.
    pub(crate) strategy: Arc<RwLock<Strategy>>,
    pub(crate) table: Arc<RwLock<Vec<ChildInfo>>>,
}

pub use plasmoid_runtime::{ChildCounts as Counts, ChildInfo};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, SupervisorError>>;

/// A changing operation, carried out by the supervisor's loop.
pub(crate) enum Op {
    Start(ChildSpec, Reply<Pid>),
    StartInstance(String, Reply<Pid>),
    Terminate(String, Reply<()>),
    Restart(String, Reply<Pid>),
    Delete(String, Reply<()>),
    StartAfter(ChildSpec, Option<String>, Reply<Pid>),
    Update(Flags, Reply<Flags>),
    SetSpec(ChildSpec, Reply<()>),
}

impl SupervisorRef {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether this is a simple-one-for-one supervisor (children are
    /// instances of one template).
    pub fn is_simple(&self) -> bool {
        *self.strategy.read() == Strategy::SimpleOneForOne
    }

    pub fn strategy(&self) -> Strategy {
        *self.strategy.read()
    }

    /// Whether the supervisor's loop still runs.
    pub fn is_running(&self) -> bool {
        !self.ops.is_closed()
    }

    async fn ask<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.ops.try_send(op(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SupervisorError::Busy(MAX_QUEUED_OPS),
            mpsc::error::TrySendError::Closed(_) => SupervisorError::NotRunning,
        })?;
        rx.await.map_err(|_| SupervisorError::NotRunning)?
    }

    /// The children in start order, as of the supervisor's last change.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.children_now()
    }

    /// [`SupervisorRef::which_children`] without waiting (it never waits).
    pub fn children_now(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        if !self.is_running() {
            return Err(SupervisorError::NotRunning);
        }
        Ok(self.table.read().clone())
    }

    pub async fn count_children(&self) -> Result<Counts, SupervisorError> {
        if !self.is_running() {
            return Err(SupervisorError::NotRunning);
        }
        let table = self.table.read();
        let mut n = Counts {
            specs: if self.is_simple() { 1 } else { table.len() },
            ..Counts::default()
        };
        for c in table.iter() {
            n.active += usize::from(c.pid.is_some());
            if c.supervisor {
                n.supervisors += 1;
            } else {
                n.workers += 1;
            }
        }
        Ok(n)
    }

    /// Add and start a child (not for simple-one-for-one).
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        self.ask(|r| Op::Start(spec, r)).await
    }

    /// Start one more instance of a simple-one-for-one template with `init`.
    pub async fn start_instance(&self, init: &str) -> Result<Pid, SupervisorError> {
        self.ask(|r| Op::StartInstance(init.to_string(), r)).await
    }

    /// Stop a child; its spec stays (for simple-one-for-one, `id` is the pid).
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.ask(|r| Op::Terminate(id.to_string(), r)).await
    }

    /// Start a terminated child again.
    pub async fn restart_child(&self, id: &str) -> Result<Pid, SupervisorError> {
        self.ask(|r| Op::Restart(id.to_string(), r)).await
    }

    /// Remove a terminated child's spec.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.ask(|r| Op::Delete(id.to_string(), r)).await
    }

    /// Add and start a child right after the child `after` (first when
    /// `None`), where a release upgrade puts a new child: its place among
    /// its siblings is its place in the start order (rest-for-one).
    pub async fn start_child_after(
        &self,
        spec: ChildSpec,
        after: Option<&str>,
    ) -> Result<Pid, SupervisorError> {
        let after = after.map(str::to_string);
        self.ask(|r| Op::StartAfter(spec, after, r)).await
    }

    /// Change the supervisor's flags in place (OTP's `{update, M,
    /// supervisor}` in a relup): its children keep running. Returns the
    /// flags it had, so the change can be undone.
    pub async fn update(&self, flags: Flags) -> Result<Flags, SupervisorError> {
        self.ask(|r| Op::Update(flags, r)).await
    }

    /// Replace the spec child `spec.id` restarts from, without restarting
    /// it: a nested supervisor updated in place then comes back, if its
    /// parent ever restarts it, as it is now.
    pub async fn set_child_spec(&self, spec: ChildSpec) -> Result<(), SupervisorError> {
        self.ask(|r| Op::SetSpec(spec, r)).await
    }
}
