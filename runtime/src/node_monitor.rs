//! Node monitors: Erlang's `net_kernel:monitor_nodes/1`. A particle that
//! asks for them gets a `node-up` message when a node of the cluster is
//! connected both ways and a `node-down` when the connection to it is lost.
//!
//! This module owns the subscriptions and the delivery. It does not decide
//! when a node is up or down: the transport (plasmoid-mesh) says so with
//! [`Node::peer_up`] and [`Node::peer_lost`].

use crate::node::{Node, NodeInner};
use crate::pid::{NodeId, Pid};
use crate::reason::Msg;

impl Node {
    /// Start (`true`) or stop sending `pid` node-up and node-down messages;
    /// returns whether it was subscribed before. A subscription ends with
    /// its particle.
    pub fn monitor_nodes(&self, pid: Pid, enabled: bool) -> bool {
        let mut set = self.inner.node_watchers.lock();
        if enabled {
            !set.insert(pid)
        } else {
            set.remove(&pid)
        }
    }

    /// The nodes connected both ways now, by id, with their names.
    pub fn connected_nodes(&self) -> Vec<(NodeId, Option<String>)> {
        // Every connected node, named or not (an extra member may announce
        // no name).
        let mut ids: Vec<NodeId> = self
            .inner
            .remote
            .read()
            .as_ref()
            .map(|r| r.connected_peers())
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .map(|id| (id, self.inner.node_name(id)))
            .collect()
    }

    /// The transport connected `node` both ways: tell the node monitors.
    pub fn peer_up(&self, node: NodeId) {
        self.partition_up(node);
        self.inner.groups_peer_up(node);
        self.inner.global_peer_up(node);
        self.inner.tell_node_watchers(Msg::NodeUp(node));
    }

    /// The transport lost `node` after it was up (after [`Node::peer_lost`]
    /// broke the links and monitors across it): tell the node monitors.
    pub fn peer_down(&self, node: NodeId) {
        self.inner.tell_node_watchers(Msg::NodeDown(node));
    }

    /// A member of the cluster announced itself under `name`: it can be
    /// named in `name@node` and `spawn-on`. A name another node already
    /// has is not taken over.
    pub fn learn_peer(&self, name: &str, node: NodeId) {
        let mut peers = self.inner.peers.write();
        match peers.get(name) {
            Some(id) if *id != node => {
                tracing::warn!(name, node = %node.short(), "a node announced a name another node has; it is known by its id only");
            }
            Some(_) => {}
            None => {
                peers.retain(|_, id| *id != node);
                peers.insert(name.to_string(), node);
            }
        }
    }

    /// A member left the cluster: forget its name.
    pub fn forget_peer(&self, node: NodeId) {
        self.partition_left(node);
        self.inner.peers.write().retain(|_, id| *id != node);
    }

    /// The name `node` is known by here, if any.
    pub fn node_name(&self, node: NodeId) -> Option<String> {
        self.inner.node_name(node)
    }
}

impl NodeInner {
    pub(crate) fn node_name(&self, node: NodeId) -> Option<String> {
        self.peers
            .read()
            .iter()
            .find(|(_, id)| **id == node)
            .map(|(n, _)| n.clone())
    }

    /// Deliver a node event to every subscriber still alive. Node events
    /// are signals of the runtime: they are queued even into a full
    /// mailbox, as DOWN messages are, since there are at most two per
    /// connection change.
    pub(crate) fn tell_node_watchers(&self, msg: Msg) {
        let watchers: Vec<Pid> = self.node_watchers.lock().iter().copied().collect();
        for pid in watchers {
            match self.procs.get(&pid.seq).map(|p| p.value().clone()) {
                Some(p) if p.pid == pid => {
                    let _ = p.mailbox.push(msg.clone(), true);
                }
                _ => {
                    self.node_watchers.lock().remove(&pid);
                }
            }
        }
    }

    /// A particle ended: its subscription ends with it.
    pub(crate) fn forget_node_watcher(&self, pid: Pid) {
        self.node_watchers.lock().remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Msg, Node, NodeConfig, NodeId};
    use std::time::Duration;

    #[tokio::test]
    async fn subscribers_get_node_events_until_they_stop() {
        let node = Node::new(NodeConfig::default()).expect("node");
        let watcher = node.native("watcher");
        let pid = watcher.pid();
        assert!(!node.monitor_nodes(pid, true));
        assert!(node.monitor_nodes(pid, true), "already subscribed");
        let other = NodeId([9; 32]);
        node.peer_up(other);
        node.peer_down(other);
        let wait = Some(Duration::from_secs(1));
        assert_eq!(
            watcher.recv(wait).await.ok().flatten(),
            Some(Msg::NodeUp(other))
        );
        assert_eq!(
            watcher.recv(wait).await.ok().flatten(),
            Some(Msg::NodeDown(other))
        );
        assert!(node.monitor_nodes(pid, false));
        node.peer_up(other);
        assert_eq!(
            watcher
                .recv(Some(Duration::from_millis(50)))
                .await
                .ok()
                .flatten(),
            None,
            "no events after unsubscribing"
        );
    }
}
