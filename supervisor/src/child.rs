//! Starting and stopping one child: the runtime's start handshake (OTP's
//! init_ack, with its timeout and cancel), candidate nodes (for workers
//! and for nested supervisors with their subtree), and OTP's shutdown
//! rules.

use crate::handle::SupervisorRef;
use crate::server;
use crate::spec::{ChildSpec, ChildStart, Shutdown, SupervisorSpec};
use plasmoid_runtime::{ExitReason, NativeProcess, Pid};
use std::time::Duration;

/// A running child: a particle, a nested supervisor with its handle, or
/// a nested supervisor on another node (reached by its pid).
pub(crate) enum Running {
    Particle(Pid),
    Supervisor(SupervisorRef),
    Remote(Pid),
}

impl Running {
    pub fn pid(&self) -> Pid {
        match self {
            Running::Particle(p) | Running::Remote(p) => *p,
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
        ChildStart::Supervisor(sub) => start_supervisor(me, sub).await,
        ChildStart::Particle {
            component,
            init,
            nodes,
        } => {
            if nodes.is_empty() {
                return me
                    .start_child(None, component, init, timeout)
                    .await
                    .map(Running::Particle);
            }
            // The first reachable candidate, in the manifest's order of
            // preference; a node that fails to start it passes to the next.
            let mut why = Vec::new();
            for &node in nodes {
                let attempt = if node == me.node().id() || me.node().reachable(node) {
                    me.start_child(Some(node), component, init, timeout).await
                } else {
                    Err("not connected".into())
                };
                match attempt {
                    Ok(pid) => return Ok(Running::Particle(pid)),
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

/// Start a nested supervisor here, or on the first candidate node that
/// starts it (a node that refuses or cannot be reached passes to the next).
async fn start_supervisor(me: &NativeProcess, sub: &SupervisorSpec) -> Result<Running, String> {
    let here = me.node().id();
    let local = || async {
        server::start_link(me.node().clone(), sub.clone(), Some(me.pid()))
            .await
            .map(Running::Supervisor)
            .map_err(|e| e.to_string())
    };
    if sub.nodes.is_empty() {
        return local().await;
    }
    let spec = serde_json::to_vec(sub).map_err(|e| format!("its spec does not encode: {e}"))?;
    let mut why = Vec::new();
    for &node in &sub.nodes {
        let attempt = if node == here {
            local().await
        } else if me.node().reachable(node) {
            me.start_supervisor_on(node, spec.clone(), sub.subtree_timeout())
                .await
                .map(Running::Remote)
        } else {
            Err("not connected".into())
        };
        match attempt {
            Ok(running) => return Ok(running),
            Err(e) => why.push(format!("node {}: {e}", node.short())),
        }
    }
    Err(format!(
        "no candidate node could start supervisor `{}` ({})",
        sub.name,
        why.join("; ")
    ))
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
