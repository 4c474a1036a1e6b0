//! The sampling loop: every interval it reads the node's counters and the
//! host's tree, turns counts into rates, notices restarts and exits, and
//! publishes one [`Sample`]; it keeps the charts' points and the timeline's
//! events in bounded rings, so a page reload finds the last minutes.
//!
//! Its cost is bounded too: the next sample waits at least ten times as
//! long as the last one took, so on a node with very many particles the
//! observer samples less often instead of taking more than a tenth of a
//! core.

use crate::Backend;
use crate::model::{Event, ParticleRow, PeerRow, Point, Sample, TreeNode};
use parking_lot::Mutex;
use plasmoid_runtime::{Node, Pid};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Points kept for the charts: 20 minutes at the default interval.
pub const MAX_POINTS: usize = 2400;
/// Events kept for the timeline (the newest).
pub const MAX_EVENTS: usize = 500;
/// Samples between reads of the release's history (5 s by default).
const HISTORY_EVERY: u32 = 10;
/// How long the host may take to report the tree before a sample goes
/// out without it.
const TREE_WAIT: Duration = Duration::from_millis(400);

/// What the sampler publishes and keeps; shared with the server.
pub struct Shared {
    pub latest: watch::Receiver<Arc<Sample>>,
    pub points: Mutex<VecDeque<Point>>,
    pub events: Mutex<VecDeque<Event>>,
    /// The release's own history (the lock's), re-read every few samples.
    pub history: Mutex<Vec<Event>>,
}

impl Shared {
    /// Record an event (an action from the page, a restart seen).
    pub fn event(&self, kind: &str, text: String) {
        let mut ev = self.events.lock();
        if ev.len() >= MAX_EVENTS {
            ev.pop_front();
        }
        ev.push_back(Event {
            at_ms: now_ms(),
            kind: kind.to_string(),
            text,
        });
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Per-process counts of the last sample, for rates.
struct Seen {
    sent: u64,
    received: u64,
    ticks: u64,
}

pub(crate) struct Sampler {
    node: Node,
    backend: Arc<dyn Backend>,
    release: String,
    node_name: String,
    started: Instant,
    interval: Duration,
    out: watch::Sender<Arc<Sample>>,
    shared: Arc<Shared>,
    seen: HashMap<Pid, Seen>,
    /// Restart counts by child path, and when each last went up (rebuilt
    /// from the tree at each sample, so children gone are forgotten).
    restarts: HashMap<String, (u32, Option<u64>)>,
    /// Restarts of each supervisor's children, by its path, only counting
    /// up (a restarted supervisor's new children start again from 0).
    sup_restarts: HashMap<String, u64>,
    /// The newest exit (its `seq`) already turned into an event.
    exits_seen: u64,
    /// Samples until the lock's history is read again.
    history_in: u32,
    last: Option<(Instant, u64, u64)>,
}

impl Sampler {
    pub fn new(
        node: Node,
        backend: Arc<dyn Backend>,
        release: String,
        node_name: String,
        interval: Duration,
    ) -> (Sampler, Arc<Shared>) {
        let empty = Arc::new(Sample {
            at_ms: now_ms(),
            release: release.clone(),
            node: node_name.clone(),
            node_id: node.id().to_hex(),
            uptime_ms: 0,
            alive: 0,
            tree: None,
            particles: Vec::new(),
            peers: Vec::new(),
            point: Point {
                at_ms: now_ms(),
                msgs_per_s: 0.0,
                alive: 0,
                memory: 0,
                http_per_s: 0.0,
            },
            restarts: Vec::new(),
        });
        let (out, latest) = watch::channel(empty);
        let shared = Arc::new(Shared {
            latest,
            points: Mutex::new(VecDeque::new()),
            events: Mutex::new(VecDeque::new()),
            history: Mutex::new(Vec::new()),
        });
        let sampler = Sampler {
            node: node.clone(),
            backend,
            release,
            node_name,
            started: Instant::now(),
            interval,
            out,
            shared: shared.clone(),
            seen: HashMap::new(),
            restarts: HashMap::new(),
            sup_restarts: HashMap::new(),
            exits_seen: node.recent_exits().last().map_or(0, |e| e.seq),
            history_in: 0,
            last: None,
        };
        (sampler, shared)
    }

    /// Sample until the server stops (every receiver gone).
    pub async fn run(mut self) {
        loop {
            let began = Instant::now();
            let sample = self.sample().await;
            let took = began.elapsed();
            if self.out.send(Arc::new(sample)).is_err() {
                return;
            }
            tokio::time::sleep(self.interval.max(took * 10)).await;
        }
    }

    async fn sample(&mut self) -> Sample {
        let now = Instant::now();
        let at_ms = now_ms();
        let dt = self
            .last
            .map_or(self.interval, |(t, _, _)| now - t)
            .as_secs_f64()
            .max(0.001);
        let mut tree = tokio::time::timeout(TREE_WAIT, self.backend.tree())
            .await
            .ok()
            .flatten();
        let stats = self.node.process_stats();
        let by_pid: HashMap<Pid, &plasmoid_runtime::stats::ProcessStats> =
            stats.iter().map(|s| (s.pid, s)).collect();
        // Children by pid (their id and restarts), states and restarts seen.
        let mut children: HashMap<String, (String, u32)> = HashMap::new();
        // A sample without the tree (the host was slow to answer) keeps
        // what was known: forgetting it would make every child look new.
        if let Some(t) = tree.as_mut() {
            let mut next = HashMap::new();
            self.annotate(t, "", &by_pid, at_ms, &mut next);
            t.walk(None, &mut |n, _| {
                if let Some(p) = &n.pid
                    && n.strategy.is_none()
                {
                    children.insert(p.clone(), (n.id.clone(), n.restarts));
                }
            });
            self.restarts = next;
            let known = &self.restarts;
            self.sup_restarts.retain(|path, _| known.contains_key(path));
        }
        let mut restarts_per_sup: Vec<(String, u64)> = self
            .sup_restarts
            .iter()
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        restarts_per_sup.sort();
        if self.history_in == 0 {
            let mut h = self.backend.history();
            let skip = h.len().saturating_sub(MAX_EVENTS);
            h.drain(..skip);
            *self.shared.history.lock() = h;
            self.history_in = HISTORY_EVERY;
        }
        self.history_in -= 1;
        self.exit_events();
        let me = self.node.id();
        let mut remote: HashMap<plasmoid_runtime::NodeId, (usize, usize)> = HashMap::new();
        let mut memory = 0u64;
        let mut seen = HashMap::with_capacity(stats.len());
        let particles: Vec<ParticleRow> = stats
            .iter()
            .map(|s| {
                for l in &s.links {
                    if l.node != me {
                        remote.entry(l.node).or_default().0 += 1;
                    }
                }
                for m in s.monitors.iter().chain(&s.monitored_by) {
                    if m.node != me {
                        remote.entry(m.node).or_default().1 += 1;
                    }
                }
                memory += s.memory as u64;
                let before = self.seen.get(&s.pid);
                let d = |now: u64, was: Option<u64>| now.saturating_sub(was.unwrap_or(now));
                let pid = s.pid.to_string();
                let child = children.get(&pid);
                let row = ParticleRow {
                    child: child.map(|c| c.0.clone()),
                    restarts: child.map_or(0, |c| c.1),
                    name: s.name.clone(),
                    component: s.component.clone(),
                    version: s.version.clone(),
                    native: s.version.is_none(),
                    mailbox: s.mailbox,
                    memory: s.memory,
                    ticks: s.ticks,
                    ticks_per_interval: d(s.ticks, before.map(|b| b.ticks)),
                    received: s.received,
                    sent: s.sent,
                    in_per_s: d(s.received, before.map(|b| b.received)) as f64 / dt,
                    out_per_s: d(s.sent, before.map(|b| b.sent)) as f64 / dt,
                    links: s.links.len(),
                    monitors: s.monitors.len(),
                    pid,
                };
                seen.insert(
                    s.pid,
                    Seen {
                        sent: s.sent,
                        received: s.received,
                        ticks: s.ticks,
                    },
                );
                row
            })
            .collect();
        self.seen = seen;
        let names = self.node.peers();
        let peers = self
            .node
            .peer_stats()
            .into_iter()
            .filter(|p| p.node != me)
            .map(|p| {
                let (links, monitors) = remote.get(&p.node).copied().unwrap_or_default();
                PeerRow {
                    name: names
                        .iter()
                        .find(|(_, id)| *id == p.node)
                        .map(|(n, _)| n.clone())
                        .unwrap_or_default(),
                    id: p.node.to_hex(),
                    connected: p.connected,
                    rtt_ms: p.rtt.map(|r| r.as_secs_f64() * 1000.0),
                    bytes_sent: p.bytes_sent,
                    bytes_received: p.bytes_received,
                    remote_links: links,
                    remote_monitors: monitors,
                }
            })
            .collect();
        let (_, received) = self.node.message_totals();
        let http: u64 = self.node.http_counts().iter().map(|(_, n)| n).sum();
        let (msgs_per_s, http_per_s) = match self.last {
            Some((_, r, h)) => (
                received.saturating_sub(r) as f64 / dt,
                http.saturating_sub(h) as f64 / dt,
            ),
            None => (0.0, 0.0),
        };
        self.last = Some((now, received, http));
        let alive = self.node.live_particles();
        let point = Point {
            at_ms,
            msgs_per_s,
            alive,
            memory,
            http_per_s,
        };
        {
            let mut points = self.shared.points.lock();
            if points.len() >= MAX_POINTS {
                points.pop_front();
            }
            points.push_back(point.clone());
        }
        Sample {
            at_ms,
            release: self.release.clone(),
            node: self.node_name.clone(),
            node_id: me.to_hex(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            alive,
            tree,
            particles,
            peers,
            point,
            restarts: restarts_per_sup,
        }
    }

    /// Fill in versions and states, and notice restarts (by child path).
    fn annotate(
        &mut self,
        n: &mut TreeNode,
        parent: &str,
        by_pid: &HashMap<Pid, &plasmoid_runtime::stats::ProcessStats>,
        at_ms: u64,
        next: &mut HashMap<String, (u32, Option<u64>)>,
    ) {
        let path = if parent.is_empty() {
            n.id.clone()
        } else {
            format!("{parent}/{}", n.id)
        };
        let pid = n.pid.as_deref().and_then(|p| self.node.resolve(p));
        n.state = match pid {
            None => "restarting".into(),
            Some(p) if p.node != self.node.id() => "remote".into(),
            Some(p) => match by_pid.get(&p) {
                Some(s) => {
                    n.version = s.version.clone();
                    "running".into()
                }
                None => "restarting".into(),
            },
        };
        if n.strategy.is_some() {
            self.sup_restarts.entry(path.clone()).or_default();
        }
        let before = self.restarts.get(&path).copied();
        let (was, mut when) = before.unwrap_or((0, None));
        if n.restarts > was && !parent.is_empty() {
            *self.sup_restarts.entry(parent.to_string()).or_default() +=
                u64::from(n.restarts - was);
        }
        // Only a restart seen happening is an event (not the count found
        // when the observer starts).
        if before.is_some() && n.restarts > was {
            when = Some(at_ms);
            let text = format!(
                "{path} restarted (restart {}){}",
                n.restarts,
                n.pid
                    .as_ref()
                    .map(|p| format!(", now {p}"))
                    .unwrap_or_default()
            );
            self.shared.event("restart", text);
        }
        next.insert(path.clone(), (n.restarts, when));
        n.restarted_at = when;
        for c in &mut n.children {
            self.annotate(c, &path, by_pid, at_ms, next);
        }
    }

    /// Abnormal exits since the last sample become events.
    fn exit_events(&mut self) {
        let exits = self.node.recent_exits();
        let mut newest = self.exits_seen;
        for e in exits.iter().filter(|e| e.seq > self.exits_seen) {
            newest = newest.max(e.seq);
            if e.reason == "normal" || e.reason.starts_with("shutdown") {
                continue;
            }
            let who = e.name.clone().unwrap_or_else(|| e.component.clone());
            self.shared
                .event("exit", format!("{who} ({}) exited: {}", e.pid, e.reason));
        }
        self.exits_seen = newest;
    }
}
