//! The membership layer of N members in virtual time: iroh-gossip's own
//! protocol state machines (`iroh_gossip::proto::State`, HyParView and
//! PlumTree, the code the real endpoints run) on a discrete-event network
//! with a fixed one-way latency, carrying this crate's signed
//! announcements and reacting to them as a real member does
//! (cluster.rs): announce every `announce_every`, on a new gossip
//! neighbour and on hearing of a new member; join the gossip with every
//! member it learns of; rejoin when it has no neighbour; leave with a
//! `Leaving` to the neighbours and the swarm.
//!
//! What it does not model: QUIC (handshakes are one extra round trip per
//! new connection, bytes are the gossip frames only), heartbeats of the
//! transport, CPU time (every step takes no virtual time).

use crate::cluster::{Announcement, ClusterKey, open, seal};
use crate::overlay::{Echo, MIN_GOSSIP_NEIGHBOURS, stale_peer};
use iroh::SecretKey;
use iroh_gossip::proto::{
    Command, Config, Event, InEvent, Message, OutEvent, PeerData, Scope, State, TopicId,
};
use plasmoid_runtime::NodeId;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// At most this many events are handled by one `run_*` call: a protocol
/// that never settles ends the run instead of spinning forever.
pub const MAX_EVENTS_PER_RUN: u64 = 50_000_000;

/// What happens to a member at a virtual instant.
enum Due {
    Proto(InEvent<NodeId>),
    /// Its announcement timer.
    Tick,
    /// The transport has connected it to this member: join the gossip
    /// with it (cluster.rs does so on every peer-up).
    Connected(NodeId),
    /// The end of a clean leave.
    Quit,
    /// A folded out-of-turn announcement ([`Echo`]).
    Echo,
}

struct Pending {
    at: Instant,
    order: u64,
    to: NodeId,
    due: Due,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Earliest first in a max-heap; equal instants in insertion order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

struct Member {
    secret: SecretKey,
    name: String,
    addr: SocketAddr,
    state: State<NodeId, StdRng>,
    /// Newest `seq` heard from each author.
    seen: HashMap<NodeId, u64>,
    /// Members it has learned of and not seen leave.
    known: HashSet<NodeId>,
    neighbours: HashSet<NodeId>,
    last_seq: u64,
    echo: Echo,
    /// Leaving: it announces nothing more (`Cluster::leave` stops the
    /// member's task first).
    leaving: bool,
    heard_at: HashMap<NodeId, Instant>,
    started: Instant,
}

/// A simulated cluster; see the module's doc.
pub struct GossipSim {
    key: ClusterKey,
    topic: TopicId,
    latency: Duration,
    announce_every: Duration,
    start: Instant,
    now: Instant,
    order: u64,
    queue: BinaryHeap<Pending>,
    members: HashMap<NodeId, Member>,
    added: u64,
    bytes: u64,
    messages: u64,
    rejected: u64,
}

impl GossipSim {
    /// An empty cluster whose links all take `latency` one way.
    pub fn new(latency: Duration, announce_every: Duration) -> Self {
        let key = ClusterKey::from_bytes(SecretKey::generate().to_bytes());
        let topic = key.topic();
        let now = Instant::now();
        GossipSim {
            key,
            topic,
            latency,
            announce_every,
            start: now,
            now,
            order: 0,
            queue: BinaryHeap::new(),
            members: HashMap::new(),
            added: 0,
            bytes: 0,
            messages: 0,
            rejected: 0,
        }
    }

    /// Virtual time since the simulation began.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Gossip bytes sent by all members so far (each frame's postcard size
    /// plus its 4-byte length prefix).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes
    }

    pub fn messages_sent(&self) -> u64 {
        self.messages
    }

    /// Announcements refused (bad signature or token).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    pub fn members(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// A new member that joins through `via` (none: it waits to be joined).
    pub fn join(&mut self, via: &[NodeId]) -> NodeId {
        let secret = SecretKey::generate();
        let id = crate::node_id(&secret);
        let n = self.added;
        self.added += 1;
        let rng = StdRng::seed_from_u64(n);
        let member = Member {
            secret,
            name: format!("s{n}"),
            addr: SocketAddr::from(([127, 0, 0, 1], 10_000 + (n % 50_000) as u16)),
            state: State::new(id, PeerData::default(), Config::default(), rng),
            seen: HashMap::new(),
            known: via.iter().copied().collect(),
            neighbours: HashSet::new(),
            last_seq: 0,
            echo: Echo::new(self.announce_every),
            leaving: false,
            heard_at: HashMap::new(),
            started: self.now,
        };
        self.members.insert(id, member);
        self.push(
            Duration::ZERO,
            id,
            Due::Proto(InEvent::Command(self.topic, Command::Join(via.to_vec()))),
        );
        // Real members start at different moments: spread the timers.
        let offset = self.announce_every.mul_f64((n as f64 * 0.618_034) % 1.0);
        self.push(offset, id, Due::Tick);
        id
    }

    /// `id` leaves cleanly, as `Cluster::leave` does.
    pub fn leave(&mut self, id: NodeId) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        m.leaving = true;
        for scope in [Scope::Neighbors, Scope::Swarm] {
            if let Some(bytes) = self.sealed_leaving(id) {
                let cmd = Command::Broadcast(bytes, scope);
                self.push(
                    Duration::ZERO,
                    id,
                    Due::Proto(InEvent::Command(self.topic, cmd)),
                );
            }
        }
        self.push(Duration::from_millis(150), id, Due::Quit);
    }

    /// `id` vanishes without a word (kill -9, a cut cable).
    pub fn kill(&mut self, id: NodeId) {
        self.members.remove(&id);
    }

    /// Whether `who` has learned of `whom` (and not seen it leave).
    pub fn knows(&self, who: NodeId, whom: NodeId) -> bool {
        self.members
            .get(&who)
            .is_some_and(|m| m.known.contains(&whom))
    }

    /// Every member knows every other.
    pub fn full(&self) -> bool {
        let n = self.members.len();
        self.members.iter().all(|(id, m)| {
            m.known.len() >= n - 1 && self.members.keys().all(|o| o == id || m.known.contains(o))
        })
    }

    /// Advance virtual time by `d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut handled = 0;
        while self.queue.peek().is_some_and(|p| p.at <= end) && handled < MAX_EVENTS_PER_RUN {
            self.step();
            handled += 1;
        }
        self.now = self.now.max(end);
    }

    /// Advance until `done` holds (checked after every event), at most
    /// `limit` of virtual time: how long it took, or `None`.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&GossipSim) -> bool,
    ) -> Option<Duration> {
        let from = self.now;
        let end = self.now + limit;
        let mut handled = 0;
        // Checked once per link latency of virtual time, not per event: a
        // check over every pair of 100 members after each of millions of
        // events would dominate the run.
        let mut next_check = self.now;
        loop {
            if self.now >= next_check {
                if done(self) {
                    return Some(self.now - from);
                }
                next_check = self.now + self.latency;
            }
            if handled >= MAX_EVENTS_PER_RUN || self.queue.peek().is_none_or(|p| p.at > end) {
                return done(self).then(|| self.now - from);
            }
            self.step();
            handled += 1;
        }
    }

    fn push(&mut self, after: Duration, to: NodeId, due: Due) {
        self.order += 1;
        self.queue.push(Pending {
            at: self.now + after,
            order: self.order,
            to,
            due,
        });
    }

    fn step(&mut self) {
        let Some(p) = self.queue.pop() else { return };
        self.now = self.now.max(p.at);
        let me = p.to;
        match p.due {
            Due::Proto(event) => self.handle(me, event),
            Due::Tick => {
                if !self.members.contains_key(&me) {
                    return;
                }
                self.announce(me, true);
                let lonely = self
                    .members
                    .get(&me)
                    .is_some_and(|m| m.neighbours.is_empty() && !m.known.is_empty());
                if lonely && let Some(m) = self.members.get(&me) {
                    let peers: Vec<NodeId> = m
                        .known
                        .iter()
                        .copied()
                        .filter(|k| self.members.contains_key(k))
                        .collect();
                    let cmd = Command::Join(peers);
                    self.push(
                        Duration::ZERO,
                        me,
                        Due::Proto(InEvent::Command(self.topic, cmd)),
                    );
                } else if let Some(m) = self.members.get(&me) {
                    // Connected: every live member it knows (the transport
                    // dials them all).
                    let connected = m
                        .known
                        .iter()
                        .copied()
                        .filter(|k| self.members.contains_key(k));
                    let stale = stale_peer(
                        connected,
                        &m.heard_at,
                        |p| m.neighbours.contains(&p),
                        self.now,
                        m.started,
                        self.announce_every,
                    );
                    if let Some(peer) = stale {
                        let cmd = Command::Join(vec![peer]);
                        self.push(
                            Duration::ZERO,
                            me,
                            Due::Proto(InEvent::Command(self.topic, cmd)),
                        );
                    }
                }
                self.push(self.announce_every, me, Due::Tick);
            }
            Due::Connected(peer) => {
                let join = self.members.contains_key(&peer)
                    && self.members.get(&me).is_some_and(|m| {
                        m.neighbours.len() < MIN_GOSSIP_NEIGHBOURS && !m.neighbours.contains(&peer)
                    });
                if join {
                    let cmd = Command::Join(vec![peer]);
                    self.handle(me, InEvent::Command(self.topic, cmd));
                }
            }
            Due::Echo => {
                let due = self.members.get(&me).and_then(|m| m.echo.due());
                if due.is_some_and(|at| at <= self.now) {
                    self.announce(me, true);
                }
            }
            Due::Quit => {
                self.handle(me, InEvent::Command(self.topic, Command::Quit));
                self.members.remove(&me);
            }
        }
    }

    fn handle(&mut self, me: NodeId, event: InEvent<NodeId>) {
        let now = self.now;
        let Some(m) = self.members.get_mut(&me) else {
            return;
        };
        let out: Vec<OutEvent<NodeId>> = m.state.handle(event, now, None).collect();
        for o in out {
            match o {
                OutEvent::SendMessage(to, message) => self.send(me, to, message),
                OutEvent::ScheduleTimer(after, timer) => {
                    self.push(after, me, Due::Proto(InEvent::TimerExpired(timer)))
                }
                OutEvent::DisconnectPeer(to) => {
                    self.push(self.latency, to, Due::Proto(InEvent::PeerDisconnected(me)))
                }
                OutEvent::EmitEvent(_, Event::Received(g)) => self.heard(me, &g.content),
                OutEvent::EmitEvent(_, Event::NeighborUp(n)) => {
                    if let Some(m) = self.members.get_mut(&me) {
                        m.neighbours.insert(n);
                    }
                    self.announce(me, false);
                }
                OutEvent::EmitEvent(_, Event::NeighborDown(n)) => {
                    if let Some(m) = self.members.get_mut(&me) {
                        m.neighbours.remove(&n);
                    }
                }
                OutEvent::PeerData(..) => {}
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: Message<NodeId>) {
        self.bytes += message.size().unwrap_or(0) as u64 + 4;
        self.messages += 1;
        if self.members.contains_key(&to) {
            let ev = InEvent::RecvMessage(from, message);
            self.push(self.latency, to, Due::Proto(ev));
        } else {
            // The dial or the stream fails: the sender hears of it.
            self.push(
                self.latency * 2,
                from,
                Due::Proto(InEvent::PeerDisconnected(to)),
            );
        }
    }

    fn next_seq(&mut self, me: NodeId) -> u64 {
        let clock = self.elapsed().as_micros() as u64;
        let Some(m) = self.members.get_mut(&me) else {
            return clock;
        };
        m.last_seq = clock.max(m.last_seq + 1);
        m.last_seq
    }

    /// A periodic (or folded) announcement, or one out of turn, which
    /// [`Echo`] may fold into one at the end of its window.
    fn announce(&mut self, me: NodeId, in_turn: bool) {
        let now = self.now;
        let Some(m) = self.members.get_mut(&me).filter(|m| !m.leaving) else {
            return;
        };
        if in_turn {
            m.echo.sent(now);
        } else if !m.echo.ask(now) {
            if let Some(at) = m.echo.due() {
                let after = at.saturating_duration_since(now);
                self.push(after, me, Due::Echo);
            }
            return;
        }
        let seq = self.next_seq(me);
        let Some(m) = self.members.get(&me) else {
            return;
        };
        let alive = Announcement::Alive {
            node: me.0,
            name: m.name.clone(),
            addr: m.addr,
            token: self.key.token(me),
            seq,
        };
        if let Some(bytes) = seal(&m.secret, &alive) {
            let cmd = Command::Broadcast(bytes, Scope::Swarm);
            self.handle(me, InEvent::Command(self.topic, cmd));
        }
    }

    fn sealed_leaving(&mut self, me: NodeId) -> Option<bytes::Bytes> {
        let seq = self.next_seq(me);
        let m = self.members.get(&me)?;
        let leaving = Announcement::Leaving {
            node: me.0,
            seq,
            token: self.key.token(me),
        };
        seal(&m.secret, &leaving)
    }

    /// What cluster.rs's `Member::heard` does with an announcement.
    fn heard(&mut self, me: NodeId, bytes: &[u8]) {
        let a = match open(&self.key, bytes) {
            Ok(a) => a,
            Err(_) => {
                self.rejected += 1;
                return;
            }
        };
        let author = a.author();
        let Some(m) = self.members.get_mut(&me) else {
            return;
        };
        if author == me || m.seen.get(&author).is_some_and(|s| *s >= a.seq()) {
            return;
        }
        m.seen.insert(author, a.seq());
        m.heard_at.insert(author, self.now);
        match a {
            Announcement::Alive { .. } => {
                if m.known.insert(author) {
                    self.announce(me, false);
                    // Dialled, connected both ways after one more round
                    // trip (QUIC's handshake), then joined.
                    self.push(self.latency * 3, me, Due::Connected(author));
                }
            }
            Announcement::Leaving { .. } => {
                m.known.remove(&author);
            }
        }
    }
}
