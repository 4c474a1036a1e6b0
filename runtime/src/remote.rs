//! Processes on other nodes: what the node hands to a transport
//! (plasmoid-mesh) and what it does with what the transport brings in.
//!
//! The transport only moves [`RemoteOp`]s between nodes, in order per pair
//! of nodes. The semantics stay here, next to the local ones: a link or
//! monitor to another node is one entry on each side, an exit fires the
//! remote side's links and monitors, and a lost peer breaks every link and
//! monitor across it with `noconnection`, as in Erlang distribution.

use crate::node::{Node, NodeInner, SendError};
use crate::pid::{NodeId, Pid};
use crate::reason::{ExitReason, Msg};
use std::sync::Arc;

/// One message or signal between a process here and one elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteOp {
    /// A data or tagged message for `to`.
    Send {
        to: Pid,
        msg: Msg,
    },
    Link {
        from: Pid,
        to: Pid,
    },
    Unlink {
        from: Pid,
        to: Pid,
    },
    Monitor {
        watcher: Pid,
        target: Pid,
        reference: u64,
    },
    Demonitor {
        watcher: Pid,
        target: Pid,
        reference: u64,
    },
    /// An exit signal: through a link (`link`), or exit/2.
    Exit {
        from: Pid,
        to: Pid,
        reason: ExitReason,
        link: bool,
    },
    /// A monitor on `target` fired.
    Down {
        target: Pid,
        watcher: Pid,
        reference: u64,
        reason: ExitReason,
    },
    /// Start a particle on `node`, linked to and monitored by `parent`
    /// (with `reference`), acknowledged when it first waits in `recv`.
    Spawn {
        node: NodeId,
        component: String,
        init: String,
        parent: Pid,
        reference: u64,
    },
    /// The start of the `Spawn` with this parent and reference timed out:
    /// kill the particle if it is still starting (see start.rs).
    CancelSpawn {
        node: NodeId,
        parent: Pid,
        reference: u64,
    },
    /// Which pid is registered as `name` on `node`? Asked by node `from`.
    Lookup {
        node: NodeId,
        from: NodeId,
        name: String,
        reference: u64,
    },
    /// The answer to a `Lookup`, for `node`.
    Found {
        node: NodeId,
        reference: u64,
        pid: Option<Pid>,
    },
    /// An HTTP request for the process registered as `name` on `node`,
    /// from a listener on `from` (remote_http.rs).
    HttpRequest {
        node: NodeId,
        from: NodeId,
        name: String,
        request: Box<crate::http::HttpRequest>,
        reference: u64,
        timeout_ms: u64,
    },
    /// The answer to an `HttpRequest`, for `node`.
    HttpAnswer {
        node: NodeId,
        reference: u64,
        answer: Box<crate::remote_http::RemoteAnswer>,
    },
    /// `pid` (of the sending node) joined `group` (groups.rs).
    GroupJoin {
        node: NodeId,
        group: String,
        pid: Pid,
    },
    /// `pid` left `group`.
    GroupLeave {
        node: NodeId,
        group: String,
        pid: Pid,
    },
    /// Node `from` asks the home of `name` (`node`) to give it to `pid`
    /// (global.rs).
    GlobalClaim {
        node: NodeId,
        from: NodeId,
        name: String,
        pid: Pid,
        reference: u64,
    },
    /// The home's answer to a `GlobalClaim`.
    GlobalClaimed {
        node: NodeId,
        reference: u64,
        won: bool,
    },
    /// `name` belongs to `pid`, registered at `stamp` (from its home).
    GlobalSet {
        node: NodeId,
        name: String,
        pid: Pid,
        stamp: u64,
    },
    /// `pid` (of the sending node) no longer holds `name`.
    GlobalUnset {
        node: NodeId,
        name: String,
        pid: Pid,
    },
    /// The sending node's global names, sent when the two nodes connect.
    GlobalSync {
        node: NodeId,
        entries: Vec<(String, Pid, u64)>,
    },
    /// Start a supervisor and its subtree on `node`, linked to and
    /// monitored by `parent` (with `reference`), acknowledged once all its
    /// children run: the start handshake of `Spawn`, for a nested
    /// supervisor placed on another node (remote_sup.rs). `spec` is
    /// plasmoid-supervisor's encoding of the spec.
    StartSupervisor {
        node: NodeId,
        spec: Vec<u8>,
        parent: Pid,
        reference: u64,
    },
    /// Node `from` asks supervisor `sup` (of `node`) a `SupRequest`,
    /// encoded as JSON (remote_sup.rs).
    SupervisorAsk {
        node: NodeId,
        from: NodeId,
        sup: Pid,
        request: Vec<u8>,
        reference: u64,
    },
    /// The answer to a `SupervisorAsk`, for `node`: a JSON
    /// `Result<SupReply, SupError>`.
    SupervisorAnswer {
        node: NodeId,
        reference: u64,
        reply: Vec<u8>,
    },
    /// The sending node's memberships, sent when the two nodes connect;
    /// the first op of a sync (`replace`) replaces what `node` had from it.
    GroupSync {
        node: NodeId,
        from: NodeId,
        replace: bool,
        groups: Vec<(String, Vec<Pid>)>,
    },
}

impl RemoteOp {
    /// The node that must receive this op.
    pub fn destination(&self) -> NodeId {
        match self {
            RemoteOp::Send { to, .. } | RemoteOp::Link { to, .. } | RemoteOp::Unlink { to, .. } => {
                to.node
            }
            RemoteOp::Monitor { target, .. } | RemoteOp::Demonitor { target, .. } => target.node,
            RemoteOp::Exit { to, .. } => to.node,
            RemoteOp::Down { watcher, .. } => watcher.node,
            RemoteOp::Spawn { node, .. }
            | RemoteOp::CancelSpawn { node, .. }
            | RemoteOp::Lookup { node, .. }
            | RemoteOp::Found { node, .. }
            | RemoteOp::HttpRequest { node, .. }
            | RemoteOp::HttpAnswer { node, .. }
            | RemoteOp::GroupJoin { node, .. }
            | RemoteOp::GroupLeave { node, .. }
            | RemoteOp::GroupSync { node, .. }
            | RemoteOp::GlobalClaim { node, .. }
            | RemoteOp::GlobalClaimed { node, .. }
            | RemoteOp::GlobalSet { node, .. }
            | RemoteOp::GlobalUnset { node, .. }
            | RemoteOp::GlobalSync { node, .. }
            | RemoteOp::StartSupervisor { node, .. }
            | RemoteOp::SupervisorAsk { node, .. }
            | RemoteOp::SupervisorAnswer { node, .. } => *node,
        }
    }
}

/// Implemented by the mesh: carry `op` to its destination node.
pub trait Remote: Send + Sync {
    /// `Err(Noconnection)` when the node is not reachable now.
    fn route(&self, op: RemoteOp) -> Result<(), SendError>;
    /// Whether ops for `node` can be sent now.
    fn connected(&self, node: NodeId) -> bool;
    /// The connections to other nodes now, for the observer.
    fn peer_stats(&self) -> Vec<PeerStats> {
        Vec::new()
    }
    /// The nodes connected both ways now.
    fn connected_peers(&self) -> Vec<NodeId> {
        Vec::new()
    }
}

/// One connection to another node, as the observer shows it.
#[derive(Clone, Debug)]
pub struct PeerStats {
    pub node: NodeId,
    /// Connected both ways (ops go out, answers come back).
    pub connected: bool,
    /// The transport's current round-trip estimate.
    pub rtt: Option<std::time::Duration>,
    /// UDP bytes sent to and received from it on the current connection.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl crate::node::Node {
    /// The connections to other nodes now (none without a mesh).
    pub fn peer_stats(&self) -> Vec<PeerStats> {
        let remote = self.inner.remote.read().clone();
        remote.map(|r| r.peer_stats()).unwrap_or_default()
    }
}

impl NodeInner {
    /// Hand `op` to the transport, if there is one.
    pub(crate) fn route(&self, op: RemoteOp) -> Result<(), SendError> {
        let remote = self.remote.read().clone();
        match remote {
            Some(r) => r.route(op),
            None => Err(SendError::Noconnection),
        }
    }

    /// Where `pid` lives. This is the one place a pid is told apart as
    /// local or remote: the signal rules (signals.rs) match on it and hand
    /// every remote case to the `*_remote` methods below.
    pub(crate) fn place(&self, pid: Pid) -> Place {
        if pid.node != self.id {
            return Place::Remote;
        }
        match self.procs.get(&pid.seq) {
            Some(p) => Place::Local(p.value().clone()),
            None => Place::Gone,
        }
    }

    /// Send one op to every node connected now (process groups and
    /// global names). The transport only queues it, so callers may hold
    /// their own lock to keep ops in order with a sync.
    pub(crate) fn to_peers(&self, op: impl Fn(NodeId) -> RemoteOp) {
        let remote = self.remote.read().clone();
        if let Some(r) = remote {
            for peer in r.connected_peers() {
                let _ = r.route(op(peer));
            }
        }
    }

    /// Ask `to`'s node to add `from` to `to`'s links. `false` when the
    /// node cannot be reached now.
    pub(crate) fn link_remote(&self, from: Pid, to: Pid) -> bool {
        self.route(RemoteOp::Link { from, to }).is_ok()
    }

    pub(crate) fn unlink_remote(&self, from: Pid, to: Pid) {
        let _ = self.route(RemoteOp::Unlink { from, to });
    }

    /// Ask `target`'s node to watch it for `watcher`. `false` when the node
    /// cannot be reached now.
    pub(crate) fn monitor_remote(&self, watcher: Pid, target: Pid, reference: u64) -> bool {
        let op = RemoteOp::Monitor {
            watcher,
            target,
            reference,
        };
        self.route(op).is_ok()
    }

    pub(crate) fn demonitor_remote(&self, watcher: Pid, target: Pid, reference: u64) {
        let _ = self.route(RemoteOp::Demonitor {
            watcher,
            target,
            reference,
        });
    }

    /// An exit signal to a process elsewhere: through a link (`link`), or
    /// exit/2.
    pub(crate) fn exit_remote(
        &self,
        from: Pid,
        to: Pid,
        reason: ExitReason,
        link: bool,
    ) -> Result<(), SendError> {
        self.route(RemoteOp::Exit {
            from,
            to,
            reason,
            link,
        })
    }

    /// Tell a watcher elsewhere that the process it monitors ended.
    pub(crate) fn down_remote(
        &self,
        target: Pid,
        watcher: Pid,
        reference: u64,
        reason: ExitReason,
    ) {
        let _ = self.route(RemoteOp::Down {
            target,
            watcher,
            reference,
            reason,
        });
    }

    pub(crate) fn send_remote(&self, to: Pid, msg: Msg) -> Result<(), SendError> {
        self.route(RemoteOp::Send { to, msg })
    }
}

/// Where a pid lives, as [`NodeInner::place`] decides it.
pub(crate) enum Place {
    /// A process of this node that is in the table.
    Local(Arc<crate::process::Process>),
    /// A process of another node (alive or not: only that node knows).
    Remote,
    /// A pid of this node (or of an earlier incarnation) with no process.
    Gone,
}

impl Node {
    /// Whether `node` is this node or a connected peer.
    pub fn reachable(&self, node: NodeId) -> bool {
        node == self.inner.id
            || self
                .inner
                .remote
                .read()
                .as_ref()
                .is_some_and(|r| r.connected(node))
    }

    /// Install the transport that carries ops to other nodes.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        *self.inner.remote.write() = Some(remote);
    }

    /// An op that arrived from another node.
    ///
    /// Every op that acts on a process here is authorized by Cedar with the
    /// sending node as principal (`Node::"<id>"`); a denied link, monitor
    /// or spawn is answered as failed, a denied message or exit/2 dropped.
    pub fn deliver_remote(&self, from: NodeId, op: RemoteOp) {
        let inner = &self.inner;
        // A name no particle could register is not worth a policy
        // evaluation (nor a cache entry): a peer could send many.
        if let RemoteOp::Lookup {
            from: asker,
            name,
            reference,
            ..
        } = &op
            && (name.is_empty() || name.len() > crate::MAX_NAME)
        {
            self.answer_lookup(*asker, name, *reference, false);
            return;
        }
        let hosts = matches!(
            op,
            RemoteOp::Spawn { .. } | RemoteOp::StartSupervisor { .. }
        );
        let allowed = self.authorize(from, &op).and_then(|()| match hosts {
            true => self.may_host_for(from),
            false => Ok(()),
        });
        if let Err(why) = allowed {
            tracing::warn!(node = %from.short(), "{why}");
            let denied = ExitReason::Exception(why.clone());
            let answer = match op {
                RemoteOp::Link { from, to } => Some(RemoteOp::Exit {
                    from: to,
                    to: from,
                    reason: denied,
                    link: true,
                }),
                RemoteOp::Monitor {
                    watcher,
                    target,
                    reference,
                } => Some(RemoteOp::Down {
                    target,
                    watcher,
                    reference,
                    reason: denied,
                }),
                RemoteOp::Spawn {
                    parent, reference, ..
                }
                | RemoteOp::StartSupervisor {
                    parent, reference, ..
                } => Some(RemoteOp::Down {
                    target: Pid {
                        node: inner.id,
                        seq: 0,
                    },
                    watcher: parent,
                    reference,
                    reason: denied,
                }),
                RemoteOp::Lookup {
                    from, reference, ..
                } => Some(RemoteOp::Found {
                    node: from,
                    reference,
                    pid: None,
                }),
                RemoteOp::SupervisorAsk {
                    from, reference, ..
                } => Some(crate::remote_sup::answer_op(
                    from,
                    reference,
                    Err(crate::SupError::Denied(why)),
                )),
                _ => None,
            };
            if let Some(a) = answer {
                let _ = inner.route(a);
            }
            return;
        }
        match op {
            RemoteOp::Send { to, msg } => {
                // A start acknowledgement that comes after its start was
                // given up on: the particle is an orphan, end it.
                if let Msg::Tagged {
                    sender, reference, ..
                } = &msg
                    && inner.late_ack(*reference)
                {
                    inner.kill_orphan(to, *sender);
                    return;
                }
                // As in Erlang, a message to a dead or full process is dropped.
                let _ = inner.send(to, msg);
            }
            RemoteOp::Link { from, to } => {
                let linked = inner.lookup(to).is_some_and(|t| {
                    let mut st = t.state.lock();
                    // Linking twice is one link, as in Erlang.
                    st.alive && {
                        st.links.insert(from);
                        true
                    }
                });
                if !linked {
                    let _ = inner.route(RemoteOp::Exit {
                        from: to,
                        to: from,
                        reason: ExitReason::Noproc,
                        link: true,
                    });
                }
            }
            RemoteOp::Unlink { from, to } => {
                if let Some(t) = inner.lookup(to) {
                    t.state.lock().links.remove(&from);
                }
            }
            RemoteOp::Monitor {
                watcher,
                target,
                reference,
            } => {
                let watching = inner.lookup(target).is_some_and(|t| {
                    let mut st = t.state.lock();
                    st.alive && st.watchers.insert(reference, watcher).is_none()
                });
                if !watching {
                    let _ = inner.route(RemoteOp::Down {
                        target,
                        watcher,
                        reference,
                        reason: ExitReason::Noproc,
                    });
                }
            }
            RemoteOp::Demonitor {
                watcher,
                target,
                reference,
            } => {
                if let Some(t) = inner.lookup(target) {
                    t.state.lock().watchers.remove(&reference);
                }
                // A parent drops the start's monitor once it has the
                // acknowledgement: the start can no longer be cancelled.
                inner.started_for_peer(watcher, reference);
            }
            RemoteOp::Exit {
                from,
                to,
                reason,
                link,
            } => {
                if let Some(t) = inner.lookup(to) {
                    inner.deliver_exit(from, &t, reason, link);
                }
            }
            RemoteOp::Spawn {
                component,
                init,
                parent,
                reference,
                ..
            } => {
                let opts = crate::node::SpawnOpts {
                    link: Some(parent),
                    monitor: Some((parent, reference)),
                    ack: Some((parent, reference)),
                    ..Default::default()
                };
                match inner.spawn_particle(&component, &init, opts) {
                    // Until its parent has the acknowledgement, a cancel
                    // may still kill it.
                    Ok(pid) => {
                        inner.starting_for_peer(parent, reference, pid);
                        self.partition_failover(pid);
                    }
                    Err(e) => {
                        let target = Pid {
                            node: inner.id,
                            seq: 0,
                        };
                        let reason =
                            ExitReason::Exception(format!("spawn of `{component}` failed: {e}"));
                        let op = RemoteOp::Down {
                            target,
                            watcher: parent,
                            reference,
                            reason,
                        };
                        let _ = inner.route(op);
                    }
                }
            }
            RemoteOp::CancelSpawn {
                parent, reference, ..
            } => inner.cancel_peer_start(parent, reference),
            RemoteOp::StartSupervisor {
                spec,
                parent,
                reference,
                ..
            } => self.start_supervisor_for_peer(from, spec, parent, reference),
            RemoteOp::SupervisorAsk {
                sup,
                request,
                reference,
                ..
            } => self.answer_supervisor_ask(from, sup, request, reference),
            RemoteOp::SupervisorAnswer {
                reference, reply, ..
            } => self.supervisor_answered(from, reference, &reply),
            RemoteOp::Lookup {
                from: asker,
                name,
                reference,
                ..
            } => self.answer_lookup(asker, &name, reference, true),
            RemoteOp::Found { reference, pid, .. } => self.lookup_answered(from, reference, pid),
            // Authorized against the particle its name resolves to, once
            // resolved (remote_http.rs).
            RemoteOp::HttpRequest {
                name,
                request,
                reference,
                timeout_ms,
                ..
            } => self.serve_remote_http(from, name, request, reference, timeout_ms),
            RemoteOp::HttpAnswer {
                reference, answer, ..
            } => self.http_answered(from, reference, *answer),
            op @ (RemoteOp::GroupJoin { .. }
            | RemoteOp::GroupLeave { .. }
            | RemoteOp::GroupSync { .. }) => inner.group_op(from, op),
            op @ (RemoteOp::GlobalClaim { .. }
            | RemoteOp::GlobalClaimed { .. }
            | RemoteOp::GlobalSet { .. }
            | RemoteOp::GlobalUnset { .. }
            | RemoteOp::GlobalSync { .. }) => inner.global_op(from, op),
            RemoteOp::Down {
                target,
                watcher,
                reference,
                reason,
            } => {
                if let Some(w) = inner.lookup(watcher) {
                    let mut st = w.state.lock();
                    // Only a monitor on a process of the sending node.
                    let ours = st
                        .monitoring
                        .get(&reference)
                        .is_some_and(|t| t.node == from);
                    if ours && st.monitoring.remove(&reference).is_some() {
                        let _ = w.mailbox.push(
                            Msg::Down {
                                sender: target,
                                reference,
                                reason,
                            },
                            true,
                        );
                    }
                }
            }
        }
    }

    /// Cedar's word on what node `from` asks of this node.
    fn authorize(&self, from: NodeId, op: &RemoteOp) -> Result<(), String> {
        use crate::policy::Action;
        let inner = &self.inner;
        let (action, resource): (Action, Arc<str>) = match op {
            RemoteOp::Spawn { component, .. } => (Action::Spawn, component.as_str().into()),
            RemoteOp::Lookup { name, .. } => (Action::Lookup, name.as_str().into()),
            // Every supervisor is a native process of component
            // `supervisor` (plasmoid-supervisor names them so).
            RemoteOp::StartSupervisor { .. } => (Action::Supervise, "supervisor".into()),
            RemoteOp::SupervisorAsk { sup, .. } => match inner.lookup(*sup) {
                Some(t) => (Action::Supervise, t.component.clone()),
                None => return Ok(()),
            },
            RemoteOp::Send { to, .. }
            | RemoteOp::Exit {
                to, link: false, ..
            } => {
                let action = if matches!(op, RemoteOp::Send { .. }) {
                    Action::Send
                } else {
                    Action::Exit
                };
                match inner.lookup(*to) {
                    Some(t) => (action, t.component.clone()),
                    None => return Ok(()),
                }
            }
            RemoteOp::Link { to: target, .. } | RemoteOp::Monitor { target, .. } => {
                let action = if matches!(op, RemoteOp::Link { .. }) {
                    Action::Link
                } else {
                    Action::Monitor
                };
                match inner.lookup(*target) {
                    Some(t) => (action, t.component.clone()),
                    None => return Ok(()),
                }
            }
            _ => return Ok(()),
        };
        if inner.policy.allowed_node_id(&from, action, &resource) {
            Ok(())
        } else {
            Err(format!(
                "{} on `{resource}` denied by policy for node {}",
                action.as_str(),
                from.to_hex()
            ))
        }
    }

    /// The connection to `node` is gone: every link and monitor across it
    /// fires with `noconnection`.
    pub fn peer_lost(&self, node: NodeId) {
        // First: supervisors must see the standing change before the
        // noconnection exits of their children.
        self.partition_lost(node);
        self.inner.groups_peer_lost(node);
        self.inner.global_peer_lost(node);
        self.lookups_lost(node);
        self.http_lost(node);
        self.supervisor_asks_lost(node);
        let inner = &self.inner;
        let procs: Vec<_> = inner.procs.iter().map(|p| p.value().clone()).collect();
        for p in procs {
            let (links, downs) = {
                let mut st = p.state.lock();
                let links: Vec<Pid> = st
                    .links
                    .iter()
                    .copied()
                    .filter(|l| l.node == node)
                    .collect();
                for l in &links {
                    st.links.remove(l);
                }
                let downs: Vec<(u64, Pid)> = st
                    .monitoring
                    .iter()
                    .filter(|(_, t)| t.node == node)
                    .map(|(r, t)| (*r, *t))
                    .collect();
                for (r, _) in &downs {
                    st.monitoring.remove(r);
                }
                st.watchers.retain(|_, w| w.node != node);
                (links, downs)
            };
            for (reference, target) in downs {
                let _ = p.mailbox.push(
                    Msg::Down {
                        sender: target,
                        reference,
                        reason: ExitReason::Noconnection,
                    },
                    true,
                );
            }
            for l in links {
                inner.deliver_exit(l, &p, ExitReason::Noconnection, false);
            }
        }
    }
}
