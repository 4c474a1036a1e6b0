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
//! lives on, others end, as with `global`'s default resolver. A later entry
//! that meets an earlier one held on another node is not judged at once:
//! that node may already be lost for the name's home (which then gave the
//! name again) but not yet for this node, so the later entry waits as the
//! runner-up, takes the name when the holder goes, and after a grace past
//! the heartbeat timeout the rule above settles it. It does not
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
    /// Per name, the best entry that lost to one held on another node, for
    /// [`SETTLE_AFTER`]: that holder may be on a node this node has not yet
    /// seen lost (while the name's home has, and gave the name again).
    runners_up: HashMap<String, Entry>,
}

/// How long a conflict with a holder on another node waits before the
/// rule settles it: past the transport's heartbeat timeout, so every node
/// has seen a lost node lost by then and settles the same way.
const SETTLE_AFTER: Duration = Duration::from_millis(2000);

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

/// How often a registration refused by a home that still shows a holder
/// this node no longer has asks again (within [`SETTLE_AFTER`]).
const RETRY_CLAIM: Duration = Duration::from_millis(100);

impl Node {
    /// Register `pid` (a process of this node) as `name` in the whole
    /// cluster. `Taken` when another pid holds it.
    ///
    /// A home that refuses while this node's copy shows the name free (its
    /// holder's node lost here, not yet there) is asked again for up to
    /// [`SETTLE_AFTER`]: a name freed by a lost node is free once every
    /// node has seen the loss, so a restarted owner gets it back instead of
    /// crashing on `taken` until its supervisor gives up.
    pub async fn register_global(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        let deadline = tokio::time::Instant::now() + SETTLE_AFTER;
        loop {
            match self.claim_global(name, pid).await {
                Err(RegistryError::Taken)
                    if tokio::time::Instant::now() < deadline
                        && self.inner.global_free_here(name) =>
                {
                    tokio::time::sleep(RETRY_CLAIM).await;
                }
                other => return other,
            }
        }
    }

    /// One registration: the name's home says yes or no.
    async fn claim_global(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
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

    /// Whether `pid` can hold a name: a live process of this node, or one
    /// of a connected node (whose node drops it if it died).
    fn holder_alive(&self, pid: Pid) -> bool {
        if pid.node == self.id {
            self.procs.get(&pid.seq).is_some_and(|p| p.pid == pid)
        } else {
            self.remote
                .read()
                .as_ref()
                .is_some_and(|r| r.connected(pid.node))
        }
    }

    /// Take `entry` for `name` into this node's copy, keeping the earlier
    /// registration when they differ; the loser, if it lives here, gets
    /// its exit signal. An entry that loses to a holder on another node
    /// waits [`SETTLE_AFTER`] as a runner-up instead: that node may be lost
    /// already (see [`NodeInner::global_settle`]).
    fn global_merge(self: &std::sync::Arc<Self>, name: String, entry: Entry) {
        let loser = 'merge: {
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
                Some(c) if c.pid.node != self.id && self.holder_alive(entry.pid) => {
                    let better = g.runners_up.get(&name).is_none_or(|r| entry.wins_over(r));
                    // The entry that is no longer in the running: a local
                    // one is told it lost, as any loser is.
                    let dropped = if better && g.runners_up.len() < MAX_GLOBAL_NAMES {
                        let old = g.runners_up.insert(name.clone(), entry);
                        let me = std::sync::Arc::downgrade(self);
                        let settling = name.clone();
                        self.rt.spawn(async move {
                            tokio::time::sleep(SETTLE_AFTER).await;
                            if let Some(me) = me.upgrade() {
                                me.global_settle(&settling, entry);
                            }
                        });
                        old.map(|o| o.pid)
                    } else {
                        Some(entry.pid)
                    };
                    break 'merge dropped.filter(|p| p.node == self.id).map(|p| (p, c.pid));
                }
                Some(c) => (c, Some(entry.pid)),
            };
            if !self.holder_alive(keep.pid) {
                return;
            }
            g.table.insert(name.clone(), keep);
            if keep.pid.node == self.id {
                g.owned.entry(keep.pid).or_default().insert(name.clone());
            }
            match lost.filter(|l| l.node == self.id) {
                Some(l) => {
                    if let Some(set) = g.owned.get_mut(&l) {
                        set.remove(&name);
                    }
                    Some((l, keep.pid))
                }
                None => None,
            }
        };
        if let Some((lost, kept)) = loser {
            self.global_conflict(&name, lost, kept);
        }
    }

    /// `lost` (of this node) lost `name` to `kept`: its exit signal.
    fn global_conflict(&self, name: &str, lost: Pid, kept: Pid) {
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

    /// The runner-up for `name` waited long enough: it takes the name if
    /// the holder is gone; else the earlier registration stays, as every
    /// node decides, and a runner-up of this node is told it lost.
    fn global_settle(&self, name: &str, waited: Entry) {
        let mut g = self.globals.lock();
        // Only the entry this timer waited for: a better one that came
        // later waits its own full grace.
        if g.runners_up.get(name) != Some(&waited) {
            return;
        }
        let Some(r) = g.runners_up.remove(name) else {
            return;
        };
        let current = g.table.get(name).copied();
        match current {
            Some(c) if c.pid == r.pid => {}
            Some(c) if self.holder_alive(c.pid) => {
                drop(g);
                if r.pid.node == self.id && self.holder_alive(r.pid) {
                    self.global_conflict(name, r.pid, c.pid);
                }
            }
            _ => self.promote(&mut g, name, r),
        }
    }

    /// `name`'s holder is gone: a runner-up that is alive takes it.
    fn promote(&self, g: &mut Globals, name: &str, r: Entry) {
        if !self.holder_alive(r.pid) {
            g.table.remove(name);
            return;
        }
        g.table.insert(name.to_string(), r);
        if r.pid.node == self.id {
            g.owned.entry(r.pid).or_default().insert(name.to_string());
            // This node speaks for its own names (see the GlobalSet case
            // of global_op); called under the table lock.
            self.to_peers(|node| RemoteOp::GlobalSet {
                node,
                name: name.to_string(),
                pid: r.pid,
                stamp: r.stamp,
            });
        }
    }

    /// Whether this node's copy shows `name` free (no holder, or one that
    /// can no longer hold it).
    fn global_free_here(&self, name: &str) -> bool {
        let holder = self.globals.lock().table.get(name).map(|e| e.pid);
        holder.is_none_or(|p| !self.holder_alive(p))
    }

    /// `name` lost its holder here: a waiting runner-up takes it now.
    fn promote_runner_up(&self, g: &mut Globals, name: &str) {
        if let Some(r) = g.runners_up.remove(name) {
            self.promote(g, name, r);
        }
    }

    /// A global-name op from node `from`.
    pub(crate) fn global_op(self: &std::sync::Arc<Self>, from: NodeId, op: RemoteOp) {
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
                let ours = pid.node == self.id;
                self.global_merge(name.clone(), Entry { pid, stamp });
                // The home's word on a name of this node's process: this
                // node speaks for its own names, so it tells every node it
                // is connected to, including ones the home was not yet
                // connected to (they would not hear of it otherwise: the
                // sync on connect came before the name). Under the lock,
                // so an unset when the owner ends cannot overtake it.
                let g = self.globals.lock();
                if ours && g.table.get(&name).is_some_and(|e| e.pid == pid) {
                    self.to_peers(|node| RemoteOp::GlobalSet {
                        node,
                        name: name.clone(),
                        pid,
                        stamp,
                    });
                }
                drop(g);
            }
            RemoteOp::GlobalUnset { name, pid, .. } => {
                let mut g = self.globals.lock();
                if g.runners_up.get(&name).is_some_and(|e| e.pid == pid) {
                    g.runners_up.remove(&name);
                }
                if g.table.get(&name).is_some_and(|e| e.pid == pid) {
                    g.table.remove(&name);
                    self.promote_runner_up(&mut g, &name);
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
                self.promote_runner_up(&mut g, &name);
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
        g.runners_up.retain(|_, e| e.pid.node != peer);
        let gone: Vec<String> = g
            .table
            .iter()
            .filter(|(_, e)| e.pid.node == peer)
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            g.table.remove(&name);
            self.promote_runner_up(&mut g, &name);
        }
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
