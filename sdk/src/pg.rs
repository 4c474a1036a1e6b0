//! Process groups, as Erlang's `pg`: [`join`] a named group, and
//! [`members`] lists every member on every connected node; [`broadcast`]
//! sends one message to all of them. Membership is eventually consistent
//! across nodes; a particle leaves its groups when it ends.

use crate::Pid;
use crate::bindings::plasmoid::runtime::pg as wit;

/// Join `group` (1 to 255 bytes; at most 64 groups per particle). Returns
/// whether this particle was not in it yet; `Err` says why it was refused
/// (a bad name, too many groups, or Cedar's `join` on `Group::"<group>"`).
pub fn join(group: &str) -> Result<bool, String> {
    wit::join(group)
}

/// Leave `group`; whether this particle was in it.
pub fn leave(group: &str) -> bool {
    wit::leave(group)
}

/// Every member of `group`, on this node and the connected ones.
pub fn members(group: &str) -> Vec<Pid> {
    wit::members(group)
}

/// The members of `group` on this node.
pub fn local_members(group: &str) -> Vec<Pid> {
    wit::local_members(group)
}

/// The groups with at least one member in the cluster.
pub fn which_groups() -> Vec<String> {
    wit::which_groups()
}

/// Send `data` to every member of `group` except this particle; returns
/// how many sends were accepted (a member whose mailbox is full, or that
/// is gone, is skipped: a broadcast is best effort, as in Erlang).
pub fn broadcast(group: &str, data: &[u8]) -> usize {
    let me = crate::self_pid();
    members(group)
        .iter()
        .filter(|p| !p.equals(&me))
        .filter(|p| crate::send(p, data).is_ok())
        .count()
}
