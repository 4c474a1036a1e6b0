//! Counters a node keeps for whoever watches it (plasmoid-observer's
//! dashboard and `/metrics`): per process and per node, and short logs of
//! the last exits and Cedar denials.
//!
//! It owns only counting and reading counts; it does not format, serve or
//! aggregate them over time (plasmoid-observer does). Counting is cheap by
//! design, because it runs on every message: a process's counters are
//! written by one side only (the mailbox's under its lock, the sender's by
//! its own task), so they are plain loads and stores, not atomic
//! read-modify-writes; node-wide counters count only rare events (spawns,
//! exits, refusals). `NodeConfig::metrics = false` turns the per-message
//! counting off, which is how `plasmoid bench ring` measures its cost.

use crate::node::{Node, NodeInner};
use crate::pid::Pid;
use crate::reason::ExitReason;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// How many exits and denials a node remembers (the newest).
pub const LOG_LEN: usize = 256;

/// Most distinct (route, status) pairs counted; past it, requests count
/// under route `other`, so a flood of odd paths cannot grow the map.
const MAX_HTTP_SERIES: usize = 512;

/// Exit reasons as counted: the kinds, not the texts (texts are guest-chosen).
pub const EXIT_KINDS: [&str; 6] = [
    "normal",
    "shutdown",
    "killed",
    "exception",
    "noproc",
    "noconnection",
];

fn exit_kind(reason: &ExitReason) -> usize {
    match reason {
        ExitReason::Normal => 0,
        ExitReason::Shutdown(_) => 1,
        ExitReason::Kill | ExitReason::Killed => 2,
        ExitReason::Exception(_) => 3,
        ExitReason::Noproc => 4,
        ExitReason::Noconnection => 5,
    }
}

/// Add one to a counter only its owner writes: no locked instruction.
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// A process's own counters, in its table entry.
#[derive(Default)]
pub(crate) struct ProcCounters {
    /// Messages it sent (written by its own task only).
    pub sent: AtomicU64,
    /// Epoch ticks it ran for (written by its own task only).
    pub ticks: AtomicU64,
    /// Bytes of linear memory its instance holds.
    pub memory: AtomicUsize,
}

/// The longest exit reason or denied resource remembered (they are
/// guest-chosen text); longer ones are cut.
pub const MAX_TEXT: usize = 300;

fn cut(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// One exit, as remembered.
#[derive(Clone, Debug)]
pub struct ExitRecord {
    /// Counts up by one per exit: what is new since a last look.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub pid: Pid,
    pub component: String,
    pub name: Option<String>,
    pub reason: String,
}

/// One Cedar denial, as remembered; repeats of the newest one count up.
#[derive(Clone, Debug)]
pub struct DenialRecord {
    pub at_ms: u64,
    pub pid: Pid,
    pub component: String,
    pub action: String,
    pub resource: String,
    pub count: u64,
}

/// The node-wide counters.
#[derive(Default)]
pub(crate) struct NodeStats {
    pub spawns: AtomicU64,
    pub exits: [AtomicU64; EXIT_KINDS.len()],
    pub mailbox_full: AtomicU64,
    pub denials: AtomicU64,
    pub swaps: AtomicU64,
    pub rollbacks: AtomicU64,
    /// Messages sent and received by processes that have ended, so the
    /// node's totals never go down.
    pub gone_sent: AtomicU64,
    pub gone_received: AtomicU64,
    /// The highest totals reported, so they never go down while a process
    /// is between leaving the table and being added to the `gone` counts.
    reported_sent: AtomicU64,
    reported_received: AtomicU64,
    exit_seq: AtomicU64,
    http: Mutex<HashMap<(String, u16), u64>>,
    exit_log: Mutex<VecDeque<ExitRecord>>,
    denial_log: Mutex<VecDeque<DenialRecord>>,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl NodeStats {
    pub fn exited(&self, pid: Pid, component: &str, name: Option<String>, reason: &ExitReason) {
        self.exits[exit_kind(reason)].fetch_add(1, Ordering::Relaxed);
        let mut log = self.exit_log.lock();
        if log.len() >= LOG_LEN {
            log.pop_front();
        }
        log.push_back(ExitRecord {
            seq: self.exit_seq.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms: now_ms(),
            pid,
            component: component.to_string(),
            name,
            reason: cut(&reason.to_string()),
        });
    }

    pub fn count_http(&self, route: &str, status: u16) {
        let mut m = self.http.lock();
        let key = (route.to_string(), status);
        if !m.contains_key(&key) && m.len() >= MAX_HTTP_SERIES {
            *m.entry(("other".to_string(), status)).or_default() += 1;
            return;
        }
        *m.entry(key).or_default() += 1;
    }

    pub fn denied(&self, pid: Pid, component: &str, action: &str, resource: &str) {
        self.denials.fetch_add(1, Ordering::Relaxed);
        let resource = cut(resource);
        let mut log = self.denial_log.lock();
        if let Some(last) = log.back_mut()
            && last.pid == pid
            && last.action == action
            && last.resource == resource
        {
            last.count += 1;
            last.at_ms = now_ms();
            return;
        }
        if log.len() >= LOG_LEN {
            log.pop_front();
        }
        log.push_back(DenialRecord {
            at_ms: now_ms(),
            pid,
            component: component.to_string(),
            action: action.to_string(),
            resource,
            count: 1,
        });
    }
}

/// What a process looks like now, for a table row.
#[derive(Clone, Debug)]
pub struct ProcessStats {
    pub pid: Pid,
    pub component: String,
    pub name: Option<String>,
    /// The version it runs (`None` for native processes).
    pub version: Option<String>,
    pub mailbox: usize,
    pub memory: usize,
    pub ticks: u64,
    pub received: u64,
    pub sent: u64,
    pub trap_exit: bool,
    pub links: Vec<Pid>,
    /// Processes this one monitors.
    pub monitors: Vec<Pid>,
    /// Processes that monitor this one.
    pub monitored_by: Vec<Pid>,
}

/// The node's totals, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct NodeTotals {
    pub spawns: u64,
    /// By [`EXIT_KINDS`], in that order.
    pub exits: Vec<u64>,
    pub mailbox_full: u64,
    pub denials: u64,
    pub swaps: u64,
    pub rollbacks: u64,
}

impl Node {
    /// Every process of this node now (particles and native ones).
    pub fn process_stats(&self) -> Vec<ProcessStats> {
        let procs: Vec<_> = self.inner.procs.iter().map(|e| e.value().clone()).collect();
        procs.iter().map(|p| stats_of(p)).collect()
    }

    /// One process of this node, if it is alive.
    pub fn process_stats_of(&self, pid: Pid) -> Option<ProcessStats> {
        self.inner.lookup(pid).map(|p| stats_of(&p))
    }

    pub fn totals(&self) -> NodeTotals {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NodeTotals {
            spawns: get(&s.spawns),
            exits: s.exits.iter().map(get).collect(),
            mailbox_full: get(&s.mailbox_full),
            denials: get(&s.denials),
            swaps: get(&s.swaps),
            rollbacks: get(&s.rollbacks),
        }
    }

    /// Messages sent and received by this node's processes, ended ones
    /// included: (sent, received).
    pub fn message_totals(&self) -> (u64, u64) {
        let s = &self.inner.stats;
        let (mut sent, mut received) = (
            s.gone_sent.load(Ordering::Relaxed),
            s.gone_received.load(Ordering::Relaxed),
        );
        for p in self.inner.procs.iter() {
            sent += p.counters.sent.load(Ordering::Relaxed);
            received += p.mailbox.received();
        }
        let sent = s.reported_sent.fetch_max(sent, Ordering::Relaxed).max(sent);
        let received = s
            .reported_received
            .fetch_max(received, Ordering::Relaxed)
            .max(received);
        (sent, received)
    }

    /// The newest exits, oldest first.
    pub fn recent_exits(&self) -> Vec<ExitRecord> {
        self.inner.stats.exit_log.lock().iter().cloned().collect()
    }

    /// The newest Cedar denials of this node's particles, oldest first.
    pub fn recent_denials(&self) -> Vec<DenialRecord> {
        self.inner.stats.denial_log.lock().iter().cloned().collect()
    }

    /// Count one HTTP request answered for `route` with `status`.
    pub fn count_http(&self, route: &str, status: u16) {
        self.inner.stats.count_http(route, status);
    }

    /// HTTP requests answered, by (route, status).
    pub fn http_counts(&self) -> Vec<((String, u16), u64)> {
        let mut v: Vec<_> = self
            .inner
            .stats
            .http
            .lock()
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        v.sort();
        v
    }
}

fn stats_of(p: &crate::process::Process) -> ProcessStats {
    let (links, monitors, monitored_by, name) = {
        let st = p.state.lock();
        let mut links: Vec<Pid> = st.links.iter().copied().collect();
        links.sort();
        let mut monitors: Vec<Pid> = st.monitoring.values().copied().collect();
        monitors.sort();
        let mut by: Vec<Pid> = st.watchers.values().copied().collect();
        by.sort();
        (links, monitors, by, st.name.clone())
    };
    let version = p
        .code
        .lock()
        .running
        .as_ref()
        .map(|c| c.version.to_string());
    ProcessStats {
        pid: p.pid,
        component: p.component.to_string(),
        name,
        version,
        mailbox: p.mailbox.len(),
        memory: p.counters.memory.load(Ordering::Relaxed),
        ticks: p.counters.ticks.load(Ordering::Relaxed),
        received: p.mailbox.received(),
        sent: p.counters.sent.load(Ordering::Relaxed),
        trap_exit: p.traps_exits(),
        links,
        monitors,
        monitored_by,
    }
}

impl NodeInner {
    /// A process ended: keep its message counts in the node's totals.
    pub(crate) fn count_gone(&self, p: &crate::process::Process) {
        let s = &self.stats;
        s.gone_sent
            .fetch_add(p.counters.sent.load(Ordering::Relaxed), Ordering::Relaxed);
        s.gone_received
            .fetch_add(p.mailbox.received(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid::NodeId;

    fn pid(seq: u64) -> Pid {
        Pid {
            node: NodeId([1; 32]),
            seq,
        }
    }

    #[test]
    fn repeated_denials_count_up_in_one_entry() {
        let s = NodeStats::default();
        for _ in 0..3 {
            s.denied(pid(1), "probe", "register", "x");
        }
        s.denied(pid(1), "probe", "register", "y");
        let log = s.denial_log.lock();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].count, 3);
        assert_eq!(s.denials.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn logs_keep_the_newest_within_their_bound() {
        let s = NodeStats::default();
        for i in 0..(LOG_LEN as u64 + 10) {
            s.exited(pid(i), "c", None, &ExitReason::Exception(format!("{i}")));
            s.denied(pid(i), "c", "send", "d");
        }
        let exits = s.exit_log.lock();
        assert_eq!(exits.len(), LOG_LEN);
        assert_eq!(exits[0].pid, pid(10));
        assert_eq!(s.denial_log.lock().len(), LOG_LEN);
        assert_eq!(s.exits[3].load(Ordering::Relaxed), LOG_LEN as u64 + 10);
    }

    #[test]
    fn http_series_are_bounded() {
        let s = NodeStats::default();
        for i in 0..(MAX_HTTP_SERIES + 50) {
            s.count_http(&format!("/r{i}"), 200);
        }
        let m = s.http.lock();
        assert_eq!(m.len(), MAX_HTTP_SERIES + 1);
        assert_eq!(m.get(&("other".to_string(), 200)), Some(&50));
    }
}
