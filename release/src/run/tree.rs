//! Running a root supervisor under the host until it is stopped or gives up.

use plasmoid_runtime::{ExitReason, Msg, Node};
use plasmoid_supervisor::{SupervisorRef, SupervisorSpec};
use std::future::Future;

/// Why a release node (or a tree) stopped running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Asked to stop: the tree was stopped in reverse start order.
    Stopped,
    /// The root supervisor went past its restart intensity.
    GaveUp(ExitReason),
    /// The tree did not start (a child failed to initialise).
    StartFailed(String),
    /// The host process holding the tree was itself stopped.
    Interrupted(ExitReason),
}

impl Outcome {
    /// Whether this is the ordinary end of a run.
    pub fn is_success(&self) -> bool {
        *self == Outcome::Stopped
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Stopped => f.write_str("the supervision tree stopped"),
            Outcome::GaveUp(reason) => write!(
                f,
                "the root supervisor gave up ({reason}): a child kept crashing past its restart intensity"
            ),
            Outcome::StartFailed(why) => write!(f, "the supervision tree did not start: {why}"),
            Outcome::Interrupted(reason) => write!(f, "the node was stopped: {reason}"),
        }
    }
}

/// Start `spec` as the root supervisor of `node` and run it until `stop`
/// resolves (the tree is stopped in reverse start order) or the root gives
/// up. `on_up` runs once every child has started. A stop while the tree is
/// still starting ends the start at once.
pub async fn run_tree(
    node: &Node,
    spec: SupervisorSpec,
    stop: impl Future<Output = ()>,
    on_up: impl FnOnce(&SupervisorRef),
) -> Outcome {
    let host = node.native("release");
    host.trap_exit(true);
    tokio::pin!(stop);
    let started = tokio::select! {
        r = plasmoid_supervisor::start_link(node.clone(), spec, Some(host.pid())) => r,
        _ = &mut stop => {
            tracing::info!("stopped while the supervision tree was starting");
            return Outcome::Stopped;
        }
    };
    let root = match started {
        Ok(root) => root,
        Err(e) => return Outcome::StartFailed(e.to_string()),
    };
    tracing::info!(root = %root.pid(), node = %node.id(), "supervision tree started");
    on_up(&root);
    let mut stopping = false;
    loop {
        tokio::select! {
            m = host.recv(None) => match m {
                Ok(Some(Msg::Exit { sender, reason })) if sender == root.pid() => {
                    if stopping {
                        tracing::info!("supervision tree stopped");
                        return Outcome::Stopped;
                    }
                    return Outcome::GaveUp(reason);
                }
                Ok(_) => {}
                Err(reason) => return Outcome::Interrupted(reason),
            },
            _ = &mut stop, if !stopping => {
                tracing::info!("interrupted; stopping the supervision tree in reverse start order");
                stopping = true;
                let _ = host.send_exit(root.pid(), ExitReason::Shutdown(String::new()));
            }
        }
    }
}
