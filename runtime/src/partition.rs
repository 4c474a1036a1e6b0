//! Partitions: which side of a split cluster keeps its failover children,
//! as Akka's split-brain resolver decides which side keeps its members.
//!
//! This module owns the node's view of the cluster (the members it has
//! seen up, which of them it reaches now), the release's policy that picks
//! a side, and the node's [`Standing`] that supervisors watch. It stops one
//! thing itself: particles this node started for supervisors on other
//! nodes, once its side has lost. It does not restart anything: the
//! supervisors (plasmoid-supervisor) hold their failover children while the
//! standing is not [`Standing::Serving`] and start them again when it is.
//!
//! The rule, with `stable_after` as the delay:
//! - Every node the transport reports up joins the members; a node that
//!   left on purpose (a `Leaving` announcement) leaves them.
//! - When a member becomes unreachable the standing is `Pending` at once:
//!   nothing lost is restarted yet.
//! - Once the reachable set has not changed for `stable_after`, the policy
//!   judges this side (the reachable members and this node) against all
//!   members. The winning side drops the unreachable ones from its members
//!   (Akka's "downing") and serves; the losing side is `Stopped`.
//! - A side that reaches every member again serves at once.

use crate::node::Node;
use crate::pid::{NodeId, Pid};
use crate::reason::ExitReason;
use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::watch;

/// Which side of a partition keeps its failover children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionPolicy {
    /// The side with more than half of the members; on an even split, the
    /// side with the most senior member.
    KeepMajority,
    /// The side with the most senior member (the first of the manifest's
    /// `[nodes]`, then the others in manifest order, then extra members).
    KeepOldest,
    /// A side with at least this many members (this node included).
    StaticQuorum(usize),
}

impl std::fmt::Display for PartitionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionPolicy::KeepMajority => f.write_str("keep-majority"),
            PartitionPolicy::KeepOldest => f.write_str("keep-oldest"),
            PartitionPolicy::StaticQuorum(n) => write!(f, "static-quorum({n})"),
        }
    }
}

impl std::str::FromStr for PartitionPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let help = "write \"keep-majority\", \"keep-oldest\" or \"static-quorum(N)\" with N ≥ 1";
        match s {
            "keep-majority" => Ok(PartitionPolicy::KeepMajority),
            "keep-oldest" => Ok(PartitionPolicy::KeepOldest),
            _ => match s
                .strip_prefix("static-quorum(")
                .and_then(|r| r.strip_suffix(')'))
            {
                Some(n) => match n.trim().parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(PartitionPolicy::StaticQuorum(n)),
                    _ => Err(format!("`{n}` is not a quorum size; {help}")),
                },
                None => Err(format!("partition policy `{s}` is not known; {help}")),
            },
        }
    }
}

/// A release's partition handling.
#[derive(Clone, Debug)]
pub struct PartitionConfig {
    pub policy: PartitionPolicy,
    /// How long the reachable set must stay unchanged before a side is
    /// judged (Akka's `stable-after`).
    pub stable_after: Duration,
    /// Members by seniority, most senior first: the manifest's nodes in
    /// order. A member not listed is junior to every listed one.
    pub seniority: Vec<NodeId>,
}

/// What a node's side of the cluster may do with failover children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Run them and restart them as usual.
    Serving,
    /// A member is unreachable and the cluster has not been stable for
    /// `stable_after`: keep what runs, restart nothing that was lost.
    Pending,
    /// This side lost: its failover children are stopped.
    Stopped,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Serving => "serving",
            Standing::Pending => "pending",
            Standing::Stopped => "stopped",
        }
    }
}

/// Whether `side` (the members this node reaches, itself included) wins
/// against the rest of `members` under `policy`.
pub fn side_wins(
    policy: &PartitionPolicy,
    seniority: &[NodeId],
    members: &BTreeSet<NodeId>,
    side: &BTreeSet<NodeId>,
) -> bool {
    let senior = || {
        members.iter().min_by_key(|id| {
            let rank = seniority
                .iter()
                .position(|s| s == *id)
                .unwrap_or(usize::MAX);
            (rank, **id)
        })
    };
    let holds_senior = || senior().is_some_and(|s| side.contains(s));
    match policy {
        PartitionPolicy::KeepMajority => {
            let (n, all) = (side.len(), members.len());
            n * 2 > all || (n * 2 == all && holds_senior())
        }
        PartitionPolicy::KeepOldest => holds_senior(),
        PartitionPolicy::StaticQuorum(q) => side.len() >= *q,
    }
}

/// A node's partition state (in `NodeInner`).
pub(crate) struct Partition {
    config: OnceLock<PartitionConfig>,
    view: parking_lot::Mutex<View>,
    standing: watch::Sender<Standing>,
    /// Particles started here for a supervisor on another node: stopped
    /// when this side loses.
    failover: parking_lot::Mutex<HashSet<Pid>>,
}

#[derive(Default)]
struct View {
    members: BTreeSet<NodeId>,
    reachable: BTreeSet<NodeId>,
    /// Bumped at every change; a judgement waits for it to stay put.
    epoch: u64,
}

impl Default for Partition {
    fn default() -> Self {
        Partition {
            config: OnceLock::new(),
            view: Default::default(),
            standing: watch::channel(Standing::Serving).0,
            failover: Default::default(),
        }
    }
}

/// Past this many remembered failover particles, the dead are swept.
const FAILOVER_SWEEP: usize = 4096;

/// What [`Node::partition_view`] reports.
#[derive(Clone, Debug)]
pub struct PartitionView {
    pub policy: Option<PartitionPolicy>,
    pub standing: Standing,
    pub members: Vec<NodeId>,
    pub reachable: Vec<NodeId>,
}

enum Change {
    Up(NodeId),
    Lost(NodeId),
    Left(NodeId),
}

impl Node {
    /// Judge partitions with `config` from now on (once; later calls are
    /// ignored). Without it a node always serves.
    pub fn set_partition(&self, config: PartitionConfig) {
        let _ = self.inner.partition.config.set(config);
    }

    /// The standing supervisors follow; always `Serving` without a policy.
    pub fn standing(&self) -> watch::Receiver<Standing> {
        self.inner.partition.standing.subscribe()
    }

    /// The members and reachable nodes as the partition rule sees them.
    pub fn partition_view(&self) -> PartitionView {
        let p = &self.inner.partition;
        let v = p.view.lock();
        PartitionView {
            policy: p.config.get().map(|c| c.policy.clone()),
            standing: *p.standing.borrow(),
            members: v.members.iter().copied().collect(),
            reachable: v.reachable.iter().copied().collect(),
        }
    }

    pub(crate) fn partition_up(&self, node: NodeId) {
        self.partition_change(Change::Up(node));
    }

    pub(crate) fn partition_lost(&self, node: NodeId) {
        self.partition_change(Change::Lost(node));
    }

    pub(crate) fn partition_left(&self, node: NodeId) {
        self.partition_change(Change::Left(node));
    }

    /// `pid` was started here for a supervisor on another node.
    pub(crate) fn partition_failover(&self, pid: Pid) {
        let p = &self.inner.partition;
        if p.config.get().is_none() {
            return;
        }
        let mut set = p.failover.lock();
        if set.len() >= FAILOVER_SWEEP {
            set.retain(|pid| self.inner.lookup(*pid).is_some());
        }
        set.insert(pid);
    }

    fn partition_change(&self, change: Change) {
        let p = &self.inner.partition;
        let Some(config) = p.config.get() else {
            return;
        };
        let (epoch, whole) = {
            let mut v = p.view.lock();
            match change {
                Change::Up(n) => {
                    v.members.insert(n);
                    v.reachable.insert(n);
                }
                Change::Lost(n) => {
                    v.reachable.remove(&n);
                }
                Change::Left(n) => {
                    v.members.remove(&n);
                    v.reachable.remove(&n);
                }
            }
            v.epoch += 1;
            (v.epoch, v.members.is_subset(&v.reachable))
        };
        if whole {
            self.set_standing(Standing::Serving, "every member is reachable");
            return;
        }
        if *p.standing.borrow() == Standing::Serving {
            self.set_standing(Standing::Pending, "a member is unreachable");
        }
        let node = self.clone();
        let wait = config.stable_after;
        self.inner.rt.spawn(async move {
            tokio::time::sleep(wait).await;
            node.partition_judge(epoch);
        });
    }

    /// The view has not changed since `epoch`: decide this side.
    fn partition_judge(&self, epoch: u64) {
        let p = &self.inner.partition;
        let Some(config) = p.config.get() else {
            return;
        };
        let (wins, reached, all, lost) = {
            let mut v = p.view.lock();
            if v.epoch != epoch {
                return;
            }
            let mut side = v.reachable.clone();
            side.insert(self.inner.id);
            let mut members = v.members.clone();
            members.insert(self.inner.id);
            let wins = side_wins(&config.policy, &config.seniority, &members, &side);
            let lost: Vec<NodeId> = members.difference(&side).copied().collect();
            if wins {
                // Down the other side: it is no longer counted.
                v.members = v.reachable.clone();
            }
            (wins, side.len(), members.len(), lost)
        };
        let lost: Vec<String> = lost
            .iter()
            .map(|id| self.node_name(*id).unwrap_or_else(|| id.short()))
            .collect();
        if wins {
            tracing::warn!(policy = %config.policy, reached, members = all, down = ?lost,
                "partition: this side wins; the unreachable members are down and their failover children restart here");
            self.set_standing(Standing::Serving, "this side won");
        } else {
            tracing::warn!(policy = %config.policy, reached, members = all, unreachable = ?lost,
                "partition: this side lost; stopping its failover children until the cluster heals");
            self.set_standing(Standing::Stopped, "this side lost");
            self.stop_failover_particles();
        }
    }

    fn set_standing(&self, standing: Standing, why: &str) {
        let changed = self.inner.partition.standing.send_if_modified(|s| {
            let changed = *s != standing;
            *s = standing;
            changed
        });
        if changed {
            tracing::info!(
                standing = standing.as_str(),
                why,
                "partition standing changed"
            );
        }
    }

    /// Kill what this node runs for supervisors elsewhere: they restart
    /// their children on the winning side.
    fn stop_failover_particles(&self) {
        let pids: Vec<Pid> = self.inner.partition.failover.lock().drain().collect();
        let from = Pid {
            node: self.inner.id,
            seq: 0,
        };
        for pid in pids {
            if let Some(proc) = self.inner.lookup(pid) {
                tracing::info!(%pid, "partition: stopping a failover child started for another node");
                self.inner
                    .deliver_exit(from, &proc, ExitReason::Kill, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<NodeId> {
        (1..=n).map(|i| NodeId([i; 32])).collect()
    }

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn majority_wins_and_an_even_split_goes_to_the_senior_side() {
        let n = ids(5);
        let all = set(&n);
        let p = PartitionPolicy::KeepMajority;
        assert!(side_wins(&p, &n, &all, &set(&n[..3])));
        assert!(!side_wins(&p, &n, &all, &set(&n[3..])));
        let four = set(&n[..4]);
        assert!(side_wins(&p, &n, &four, &set(&n[..2])));
        assert!(!side_wins(&p, &n, &four, &set(&n[2..4])));
        // Seniority is the manifest's order, not the ids'.
        let reversed: Vec<NodeId> = n.iter().rev().copied().collect();
        assert!(side_wins(&p, &reversed, &four, &set(&n[2..4])));
    }

    #[test]
    fn keep_oldest_and_static_quorum() {
        let n = ids(5);
        let all = set(&n);
        let oldest = PartitionPolicy::KeepOldest;
        assert!(side_wins(&oldest, &n, &all, &set(&n[..1])));
        assert!(!side_wins(&oldest, &n, &all, &set(&n[1..])));
        let q = PartitionPolicy::StaticQuorum(3);
        assert!(side_wins(&q, &n, &all, &set(&n[2..])));
        assert!(!side_wins(&q, &n, &all, &set(&n[..2])));
        // Unlisted members are junior: the listed one is the oldest.
        assert!(side_wins(&oldest, &n[4..], &all, &set(&n[4..])));
    }

    #[test]
    fn policies_parse_with_help() {
        assert_eq!(
            "static-quorum(3)".parse::<PartitionPolicy>(),
            Ok(PartitionPolicy::StaticQuorum(3))
        );
        assert_eq!(
            "keep-oldest".parse::<PartitionPolicy>(),
            Ok(PartitionPolicy::KeepOldest)
        );
        for bad in ["majority", "static-quorum(0)", "static-quorum(x)"] {
            let e = bad.parse::<PartitionPolicy>().unwrap_err();
            assert!(e.contains("keep-majority"), "{e}");
        }
    }
}
