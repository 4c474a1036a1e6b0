//! Native processes: host code (supervisors, the CLI, benchmarks, tests) with
//! a pid, a mailbox, links and monitors, under the same rules as particles.
//!
//! Host code is trusted, so native processes are not Cedar-checked; particles
//! sending to them are (their component label is the Cedar resource).

use crate::node::{Node, SendError};
use crate::pid::Pid;
use crate::process::Process;
use crate::reason::{ExitReason, Msg};
use crate::signals::Noproc;
use std::sync::Arc;
use std::time::Duration;

/// Mailbox bound of native processes; supervisors see every child's signals.
const NATIVE_MAILBOX: usize = 1 << 20;

/// A native process owned by a Rust value: it ends (reason `normal`, or the
/// exit it was sent) when the value is dropped or `exit` is called.
pub struct NativeProcess {
    node: Node,
    proc: Arc<Process>,
}

impl NativeProcess {
    pub(crate) fn new(node: Node, label: &str) -> Self {
        let pid = node.inner.new_pid();
        let proc = Process::new(pid, label.into(), NATIVE_MAILBOX);
        node.inner.insert_process(proc.clone());
        NativeProcess { node, proc }
    }

    pub fn pid(&self) -> Pid {
        self.proc.pid
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The next message; `Err` with the reason once an exit signal ended this
    /// process (then it no longer receives anything).
    pub async fn recv(&self, timeout: Option<Duration>) -> Result<Option<Msg>, ExitReason> {
        self.take(None, timeout).await
    }

    /// Selective receive on a reference (tagged reply or DOWN).
    pub async fn recv_ref(
        &self,
        reference: u64,
        timeout: Option<Duration>,
    ) -> Result<Option<Msg>, ExitReason> {
        self.take(Some(reference), timeout).await
    }

    async fn take(
        &self,
        reference: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<Option<Msg>, ExitReason> {
        let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
        tokio::select! {
            biased;
            r = self.proc.exit_requested() => {
                self.node.inner.process_exited(&self.proc, r.clone(), false);
                Err(r)
            }
            m = self.proc.mailbox.take(reference, deadline) => Ok(m),
        }
    }

    /// Whether an exit signal has ended (or is ending) this process.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.proc.pending_exit()
    }

    pub fn send(&self, to: Pid, data: Vec<u8>) -> Result<(), SendError> {
        self.node.inner.send(to, Msg::Data(data))
    }

    pub fn send_tagged(&self, to: Pid, reference: u64, data: Vec<u8>) -> Result<(), SendError> {
        let msg = Msg::Tagged {
            sender: self.proc.pid,
            reference,
            payload: data,
        };
        self.node.inner.send(to, msg)
    }

    /// Request/reply: send a tagged request and wait for the reply or the
    /// target's DOWN, like gen_server:call.
    pub async fn call(
        &self,
        to: Pid,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let reference = self.monitor(to);
        if let Err(e) = self.send_tagged(to, reference, data) {
            self.demonitor(reference);
            return Err(CallError::Send(e));
        }
        let reply = self
            .recv_ref(reference, Some(timeout))
            .await
            .map_err(CallError::Exited)?;
        self.demonitor(reference);
        match reply {
            Some(Msg::Tagged { payload, .. }) => Ok(payload),
            Some(Msg::Down { reason, .. }) => Err(CallError::Down(reason)),
            _ => Err(CallError::Timeout),
        }
    }

    pub fn make_ref(&self) -> u64 {
        self.node.inner.next_ref()
    }

    pub fn link(&self, to: Pid) -> Result<(), Noproc> {
        self.node.inner.link(&self.proc, to)
    }

    pub fn unlink(&self, to: Pid) {
        self.node.inner.unlink(&self.proc, to)
    }

    pub fn monitor(&self, to: Pid) -> u64 {
        self.node.inner.monitor(&self.proc, to)
    }

    pub fn demonitor(&self, reference: u64) -> bool {
        self.node.inner.demonitor(&self.proc, reference)
    }

    pub fn trap_exit(&self, on: bool) -> bool {
        self.proc.set_trap_exit(on)
    }

    pub fn register(&self, name: &str) -> Result<(), crate::node::RegistryError> {
        self.node.inner.register(&self.proc, name)
    }

    /// Send an exit signal (Erlang's exit/2).
    pub fn send_exit(&self, to: Pid, reason: ExitReason) -> Result<(), SendError> {
        self.node.inner.send_exit(self.proc.pid, to, reason)
    }

    /// Start a particle linked to this process, here (`on`: `None` or this
    /// node) or on another node, and wait up to `timeout` until it has
    /// initialised (its first wait in `recv`). On timeout it is unlinked and
    /// killed, wherever it runs; `Err` says why it did not start.
    pub async fn start_child(
        &self,
        on: Option<crate::NodeId>,
        component: &str,
        init: &str,
        timeout: Duration,
    ) -> Result<Pid, String> {
        let child = crate::start::Child::Particle { component, init };
        let start = crate::start::start_linked(&self.node.inner, &self.proc, on, child, timeout);
        self.starting(start).await
    }

    /// Start a supervisor and its subtree on node `on` (another node),
    /// linked to this process, from `spec` (plasmoid-supervisor's encoding),
    /// and wait up to `timeout` until all its children run. On timeout it
    /// is killed there, as a particle's start would be.
    pub async fn start_supervisor_on(
        &self,
        on: crate::NodeId,
        spec: Vec<u8>,
        timeout: Duration,
    ) -> Result<Pid, String> {
        let child = crate::start::Child::Supervisor { spec };
        let start =
            crate::start::start_linked(&self.node.inner, &self.proc, Some(on), child, timeout);
        self.starting(start).await
    }

    /// Wait for a start unless this process is told to exit first.
    async fn starting(
        &self,
        start: impl std::future::Future<Output = Result<Pid, String>>,
    ) -> Result<Pid, String> {
        tokio::select! {
            biased;
            r = self.proc.exit_requested() => {
                self.node.inner.process_exited(&self.proc, r.clone(), false);
                Err(format!("the starting process is exiting ({r})"))
            }
            started = start => started,
        }
    }

    /// Spawn a particle linked to this process.
    pub fn spawn_link(&self, component: &str, init: &str) -> Result<Pid, crate::node::SpawnError> {
        let opts = crate::node::SpawnOpts {
            link: Some(self.proc.pid),
            ..Default::default()
        };
        self.node.inner.spawn_particle(component, init, opts)
    }

    /// Spawn a particle monitored by this process; returns its pid and the
    /// monitor reference.
    pub fn spawn_monitor(
        &self,
        component: &str,
        init: &str,
        mut opts: crate::node::SpawnOpts,
    ) -> Result<(Pid, u64), crate::node::SpawnError> {
        let reference = self.make_ref();
        opts.monitor = Some((self.proc.pid, reference));
        let pid = self.node.inner.spawn_particle(component, init, opts)?;
        Ok((pid, reference))
    }

    /// End this process with `reason`.
    pub fn exit(self, reason: ExitReason) {
        self.node.inner.process_exited(&self.proc, reason, false);
    }
}

impl Drop for NativeProcess {
    fn drop(&mut self) {
        let reason = self.proc.pending_exit().unwrap_or(ExitReason::Normal);
        self.node.inner.process_exited(&self.proc, reason, false);
    }
}

/// Why a call from a native process failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Send(SendError),
    Down(ExitReason),
    Timeout,
    Exited(ExitReason),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Send(e) => write!(f, "the request could not be sent: {e}"),
            CallError::Down(r) => write!(f, "the callee went down: {r}"),
            CallError::Timeout => f.write_str("no answer within the timeout"),
            CallError::Exited(r) => write!(f, "the caller itself was stopped: {r}"),
        }
    }
}

impl std::error::Error for CallError {}
