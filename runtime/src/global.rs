//! Cluster-wide names, as Erlang's `global`: a name owned by one pid in the
//! whole cluster, found from any node.
//!
//! It owns every node's copy of the table and the rule that keeps it one
//! table. Each name has a home: of this node and the connected ones, the
//! one whose id hashes highest with the name (rendezvous hashing). A
//! registration goes to the name's home, which alone says yes or no, so two
//! registrations of one name at once get exactly one yes; the home stamps
//! the winner (milliseconds since the epoch) and sends it to every node.
//! Lookups read the local copy. A name goes when its owner ends (its node
//! tells every node) or its node is lost (every node drops that node's
//! names itself). Nodes that connect, or reconnect after a partition, send
//! each other their tables; where both sides registered a name, every node
//! keeps the earlier registration (the smaller stamp, then the smaller pid)
//! and the loser's node sends it an exit signal, `shutdown("global name
//! conflict: …")`: a particle that traps exits is told by a message and
//! lives on, others end, as with `global`'s default resolver. It does not
//! own the transport nor membership (the transport says who is connected).

use crate::node::{Node, NodeInner, RegistryError};
use crate::pid::{NodeId, Pid};
use crate::reason::ExitReason;
use crate::remote::RemoteOp;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::oneshot;

/// Most names the table holds; past it, new registrations are refused
/// and names sent by other nodes are dropped (logged).
pub const MAX_GLOBAL_NAMES: usize = 1_000_000;

/// How long a registration waits for the name's home to answer.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// Entries per sync op, far below the mesh's frame limit.
const SYNC_CHUNK: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub pid: Pid,
    pub stamp: u64,
}

impl Entry {
    /// Whether `self` is kept over `other` for the same name.
    fn wins_over(&self, other: &Entry) -> bool {
        (self.stamp, self.pid) < (other.stamp, other.pid)
    }
}

#[derive(Default)]
pub(crate) struct Globals {
    table: HashMap<String, Entry>,
    /// The names each local owner holds, to drop them when it ends.
    owned: HashMap<Pid, BTreeSet<String>>,
    /// Registrations waiting for their home's answer, by reference.
    claims: HashMap<u64, (NodeId, oneshot::Sender<bool>)>,
}

/// FNV-1a: stable across builds and machines, as a home must be.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The home of `name` among `members`.
fn home_of(name: &str, members: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
    members
        .into_iter()
        .max_by_key(|m| (fnv(&[name.as_bytes(), &m.0]), *m))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Node {
    /// Register `pid` (a process of this node) as `name` in the whole
    /// cluster. `Taken` when another pid holds it.
    pub async fn register_global(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        let inner = &self.inner;
        let home = inner.global_home(name);
        if home == inner.id {
            return if inner.global_claim(name, pid) {
                Ok(())
            } else {
                Err(RegistryError::Taken)
            };
        }
        let reference = inner.next_ref();
        let (tx, rx) = oneshot::channel();
        inner.globals.lock().claims.insert(reference, (home, tx));
        let op = RemoteOp::GlobalClaim {
            node: home,
            from: inner.id,
            name: name.to_string(),
            pid,
            reference,
        };
        let unreachable = || {
            RegistryError::Denied(format!(
                "the home node of global name `{name}` ({}) did not answer within {} ms; try again",
                home.short(),
                CLAIM_TIMEOUT.as_millis()
            ))
        };
        if inner.route(op).is_err() {
            inner.globals.lock().claims.remove(&reference);
            return Err(unreachable());
        }
        match tokio::time::timeout(CLAIM_TIMEOUT, rx).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(RegistryError::Taken),
            Ok(Err(_)) => Err(unreachable()),
            Err(_) => {
                inner.globals.lock().claims.remove(&reference);
                Err(unreachable())
            }
        }
    }

    /// Give up `name`, held by `pid`.
    pub fn unregister_global(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        let inner = &self.inner;
        {
            let mut g = inner.globals.lock();
            match g.table.get(name) {
                Some(e) if e.pid == pid => {
                    g.table.remove(name);
                }
                _ => return Err(RegistryError::NotFound),
            }
            if let Some(set) = g.owned.get_mut(&pid) {
                set.remove(name);
                if set.is_empty() {
                    g.owned.remove(&pid);
                }
            }
            inner.to_peers(|node| RemoteOp::GlobalUnset {
                node,
                name: name.to_string(),
                pid,
            });
        }
        Ok(())
    }

    /// The pid holding global name `name`, from this node's copy.
    pub fn whereis_global(&self, name: &str) -> Option<Pid> {
        self.inner.globals.lock().table.get(name).map(|e| e.pid)
    }

    /// Every global name and its owner, sorted by name.
    pub fn global_names(&self) -> Vec<(String, Pid)> {
        let g = self.inner.globals.lock();
        let mut all: Vec<_> = g.table.iter().map(|(n, e)| (n.clone(), e.pid)).collect();
        all.sort();
        all
    }
}

impl NodeInner {
    fn global_home(&self, name: &str) -> NodeId {
        let peers = self
            .remote
            .read()
            .as_ref()
            .map(|r| r.connected_peers())
            .unwrap_or_default();
        home_of(name, peers.into_iter().chain([self.id])).unwrap_or(self.id)
    }

    /// As the name's home: give `name` to `pid` if it is free (or `pid`'s
    /// already), and tell every node.
    fn global_claim(&self, name: &str, pid: Pid) -> bool {
        {
            let mut g = self.globals.lock();
            match g.table.get(name) {
                Some(e) if e.pid == pid => return true,
                Some(_) => return false,
                None if g.table.len() >= MAX_GLOBAL_NAMES => return false,
                None => {}
            }
            // The owner must still be alive (a local one) when it is given
            // the name; a remote one's node drops it if it died meanwhile.
            if pid.node == self.id && self.procs.get(&pid.seq).is_none_or(|p| p.pid != pid) {
                return false;
            }
            let entry = Entry {
                pid,
                stamp: now_ms(),
            };
            g.table.insert(name.to_string(), entry);
            if pid.node == self.id {
                g.owned.entry(pid).or_default().insert(name.to_string());
            }
            // Queued under the lock, like every table op: a sync to a
            // peer that just came up cannot overtake it.
            self.to_peers(|node| RemoteOp::GlobalSet {
                node,
                name: name.to_string(),
                pid: entry.pid,
                stamp: entry.stamp,
            });
        }
        true
    }

    /// Take `entry` for `name` into this node's copy, keeping the earlier
    /// registration when they differ; the loser, if it lives here, gets
    /// its exit signal.
    fn global_merge(&self, name: String, entry: Entry) {
        let loser = {
            let mut g = self.globals.lock();
            let current = g.table.get(&name).copied();
            let (keep, lost) = match current {
                None if g.table.len() >= MAX_GLOBAL_NAMES => {
                    tracing::warn!(
                        "dropped global name `{name}`: the table holds {MAX_GLOBAL_NAMES}"
                    );
                    return;
                }
                None => (entry, None),
                Some(c) if c.pid == entry.pid => {
                    (if entry.wins_over(&c) { entry } else { c }, None)
                }
                Some(c) if entry.wins_over(&c) => (entry, Some(c.pid)),
                Some(c) => (c, Some(entry.pid)),
            };
            // A pid of this node that is gone, or of a node not connected,
            // cannot hold a name.
            let alive = if keep.pid.node == self.id {
                self.procs
                    .get(&keep.pid.seq)
                    .is_some_and(|p| p.pid == keep.pid)
            } else {
                self.remote
                    .read()
                    .as_ref()
                    .is_some_and(|r| r.connected(keep.pid.node))
            };
            if !alive {
                return;
            }
            g.table.insert(name.clone(), keep);
            if keep.pid.node == self.id {
                g.owned.entry(keep.pid).or_default().insert(name.clone());
            }
            if let Some(l) = lost.filter(|l| l.node == self.id) {
                if let Some(set) = g.owned.get_mut(&l) {
                    set.remove(&name);
                }
                Some((l, keep.pid))
            } else {
                None
            }
        };
        if let Some((lost, kept)) = loser {
            tracing::warn!(%lost, %kept, "global name conflict over `{name}`: the earlier registration is kept");
            let system = Pid {
                node: self.id,
                seq: 0,
            };
            let reason = ExitReason::Shutdown(format!(
                "global name conflict: `{name}` is kept by {kept}, registered first"
            ));
            let _ = self.send_exit(system, lost, reason);
        }
    }

    /// A global-name op from node `from`.
    pub(crate) fn global_op(&self, from: NodeId, op: RemoteOp) {
        match op {
            RemoteOp::GlobalClaim {
                name,
                pid,
                reference,
                ..
            } => {
                let won = !name.is_empty()
                    && name.len() <= crate::MAX_NAME
                    && self.global_claim(&name, pid);
                let _ = self.route(RemoteOp::GlobalClaimed {
                    node: from,
                    reference,
                    won,
                });
            }
            RemoteOp::GlobalClaimed { reference, won, .. } => {
                let mut g = self.globals.lock();
                if g.claims
                    .get(&reference)
                    .is_some_and(|(home, _)| *home == from)
                    && let Some((_, tx)) = g.claims.remove(&reference)
                {
                    let _ = tx.send(won);
                }
            }
            RemoteOp::GlobalSet {
                name, pid, stamp, ..
            } if !name.is_empty()
                && name.len() <= crate::MAX_NAME
                && (pid.node == from || self.global_home(&name) == from) =>
            {
                self.global_merge(name, Entry { pid, stamp });
            }
            RemoteOp::GlobalUnset { name, pid, .. } => {
                let mut g = self.globals.lock();
                if g.table.get(&name).is_some_and(|e| e.pid == pid) {
                    g.table.remove(&name);
                }
            }
            RemoteOp::GlobalSync { entries, .. } => {
                for (name, pid, stamp) in entries {
                    if !name.is_empty() && name.len() <= crate::MAX_NAME && pid.node == from {
                        self.global_merge(name, Entry { pid, stamp });
                    }
                }
            }
            _ => {}
        }
    }

    /// A process ended: its global names go, everywhere.
    pub(crate) fn global_exited(&self, pid: Pid) {
        let mut g = self.globals.lock();
        let names = g.owned.remove(&pid).unwrap_or_default();
        for name in names {
            if g.table.get(&name).is_some_and(|e| e.pid == pid) {
                g.table.remove(&name);
            }
            self.to_peers(|node| RemoteOp::GlobalUnset {
                node,
                name: name.clone(),
                pid,
            });
        }
    }

    /// A node connected: send it the names this node's processes hold
    /// (each node speaks for its own; the mesh is fully connected, so every
    /// node hears from every owner's node).
    pub(crate) fn global_peer_up(&self, peer: NodeId) {
        let g = self.globals.lock();
        let entries: Vec<(String, Pid, u64)> = g
            .table
            .iter()
            .filter(|(_, e)| e.pid.node == self.id)
            .map(|(n, e)| (n.clone(), e.pid, e.stamp))
            .collect();
        for chunk in entries.chunks(SYNC_CHUNK) {
            let _ = self.route(RemoteOp::GlobalSync {
                node: peer,
                entries: chunk.to_vec(),
            });
        }
        drop(g);
    }

    /// A node is lost: its names go, and registrations waiting on it fail.
    pub(crate) fn global_peer_lost(&self, peer: NodeId) {
        let mut g = self.globals.lock();
        g.table.retain(|_, e| e.pid.node != peer);
        g.claims.retain(|_, (home, _)| *home != peer);
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

    #[test]
    fn every_node_computes_the_same_home_whatever_the_order() {
        let members = [NodeId([1; 32]), NodeId([2; 32]), NodeId([3; 32])];
        let mut reversed = members;
        reversed.reverse();
        for name in ["ledger", "audit", "x", "a-much-longer-name"] {
            assert_eq!(home_of(name, members), home_of(name, reversed));
        }
        let homes: BTreeSet<NodeId> = (0..64)
            .filter_map(|i| home_of(&format!("name-{i}"), members))
            .collect();
        assert_eq!(homes.len(), 3, "names spread over every member");
    }

    #[test]
    fn the_earlier_registration_wins_then_the_smaller_pid() {
        let early = Entry {
            pid: pid(9, 9),
            stamp: 10,
        };
        let late = Entry {
            pid: pid(1, 1),
            stamp: 11,
        };
        assert!(early.wins_over(&late) && !late.wins_over(&early));
        let tie = Entry {
            pid: pid(1, 1),
            stamp: 10,
        };
        assert!(tie.wins_over(&early), "same stamp: the smaller pid");
    }
}
