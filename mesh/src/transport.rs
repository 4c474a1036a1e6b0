//! Connections between nodes. Each node dials every peer it knows and uses
//! that connection (one unidirectional stream) for everything it sends to
//! it, so ops between two nodes stay in order; what a peer sends arrives on
//! the connection that peer dialled. A peer is lost when its connection
//! breaks or it sends nothing (not even a heartbeat) for `peer_timeout`;
//! then every link and monitor across it fires with `noconnection`, and the
//! dialler keeps trying to reconnect.

use crate::MeshError;
use crate::frame::{self, Frame, WireOp};
use dashmap::DashMap;
use iroh::endpoint::{Connection, PortmapperConfig, presets};
use iroh::{Endpoint, EndpointAddr, NetReportConfig, PublicKey, RelayMode, SecretKey};
use plasmoid_runtime::versions::{MAX_TAG, Tag};
use plasmoid_runtime::{Node, NodeId, Remote, RemoteOp, SendError};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

pub const ALPN: &[u8] = b"plasmoid/mesh/1";

#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// Where this node listens (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// The only peers whose connections are accepted.
    pub allow: Vec<NodeId>,
    /// How often a connection carries a heartbeat.
    pub heartbeat: Duration,
    /// Silence after which a peer counts as lost.
    pub peer_timeout: Duration,
    /// Find allowed peers on the local network by mDNS as well (off by
    /// default: the mesh then only dials the addresses it is given).
    pub mdns: bool,
    /// Membership by gossip (cluster.rs): nodes holding the cluster key are
    /// admitted besides `allow`, and every member learns of every other.
    /// `None`: the mesh is exactly `allow` and the peers it is given.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl MeshConfig {
    pub fn new(listen: SocketAddr, allow: Vec<NodeId>) -> Self {
        MeshConfig {
            listen,
            allow,
            heartbeat: Duration::from_millis(100),
            peer_timeout: Duration::from_millis(600),
            mdns: false,
            cluster: None,
        }
    }
}

/// A node's place in the mesh. Dropping it does not stop the tasks; call
/// [`Mesh::close`].
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) node: Node,
    pub(crate) endpoint: Endpoint,
    cfg: MeshConfig,
    allow: HashSet<NodeId>,
    /// Peers admitted by their cluster token (cluster.rs), besides `allow`.
    admitted: dashmap::DashSet<NodeId>,
    /// Peers that said they leave, and when: their token is refused for
    /// [`LEFT_FOR`], so a goodbye is not undone by a last redial.
    left: DashMap<NodeId, std::time::Instant>,
    /// Peers connected both ways, for which node-up has been told.
    up: dashmap::DashSet<NodeId>,
    /// Peers that just came up, for the cluster's gossip to join through.
    ups: Option<mpsc::Sender<NodeId>>,
    /// Where peers listen, for the gossip's own dials.
    lookup: iroh::address_lookup::memory::MemoryLookup,
    /// The gossip of the membership (with `cfg.cluster`), there from the
    /// start so that no gossip connection arrives before it.
    pub(crate) gossip: Option<iroh_gossip::Gossip>,
    /// The membership, once started.
    cluster: tokio::sync::Mutex<Option<crate::cluster::Cluster>>,
    /// Live outgoing connections: how to send to a peer now.
    out: DashMap<NodeId, Outgoing>,
    /// Peers whose own connection to us is up (they can answer), with
    /// that connection's number: an old connection ending late must not
    /// take a newer one down.
    inbound: DashMap<NodeId, u64>,
    next_conn: std::sync::atomic::AtomicU64,
    /// Peers this node keeps a dial loop for (one each).
    dialing: dashmap::DashSet<NodeId>,
    /// Where each peer this node dials back (one that dialled in without
    /// being named to it) last dialled in from, or last announced it
    /// listens (cluster.rs); one entry per admitted peer.
    came_from: DashMap<NodeId, SocketAddr>,
    /// Answers control clients, once [`Mesh::serve_control`] is called.
    control: parking_lot::RwLock<Option<Arc<crate::control::ControlServer>>>,
}

struct Outgoing {
    /// Frames with their accounted size.
    tx: mpsc::UnboundedSender<(Frame, usize)>,
    conn: Connection,
    /// Bytes queued for this peer and not yet written to its stream.
    queued: Arc<AtomicUsize>,
}

/// The most bytes of messages queued for one peer (16 MiB). A peer that is
/// slow or stuck (its QUIC flow control stops our writes) fills it; past it
/// a send is refused with `mailbox-full`, so the sender's memory stays
/// flat. Signals (links, exits, monitors, DOWN) are always queued: they are
/// small, bounded by the links that exist, and must not be lost.
pub const MAX_PEER_QUEUE: usize = 16 << 20;

/// What a frame costs in the queue beyond its payload.
const FRAME_COST: usize = 64;

/// What the node holds to reach the mesh (weak: the mesh owns the node).
struct Route(Weak<Inner>);

impl Remote for Route {
    fn route(&self, op: RemoteOp) -> Result<(), SendError> {
        let Some(inner) = self.0.upgrade() else {
            return Err(SendError::Noconnection);
        };
        let dest = op.destination();
        // Requests that have an error to return are bounded; signals are not.
        let bounded = matches!(
            op,
            RemoteOp::Send { .. }
                | RemoteOp::Spawn { .. }
                | RemoteOp::StartSupervisor { .. }
                | RemoteOp::SupervisorAsk { .. }
                | RemoteOp::Lookup { .. }
                | RemoteOp::HttpRequest { .. }
        );
        let Some(wire) = WireOp::from_op(op) else {
            return Ok(());
        };
        // The receiver would close the connection over a frame past the
        // limit, breaking every link between the two nodes: refuse it here.
        if wire.payload_len() > frame::MAX_FRAME - 1024 {
            return Err(SendError::Denied(format!(
                "a message over the mesh is limited to {} KiB",
                (frame::MAX_FRAME - 1024) >> 10
            )));
        }
        let cost = wire.payload_len() + FRAME_COST;
        match inner.out.get(&dest) {
            Some(o) => {
                let queued = o.queued.fetch_add(cost, Ordering::AcqRel);
                if bounded && queued + cost > MAX_PEER_QUEUE {
                    o.queued.fetch_sub(cost, Ordering::AcqRel);
                    return Err(SendError::MailboxFull);
                }
                o.tx.send((Frame::Op(wire), cost)).map_err(|_| {
                    o.queued.fetch_sub(cost, Ordering::AcqRel);
                    SendError::Noconnection
                })
            }
            None => Err(SendError::Noconnection),
        }
    }

    fn connected(&self, node: NodeId) -> bool {
        self.0.upgrade().is_some_and(|i| i.both_ways(node))
    }

    fn connected_peers(&self) -> Vec<NodeId> {
        self.0
            .upgrade()
            .map(|i| i.connected_peers())
            .unwrap_or_default()
    }

    fn peer_stats(&self) -> Vec<plasmoid_runtime::PeerStats> {
        let Some(inner) = self.0.upgrade() else {
            return Vec::new();
        };
        let mut peers: Vec<NodeId> = inner.dialing.iter().map(|p| *p).collect();
        peers.extend(inner.inbound.iter().map(|e| *e.key()));
        peers.sort();
        peers.dedup();
        peers
            .into_iter()
            .map(|node| {
                let conn = inner.out.get(&node).map(|o| o.conn.clone());
                let stats = conn.as_ref().map(|c| c.stats());
                plasmoid_runtime::PeerStats {
                    node,
                    connected: inner.both_ways(node),
                    rtt: conn
                        .as_ref()
                        .and_then(|c| c.rtt(iroh::endpoint::PathId::ZERO)),
                    bytes_sent: stats.as_ref().map_or(0, |s| s.udp_tx.bytes),
                    bytes_received: stats.as_ref().map_or(0, |s| s.udp_rx.bytes),
                }
            })
            .collect()
    }
}

impl Mesh {
    /// Bind the node's endpoint (offline) and start accepting peers.
    pub async fn start(node: Node, key: SecretKey, cfg: MeshConfig) -> Result<Mesh, MeshError> {
        if node.id() != crate::node_id(&key) {
            return Err(MeshError::WrongNode);
        }
        let endpoint = offline_endpoint(
            key,
            cfg.listen,
            vec![
                ALPN.to_vec(),
                crate::control::CONTROL_ALPN.to_vec(),
                iroh_gossip::ALPN.to_vec(),
            ],
            cfg.mdns,
        )
        .await?;
        let lookup = iroh::address_lookup::memory::MemoryLookup::new();
        if let Ok(services) = endpoint.address_lookup() {
            services.add(lookup.clone());
        }
        let (ups_tx, ups_rx) = mpsc::channel(256);
        let cluster_cfg = cfg.cluster.clone();
        let gossip = cluster_cfg
            .as_ref()
            .map(|_| iroh_gossip::Gossip::builder().spawn(endpoint.clone()));
        let inner = Arc::new(Inner {
            node: node.clone(),
            endpoint: endpoint.clone(),
            allow: cfg.allow.iter().copied().collect(),
            admitted: dashmap::DashSet::new(),
            left: DashMap::new(),
            up: dashmap::DashSet::new(),
            ups: cluster_cfg.as_ref().map(|_| ups_tx),
            lookup,
            cluster: tokio::sync::Mutex::new(None),
            gossip,
            cfg,
            out: DashMap::new(),
            inbound: DashMap::new(),
            next_conn: std::sync::atomic::AtomicU64::new(1),
            dialing: dashmap::DashSet::new(),
            came_from: DashMap::new(),
            control: parking_lot::RwLock::new(None),
        });
        node.set_remote(Arc::new(Route(Arc::downgrade(&inner))));
        tokio::spawn(accept_loop(Arc::downgrade(&inner), endpoint));
        if let (Some(ccfg), Some(gossip)) = (cluster_cfg, inner.gossip.clone()) {
            // Gossip starts with no neighbour: it joins through each peer
            // once that peer is connected both ways (admitted on both
            // sides, its address known).
            let cluster = crate::cluster::Cluster::start(&inner, gossip, ccfg, ups_rx).await?;
            *inner.cluster.lock().await = Some(cluster);
        }
        Ok(Mesh { inner })
    }

    /// The address peers dial.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.endpoint.bound_sockets().into_iter().next()
    }

    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Keep a connection to `peer` at `addr`, redialling when it breaks.
    /// A peer that is not in `allow` is dialled with this node's cluster
    /// token: this is how a node joins a cluster through one member.
    pub fn add_peer(&self, peer: NodeId, addr: SocketAddr) {
        self.inner.remember_addr(peer, addr);
        if self.inner.dialing.insert(peer) {
            tokio::spawn(dial_loop(Arc::downgrade(&self.inner), peer, Some(addr)));
        }
    }

    /// Keep a connection to `peer` wherever mDNS finds it (needs
    /// [`MeshConfig::mdns`]).
    pub fn add_peer_by_id(&self, peer: NodeId) {
        if self.inner.dialing.insert(peer) {
            tokio::spawn(dial_loop(Arc::downgrade(&self.inner), peer, None));
        }
    }

    /// Whether `peer` is connected both ways: ops can go there and its
    /// answers can come back.
    pub fn connected(&self, peer: NodeId) -> bool {
        self.inner.both_ways(peer)
    }

    /// Take control requests from the clients whose ids are in `clients`.
    pub fn serve_control(
        &self,
        clients: impl IntoIterator<Item = NodeId>,
        handler: Arc<dyn crate::control::ControlHandler>,
    ) {
        let server = crate::control::ControlServer {
            clients: clients.into_iter().collect(),
            handler,
        };
        *self.inner.control.write() = Some(Arc::new(server));
    }

    /// The peers connected both ways now.
    pub fn members(&self) -> Vec<NodeId> {
        self.inner.connected_peers()
    }

    /// Close every connection and the endpoint (after telling the cluster
    /// this node leaves).
    pub async fn close(&self) {
        // Dial no one again: a peer that let this node go must not see it
        // come back while it says goodbye.
        self.inner.dialing.clear();
        if let Some(cluster) = self.inner.cluster.lock().await.take() {
            cluster.leave().await;
        }
        self.inner.out.clear();
        // Peers that are gone cannot acknowledge the close: do not wait long.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.close()).await;
    }
}

impl Inner {
    fn both_ways(&self, peer: NodeId) -> bool {
        self.out.contains_key(&peer) && self.inbound.contains_key(&peer)
    }

    fn allowed(&self, peer: NodeId) -> bool {
        self.allow.contains(&peer) || self.admitted.contains(&peer)
    }

    pub(crate) fn connected_peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self.up.iter().map(|p| *p).collect();
        peers.sort();
        peers
    }

    /// Where this node tells the cluster it listens: the bound address,
    /// with the configured IP when it was bound to a specific one.
    pub(crate) fn announced_addr(&self) -> Option<SocketAddr> {
        let bound = self.endpoint.bound_sockets().into_iter().next()?;
        Some(if self.cfg.listen.ip().is_unspecified() {
            bound
        } else {
            SocketAddr::new(self.cfg.listen.ip(), bound.port())
        })
    }

    fn remember_addr(&self, peer: NodeId, addr: SocketAddr) {
        if let Ok(key) = PublicKey::from_bytes(&peer.0) {
            self.lookup
                .add_endpoint_info(EndpointAddr::new(key).with_ip_addr(addr));
        }
    }

    /// A member announced itself (cluster.rs): admit it, name it and keep
    /// a connection to it. True when it was new here.
    pub(crate) fn learn(self: &Arc<Self>, peer: NodeId, name: &str, addr: SocketAddr) -> bool {
        self.left.remove(&peer);
        let listed = self.allow.contains(&peer);
        let new = !listed && self.admitted.insert(peer);
        if !name.is_empty() {
            self.node.learn_peer(name, peer);
        }
        // A listed node keeps the address it was given; an unspecified one
        // (a node bound to 0.0.0.0) is no place to dial: that node dials in.
        if listed || addr.ip().is_unspecified() {
            return new;
        }
        self.remember_addr(peer, addr);
        let moved = self
            .came_from
            .insert(peer, addr)
            .is_none_or(|old| old != addr);
        if self.dialing.insert(peer) {
            tokio::spawn(dial_loop(Arc::downgrade(self), peer, Some(addr)));
        }
        new || moved && !self.up.contains(&peer)
    }

    /// A member left the cluster: stop dialling it and let it go.
    pub(crate) fn forget(&self, peer: NodeId) {
        if self.allow.contains(&peer) {
            // A node of the release: it comes back at its address.
            return;
        }
        self.admitted.remove(&peer);
        self.left.retain(|_, at| at.elapsed() < LEFT_FOR);
        self.left.insert(peer, std::time::Instant::now());
        self.dialing.remove(&peer);
        self.came_from.remove(&peer);
        if let Ok(key) = PublicKey::from_bytes(&peer.0) {
            self.lookup.remove_endpoint_info(key);
        }
        self.node.forget_peer(peer);
        self.inbound.remove(&peer);
        self.lost(peer);
    }

    /// Tell node-up once a peer is connected both ways.
    fn check_up(&self, peer: NodeId) {
        if self.both_ways(peer) && self.up.insert(peer) {
            tracing::info!(peer = %peer.short(), "peer up: connected both ways");
            self.node.peer_up(peer);
            if let Some(ups) = &self.ups {
                let _ = ups.try_send(peer);
            }
        }
    }

    /// Forget `peer` until it is back; links and monitors across it fire.
    fn lost(&self, peer: NodeId) {
        if let Some((_, o)) = self.out.remove(&peer) {
            o.conn.close(0u32.into(), b"peer lost");
        }
        tracing::info!(peer = %peer.short(), "peer lost: links and monitors across it get noconnection");
        // Out of `up` first: a new connection's `check_up` during the walk
        // below then tells node-up again.
        let was_up = self.up.remove(&peer).is_some();
        self.node.peer_lost(peer);
        if was_up {
            self.node.peer_down(peer);
        }
    }
}

/// An endpoint that never reaches for the internet: no relays, no address
/// lookup, no port mapping; it talks to the addresses it is given.
///
/// With `mdns`, it also advertises itself on the local network and resolves
/// peers' ids to what they advertise (service `plasmoid-mesh`): still no
/// internet.
pub(crate) async fn offline_endpoint(
    key: SecretKey,
    listen: SocketAddr,
    alpns: Vec<Vec<u8>>,
    mdns: bool,
) -> Result<Endpoint, MeshError> {
    let bind_err = |e: &dyn std::fmt::Display| MeshError::Bind {
        addr: listen.to_string(),
        reason: e.to_string(),
    };
    let mut builder = Endpoint::builder(presets::Minimal)
        .secret_key(key)
        .alpns(alpns)
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup();
    if mdns {
        builder = builder.address_lookup(
            iroh_mdns_address_lookup::MdnsAddressLookup::builder().service_name("plasmoid-mesh"),
        );
    }
    builder
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(NetReportConfig::minimal())
        .clear_ip_transports()
        .bind_addr(listen)
        .map_err(|e| bind_err(&e))?
        .bind()
        .await
        .map_err(|e| bind_err(&e))
}

async fn dial_loop(inner: Weak<Inner>, peer: NodeId, addr: Option<SocketAddr>) {
    let Ok(key) = PublicKey::from_bytes(&peer.0) else {
        tracing::error!(peer = %peer.short(), "not a valid node id; not dialling it");
        return;
    };
    loop {
        let Some(me) = inner.upgrade() else { return };
        if me.endpoint.is_closed() || !me.dialing.contains(&peer) {
            return;
        }
        // A peer that dialled in is dialled back where it last came from
        // (it may have restarted on another port since).
        let addr = me.came_from.get(&peer).map(|a| *a).or(addr);
        let target = match addr {
            Some(addr) => EndpointAddr::new(key).with_ip_addr(addr),
            None => EndpointAddr::new(key),
        };
        let dialled =
            // A node that is not up yet does not answer at all: give up
            // soon and try again, so peers find each other once both are up.
            tokio::time::timeout(Duration::from_millis(500), me.endpoint.connect(target, ALPN)).await;
        if let Ok(Ok(conn)) = dialled {
            send_until_broken(&me, peer, conn).await;
        }
        let pause = me.cfg.heartbeat * 2;
        drop(me);
        tokio::time::sleep(pause).await;
    }
}

/// Carry frames for `peer` over `conn` until it breaks.
async fn send_until_broken(me: &Arc<Inner>, peer: NodeId, conn: Connection) {
    let Ok(mut stream) = conn.open_uni().await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<(Frame, usize)>();
    let queued = Arc::new(AtomicUsize::new(0));
    let mut buf = Vec::with_capacity(64 << 10);
    frame::encode_into(
        &Frame::Hello {
            version: frame::VERSION,
        },
        &mut buf,
    );
    // A peer that does not list this node admits it by its cluster token.
    if let Some(c) = &me.cfg.cluster {
        let token = c.key.token(me.node.id());
        frame::encode_into(&Frame::Admit { token }, &mut buf);
    }
    let mut release = me.node.release_watch();
    if let Some(tag) = release.borrow_and_update().clone() {
        frame::encode_into(&release_frame(tag), &mut buf);
    }
    if stream.write_all(&buf).await.is_err() {
        return;
    }
    me.out.insert(
        peer,
        Outgoing {
            tx: tx.clone(),
            conn: conn.clone(),
            queued: queued.clone(),
        },
    );
    tracing::info!(peer = %peer.short(), "connected to peer");
    me.check_up(peer);
    let mut beat = tokio::time::interval(me.cfg.heartbeat);
    loop {
        buf.clear();
        tokio::select! {
            f = rx.recv() => {
                let Some((f, cost)) = f else { break };
                frame::encode_into(&f, &mut buf);
                let mut taken = cost;
                // Batch what is already queued into one write.
                while buf.len() < 64 << 10 {
                    match rx.try_recv() {
                        Ok((f, cost)) => {
                            frame::encode_into(&f, &mut buf);
                            taken += cost;
                        }
                        Err(_) => break,
                    }
                }
                queued.fetch_sub(taken, Ordering::AcqRel);
            }
            _ = beat.tick() => frame::encode_into(&Frame::Heartbeat, &mut buf),
            Ok(()) = release.changed() => {
                if let Some(tag) = release.borrow_and_update().clone() {
                    frame::encode_into(&release_frame(tag), &mut buf);
                }
            }
            _ = conn.closed() => break,
        }
        if stream.write_all(&buf).await.is_err() {
            break;
        }
    }
    // Only if this connection is still the current one.
    if me
        .out
        .remove_if(&peer, |_, o| o.tx.same_channel(&tx))
        .is_some()
    {
        me.lost(peer);
    }
}

async fn accept_loop(inner: Weak<Inner>, endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let Some(me) = inner.upgrade() else { return };
        let from = match incoming.remote_addr() {
            iroh::endpoint::IncomingAddr::Ip(addr) => Some(addr),
            _ => None,
        };
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            if conn.alpn() == iroh_gossip::ALPN {
                let peer = NodeId(*conn.remote_id().as_bytes());
                return match &me.gossip {
                    Some(g) if me.allowed(peer) => {
                        if let Err(e) = g.handle_connection(conn).await {
                            tracing::warn!("the cluster's gossip took no connection: {e}");
                        }
                    }
                    _ => conn.close(1u32.into(), b"not admitted"),
                };
            }
            if conn.alpn() != crate::control::CONTROL_ALPN {
                return serve(me, conn, from).await;
            }
            let control = me.control.read().clone();
            drop(me);
            match control {
                Some(server) => crate::control::serve(server, conn).await,
                None => conn.close(1u32.into(), b"this node takes no control requests"),
            }
        });
    }
}

/// Read what a peer sends on the connection it dialled.
async fn serve(me: Arc<Inner>, conn: Connection, from: Option<SocketAddr>) {
    let peer = NodeId(*conn.remote_id().as_bytes());
    let listed = me.allowed(peer);
    let refuse = |why: &str| {
        tracing::warn!(peer = %peer.to_hex(), "refused a connection from a node that is not allowed: {why}");
        conn.close(1u32.into(), b"not allowed");
    };
    if !listed && me.cfg.cluster.is_none() {
        return refuse("this node admits only the nodes it lists");
    }
    // A node that is not listed has ADMIT_WITHIN to open its stream and
    // present its token; a listed one may take its time.
    let stream = if listed {
        conn.accept_uni().await.ok()
    } else {
        tokio::time::timeout(ADMIT_WITHIN, conn.accept_uni())
            .await
            .ok()
            .and_then(Result::ok)
    };
    let Some(mut stream) = stream else {
        if !listed {
            refuse("it opened no stream to present a cluster token on");
        }
        return;
    };
    // Frames are parsed out of large reads: one read (and one timer) per
    // batch the sender wrote, not two per frame.
    let mut buf: Vec<u8> = Vec::with_capacity(128 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    if !listed {
        if let Err(why) = admit(&me, peer, &mut stream, &mut buf, &mut chunk).await {
            return refuse(&why);
        }
        tracing::info!(peer = %peer.short(), "admitted a node by its cluster token");
    }
    // An admitted peer this node was not told to dial (`--allow` with
    // static discovery): dial it back where it came from, so it is
    // connected both ways and can be answered.
    let dial_back = me.dialing.insert(peer);
    if let Some(addr) = from
        && (dial_back || me.came_from.contains_key(&peer))
    {
        me.came_from.insert(peer, addr);
        me.remember_addr(peer, addr);
    }
    if dial_back {
        tracing::info!(peer = %peer.short(), "an admitted peer dialled in; dialling it back");
        tokio::spawn(dial_loop(Arc::downgrade(&me), peer, from));
    }
    let number = me
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    me.inbound.insert(peer, number);
    me.check_up(peer);
    let timeout = me.cfg.peer_timeout;
    let broken = 'conn: loop {
        let mut at = 0;
        while let Some(prefix) = buf.get(at..at + 4) {
            let len = match frame::frame_len([prefix[0], prefix[1], prefix[2], prefix[3]]) {
                Ok(len) => len,
                Err(e) => break 'conn bad_frame(&conn, peer, e),
            };
            let Some(body) = buf.get(at + 4..at + 4 + len) else {
                break;
            };
            match frame::decode(body) {
                Ok(Frame::Op(wire)) => {
                    let op = wire.into_op();
                    if op.destination() == me.node.id() && sent_by(&op, peer) {
                        me.node.deliver_remote(peer, op);
                    } else {
                        tracing::warn!(peer = %peer.short(), "dropped an op that names another node as its sender or receiver");
                    }
                }
                Ok(Frame::Hello { version }) if version != frame::VERSION => {
                    tracing::warn!(peer = %peer.short(), "closing the connection: the peer speaks mesh protocol {version}, this node {}; run the same plasmoid version on every node", frame::VERSION);
                    conn.close(3u32.into(), b"protocol version");
                    break 'conn format!("protocol version {version}");
                }
                Ok(Frame::Release { release, code }) => {
                    if let Err(why) = peer_release(&me, peer, Tag { release, code }) {
                        tracing::warn!(peer = %peer.short(), "closing the connection: {why}");
                        conn.close(4u32.into(), b"another release");
                        break 'conn why;
                    }
                }
                Ok(Frame::Hello { .. } | Frame::Heartbeat | Frame::Admit { .. }) => {}
                Err(e) => break 'conn bad_frame(&conn, peer, e),
            }
            at += 4 + len;
        }
        buf.drain(..at);
        match tokio::time::timeout(timeout, stream.read(&mut chunk)).await {
            Err(_) => break format!("silent for {} ms", timeout.as_millis()),
            Ok(Err(e)) => break format!("connection ended ({e})"),
            Ok(Ok(None)) => break "the peer finished its stream".to_string(),
            Ok(Ok(Some(n))) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    };
    tracing::debug!(peer = %peer.short(), "incoming connection closed: {broken}");
    if me.inbound.remove_if(&peer, |_, n| *n == number).is_some() {
        me.lost(peer);
    }
}

fn release_frame(tag: Tag) -> Frame {
    Frame::Release {
        release: tag.release,
        code: tag.code,
    }
}

/// Record what `peer` runs. Another release (by name) is not a member:
/// `Err`, and the connection closes. Another version is kept, said in the
/// log and in `status`; with other code this node then starts nothing for
/// it (plasmoid-runtime's versions.rs).
fn peer_release(me: &Inner, peer: NodeId, tag: Tag) -> Result<(), String> {
    if tag.release.is_empty() || tag.release.len() + tag.code.len() > MAX_TAG {
        return Err(format!(
            "a release tag of {} bytes",
            tag.release.len() + tag.code.len()
        ));
    }
    let mine = me.node.release();
    if let Some(mine) = &mine
        && mine.name() != tag.name()
    {
        return Err(format!(
            "the peer runs release {}, this node {}: nodes of different releases do not mesh",
            tag.release, mine.release
        ));
    }
    let theirs = tag.release.clone();
    let same_code = mine.as_ref().is_none_or(|m| m.code == tag.code);
    let before = me.node.set_peer_release(peer, tag);
    match mine {
        Some(mine) if !same_code => tracing::warn!(
            peer = %peer.short(),
            "the peer runs {theirs} and this node {} with other components: neither starts children for the other until both run the same code",
            mine.release
        ),
        Some(mine) if mine.release != theirs => tracing::info!(
            peer = %peer.short(),
            "the peer runs {theirs} and this node {} (the same components)",
            mine.release
        ),
        _ if before.is_some() => tracing::info!(peer = %peer.short(), "the peer now runs {theirs}"),
        _ => {}
    }
    Ok(())
}

/// How long a node that is not listed has to present its cluster token.
const ADMIT_WITHIN: Duration = Duration::from_secs(2);

/// How long a node that said it leaves is not admitted again by token.
const LEFT_FOR: Duration = Duration::from_secs(3);

/// The largest frame a node that is not admitted yet may send (its
/// `Hello` and `Admit` are a few dozen bytes).
const MAX_ADMIT_FRAME: usize = 256;

/// Read the first frames of a peer that `allow` does not list: its
/// `Hello`, then an `Admit` whose token this node's cluster key made for
/// it. The frames after them stay in `buf`.
async fn admit(
    me: &Inner,
    peer: NodeId,
    stream: &mut iroh::endpoint::RecvStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Result<(), String> {
    let Some(cluster) = &me.cfg.cluster else {
        return Err("this node admits only the nodes it lists".into());
    };
    if me.left.get(&peer).is_some_and(|at| at.elapsed() < LEFT_FOR) {
        return Err("it left the cluster moments ago".into());
    }
    let deadline = tokio::time::Instant::now() + ADMIT_WITHIN;
    loop {
        let mut at = 0;
        while let Some(prefix) = buf.get(at..at + 4) {
            let len = frame::frame_len([prefix[0], prefix[1], prefix[2], prefix[3]])
                .map_err(|e| e.to_string())?;
            if len > MAX_ADMIT_FRAME {
                return Err(format!(
                    "a {len}-byte frame before presenting a cluster token"
                ));
            }
            let Some(body) = buf.get(at + 4..at + 4 + len) else {
                break;
            };
            let f = frame::decode(body).map_err(|e| e.to_string())?;
            at += 4 + len;
            match f {
                Frame::Hello { version } if version != frame::VERSION => {
                    return Err(format!(
                        "it speaks mesh protocol {version}, this node {}; run the same plasmoid version on every node",
                        frame::VERSION
                    ));
                }
                Frame::Hello { .. } => {}
                Frame::Admit { token } if cluster.key.admits(peer, &token) => {
                    buf.drain(..at);
                    me.admitted.insert(peer);
                    return Ok(());
                }
                Frame::Admit { .. } => {
                    return Err(
                        "its cluster token was not made with this release's cluster key".into(),
                    );
                }
                _ => return Err("it sent ops before presenting a cluster token".into()),
            }
        }
        buf.drain(..at);
        match tokio::time::timeout_at(deadline, stream.read(chunk)).await {
            Err(_) => return Err("it presented no cluster token".into()),
            Ok(Ok(Some(n))) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Ok(_) => return Err("it closed the stream before presenting a cluster token".into()),
        }
    }
}

fn bad_frame(conn: &Connection, peer: NodeId, e: frame::FrameError) -> String {
    tracing::warn!(peer = %peer.short(), "closing the connection: {e}");
    conn.close(2u32.into(), b"bad frame");
    format!("bad frame: {e}")
}

/// The pid acting in `op` must belong to the peer that sent it: a node
/// cannot speak for processes of a third node.
pub(crate) fn sent_by(op: &RemoteOp, peer: NodeId) -> bool {
    use plasmoid_runtime::Msg;
    match op {
        RemoteOp::Send {
            msg: Msg::Tagged { sender, .. },
            ..
        } => sender.node == peer,
        RemoteOp::Send { .. } => true,
        RemoteOp::Link { from, .. }
        | RemoteOp::Unlink { from, .. }
        | RemoteOp::Exit { from, .. } => from.node == peer,
        RemoteOp::Monitor { watcher, .. } | RemoteOp::Demonitor { watcher, .. } => {
            watcher.node == peer
        }
        RemoteOp::Down { target, .. } => target.node == peer,
        RemoteOp::Spawn { parent, .. }
        | RemoteOp::CancelSpawn { parent, .. }
        | RemoteOp::StartSupervisor { parent, .. } => parent.node == peer,
        RemoteOp::SupervisorAsk { from, .. } => *from == peer,
        // Matched against the node the request went to (remote_sup.rs).
        RemoteOp::SupervisorAnswer { .. } => true,
        RemoteOp::Lookup { from, .. } => *from == peer,
        RemoteOp::Found { pid, .. } => pid.is_none_or(|p| p.node == peer),
        RemoteOp::HttpRequest { from, .. } => *from == peer,
        // Matched against the node the request went to (remote_http.rs).
        RemoteOp::HttpAnswer { .. } => true,
        RemoteOp::GroupJoin { pid, .. }
        | RemoteOp::GroupLeave { pid, .. }
        | RemoteOp::GlobalUnset { pid, .. } => pid.node == peer,
        RemoteOp::GlobalClaim { from, pid, .. } => *from == peer && pid.node == peer,
        // From a name's home, or a table sync: any member (conflicts are
        // settled by the same rule everywhere).
        RemoteOp::GlobalClaimed { .. }
        | RemoteOp::GlobalSet { .. }
        | RemoteOp::GlobalSync { .. } => true,
        RemoteOp::GroupSync { from, groups, .. } => {
            *from == peer
                && groups
                    .iter()
                    .all(|(_, pids)| pids.iter().all(|p| p.node == peer))
        }
    }
}
