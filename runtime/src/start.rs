//! The start handshake (OTP's proc_lib `init_ack`), once for every start:
//! a supervisor's local and remote children (particles, and nested
//! supervisors placed on another node), a guest's `spawn-on`, the control
//! CLI's `spawn --on`.
//!
//! The parent spawns the particle linked to it and monitored, and waits for
//! the acknowledgement the particle sends at its first wait in `recv` (or
//! its DOWN). One timeout policy: when the start takes too long, the parent
//! unlinks and kills the particle (on another node, with a `CancelSpawn` op
//! over the mesh, since the parent does not know its pid yet), and an
//! acknowledgement that still arrives later is dropped and its sender
//! killed. So a start that timed out leaves no orphan. It does not decide
//! what to start or where (plasmoid-supervisor does).

use crate::node::{NodeInner, SpawnOpts};
use crate::pid::{NodeId, Pid};
use crate::process::Process;
use crate::reason::{ExitReason, Msg};
use crate::remote::RemoteOp;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a start may take by default: 5 s, as OTP's supervisors.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an abandoned start's reference is remembered for a late
/// acknowledgement (60 s); older entries are dropped as new ones come.
const FORGET_ABANDONED: Duration = Duration::from_secs(60);

/// How long a start that timed out waits for its local particle to end
/// (1 s): a particle ends at its next epoch tick, so this is only reached
/// by a host call that does not return.
const ENDING: Duration = Duration::from_secs(1);

/// What a start starts.
pub(crate) enum Child<'a> {
    Particle {
        component: &'a str,
        init: &'a str,
    },
    /// A supervisor and its subtree, on another node (here,
    /// plasmoid-supervisor starts it itself); `spec` is its encoding.
    Supervisor {
        spec: Vec<u8>,
    },
}

/// Start `child` linked to `parent`, here (`on` is `None` or this node)
/// or on node `on`, and wait up to `timeout` until it has initialised.
/// A particle that ran to completion before its first wait did start.
pub(crate) async fn start_linked(
    inner: &Arc<NodeInner>,
    parent: &Arc<Process>,
    on: Option<NodeId>,
    child: Child<'_>,
    timeout: Duration,
) -> Result<Pid, String> {
    let reference = inner.next_ref();
    let deadline = tokio::time::Instant::now() + timeout;
    let remote = on.filter(|n| *n != inner.id);
    let local_pid = match remote {
        None => {
            let Child::Particle { component, init } = child else {
                return Err("a supervisor on this node is started by its parent itself".into());
            };
            let opts = SpawnOpts {
                link: Some(parent.pid),
                monitor: Some((parent.pid, reference)),
                ack: Some((parent.pid, reference)),
                ..Default::default()
            };
            Some(
                inner
                    .spawn_particle(component, init, opts)
                    .map_err(|e| e.to_string())?,
            )
        }
        Some(node) => {
            // The child's pid is not known yet; naming its node is enough
            // for a lost node to fire this monitor.
            parent
                .state
                .lock()
                .monitoring
                .insert(reference, Pid { node, seq: 0 });
            let op = match child {
                Child::Particle { component, init } => RemoteOp::Spawn {
                    node,
                    component: component.to_string(),
                    init: init.to_string(),
                    parent: parent.pid,
                    reference,
                },
                Child::Supervisor { spec } => RemoteOp::StartSupervisor {
                    node,
                    spec,
                    parent: parent.pid,
                    reference,
                },
            };
            if let Err(e) = inner.route(op) {
                parent.state.lock().monitoring.remove(&reference);
                return Err(format!("cannot reach node {}: {e}", node.short()));
            }
            None
        }
    };
    match parent.mailbox.take(Some(reference), Some(deadline)).await {
        Some(Msg::Tagged { sender, .. }) => {
            if let Some(t) = parent.state.lock().monitoring.get_mut(&reference) {
                *t = sender;
            }
            inner.demonitor(parent, reference);
            Ok(sender)
        }
        Some(Msg::Down {
            reason: ExitReason::Normal,
            sender,
            ..
        }) => Ok(local_pid.unwrap_or(sender)),
        Some(Msg::Down { reason, .. }) => Err(reason.to_string()),
        Some(_) | None => {
            let why = format!("did not initialise within {} ms", timeout.as_millis());
            inner.abandon_start(parent, reference, local_pid, remote, &why);
            if local_pid.is_some() {
                // As OTP's proc_lib: the start returns once the child is
                // gone, so what its end does (a rollback of its version)
                // is done before the caller's next step, such as a retry.
                let until = tokio::time::Instant::now() + ENDING;
                loop {
                    match parent.mailbox.take(Some(reference), Some(until)).await {
                        Some(Msg::Down { .. }) => break,
                        // Its acknowledgement, late: it is ending anyway.
                        Some(_) => continue,
                        None => {
                            inner.demonitor(parent, reference);
                            break;
                        }
                    }
                }
            }
            Err(why)
        }
    }
}

impl NodeInner {
    /// Give up on a start: no link, the particle told to end (a local one's
    /// monitor stays for [`start_linked`] to see it gone), and a late
    /// acknowledgement from a far node dropped.
    ///
    /// A local particle ends with an exception naming `why` (it cannot trap
    /// it, as it could not trap `kill`): a start that hangs is the code's
    /// failure, so a new version on probation is rolled back for it, as for
    /// a crash, and the log says why the particle ended.
    fn abandon_start(
        &self,
        parent: &Arc<Process>,
        reference: u64,
        local: Option<Pid>,
        remote: Option<NodeId>,
        why: &str,
    ) {
        if remote.is_some() {
            // Only a far node's acknowledgement can come after this.
            let now = Instant::now();
            self.abandoned
                .retain(|_, at| now.duration_since(*at) < FORGET_ABANDONED);
            self.abandoned.insert(reference, now);
        }
        match local {
            // The monitor stays: start_linked waits for its DOWN.
            Some(pid) => {
                self.unlink(parent, pid);
                if let Some(p) = self.lookup(pid) {
                    p.request_exit(ExitReason::Exception(why.to_string()));
                }
            }
            // The far node forgets its side with the cancel.
            None => {
                parent.state.lock().monitoring.remove(&reference);
            }
        }
        if let Some(node) = remote {
            let _ = self.route(RemoteOp::CancelSpawn {
                node,
                parent: parent.pid,
                reference,
            });
        }
        // An acknowledgement from the far node that slipped in before the
        // cancel.
        if remote.is_some()
            && let Some(Msg::Tagged { sender, .. }) = parent.mailbox.try_take(Some(reference))
        {
            self.abandoned.remove(&reference);
            self.kill_orphan(parent.pid, sender);
        }
    }

    /// Whether an acknowledgement with `reference` belongs to an abandoned
    /// start (and forget it: one acknowledgement per start).
    pub(crate) fn late_ack(&self, reference: u64) -> bool {
        // Asked for every tagged message from a peer (each reply): almost
        // always nothing was abandoned, so skip the shard lock then.
        !self.abandoned.is_empty() && self.abandoned.remove(&reference).is_some()
    }

    /// End a particle whose start was given up on; `parent` was its parent.
    pub(crate) fn kill_orphan(&self, parent: Pid, orphan: Pid) {
        tracing::info!(%orphan, "a start that timed out came up late; killing it");
        if let Some(p) = self.lookup(parent) {
            self.unlink(&p, orphan);
        }
        let _ = self.send_exit(parent, orphan, ExitReason::Kill);
    }

    /// A particle started for a parent on another node, until the parent
    /// confirms it has the acknowledgement (its `Demonitor`) or the
    /// particle ends (see [`NodeInner::cancel_peer_start`]). An
    /// acknowledgement can be lost (a full queue or mailbox), so sending
    /// it is not enough to end the entry.
    pub(crate) fn starting_for_peer(&self, parent: Pid, reference: u64, pid: Pid) {
        self.peer_starts.insert((parent, reference), pid);
        // It may have ended before it was entered.
        if self.lookup(pid).is_none() {
            self.peer_starts.remove(&(parent, reference));
        }
    }

    /// The parent has the acknowledgement: the start can no longer be
    /// cancelled.
    pub(crate) fn started_for_peer(&self, parent: Pid, reference: u64) {
        self.peer_starts.remove(&(parent, reference));
    }

    /// A process ended: it is no longer a start anyone can cancel.
    pub(crate) fn forget_peer_start(&self, pid: Pid) {
        if !self.peer_starts.is_empty() {
            self.peer_starts.retain(|_, p| *p != pid);
        }
    }

    /// The parent on another node gave up on this start: kill the particle
    /// (whether or not its acknowledgement was sent: the parent never got
    /// it, or drops and kills it if it comes late).
    pub(crate) fn cancel_peer_start(&self, parent: Pid, reference: u64) {
        if let Some((_, pid)) = self.peer_starts.remove(&(parent, reference)) {
            tracing::info!(%pid, %parent, "a remote start was cancelled by its parent; killing it");
            if let Some(p) = self.lookup(pid) {
                let mut st = p.state.lock();
                st.links.remove(&parent);
                st.watchers.remove(&reference);
            }
            // The parent's half of the link goes too, so a lost connection
            // later does not signal it about a particle it never had.
            self.unlink_remote(pid, parent);
            if let Some(p) = self.lookup(pid) {
                // As a local start that timed out (see abandon_start).
                p.request_exit(ExitReason::Exception(format!(
                    "its start was given up by {parent}: did not initialise in time"
                )));
            }
        }
    }
}
