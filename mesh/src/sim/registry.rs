//! The registry layer of N nodes in one process: real runtime nodes
//! (`plasmoid_runtime::Node`, with their global names, process groups,
//! links and monitors) joined by an in-memory [`Remote`] instead of QUIC.
//!
//! Every op crosses as the transport sends it: converted to a [`WireOp`],
//! encoded as a length-prefixed frame, decoded on the other side and
//! checked for a spoofed sender (`sent_by`), then handed to
//! [`Node::deliver_remote`] by one task per node, so ops between two nodes
//! stay in order. Nodes are connected all to all; [`SimNet::kill`] cuts
//! one off and tells every other node it is lost, as the transport does
//! when its heartbeats stop (the heartbeat timeout itself is not
//! simulated).

use crate::frame::{self, Frame, WireOp};
use dashmap::DashMap;
use plasmoid_runtime::{Node, NodeId, Remote, RemoteOp, SendError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;

/// Frames waiting for one node: past it a send fails with `MailboxFull`
/// (the transport's per-peer queue limit, in frames rather than bytes).
pub const MAX_SIM_QUEUE: usize = 65_536;

struct Link {
    node: Node,
    tx: mpsc::Sender<(NodeId, Vec<u8>)>,
}

#[derive(Default)]
struct NetInner {
    links: DashMap<NodeId, Link>,
    bytes: AtomicU64,
    frames: AtomicU64,
}

/// The simulated network; see the module's doc.
#[derive(Clone, Default)]
pub struct SimNet {
    inner: Arc<NetInner>,
}

struct SimRemote {
    me: NodeId,
    net: Weak<NetInner>,
}

impl Remote for SimRemote {
    fn route(&self, op: RemoteOp) -> Result<(), SendError> {
        let net = self.net.upgrade().ok_or(SendError::Noconnection)?;
        if !net.links.contains_key(&self.me) {
            return Err(SendError::Noconnection);
        }
        let dest = op.destination();
        let tx = net
            .links
            .get(&dest)
            .map(|l| l.tx.clone())
            .ok_or(SendError::Noconnection)?;
        let Some(wire) = WireOp::from_op(op) else {
            return Ok(());
        };
        if wire.payload_len() > frame::MAX_FRAME - 1024 {
            return Err(SendError::Denied(format!(
                "a message over the mesh is limited to {} KiB",
                (frame::MAX_FRAME - 1024) >> 10
            )));
        }
        let mut buf = Vec::new();
        frame::encode_into(&Frame::Op(wire), &mut buf);
        let len = buf.len() as u64;
        tx.try_send((self.me, buf)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::MailboxFull,
            mpsc::error::TrySendError::Closed(_) => SendError::Noconnection,
        })?;
        net.bytes.fetch_add(len, Ordering::Relaxed);
        net.frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn connected(&self, node: NodeId) -> bool {
        self.net.upgrade().is_some_and(|n| {
            node != self.me && n.links.contains_key(&self.me) && n.links.contains_key(&node)
        })
    }

    fn connected_peers(&self) -> Vec<NodeId> {
        let Some(net) = self.net.upgrade() else {
            return Vec::new();
        };
        if !net.links.contains_key(&self.me) {
            return Vec::new();
        }
        net.links
            .iter()
            .map(|l| *l.key())
            .filter(|id| *id != self.me)
            .collect()
    }
}

impl SimNet {
    pub fn new() -> Self {
        SimNet::default()
    }

    /// Connect `node` to every node of the net (both ways at once), then
    /// tell both sides of each new pair that the other is up. Call inside
    /// a tokio runtime.
    pub fn add(&self, node: &Node) {
        let me = node.id();
        let (tx, mut rx) = mpsc::channel::<(NodeId, Vec<u8>)>(MAX_SIM_QUEUE);
        node.set_remote(Arc::new(SimRemote {
            me,
            net: Arc::downgrade(&self.inner),
        }));
        let receiver = node.clone();
        tokio::spawn(async move {
            while let Some((from, buf)) = rx.recv().await {
                deliver(&receiver, from, &buf);
            }
        });
        let others: Vec<Node> = self.inner.links.iter().map(|l| l.node.clone()).collect();
        self.inner.links.insert(
            me,
            Link {
                node: node.clone(),
                tx,
            },
        );
        for other in others {
            other.peer_up(me);
            node.peer_up(other.id());
        }
    }

    /// Cut `id` off: every other node loses it (links and monitors across
    /// it fire, its names and group members go), as after a missed
    /// heartbeat.
    pub fn kill(&self, id: NodeId) {
        if self.inner.links.remove(&id).is_none() {
            return;
        }
        let others: Vec<Node> = self.inner.links.iter().map(|l| l.node.clone()).collect();
        for other in others {
            other.peer_lost(id);
            other.peer_down(id);
        }
    }

    /// The nodes connected now.
    pub fn nodes(&self) -> Vec<Node> {
        self.inner.links.iter().map(|l| l.node.clone()).collect()
    }

    /// Bytes and frames carried so far.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.inner.bytes.load(Ordering::Relaxed),
            self.inner.frames.load(Ordering::Relaxed),
        )
    }
}

/// What the transport's reader does with one frame.
fn deliver(node: &Node, from: NodeId, buf: &[u8]) {
    let Some(prefix) = buf.get(..4) else { return };
    let ok_len = frame::frame_len([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let (Ok(len), Some(body)) = (ok_len, buf.get(4..)) else {
        return;
    };
    if body.len() != len {
        return;
    }
    if let Ok(Frame::Op(wire)) = frame::decode(body) {
        let op = wire.into_op();
        if op.destination() == node.id() && crate::transport::sent_by(&op, from) {
            node.deliver_remote(from, op);
        }
    }
}
