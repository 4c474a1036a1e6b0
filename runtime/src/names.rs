//! Names across nodes: other nodes known by name, and `name@node`, the
//! registered name of a process on another node (Erlang's `{Name, Node}`).
//!
//! A lookup on another node is one op there and one answer back; the
//! answer is matched by reference. A node that is lost, or does not answer
//! within the caller's timeout, fails the lookup with `noconnection`.

use crate::node::{Node, SendError};
use crate::pid::{NodeId, Pid};
use crate::remote::RemoteOp;
use std::time::Duration;
use tokio::sync::oneshot;

/// A `name@node` lookup waiting for `node`'s answer.
pub(crate) struct PendingLookup {
    node: NodeId,
    answer: oneshot::Sender<Option<Pid>>,
}

/// Why a `name@node` lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No node of that name (or id) is known here.
    UnknownNode(String),
    /// The node holding the name is not connected or did not answer.
    Noconnection,
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::UnknownNode(n) => write!(
                f,
                "no node `{n}` is known here (use a node name of the release or a node id)"
            ),
            LookupError::Noconnection => f.write_str("the node is not connected (noconnection)"),
        }
    }
}

impl std::error::Error for LookupError {}

impl Node {
    /// Name the other nodes (and this one), for `name@node` and for
    /// spawning on a named node.
    pub fn set_peers(&self, peers: impl IntoIterator<Item = (String, NodeId)>) {
        *self.inner.peers.write() = peers.into_iter().collect();
    }

    /// Every named node, this one included if it was named.
    pub fn peers(&self) -> Vec<(String, NodeId)> {
        let mut all: Vec<_> = self
            .inner
            .peers
            .read()
            .iter()
            .map(|(n, id)| (n.clone(), *id))
            .collect();
        all.sort();
        all
    }

    /// The node called `name`: a node name given to [`Node::set_peers`],
    /// or a node id in hex (whole, or its 8-digit short form).
    pub fn node_named(&self, name: &str) -> Option<NodeId> {
        let me = self.inner.id;
        let peers = self.inner.peers.read();
        if let Some(id) = peers.get(name) {
            return Some(*id);
        }
        let matches = |id: &NodeId| {
            name.eq_ignore_ascii_case(&id.to_hex()) || name.eq_ignore_ascii_case(&id.short())
        };
        if matches(&me) {
            return Some(me);
        }
        peers.values().find(|id| matches(id)).copied()
    }

    /// The pid registered as `name` on `node`; `None` when nothing is
    /// registered there under that name (or the other node's policy does not
    /// let this node look it up).
    pub async fn whereis_on(
        &self,
        node: NodeId,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<Pid>, SendError> {
        let inner = &self.inner;
        if node == inner.id {
            return Ok(self.whereis(name));
        }
        let reference = inner.next_ref();
        let (tx, rx) = oneshot::channel();
        inner
            .lookups
            .insert(reference, PendingLookup { node, answer: tx });
        let op = RemoteOp::Lookup {
            node,
            from: inner.id,
            name: name.to_string(),
            reference,
        };
        if let Err(e) = inner.route(op) {
            inner.lookups.remove(&reference);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(found)) => Ok(found),
            // The sender was dropped: the node was lost.
            Ok(Err(_)) => Err(SendError::Noconnection),
            Err(_) => {
                inner.lookups.remove(&reference);
                Err(SendError::Noconnection)
            }
        }
    }

    /// `name` (this node) or `name@node` (any named node).
    pub async fn whereis_qualified(
        &self,
        qualified: &str,
        timeout: Duration,
    ) -> Result<Option<Pid>, LookupError> {
        let Some((name, node)) = qualified.rsplit_once('@') else {
            return Ok(self.whereis(qualified));
        };
        let id = self
            .node_named(node)
            .ok_or_else(|| LookupError::UnknownNode(node.to_string()))?;
        self.whereis_on(id, name, timeout)
            .await
            .map_err(|_| LookupError::Noconnection)
    }

    /// A lookup from another node arrived (already authorized when
    /// `allowed`): answer it.
    pub(crate) fn answer_lookup(&self, from: NodeId, name: &str, reference: u64, allowed: bool) {
        let pid = if allowed { self.whereis(name) } else { None };
        let _ = self.inner.route(RemoteOp::Found {
            node: from,
            reference,
            pid,
        });
    }

    /// The answer to one of this node's lookups, from `from`.
    pub(crate) fn lookup_answered(&self, from: NodeId, reference: u64, pid: Option<Pid>) {
        if let Some((_, p)) = self
            .inner
            .lookups
            .remove_if(&reference, |_, p| p.node == from)
        {
            let _ = p.answer.send(pid);
        }
    }

    /// `node` is lost: its lookups fail now instead of at their timeout.
    pub(crate) fn lookups_lost(&self, node: NodeId) {
        self.inner.lookups.retain(|_, p| p.node != node);
    }
}
