//! Timers: Erlang's `send_after`, `send_interval` and `cancel_timer`.
//!
//! This module owns a process's timers: each is a task on the node's
//! runtime that sends a data message when it fires, entered in its owner's
//! process entry so that cancelling finds it and the owner's end stops it
//! (a particle's timers die with it). It does not own delivery: a timer's
//! message goes through the node's ordinary `send`, so a timer to a process
//! that is gone by then is dropped, as in Erlang, and one to a full mailbox
//! is dropped too (a timer never blocks).

use crate::node::NodeInner;
use crate::pid::Pid;
use crate::process::Process;
use crate::reason::Msg;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Timers one process may have running at once (10,000).
pub const MAX_TIMERS: usize = 10_000;
/// The shortest interval of `send-interval` (1 ms): a shorter one would be
/// a busy loop on the node's timer wheel.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// One running timer, in its owner's entry.
pub(crate) struct Timer {
    /// When it fires next.
    deadline: Instant,
    task: tokio::task::AbortHandle,
}

impl Timer {
    /// Stop it (cancelled, or its owner ended). Dropping an entry does not:
    /// a firing one-shot removes its own entry from inside its task.
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

/// Why a timer was not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimerError {
    Limit(String),
}

impl NodeInner {
    /// Send `msg` to `target` after `after`, and with `every` again at that
    /// interval until cancelled. Returns the timer's reference.
    pub(crate) fn start_timer(
        self: &Arc<Self>,
        owner: &Arc<Process>,
        target: Pid,
        after: Duration,
        every: Option<Duration>,
        msg: Vec<u8>,
    ) -> Result<u64, TimerError> {
        let every = every.map(|e| e.max(MIN_INTERVAL));
        let reference = self.next_ref();
        let first = Instant::now() + after;
        let mut st = owner.state.lock();
        if !st.alive {
            // Its timers would die with it at once.
            return Ok(reference);
        }
        if st.timers.len() >= MAX_TIMERS {
            return Err(TimerError::Limit(format!(
                "a particle has at most {MAX_TIMERS} timers running; cancel one first"
            )));
        }
        let (node, weak) = (Arc::downgrade(self), Arc::downgrade(owner));
        let task = self.rt.spawn(async move {
            let mut at = first;
            loop {
                tokio::time::sleep_until(at).await;
                let (Some(node), Some(owner)) = (node.upgrade(), weak.upgrade()) else {
                    return;
                };
                // Sent under the owner's lock: a `cancel-timer` that said
                // it stopped the timer is never followed by its message.
                let mut st = owner.state.lock();
                match every {
                    // Cancelled in the meantime: nothing to send.
                    Some(e) => match st.timers.get_mut(&reference) {
                        Some(t) => {
                            // After a stall, the next tick is one interval
                            // from now, not a burst of the missed ones.
                            at = (at + e).max(Instant::now() + e);
                            t.deadline = at;
                        }
                        None => return,
                    },
                    // Fired: `cancel-timer` now says it is gone.
                    None => {
                        if st.timers.remove(&reference).is_none() {
                            return;
                        }
                    }
                }
                let _ = node.send(target, Msg::Data(msg.clone()));
                drop(st);
                if every.is_none() {
                    return;
                }
            }
        });
        st.timers.insert(
            reference,
            Timer {
                deadline: first,
                task: task.abort_handle(),
            },
        );
        Ok(reference)
    }

    /// Stop a timer of `owner`; the time that was left, or `None` if it is
    /// not running (fired already, cancelled, or never existed).
    pub(crate) fn cancel_timer(&self, owner: &Process, reference: u64) -> Option<Duration> {
        let timer = owner.state.lock().timers.remove(&reference)?;
        timer.stop();
        Some(timer.deadline.saturating_duration_since(Instant::now()))
    }
}

impl crate::particle::ParticleState {
    /// The guest's `send-after` / `send-interval`: authorized as a send to
    /// `target` (Cedar `send` on its component, for a process here).
    pub(crate) fn set_timer(
        &mut self,
        target: &wasmtime::component::Resource<crate::host::PidRep>,
        ms: u64,
        every: bool,
        msg: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, crate::host::plasmoid::runtime::process::TimerError>> {
        use crate::host::plasmoid::runtime::process::TimerError as Wit;
        use crate::policy::Action;
        let (pid, local) = self.target(target)?;
        if let Some(t) = local.or_else(|| self.node.lookup(pid))
            && !self.allowed_on(Action::Send, &t.component)
        {
            return Ok(Err(Wit::Denied(self.denied(Action::Send, &t.component))));
        }
        let after = Duration::from_millis(ms);
        let every = every.then_some(after);
        Ok(self
            .node
            .start_timer(&self.proc, pid, after, every, msg)
            .map_err(|TimerError::Limit(why)| Wit::Limit(why)))
    }
}
