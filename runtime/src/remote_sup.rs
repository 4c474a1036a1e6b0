//! Supervisors across nodes: a nested supervisor started on another node
//! for its parent, and supervisor requests (`which_children`,
//! `restart_child` …) to a supervisor on another node.
//!
//! A subtree start is the start handshake of start.rs (link, monitor,
//! acknowledgement, cancel on timeout) with a supervisor in place of a
//! particle: the node asked hands the spec to its supervision service and
//! acknowledges once every child of the subtree runs. Both the start and
//! every request are authorized there by Cedar with the asking node as
//! principal (`supervise` on `Particle::"supervisor"`, the component of
//! every supervisor). Specs travel opaque (plasmoid-supervisor encodes and
//! starts them), requests and replies as JSON. This module does not decide
//! where a subtree runs nor restart anything (plasmoid-supervisor does).

use crate::node::Node;
use crate::pid::{NodeId, Pid};
use crate::reason::{ExitReason, Msg};
use crate::remote::RemoteOp;
use crate::supervision::{SupError, SupReply, SupRequest};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::oneshot;

/// Requests from this node to other nodes' supervisors that may wait for
/// their answers at once; past it a request fails at once.
pub const MAX_SUPERVISOR_ASKS: usize = 1024;

/// The largest encoded supervisor spec a node starts for another (256 KiB).
pub const MAX_REMOTE_SPEC: usize = 256 << 10;

/// Requests from other nodes this node serves at once (a `start_child`
/// may take a start timeout); past it they are answered as unreachable.
const MAX_SERVING: usize = 256;

/// How long a request to another node's supervisor waits by default.
pub const SUPERVISOR_ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// A request waiting for node `node`'s answer.
pub(crate) struct PendingAsk {
    node: NodeId,
    answer: oneshot::Sender<Result<SupReply, SupError>>,
}

/// The op that answers request `reference` of node `to`.
pub(crate) fn answer_op(to: NodeId, reference: u64, reply: Result<SupReply, SupError>) -> RemoteOp {
    // Plain enums of strings and numbers always encode; an empty reply
    // would decode as an error at the asker's end.
    let reply = serde_json::to_vec(&reply).unwrap_or_default();
    RemoteOp::SupervisorAnswer {
        node: to,
        reference,
        reply,
    }
}

impl Node {
    /// Ask supervisor `sup`, here or on another node, and wait up to
    /// `timeout` for its answer. On another node the request is authorized
    /// there with this node as principal.
    pub async fn ask_supervisor(
        &self,
        sup: Pid,
        req: SupRequest,
        timeout: Duration,
    ) -> Result<SupReply, SupError> {
        let inner = &self.inner;
        if sup.node == inner.id {
            let service = inner.supervision.read().clone();
            return match service {
                Some(s) => s.request(sup, req).await,
                None => Err(SupError::NotASupervisor),
            };
        }
        if inner.sup_asks.len() >= MAX_SUPERVISOR_ASKS {
            return Err(SupError::Unreachable(format!(
                "{MAX_SUPERVISOR_ASKS} requests to other nodes' supervisors are waiting already; try again when they are answered"
            )));
        }
        let request = serde_json::to_vec(&req).map_err(|e| SupError::Invalid(e.to_string()))?;
        let reference = inner.next_ref();
        let (tx, rx) = oneshot::channel();
        inner.sup_asks.insert(
            reference,
            PendingAsk {
                node: sup.node,
                answer: tx,
            },
        );
        let op = RemoteOp::SupervisorAsk {
            node: sup.node,
            from: inner.id,
            sup,
            request,
            reference,
        };
        if let Err(e) = inner.route(op) {
            inner.sup_asks.remove(&reference);
            return Err(SupError::Unreachable(format!(
                "the supervisor's node {} cannot be reached: {e}",
                sup.node.short()
            )));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(SupError::Unreachable(format!(
                "the supervisor's node {} was lost before it answered",
                sup.node.short()
            ))),
            Err(_) => {
                inner.sup_asks.remove(&reference);
                Err(SupError::Unreachable(format!(
                    "the supervisor's node {} did not answer within {} ms",
                    sup.node.short(),
                    timeout.as_millis()
                )))
            }
        }
    }

    /// Node `from` asks supervisor `sup` here (already authorized).
    pub(crate) fn answer_supervisor_ask(
        &self,
        from: NodeId,
        sup: Pid,
        request: Vec<u8>,
        reference: u64,
    ) {
        let inner = &self.inner;
        let req: SupRequest = match serde_json::from_slice(&request) {
            Ok(r) => r,
            Err(e) => {
                let why = SupError::Invalid(format!("a malformed supervisor request: {e}"));
                let _ = inner.route(answer_op(from, reference, Err(why)));
                return;
            }
        };
        // A child started through a supervisor here is a spawn here: the
        // asking node needs `spawn` on its component too.
        if let SupRequest::Start { component, .. } = &req
            && !inner
                .policy
                .allowed_node_id(&from, crate::Action::Spawn, component)
        {
            let why = SupError::Denied(format!(
                "spawn on `{component}` denied by policy for node {}",
                from.to_hex()
            ));
            let _ = inner.route(answer_op(from, reference, Err(why)));
            return;
        }
        let service = inner.supervision.read().clone();
        let Some(service) = service.filter(|_| sup.node == inner.id) else {
            let _ = inner.route(answer_op(from, reference, Err(SupError::NotASupervisor)));
            return;
        };
        if inner.sup_serving.fetch_add(1, Ordering::AcqRel) >= MAX_SERVING {
            inner.sup_serving.fetch_sub(1, Ordering::AcqRel);
            let why = SupError::Unreachable(format!(
                "node {} serves {MAX_SERVING} supervisor requests already; try again",
                inner.id.short()
            ));
            let _ = inner.route(answer_op(from, reference, Err(why)));
            return;
        }
        let node = self.clone();
        inner.rt.spawn(async move {
            let reply = service.request(sup, req).await;
            node.inner.sup_serving.fetch_sub(1, Ordering::AcqRel);
            let _ = node.inner.route(answer_op(from, reference, reply));
        });
    }

    /// The answer to one of this node's requests, from `from`.
    pub(crate) fn supervisor_answered(&self, from: NodeId, reference: u64, reply: &[u8]) {
        let Some((_, p)) = self
            .inner
            .sup_asks
            .remove_if(&reference, |_, p| p.node == from)
        else {
            return;
        };
        let reply = serde_json::from_slice(reply).unwrap_or_else(|e| {
            Err(SupError::Invalid(format!(
                "node {} sent a malformed supervisor reply: {e}",
                from.short()
            )))
        });
        let _ = p.answer.send(reply);
    }

    /// `node` is lost: requests to it fail now instead of at their timeout.
    pub(crate) fn supervisor_asks_lost(&self, node: NodeId) {
        self.inner.sup_asks.retain(|_, p| p.node != node);
    }

    /// Node `from` asks this node to start a supervisor from `spec` for
    /// `parent` (already authorized): started by the supervision service,
    /// acknowledged as a particle's start is.
    pub(crate) fn start_supervisor_for_peer(
        &self,
        from: NodeId,
        spec: Vec<u8>,
        parent: Pid,
        reference: u64,
    ) {
        let service = self.inner.supervision.read().clone();
        let refused = if spec.len() > MAX_REMOTE_SPEC {
            Some(format!(
                "its spec is {} bytes, over the {MAX_REMOTE_SPEC}-byte limit",
                spec.len()
            ))
        } else if service.is_none() {
            Some("this node runs no supervision service".to_string())
        } else {
            None
        };
        let Some(service) = service.filter(|_| refused.is_none()) else {
            self.refuse_start(parent, reference, refused.unwrap_or_default());
            return;
        };
        // Entered before the start, so a cancel that comes while the
        // subtree is still starting is seen (the placeholder is gone) and
        // the supervisor is stopped instead of acknowledged.
        self.inner
            .peer_starts
            .insert((parent, reference), self.starting_placeholder());
        let node = self.clone();
        self.inner.rt.spawn(async move {
            match service.start_remote(node.clone(), from, spec, parent).await {
                Ok(pid) => node.acknowledge_peer_supervisor(pid, parent, reference),
                Err(why) => node.refuse_start(parent, reference, why),
            }
        });
    }

    /// What `peer_starts` holds for a subtree still starting: no process
    /// has this pid, so a cancel finds nothing to kill yet.
    fn starting_placeholder(&self) -> Pid {
        Pid {
            node: self.inner.id,
            seq: 0,
        }
    }

    /// A remote start failed: the parent's monitor fires with why.
    fn refuse_start(&self, parent: Pid, reference: u64, why: String) {
        self.inner.peer_starts.remove(&(parent, reference));
        let target = Pid {
            node: self.inner.id,
            seq: 0,
        };
        let reason = ExitReason::Exception(format!("the supervisor did not start: {why}"));
        let _ = self.inner.route(RemoteOp::Down {
            target,
            watcher: parent,
            reference,
            reason,
        });
    }

    /// The supervisor `pid` started for `parent`: watched for it, kept
    /// cancellable until the parent confirms, and acknowledged.
    fn acknowledge_peer_supervisor(&self, pid: Pid, parent: Pid, reference: u64) {
        let inner = &self.inner;
        let placeholder = self.starting_placeholder();
        if inner
            .peer_starts
            .remove_if(&(parent, reference), |_, p| *p == placeholder)
            .is_none()
        {
            // The parent gave up while the subtree started (CancelSpawn).
            tracing::info!(%pid, %parent, "a remote subtree start was cancelled by its parent; stopping it");
            let _ = inner.send_exit(placeholder, pid, ExitReason::Kill);
            return;
        }
        let watching = inner.lookup(pid).is_some_and(|p| {
            let mut st = p.state.lock();
            st.alive && st.watchers.insert(reference, parent).is_none()
        });
        if !watching {
            let _ = inner.route(RemoteOp::Down {
                target: pid,
                watcher: parent,
                reference,
                reason: ExitReason::Noproc,
            });
            return;
        }
        inner.starting_for_peer(parent, reference, pid);
        // A subtree placed on nodes fails over: the losing side of a
        // partition stops it (partition.rs).
        self.partition_failover(pid);
        let started = Msg::Tagged {
            sender: pid,
            reference,
            payload: Vec::new(),
        };
        let _ = inner.send(parent, started);
    }
}

impl Node {
    /// Whether node `from` may do `action` on `resource` here, by this
    /// node's Cedar policies (principal `Node::"<id>"`): for services that
    /// act for other nodes, such as a subtree's supervisor spawning its
    /// components.
    pub fn allowed_for_node(&self, from: NodeId, action: crate::Action, resource: &str) -> bool {
        self.inner.policy.allowed_node_id(&from, action, resource)
    }
}
