//! Process groups, as Erlang's `pg`: any process may join a named group,
//! and `members(group)` gives every member on every connected node.
//!
//! It owns the groups of this node's processes and its copy of every
//! connected node's groups. As in `pg`, each node is the authority on its
//! own processes: a join or leave is applied here and sent to every
//! connected node, a node that connects gets the whole local membership in
//! one sync (which replaces what it had from this node), a node that is
//! lost takes its members with it, and a process that ends leaves its
//! groups. Between two nodes the ops travel in order on one stream, so each
//! node's view of another converges; across nodes membership is eventually
//! consistent. It does not own the transport (plasmoid-mesh) nor which
//! nodes are connected (the transport says so with `peer_up`/`peer_lost`).

use crate::node::{Node, NodeInner};
use crate::pid::{NodeId, Pid};
use crate::remote::RemoteOp;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most groups one process may be in at once.
pub const MAX_GROUPS_PER_PROCESS: usize = 64;

/// Most memberships this node keeps for one other node; past it that
/// node's further joins are dropped (logged), so a peer cannot make this
/// node's memory grow without bound.
pub const MAX_REMOTE_MEMBERSHIPS: usize = 1_000_000;

/// Bytes of group names and pids per sync op: a sync is split so each op
/// stays far below the mesh's frame limit.
const SYNC_CHUNK: usize = 256 << 10;

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// The group name is empty or longer than [`crate::MAX_NAME`] bytes.
    BadName,
    /// The process is already in [`MAX_GROUPS_PER_PROCESS`] groups.
    TooMany,
    /// Cedar denied it.
    Denied(String),
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupError::BadName => write!(f, "a group name is 1 to {} bytes long", crate::MAX_NAME),
            GroupError::TooMany => write!(
                f,
                "a process may be in at most {MAX_GROUPS_PER_PROCESS} groups; leave one first"
            ),
            GroupError::Denied(d) => f.write_str(d),
        }
    }
}

#[derive(Default)]
pub(crate) struct Groups {
    local: BTreeMap<String, BTreeSet<Pid>>,
    /// Each local member's groups, to leave them when it ends.
    joined: HashMap<Pid, BTreeSet<String>>,
    remote: HashMap<NodeId, RemoteGroups>,
}

#[derive(Default)]
struct RemoteGroups {
    groups: BTreeMap<String, BTreeSet<Pid>>,
    count: usize,
}

impl RemoteGroups {
    fn add(&mut self, group: &str, pid: Pid) -> bool {
        if self.count >= MAX_REMOTE_MEMBERSHIPS {
            return false;
        }
        if self
            .groups
            .entry(group.to_string())
            .or_default()
            .insert(pid)
        {
            self.count += 1;
        }
        true
    }

    fn remove(&mut self, group: &str, pid: Pid) {
        if let Some(set) = self.groups.get_mut(group) {
            if set.remove(&pid) {
                self.count -= 1;
            }
            if set.is_empty() {
                self.groups.remove(group);
            }
        }
    }
}

impl Node {
    /// Put `pid` (a process of this node) in `group`; `Ok(false)` if it
    /// already was.
    pub fn join_group(&self, group: &str, pid: Pid) -> Result<bool, GroupError> {
        self.inner.join_group(group, pid)
    }

    /// Take `pid` out of `group`; whether it was in it.
    pub fn leave_group(&self, group: &str, pid: Pid) -> bool {
        self.inner.leave_group(group, pid)
    }

    /// Every member of `group` on this node and the connected ones.
    pub fn group_members(&self, group: &str) -> Vec<Pid> {
        self.inner.group_members(group, false)
    }

    /// The members of `group` on this node.
    pub fn local_group_members(&self, group: &str) -> Vec<Pid> {
        self.inner.group_members(group, true)
    }

    /// The groups with a member on this node or a connected one.
    pub fn which_groups(&self) -> Vec<String> {
        let g = self.inner.groups.lock();
        let mut names: BTreeSet<&String> = g.local.keys().collect();
        for r in g.remote.values() {
            names.extend(r.groups.keys());
        }
        names.into_iter().cloned().collect()
    }
}

impl NodeInner {
    pub(crate) fn join_group(&self, group: &str, pid: Pid) -> Result<bool, GroupError> {
        if group.is_empty() || group.len() > crate::MAX_NAME {
            return Err(GroupError::BadName);
        }
        let mut g = self.groups.lock();
        let mine = g.joined.entry(pid).or_default();
        if mine.contains(group) {
            return Ok(false);
        }
        if mine.len() >= MAX_GROUPS_PER_PROCESS {
            return Err(GroupError::TooMany);
        }
        mine.insert(group.to_string());
        g.local.entry(group.to_string()).or_default().insert(pid);
        // Sent under the lock: no sync to a peer that just came up can
        // overtake it (see `groups_peer_up`).
        self.to_peers(|node| RemoteOp::GroupJoin {
            node,
            group: group.to_string(),
            pid,
        });
        drop(g);
        Ok(true)
    }

    pub(crate) fn leave_group(&self, group: &str, pid: Pid) -> bool {
        let mut g = self.groups.lock();
        let was = g.joined.get_mut(&pid).is_some_and(|s| s.remove(group));
        if g.joined.get(&pid).is_some_and(|s| s.is_empty()) {
            g.joined.remove(&pid);
        }
        if let Some(set) = g.local.get_mut(group) {
            set.remove(&pid);
            if set.is_empty() {
                g.local.remove(group);
            }
        }
        if was {
            self.to_peers(|node| RemoteOp::GroupLeave {
                node,
                group: group.to_string(),
                pid,
            });
        }
        was
    }

    fn group_members(&self, group: &str, local_only: bool) -> Vec<Pid> {
        let g = self.groups.lock();
        let mut out: Vec<Pid> = g.local.get(group).into_iter().flatten().copied().collect();
        if !local_only {
            for r in g.remote.values() {
                out.extend(r.groups.get(group).into_iter().flatten().copied());
            }
        }
        out
    }

    /// A process ended: it leaves every group it was in.
    pub(crate) fn groups_exited(&self, pid: Pid) {
        let mut g = self.groups.lock();
        let left = g.joined.remove(&pid);
        for group in left.into_iter().flatten() {
            if let Some(set) = g.local.get_mut(&group) {
                set.remove(&pid);
                if set.is_empty() {
                    g.local.remove(&group);
                }
            }
            self.to_peers(|node| RemoteOp::GroupLeave {
                node,
                group: group.clone(),
                pid,
            });
        }
    }

    /// A node connected: send it every local membership, replacing what
    /// it had from this node.
    pub(crate) fn groups_peer_up(&self, peer: NodeId) {
        // The lock is held until the sync is queued, so a join or leave
        // after the snapshot is queued after it (the transport's `route`
        // only queues: it never calls back into the node).
        let g = self.groups.lock();
        let chunks = {
            let mut chunks: Vec<Vec<(String, Vec<Pid>)>> = vec![Vec::new()];
            let mut size = 0;
            for (group, pids) in &g.local {
                let mut batch = Vec::new();
                for pid in pids {
                    batch.push(*pid);
                    size += 48;
                    if size + group.len() > SYNC_CHUNK {
                        if let Some(last) = chunks.last_mut() {
                            last.push((group.clone(), std::mem::take(&mut batch)));
                        }
                        chunks.push(Vec::new());
                        size = 0;
                    }
                }
                if !batch.is_empty()
                    && let Some(last) = chunks.last_mut()
                {
                    size += group.len();
                    last.push((group.clone(), batch));
                }
            }
            chunks
        };
        for (i, groups) in chunks.into_iter().enumerate() {
            let _ = self.route(RemoteOp::GroupSync {
                node: peer,
                from: self.id,
                replace: i == 0,
                groups,
            });
        }
        drop(g);
    }

    /// A node is lost: its members go with it.
    pub(crate) fn groups_peer_lost(&self, peer: NodeId) {
        self.groups.lock().remote.remove(&peer);
    }

    /// A group op from node `from`; only its own processes may be named.
    pub(crate) fn group_op(&self, from: NodeId, op: RemoteOp) {
        let valid = |g: &str| !g.is_empty() && g.len() <= crate::MAX_NAME;
        let mut g = self.groups.lock();
        let r = g.remote.entry(from).or_default();
        let mut full = false;
        match op {
            RemoteOp::GroupJoin { group, pid, .. } if pid.node == from && valid(&group) => {
                full = !r.add(&group, pid);
            }
            RemoteOp::GroupLeave { group, pid, .. } => r.remove(&group, pid),
            RemoteOp::GroupSync {
                replace, groups, ..
            } => {
                if replace {
                    *r = RemoteGroups::default();
                }
                for (group, pids) in groups.into_iter().filter(|(g, _)| valid(g)) {
                    for pid in pids.into_iter().filter(|p| p.node == from) {
                        full |= !r.add(&group, pid);
                    }
                }
            }
            _ => {}
        }
        if full {
            tracing::warn!(node = %from.short(), "dropped group joins past {MAX_REMOTE_MEMBERSHIPS} memberships of one node");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(node: u8, seq: u64) -> Pid {
        Pid {
            node: NodeId([node; 32]),
            seq,
        }
    }

    #[tokio::test]
    async fn another_node_names_only_its_own_processes_and_a_sync_replaces() {
        let node = crate::Node::new(crate::NodeConfig::default()).expect("node");
        let local = node.native("member").pid();
        assert_eq!(node.join_group("g", local), Ok(true));
        assert_eq!(node.join_group("g", local), Ok(false));
        let peer = NodeId([2; 32]);
        let inner = &node.inner;
        inner.group_op(
            peer,
            RemoteOp::GroupJoin {
                node: inner.id,
                group: "g".into(),
                pid: pid(2, 1),
            },
        );
        // A pid of a third node, named by `peer`: ignored.
        inner.group_op(
            peer,
            RemoteOp::GroupJoin {
                node: inner.id,
                group: "g".into(),
                pid: pid(3, 1),
            },
        );
        assert_eq!(node.group_members("g"), vec![local, pid(2, 1)]);
        assert_eq!(node.local_group_members("g"), vec![local]);
        inner.group_op(
            peer,
            RemoteOp::GroupSync {
                node: inner.id,
                from: peer,
                replace: true,
                groups: vec![("h".into(), vec![pid(2, 5)])],
            },
        );
        assert_eq!(node.group_members("g"), vec![local], "replaced");
        assert_eq!(node.which_groups(), vec!["g".to_string(), "h".to_string()]);
        inner.groups_peer_lost(peer);
        assert_eq!(node.which_groups(), vec!["g".to_string()]);
        assert!(node.leave_group("g", local));
        assert!(node.which_groups().is_empty());
        assert_eq!(node.join_group("", local), Err(GroupError::BadName));
    }

    #[test]
    fn a_remote_membership_counts_once() {
        let mut r = RemoteGroups::default();
        assert!(r.add("g", pid(2, 1)));
        assert!(r.add("g", pid(2, 1)), "a second join is no new membership");
        assert_eq!(r.count, 1);
        r.remove("g", pid(2, 1));
        assert_eq!(r.count, 0);
        assert!(r.groups.is_empty(), "an empty group is dropped");
    }
}
