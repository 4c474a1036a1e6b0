//! The supervisors of one node: which supervisor has which pid, and which
//! supervisor (and child id) a running child belongs to.
//!
//! Each node owns its registry (installed on the node as its supervision
//! service), so two nodes in one OS process never see each other's
//! supervisors. Supervisors keep it current as children start and exit, so
//! finding a particle's supervisor (hot swap, `plasmoid stop`) is a lookup.
//! It also answers the runtime's `supervisor` host interface for particles.

use crate::SupervisorError;
use crate::handle::SupervisorRef;
use crate::server;
use crate::spec::SupervisorSpec;
use crate::spec::{ChildSpec, ChildStart};
use dashmap::DashMap;
use plasmoid_runtime::{
    Action, Node, NodeId, Pid, SupError, SupFuture, SupReply, SupRequest, SupStartFuture,
    Supervision,
};
use std::sync::Arc;

/// One node's supervisors and their children.
#[derive(Default)]
pub struct Registry {
    supervisors: DashMap<Pid, SupervisorRef>,
    /// A running child's pid → (its supervisor's pid, its child id).
    children: DashMap<Pid, (Pid, String)>,
}

impl Registry {
    /// The registry of `node`, created and installed on first use.
    pub fn of(node: &Node) -> Arc<Registry> {
        let service = node.supervision_or_install(|| Arc::new(Registry::default()));
        match service.as_any().downcast::<Registry>() {
            Ok(r) => r,
            // Another service took the slot (a host embedding its own):
            // supervisors still work, unseen by it.
            Err(_) => Arc::new(Registry::default()),
        }
    }

    pub(crate) fn add_supervisor(&self, sup: &SupervisorRef) {
        self.supervisors.insert(sup.pid(), sup.clone());
    }

    pub(crate) fn remove_supervisor(&self, pid: Pid) {
        self.supervisors.remove(&pid);
    }

    pub(crate) fn child_up(&self, child: Pid, sup: Pid, id: &str) {
        self.children.insert(child, (sup, id.to_string()));
    }

    pub(crate) fn child_down(&self, child: Pid) {
        self.children.remove(&child);
    }

    /// The running supervisor with this pid.
    pub fn supervisor(&self, pid: Pid) -> Option<SupervisorRef> {
        self.supervisors.get(&pid).map(|s| s.clone())
    }

    /// The supervisor that runs `child`, and the child's id. Instances of
    /// simple-one-for-one supervisors are found too; their id is their pid.
    pub fn supervisor_of(&self, child: Pid) -> Option<(SupervisorRef, String)> {
        let (sup, id) = self.children.get(&child).map(|e| e.value().clone())?;
        Some((self.supervisor(sup)?, id))
    }

    /// How many supervisors run on this node.
    pub fn len(&self) -> usize {
        self.supervisors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.supervisors.is_empty()
    }
}

/// The running supervisor with this pid on `node`.
pub fn supervisor_at(node: &Node, pid: Pid) -> Option<SupervisorRef> {
    Registry::of(node).supervisor(pid)
}

/// The supervisor on `node` that runs `child`, and the child's id.
pub fn find_child(node: &Node, child: Pid) -> Option<(SupervisorRef, String)> {
    Registry::of(node).supervisor_of(child)
}

impl From<SupervisorError> for SupError {
    fn from(e: SupervisorError) -> Self {
        match e {
            SupervisorError::StartFailed { id, reason } => {
                SupError::StartFailed(format!("{id}: {reason}"))
            }
            SupervisorError::NotFound(s) => SupError::NotFound(s),
            SupervisorError::AlreadyPresent(s) => SupError::AlreadyPresent(s),
            SupervisorError::Running(s) => SupError::Running(s),
            SupervisorError::NotRunning => SupError::NotASupervisor,
            e @ (SupervisorError::Invalid(_)
            | SupervisorError::Busy(_)
            | SupervisorError::Restarting(_)) => SupError::Invalid(e.to_string()),
        }
    }
}

impl Supervision for Registry {
    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    /// A nested supervisor placed here by a parent on node `from`: its
    /// spec decoded, each component of its subtree checked against this
    /// node's Cedar policies for `from` (`spawn`), then started linked to
    /// the parent.
    fn start_remote(&self, node: Node, from: NodeId, spec: Vec<u8>, parent: Pid) -> SupStartFuture {
        Box::pin(async move {
            let spec: SupervisorSpec = serde_json::from_slice(&spec)
                .map_err(|e| format!("its spec does not decode here ({e}); run the same plasmoid version on every node"))?;
            spec.check_bounds()?;
            for c in spec.components() {
                if !node.has_component(c) {
                    return Err(format!("component `{c}` is not loaded on this node"));
                }
                if !node.allowed_for_node(from, Action::Spawn, c) {
                    return Err(format!(
                        "spawn on `{c}` denied by policy for node {}",
                        from.to_hex()
                    ));
                }
            }
            tracing::info!(supervisor = %spec.name, parent = %parent, "starting a supervisor for another node");
            server::start_link(node, spec, Some(parent))
                .await
                .map(|s| s.pid())
                .map_err(|e| e.to_string())
        })
    }

    fn request(&self, sup: Pid, req: SupRequest) -> SupFuture {
        let target = self.supervisor(sup);
        Box::pin(async move {
            let Some(s) = target else {
                return Err(SupError::NotASupervisor);
            };
            Ok(match req {
                SupRequest::Which => SupReply::Rows(s.children_now()?),
                SupRequest::Count => SupReply::Counts(s.count_children().await?),
                SupRequest::Start {
                    id,
                    component,
                    init,
                    restart,
                    shutdown,
                } => {
                    if s.is_simple() {
                        SupReply::Pid(s.start_instance(&init).await?)
                    } else {
                        let spec = ChildSpec {
                            id,
                            start: ChildStart::Particle {
                                component,
                                init,
                                nodes: Vec::new(),
                            },
                            restart,
                            shutdown,
                        };
                        SupReply::Pid(s.start_child(spec).await?)
                    }
                }
                SupRequest::Terminate(id) => {
                    s.terminate_child(&id).await?;
                    SupReply::Done
                }
                SupRequest::Restart(id) => SupReply::Pid(s.restart_child(&id).await?),
                SupRequest::Delete(id) => {
                    s.delete_child(&id).await?;
                    SupReply::Done
                }
            })
        })
    }
}
