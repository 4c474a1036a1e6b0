//! A supervisor's part in partitions: holding failover children while the
//! node's standing (plasmoid-runtime's partition rule) says its side may
//! not run them, and starting them again when it may.
//!
//! A failover child is a particle or a nested supervisor placed with
//! `node = [...]`. When the standing is `Pending` (a member is unreachable,
//! the cluster not yet stable), such a child lost to `noconnection` is
//! held, not restarted; when it is `Stopped` (this side lost), the running
//! ones are stopped and held too. Back to `Serving`, the held children start on the first reachable
//! candidate, without counting toward the restart intensity: a partition is
//! not a crash. This module does not judge partitions; the runtime does.

use crate::child;
use crate::server::{Pending, Sup};
use crate::spec::{ChildSpec, ChildStart};
use plasmoid_runtime::{ExitReason, Standing};
use std::collections::VecDeque;

/// Placed on nodes: the kind of child a partition can duplicate (a
/// worker, or a nested supervisor with its subtree).
pub(crate) fn is_failover(spec: &ChildSpec) -> bool {
    match &spec.start {
        ChildStart::Particle { nodes, .. } => !nodes.is_empty(),
        ChildStart::Supervisor(s) => !s.nodes.is_empty(),
    }
}

impl Sup {
    pub(crate) fn standing_now(&self) -> Standing {
        *self.standing.borrow()
    }

    /// Child `i` exited with `reason`: hold it instead of restarting it if
    /// the standing says so. Returns whether it was held.
    pub(crate) fn hold_on_exit(&mut self, i: usize, reason: &ExitReason) -> bool {
        let hold = is_failover(&self.children[i].spec)
            && match self.standing_now() {
                Standing::Serving => false,
                Standing::Pending => *reason == ExitReason::Noconnection,
                Standing::Stopped => true,
            };
        if hold {
            self.hold(i);
        }
        hold
    }

    /// Whether a restart of child `i` must wait for the standing.
    pub(crate) fn must_wait(&self, i: usize) -> bool {
        self.standing_now() == Standing::Stopped && is_failover(&self.children[i].spec)
    }

    pub(crate) fn hold(&mut self, i: usize) {
        let id = self.children[i].spec.id.clone();
        tracing::info!(supervisor = %self.spec.name, child = %id, standing = self.standing_now().as_str(),
            "failover child held until this side of the cluster may run it");
        self.set_running(i, None);
        for p in &mut self.pending {
            p.ids.retain(|x| *x != id);
        }
        if !self.held.contains(&id) {
            self.held.push(id);
        }
    }

    /// The standing changed to `now`.
    pub(crate) async fn on_standing(&mut self, now: Standing) {
        match now {
            Standing::Pending => {}
            Standing::Stopped => {
                for i in (0..self.children.len()).rev() {
                    let id = &self.children[i].spec.id;
                    let waiting = self.pending.iter().any(|p| p.ids.contains(id));
                    // A child that ended for good (transient, normal exit) stays ended.
                    if !is_failover(&self.children[i].spec)
                        || (self.children[i].pid().is_none() && !waiting)
                    {
                        continue;
                    }
                    if let Some(pid) = self.children[i].pid() {
                        tracing::warn!(supervisor = %self.spec.name, child = %self.children[i].spec.id,
                            %pid, "this side of the cluster lost: stopping failover child");
                        child::stop(&self.me, pid, self.children[i].spec.shutdown).await;
                    }
                    self.hold(i);
                }
            }
            Standing::Serving => {
                let ids: VecDeque<String> = std::mem::take(&mut self.held)
                    .into_iter()
                    .filter(|id| self.find(id).is_some())
                    .collect();
                if ids.is_empty() {
                    return;
                }
                tracing::info!(supervisor = %self.spec.name, children = ?ids,
                    "this side of the cluster serves: starting held failover children");
                // Started like a restart that already counted: failures
                // retry through the pending queue.
                self.pending.push_back(Pending {
                    ids,
                    crashed: "partition".into(),
                    reason: ExitReason::Noconnection,
                    old: Vec::new(),
                    counted: true,
                });
            }
        }
    }
}
