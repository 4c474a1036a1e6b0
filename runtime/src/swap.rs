//! Hot swap, the runtime half: which particles run which version, moving
//! one to the current version at its next `recv` (state handoff), and the
//! probation rollback.
//!
//! Deciding when to swap, validating files and restarting particles through
//! their supervisors belong to plasmoid-release; here is only what must
//! happen inside the node, under the pid.

use crate::components::LoadedComponent;
use crate::node::{Node, NodeInner};
use crate::pid::Pid;
use crate::process::Process;
use crate::reason::{ExitReason, Msg};
use std::sync::Arc;

/// A particle and the version of its component it runs.
#[derive(Clone, Debug)]
pub struct ParticleInfo {
    pub pid: Pid,
    pub version: Arc<str>,
    /// Whether it can hand its state over (else it must be restarted).
    pub upgradable: bool,
    /// The name it is registered under.
    pub name: Option<String>,
}

#[derive(Clone, Debug)]
pub enum SwapEvent {
    /// A particle running `bad` crashed during its probation: new particles
    /// of `component` run `good` again.
    RolledBack {
        component: Arc<str>,
        bad: Arc<str>,
        good: Arc<str>,
        pid: Pid,
        reason: ExitReason,
    },
}

impl Node {
    /// The version new particles of `component` run.
    pub fn component_version(&self, component: &str) -> Option<Arc<str>> {
        self.inner
            .components
            .get(component)
            .map(|c| c.version.clone())
    }

    /// The live particles of `component`, in pid order.
    pub fn particles_of(&self, component: &str) -> Vec<ParticleInfo> {
        let mut out: Vec<ParticleInfo> = self
            .inner
            .procs
            .iter()
            .filter(|p| &*p.component == component)
            .filter_map(|p| {
                let version = p.code.lock().running.as_ref()?.version.clone();
                Some(ParticleInfo {
                    pid: p.pid,
                    version,
                    upgradable: p.upgradable(),
                    name: p.registered_name(),
                })
            })
            .collect();
        out.sort_by_key(|i| i.pid.seq);
        out
    }

    /// Ask an upgradable particle to move to its component's current
    /// version at its next `recv`: it hands its state over and the new
    /// version starts under the same pid and mailbox. Returns false if it
    /// is gone, cannot hand over, or already runs that version.
    pub fn request_upgrade(&self, pid: Pid) -> bool {
        let Some(proc) = self.inner.lookup(pid) else {
            return false;
        };
        let Some(target) = self.inner.components.get(&proc.component) else {
            return false;
        };
        if !proc.upgradable() || !proc.accepting() {
            return false;
        }
        {
            let mut code = proc.code.lock();
            if code
                .running
                .as_ref()
                .is_some_and(|r| Arc::ptr_eq(r, &target))
            {
                return false;
            }
            // One request pending at most: the particle reads the current
            // version when it hands over, so a newer one needs no new request.
            if code.upgrade_to.replace(target).is_some() {
                return true;
            }
        }
        proc.mailbox.push_front(Msg::Upgrade);
        true
    }

    /// Rollbacks as they happen.
    pub fn swap_events(&self) -> tokio::sync::broadcast::Receiver<SwapEvent> {
        self.inner.swap_events.subscribe()
    }
}

impl NodeInner {
    /// Called when a particle running `comp` ends with `reason`, before its
    /// links and monitors fire, so that a supervisor restarting it already
    /// gets the restored version.
    pub(crate) fn check_probation(
        &self,
        proc: &Process,
        comp: &Arc<LoadedComponent>,
        reason: &ExitReason,
    ) {
        if !matches!(reason, ExitReason::Exception(_)) {
            return;
        }
        let previous = {
            let mut probation = comp.probation.lock();
            match probation.as_ref() {
                Some(p) if std::time::Instant::now() < p.until => {
                    probation.take().map(|p| p.previous)
                }
                _ => None,
            }
        };
        let Some(previous) = previous else { return };
        if self.components.restore(comp, previous.clone()) {
            tracing::warn!(
                component = %comp.name,
                bad = %comp.version,
                good = %previous.version,
                pid = %proc.pid,
                "a particle of the new version crashed during probation ({reason}); rolled back"
            );
            self.stats
                .rollbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = self.swap_events.send(SwapEvent::RolledBack {
                component: comp.name.clone(),
                bad: comp.version.clone(),
                good: previous.version.clone(),
                pid: proc.pid,
                reason: reason.clone(),
            });
        }
    }
}
