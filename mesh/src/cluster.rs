//! Cluster membership: which nodes belong, learned by gossip.
//!
//! It owns the cluster key and the admission tokens made from it, the
//! gossip topic every member shares (iroh-gossip on the mesh's own
//! endpoint: HyParView keeps the overlay, PlumTree broadcasts), each
//! member's signed announcement, and telling the transport whom to admit
//! and dial. It does not own the connections that carry ops
//! (transport.rs), nor what a node going up or down means to particles
//! (the runtime's node monitors).
//!
//! A node joins by knowing one member. It dials that member's mesh
//! endpoint and presents its token (`blake3::keyed_hash(cluster key, its
//! id)`): only holders of the release's cluster key can make one. Once
//! admitted, it joins the gossip topic and broadcasts who it is and where it
//! listens, signed with its node key; every member checks the token and the
//! signature, admits it and dials it, so the mesh stays fully connected.
//! Members re-announce every [`ClusterConfig::announce_every`] and when they
//! hear of a member that is new to them, so a newcomer learns everyone and
//! two halves of a healed partition find each other again. A node that stops
//! cleanly says it is leaving; members then forget it.

use crate::MeshError;
use crate::overlay::{Echo, MIN_GOSSIP_NEIGHBOURS, stale_peer};
use crate::transport::Inner;
use iroh::{PublicKey, SecretKey, Signature};
use iroh_gossip::api::{Event, GossipReceiver, GossipSender};
use iroh_gossip::net::Gossip;
use iroh_gossip::proto::TopicId;
use n0_future::StreamExt;
use plasmoid_runtime::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// The secret every node of a release holds (`cluster/node.key` in the
/// release folder, made by `release build`): it makes the tokens that admit
/// a node that the manifest does not list.
#[derive(Clone)]
pub struct ClusterKey([u8; 32]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ClusterKey(bytes)
    }

    /// The key kept in `dir/node.key`, made (mode 0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, MeshError> {
        Ok(ClusterKey(crate::key::load_or_create(dir)?.to_bytes()))
    }

    /// What `node` presents to be admitted.
    pub fn token(&self, node: NodeId) -> [u8; 32] {
        *blake3::keyed_hash(&self.0, &node.0).as_bytes()
    }

    /// Whether `token` was made for `node` with this key (compared in
    /// constant time).
    pub fn admits(&self, node: NodeId, token: &[u8; 32]) -> bool {
        blake3::keyed_hash(&self.0, &node.0) == blake3::Hash::from_bytes(*token)
    }

    /// The gossip topic of the nodes holding this key.
    pub(crate) fn topic(&self) -> TopicId {
        TopicId::from_bytes(blake3::derive_key("plasmoid cluster topic 1", &self.0))
    }
}

/// How a node takes part in its cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub key: ClusterKey,
    /// This node's name in the release (empty when it has none); the others
    /// learn it from its announcement.
    pub name: String,
    /// How often a member re-announces itself (1 s by default).
    pub announce_every: Duration,
}

impl ClusterConfig {
    pub fn new(key: ClusterKey, name: impl Into<String>) -> Self {
        ClusterConfig {
            key,
            name: name.into(),
            announce_every: Duration::from_secs(1),
        }
    }
}

/// What a member says of itself on the topic. `seq` (the author's clock,
/// in microseconds, made strictly increasing) makes every announcement a
/// new message: PlumTree drops a message it has seen, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Announcement {
    Alive {
        node: [u8; 32],
        name: String,
        addr: SocketAddr,
        token: [u8; 32],
        seq: u64,
    },
    Leaving {
        node: [u8; 32],
        seq: u64,
        token: [u8; 32],
    },
}

impl Announcement {
    pub(crate) fn author(&self) -> NodeId {
        match self {
            Announcement::Alive { node, .. } | Announcement::Leaving { node, .. } => NodeId(*node),
        }
    }

    pub(crate) fn seq(&self) -> u64 {
        match self {
            Announcement::Alive { seq, .. } | Announcement::Leaving { seq, .. } => *seq,
        }
    }
}

/// A strictly increasing sequence number from the clock, so a restarted
/// node's announcements are newer than those of its last life.
fn next_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// An announcement and its author's signature over the encoded body.
#[derive(Debug, Serialize, Deserialize)]
struct Signed {
    body: Vec<u8>,
    sig: Vec<u8>,
}

/// Longest name a member may announce.
const MAX_MEMBER_NAME: usize = 255;

pub(crate) fn seal(key: &SecretKey, a: &Announcement) -> Option<bytes::Bytes> {
    let body = postcard::to_stdvec(a).ok()?;
    let sig = key.sign(&body).to_bytes().to_vec();
    postcard::to_stdvec(&Signed { body, sig })
        .ok()
        .map(Into::into)
}

/// The announcement in `bytes`, if its author signed it and holds the key.
pub(crate) fn open(cluster: &ClusterKey, bytes: &[u8]) -> Result<Announcement, String> {
    let signed: Signed = postcard::from_bytes(bytes).map_err(|e| format!("undecodable: {e}"))?;
    let a: Announcement =
        postcard::from_bytes(&signed.body).map_err(|e| format!("undecodable body: {e}"))?;
    let node = a.author().0;
    let author = PublicKey::from_bytes(&node).map_err(|e| format!("bad author key: {e}"))?;
    let sig: [u8; 64] = signed
        .sig
        .as_slice()
        .try_into()
        .map_err(|_| "a signature is 64 bytes".to_string())?;
    author
        .verify(&signed.body, &Signature::from_bytes(&sig))
        .map_err(|_| "bad signature".to_string())?;
    let (Announcement::Alive { token, .. } | Announcement::Leaving { token, .. }) = &a;
    if !cluster.admits(NodeId(node), token) {
        return Err("its token was not made with this cluster's key".into());
    }
    if let Announcement::Alive { name, .. } = &a
        && name.len() > MAX_MEMBER_NAME
    {
        return Err("its name is too long".into());
    }
    Ok(a)
}

/// The running membership of one node; [`Cluster::leave`] ends it.
pub(crate) struct Cluster {
    gossip: Gossip,
    sender: GossipSender,
    secret: SecretKey,
    node: NodeId,
    token: [u8; 32],
    task: tokio::task::AbortHandle,
}

impl Cluster {
    /// Subscribe to the topic and keep the membership up to date in the
    /// background; peers are joined as they come up (`ups`).
    pub(crate) async fn start(
        inner: &Arc<Inner>,
        gossip: Gossip,
        cfg: ClusterConfig,
        ups: tokio::sync::mpsc::Receiver<NodeId>,
    ) -> Result<Cluster, MeshError> {
        let topic = gossip
            .subscribe(cfg.key.topic(), Vec::new())
            .await
            .map_err(|e| MeshError::Protocol(format!("cannot join the cluster's gossip: {e}")))?;
        let (sender, receiver) = topic.split();
        let me = inner.node.id();
        let secret = inner.endpoint.secret_key().clone();
        let token = cfg.key.token(me);
        let echo = Echo::new(cfg.announce_every);
        let member = Member {
            inner: Arc::downgrade(inner),
            cfg,
            secret: secret.clone(),
            sender: sender.clone(),
            seen: parking_lot::Mutex::new(HashMap::new()),
            heard_at: parking_lot::Mutex::new(HashMap::new()),
            echo: parking_lot::Mutex::new(echo),
        };
        let task = tokio::spawn(member.run(receiver, ups)).abort_handle();
        Ok(Cluster {
            gossip,
            sender,
            secret,
            node: me,
            token,
            task,
        })
    }

    /// Tell the others this node is leaving (best effort, briefly), then
    /// stop gossiping.
    pub(crate) async fn leave(&self) {
        self.task.abort();
        let leaving = || Announcement::Leaving {
            node: self.node.0,
            seq: next_seq(),
            token: self.token,
        };
        // To the neighbours at once, and (as another message) to everyone
        // through the broadcast tree, whose lazy links need a moment.
        let patience = Duration::from_millis(200);
        if let Some(bytes) = seal(&self.secret, &leaving()) {
            let _ = tokio::time::timeout(patience, self.sender.broadcast_neighbors(bytes)).await;
        }
        if let Some(bytes) = seal(&self.secret, &leaving()) {
            let _ = tokio::time::timeout(patience, self.sender.broadcast(bytes)).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), self.gossip.shutdown()).await;
    }
}

struct Member {
    inner: Weak<Inner>,
    cfg: ClusterConfig,
    secret: SecretKey,
    sender: GossipSender,
    /// The newest `seq` heard from each member: an older announcement
    /// arriving late changes nothing.
    seen: parking_lot::Mutex<HashMap<NodeId, u64>>,
    /// When each member's newest announcement arrived ([`stale_peer`]).
    heard_at: parking_lot::Mutex<HashMap<NodeId, Instant>>,
    echo: parking_lot::Mutex<Echo>,
}

impl Member {
    async fn run(self, mut receiver: GossipReceiver, mut ups: tokio::sync::mpsc::Receiver<NodeId>) {
        let mut tick = tokio::time::interval(self.cfg.announce_every);
        let started = Instant::now();
        loop {
            let due = self.echo.lock().due();
            tokio::select! {
                _ = async { if let Some(at) = due { tokio::time::sleep_until(at).await } }, if due.is_some() => {
                    self.announce().await;
                }
                event = receiver.next() => match event {
                    Some(Ok(Event::Received(m))) => self.heard(&m.content).await,
                    Some(Ok(Event::NeighborUp(n))) => {
                        tracing::debug!(peer = %n.fmt_short(), "gossip neighbour up");
                        self.echo().await;
                    }
                    Some(Ok(Event::NeighborDown(n))) => {
                        tracing::debug!(peer = %n.fmt_short(), "gossip neighbour down");
                    }
                    Some(Ok(Event::Lagged)) => {
                        tracing::warn!("missed cluster announcements (the node is overloaded); the next round repairs it");
                    }
                    Some(Err(e)) => {
                        tracing::warn!("the cluster's gossip ended: {e}");
                        return;
                    }
                    None => return,
                },
                up = ups.recv() => {
                    let Some(peer) = up else { return };
                    // A peer connected both ways is admitted on both
                    // sides: gossip with it can start now, if this node
                    // needs neighbours ([`MIN_GOSSIP_NEIGHBOURS`]).
                    if receiver.neighbors().count() < MIN_GOSSIP_NEIGHBOURS
                        && !receiver.neighbors().any(|n| n.as_bytes() == &peer.0)
                        && let Ok(key) = PublicKey::from_bytes(&peer.0)
                    {
                        let _ = self.sender.join_peers(vec![key]).await;
                    }
                }
                _ = tick.tick() => {
                    self.announce().await;
                    if receiver.neighbors().next().is_none() {
                        self.rejoin().await;
                    } else if let Some(peer) = self.stale(&receiver, started) {
                        tracing::debug!(peer = %peer.short(), "no announcement from a connected member: joining the gossip with it");
                        if let Ok(key) = PublicKey::from_bytes(&peer.0) {
                            let _ = self.sender.join_peers(vec![key]).await;
                        }
                    }
                }
            }
        }
    }

    /// An announcement out of turn, unless one went out moments ago (then
    /// one follows at the end of the window: [`Echo`]).
    async fn echo(&self) {
        if self.echo.lock().ask(tokio::time::Instant::now()) {
            self.broadcast_alive().await;
        }
    }

    /// Broadcast this node's `Alive` (periodic, or a folded echo).
    async fn announce(&self) {
        self.echo.lock().sent(tokio::time::Instant::now());
        self.broadcast_alive().await;
    }

    async fn broadcast_alive(&self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let Some(addr) = inner.announced_addr() else {
            return;
        };
        let me = inner.node.id();
        let alive = Announcement::Alive {
            node: me.0,
            name: self.cfg.name.clone(),
            addr,
            token: self.cfg.key.token(me),
            seq: next_seq(),
        };
        drop(inner);
        if let Some(bytes) = seal(&self.secret, &alive) {
            let _ = self.sender.broadcast(bytes).await;
        }
    }

    fn stale(&self, receiver: &GossipReceiver, started: Instant) -> Option<NodeId> {
        let connected = self.inner.upgrade()?.connected_peers();
        let heard = self.heard_at.lock();
        stale_peer(
            connected,
            &heard,
            |p| receiver.neighbors().any(|n| n.as_bytes() == &p.0),
            Instant::now(),
            started,
            self.cfg.announce_every,
        )
    }

    /// No gossip neighbour: join again through the members connected now.
    async fn rejoin(&self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let peers: Vec<PublicKey> = inner
            .connected_peers()
            .into_iter()
            .filter_map(|id| PublicKey::from_bytes(&id.0).ok())
            .collect();
        drop(inner);
        if !peers.is_empty() {
            let _ = self.sender.join_peers(peers).await;
        }
    }

    async fn heard(&self, bytes: &[u8]) {
        let a = match open(&self.cfg.key, bytes) {
            Ok(a) => a,
            Err(why) => {
                tracing::warn!("ignored a cluster announcement: {why}");
                return;
            }
        };
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let author = a.author();
        if author == inner.node.id() {
            return;
        }
        {
            // Bounded by the members admitted (each announcement is signed).
            let mut seen = self.seen.lock();
            if seen.get(&author).is_some_and(|newest| *newest >= a.seq()) {
                return;
            }
            seen.insert(author, a.seq());
            self.heard_at.lock().insert(author, Instant::now());
        }
        match a {
            Announcement::Alive {
                node, name, addr, ..
            } => {
                let node = NodeId(node);
                if inner.learn(node, &name, addr) {
                    tracing::info!(peer = %node.short(), name = %name, %addr, "a node joined the cluster");
                    drop(inner);
                    // Let the newcomer learn of this node at once.
                    self.echo().await;
                }
            }
            Announcement::Leaving { node, .. } => {
                let node = NodeId(node);
                tracing::info!(peer = %node.short(), "a node left the cluster");
                inner.forget(node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::from_bytes([b; 32])
    }

    #[test]
    fn sequence_numbers_only_grow() {
        let a = next_seq();
        let b = next_seq();
        assert!(b > a);
    }

    #[test]
    fn a_token_admits_its_node_under_its_key_only() {
        let (a, b) = (NodeId([1; 32]), NodeId([2; 32]));
        let t = key(7).token(a);
        assert!(key(7).admits(a, &t));
        assert!(!key(7).admits(b, &t), "another node's token");
        assert!(!key(8).admits(a, &t), "another cluster's key");
    }

    #[test]
    fn announcements_must_be_signed_by_their_node_and_carry_its_token() {
        let secret = SecretKey::generate();
        let me = crate::node_id(&secret);
        let alive = |token| Announcement::Alive {
            node: me.0,
            name: "d".into(),
            addr: "127.0.0.1:4000".parse().expect("addr"),
            token,
            seq: 1,
        };
        let good = seal(&secret, &alive(key(7).token(me))).expect("seal");
        assert_eq!(open(&key(7), &good), Ok(alive(key(7).token(me))));
        assert!(open(&key(8), &good).is_err(), "a stranger's cluster");

        let forger = SecretKey::generate();
        let forged = seal(&forger, &alive(key(7).token(me))).expect("seal");
        assert!(
            open(&key(7), &forged)
                .unwrap_err()
                .contains("bad signature")
        );
        assert!(open(&key(7), b"\x01\x02").is_err());
    }
}
