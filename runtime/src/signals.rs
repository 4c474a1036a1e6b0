//! Links, monitors and exit signals, with Erlang's semantics.
//!
//! The rules, for a signal from `S` with reason `R` arriving at `T`:
//! - a link signal is ignored unless the link still exists;
//! - `kill` sent with exit/2 cannot be trapped: `T` dies as `killed`;
//! - if `T` traps exits, the signal becomes an EXIT message in its mailbox,
//!   behind every message `S` sent earlier (one queue, so no overtaking);
//! - otherwise `normal` is ignored and any other reason ends `T` with `R`.
//!
//! Every operation asks [`NodeInner::place`] once where its target lives.
//! A remote target is handed to remote.rs, where the far node applies the
//! same rules on arrival; a link or monitor to a node that cannot be
//! reached fires at once with `noconnection`.

use crate::node::{NodeInner, SendError};
use crate::pid::Pid;
use crate::process::Process;
use crate::reason::{ExitReason, Msg};
use crate::remote::Place;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Linking failed because the target is gone and the caller does not trap exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noproc;

impl NodeInner {
    pub fn link(&self, me: &Process, target: Pid) -> Result<(), Noproc> {
        if target == me.pid {
            return Ok(());
        }
        // Our side first: if the target dies between the two steps, its exit
        // still finds us through its own set once we are in it, and if we are
        // not, we see it dead below.
        me.state.lock().links.insert(target);
        let linked = match self.place(target) {
            Place::Remote => {
                if !self.link_remote(me.pid, target) {
                    // As Erlang: the link is made and at once broken.
                    me.state.lock().links.remove(&target);
                    self.deliver_exit(target, me, ExitReason::Noconnection, false);
                }
                return Ok(());
            }
            Place::Local(t) => {
                let mut st = t.state.lock();
                // Linking twice is one link, as in Erlang.
                if st.alive {
                    st.links.insert(me.pid);
                }
                st.alive
            }
            Place::Gone => false,
        };
        if linked {
            return Ok(());
        }
        me.state.lock().links.remove(&target);
        if me.traps_exits() {
            let exit = Msg::Exit {
                sender: target,
                reason: ExitReason::Noproc,
            };
            let _ = me.mailbox.push(exit, true);
            Ok(())
        } else {
            Err(Noproc)
        }
    }

    pub fn unlink(&self, me: &Process, target: Pid) {
        me.state.lock().links.remove(&target);
        match self.place(target) {
            Place::Remote => self.unlink_remote(me.pid, target),
            Place::Local(t) => {
                t.state.lock().links.remove(&me.pid);
            }
            Place::Gone => {}
        }
    }

    /// Returns the monitor reference. A dead target yields DOWN `noproc` at
    /// once, an unreachable node DOWN `noconnection`.
    pub fn monitor(&self, me: &Process, target: Pid) -> u64 {
        let reference = self.next_ref();
        me.state.lock().monitoring.insert(reference, target);
        let failed = match self.place(target) {
            Place::Remote if self.monitor_remote(me.pid, target, reference) => return reference,
            Place::Remote => ExitReason::Noconnection,
            Place::Local(t) => {
                let mut st = t.state.lock();
                if st.alive {
                    st.watchers.insert(reference, me.pid);
                    return reference;
                }
                ExitReason::Noproc
            }
            Place::Gone => ExitReason::Noproc,
        };
        me.state.lock().monitoring.remove(&reference);
        let down = Msg::Down {
            sender: target,
            reference,
            reason: failed,
        };
        let _ = me.mailbox.push(down, true);
        reference
    }

    /// Returns whether the monitor was still active; a queued DOWN is removed.
    pub fn demonitor(&self, me: &Process, reference: u64) -> bool {
        let target = me.state.lock().monitoring.remove(&reference);
        match target {
            Some(t) => {
                // Still active: no DOWN can be queued for it.
                self.drop_watcher(me.pid, t, reference);
                true
            }
            None => {
                me.mailbox.remove_down(reference);
                false
            }
        }
    }

    /// Remove `watcher`'s monitor `reference` from `target`'s side.
    fn drop_watcher(&self, watcher: Pid, target: Pid, reference: u64) {
        match self.place(target) {
            Place::Remote => self.demonitor_remote(watcher, target, reference),
            Place::Local(t) => {
                t.state.lock().watchers.remove(&reference);
            }
            Place::Gone => {}
        }
    }

    /// Erlang's exit/2 from `from` to `target`.
    pub fn send_exit(&self, from: Pid, target: Pid, reason: ExitReason) -> Result<(), SendError> {
        match self.place(target) {
            Place::Remote => self.exit_remote(from, target, reason, false),
            Place::Local(t) => {
                self.deliver_exit(from, &t, reason, false);
                Ok(())
            }
            Place::Gone => Err(SendError::Noproc),
        }
    }

    pub fn deliver_exit(&self, from: Pid, to: &Process, reason: ExitReason, via_link: bool) {
        if via_link && !to.state.lock().links.remove(&from) {
            return;
        }
        if !via_link && reason == ExitReason::Kill {
            to.request_exit(ExitReason::Killed);
            return;
        }
        if to.traps_exits() {
            let _ = to.mailbox.push(
                Msg::Exit {
                    sender: from,
                    reason,
                },
                true,
            );
            return;
        }
        match reason {
            ExitReason::Normal if from != to.pid => {}
            r => to.request_exit(r),
        }
    }

    /// Everything that happens when a process ends: it leaves the table and
    /// the registry, linked processes get exit signals, monitors fire.
    pub fn process_exited(&self, p: &Arc<Process>, reason: ExitReason, particle: bool) {
        let (links, watchers, monitoring, name, replies) = {
            let mut st = p.state.lock();
            if !st.alive {
                return;
            }
            st.alive = false;
            for (_, t) in st.timers.drain() {
                t.stop();
            }
            (
                std::mem::take(&mut st.links),
                std::mem::take(&mut st.watchers),
                std::mem::take(&mut st.monitoring),
                st.name.take(),
                std::mem::take(&mut st.replies),
            )
        };
        p.mark_dead();
        self.remove_process(p.pid);
        self.forget_peer_start(p.pid);
        self.forget_node_watcher(p.pid);
        self.groups_exited(p.pid);
        self.global_exited(p.pid);
        if particle {
            self.live_particles.fetch_sub(1, Ordering::AcqRel);
            self.stats
                .exited(p.pid, &p.component, name.clone(), &reason);
        }
        self.count_gone(p);
        if let Some(n) = name {
            self.names.remove_if(&n, |_, v| *v == p.pid);
        }
        tracing::debug!(pid = %p.pid, component = %p.component, %reason, "process exited");
        for l in links {
            match self.place(l) {
                Place::Remote => {
                    let _ = self.exit_remote(p.pid, l, reason.clone(), true);
                }
                Place::Local(t) => self.deliver_exit(p.pid, &t, reason.clone(), true),
                Place::Gone => {}
            }
        }
        for (reference, w) in watchers {
            let wp = match self.place(w) {
                Place::Remote => {
                    self.down_remote(p.pid, w, reference, reason.clone());
                    continue;
                }
                Place::Local(wp) => wp,
                Place::Gone => continue,
            };
            // Push under the watcher's lock so a concurrent demonitor either
            // sees the monitor active or finds the DOWN queued to flush.
            let mut st = wp.state.lock();
            if st.monitoring.remove(&reference).is_some() {
                let down = Msg::Down {
                    sender: p.pid,
                    reference,
                    reason: reason.clone(),
                };
                let _ = wp.mailbox.push(down, true);
            }
            drop(st);
        }
        for (reference, t) in monitoring {
            self.drop_watcher(p.pid, t, reference);
        }
        // HTTP requests still queued go back to their listener to be sent
        // again (to a restarted handler); the ones it took fail (500).
        crate::http::process_ended(replies, p.mailbox.clear());
    }
}
