//! Starting and stopping one child, with OTP's handshake and shutdown rules.

use crate::handle::SupervisorRef;
use crate::server;
use crate::spec::{ChildSpec, ChildStart, Shutdown};
use plasmoid_runtime::{ExitReason, Msg, NativeProcess, Pid, SpawnOpts};
use std::time::Duration;

/// A running child: a particle, or a nested supervisor with its handle.
pub(crate) enum Running {
    Particle(Pid),
    Supervisor(SupervisorRef),
}

impl Running {
    pub fn pid(&self) -> Pid {
        match self {
            Running::Particle(p) => *p,
            Running::Supervisor(s) => s.pid(),
        }
    }
}

/// Start a child linked to `me` and wait until it has initialised: a
/// particle's first wait in `recv` (or its normal return), a supervisor's
/// children all started. `Err` carries the reason it did not.
pub(crate) async fn start(
    me: &NativeProcess,
    spec: &ChildSpec,
    timeout: Duration,
) -> Result<Running, String> {
    match &spec.start {
        ChildStart::Supervisor(sub) => {
            server::start_link(me.node().clone(), (**sub).clone(), Some(me.pid()))
                .await
                .map(Running::Supervisor)
                .map_err(|e| e.to_string())
        }
        ChildStart::Particle {
            component,
            init,
            nodes,
        } => {
            if nodes.is_empty() {
                return start_here(me, component, init, timeout).await;
            }
            // The first reachable candidate, in the manifest's order of
            // preference; a node that fails to start it passes to the next.
            let mut why = Vec::new();
            for &node in nodes {
                let attempt = if node == me.node().id() {
                    start_here(me, component, init, timeout).await
                } else if me.node().reachable(node) {
                    start_there(me, node, component, init, timeout).await
                } else {
                    Err("not connected".into())
                };
                match attempt {
                    Ok(r) => return Ok(r),
                    Err(e) => why.push(format!("node {}: {e}", node.short())),
                }
            }
            Err(format!(
                "no candidate node could start it ({})",
                why.join("; ")
            ))
        }
    }
}

async fn start_here(
    me: &NativeProcess,
    component: &str,
    init: &str,
    timeout: Duration,
) -> Result<Running, String> {
    let reference = me.make_ref();
    let opts = SpawnOpts {
        link: Some(me.pid()),
        monitor: Some((me.pid(), reference)),
        ack: Some((me.pid(), reference)),
        ..Default::default()
    };
    let pid = me
        .node()
        .spawn(component, init, opts)
        .map_err(|e| format!("{e:?}"))?;
    match me.recv_ref(reference, Some(timeout)).await {
        Ok(Some(Msg::Tagged { .. })) => {
            me.demonitor(reference);
            Ok(Running::Particle(pid))
        }
        // It ran to completion before waiting: it did start.
        Ok(Some(Msg::Down {
            reason: ExitReason::Normal,
            ..
        })) => Ok(Running::Particle(pid)),
        Ok(Some(Msg::Down { reason, .. })) => Err(reason.to_string()),
        Ok(_) => {
            me.demonitor(reference);
            me.unlink(pid);
            let _ = me.send_exit(pid, ExitReason::Kill);
            Err(format!(
                "did not initialise within {} ms",
                timeout.as_millis()
            ))
        }
        Err(own) => Err(format!("the supervisor is exiting ({own})")),
    }
}

/// Start the child on another node: linked and monitored like a local one;
/// its acknowledgement tells its pid.
async fn start_there(
    me: &NativeProcess,
    node: plasmoid_runtime::NodeId,
    component: &str,
    init: &str,
    timeout: Duration,
) -> Result<Running, String> {
    let reference = me.make_ref();
    me.spawn_remote(node, component, init, reference)
        .map_err(|e| format!("{e:?}"))?;
    match me.recv_ref(reference, Some(timeout)).await {
        Ok(Some(Msg::Tagged { sender, .. })) => {
            me.remote_started(reference, sender);
            me.demonitor(reference);
            Ok(Running::Particle(sender))
        }
        // It ran to completion before waiting: it did start.
        Ok(Some(Msg::Down {
            reason: ExitReason::Normal,
            sender,
            ..
        })) => Ok(Running::Particle(sender)),
        Ok(Some(Msg::Down { reason, .. })) => Err(reason.to_string()),
        Ok(_) => {
            me.demonitor(reference);
            Err(format!(
                "did not initialise within {} ms",
                timeout.as_millis()
            ))
        }
        Err(own) => Err(format!("the supervisor is exiting ({own})")),
    }
}

/// Stop a child as its shutdown spec says; returns once it is gone.
pub(crate) async fn stop(me: &NativeProcess, pid: Pid, shutdown: Shutdown) {
    let reference = me.monitor(pid);
    me.unlink(pid);
    let first = match shutdown {
        Shutdown::BrutalKill => ExitReason::Kill,
        _ => ExitReason::Shutdown(String::new()),
    };
    if me.send_exit(pid, first).is_err() {
        me.demonitor(reference);
        return;
    }
    let patience = match shutdown {
        Shutdown::Timeout(t) => Some(t),
        _ => None,
    };
    if let Ok(None) = me.recv_ref(reference, patience).await {
        tracing::warn!(%pid, "child did not stop within its shutdown timeout; killing it");
        let _ = me.send_exit(pid, ExitReason::Kill);
        let _ = me.recv_ref(reference, None).await;
    }
}
