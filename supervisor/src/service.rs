//! Makes supervisors reachable from particles: the runtime's `supervisor`
//! host interface calls this service with the supervisor's pid.

use crate::SupervisorError;
use crate::server::SupervisorRef;
use crate::spec::{ChildSpec, ChildStart, Restart, Shutdown};
use dashmap::DashMap;
use plasmoid_runtime::{
    ChildCounts, ChildRestart, ChildRow, Node, Pid, SupError, SupFuture, SupReply, SupRequest,
    Supervision,
};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Every running supervisor, by pid (pids are unique across nodes).
static RUNNING: LazyLock<DashMap<Pid, SupervisorRef>> = LazyLock::new(DashMap::new);

pub(crate) fn register(node: &Node, sup: &SupervisorRef) {
    if !node.has_supervision() {
        node.set_supervision(Arc::new(Service));
    }
    RUNNING.insert(sup.pid(), sup.clone());
}

pub(crate) fn unregister(pid: Pid) {
    RUNNING.remove(&pid);
}

struct Service;

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
            SupervisorError::Invalid(s) => SupError::Invalid(s),
        }
    }
}

impl Supervision for Service {
    fn request(&self, sup: Pid, req: SupRequest) -> SupFuture {
        let target = RUNNING.get(&sup).map(|s| s.clone());
        Box::pin(async move {
            let Some(s) = target else {
                return Err(SupError::NotASupervisor);
            };
            Ok(match req {
                SupRequest::Which => SupReply::Rows(
                    s.which_children()
                        .await?
                        .into_iter()
                        .map(|c| ChildRow {
                            id: c.id,
                            pid: c.pid,
                            supervisor: c.supervisor,
                            restarts: c.restarts,
                        })
                        .collect(),
                ),
                SupRequest::Count => {
                    let c = s.count_children().await?;
                    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
                    SupReply::Counts(ChildCounts {
                        specs: n(c.specs),
                        active: n(c.active),
                        supervisors: n(c.supervisors),
                        workers: n(c.workers),
                    })
                }
                SupRequest::Start {
                    id,
                    component,
                    init,
                    restart,
                    shutdown_ms,
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
                            restart: match restart {
                                ChildRestart::Permanent => Restart::Permanent,
                                ChildRestart::Transient => Restart::Transient,
                                ChildRestart::Temporary => Restart::Temporary,
                            },
                            shutdown: shutdown_ms.map_or(Shutdown::BrutalKill, |ms| {
                                Shutdown::Timeout(Duration::from_millis(ms))
                            }),
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

/// The running supervisor with this pid (on this process's nodes).
pub fn supervisor_at(pid: Pid) -> Option<SupervisorRef> {
    RUNNING.get(&pid).map(|s| s.clone())
}

/// The supervisor that has `pid` as a child, and the child's id (for hot
/// swap's rolling restarts). Instances of simple-one-for-one supervisors
/// have no id to restart by, so they are not found.
pub async fn find_child(pid: Pid) -> Option<(SupervisorRef, String)> {
    let sups: Vec<SupervisorRef> = RUNNING.iter().map(|e| e.value().clone()).collect();
    for s in sups {
        if s.is_simple() {
            continue;
        }
        if let Ok(rows) = s.which_children().await
            && let Some(row) = rows.into_iter().find(|c| c.pid == Some(pid))
        {
            return Some((s, row.id));
        }
    }
    None
}
