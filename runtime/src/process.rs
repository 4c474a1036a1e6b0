//! A process entry: what the node knows of one live process, wasm or native.
//!
//! The entry owns the mailbox, the link and monitor sets and the pending exit,
//! so signals can be delivered without touching the process's own task. The
//! task (a particle's store, or a native future) watches `exit_requested`.

use crate::mailbox::Mailbox;
use crate::pid::Pid;
use crate::reason::ExitReason;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

pub struct Process {
    pub pid: Pid,
    /// The component name (principal in Cedar); native processes use a label.
    pub component: Arc<str>,
    pub mailbox: Mailbox,
    trap_exit: AtomicBool,
    exiting: AtomicBool,
    dead: AtomicBool,
    pending_exit: Mutex<Option<ExitReason>>,
    exit_notify: Notify,
    pub(crate) state: Mutex<ProcState>,
    /// Hot swap: the particle can hand its state to a new version.
    upgradable: AtomicBool,
    /// Hot swap: the code this particle runs (`None` for native processes),
    /// and the version it is asked to move to at its next `recv`.
    pub(crate) code: Mutex<Code>,
    /// What the observer reads (stats.rs).
    pub(crate) counters: crate::stats::ProcCounters,
}

#[derive(Default)]
pub(crate) struct Code {
    pub running: Option<Arc<crate::components::LoadedComponent>>,
    pub upgrade_to: Option<Arc<crate::components::LoadedComponent>>,
}

#[derive(Default)]
pub(crate) struct ProcState {
    pub alive: bool,
    pub links: HashSet<Pid>,
    /// Monitors others hold on this process: reference → watcher.
    pub watchers: HashMap<u64, Pid>,
    /// Monitors this process holds: reference → target.
    pub monitoring: HashMap<u64, Pid>,
    pub name: Option<String>,
    /// HTTP requests waiting for this process's answer (see http.rs).
    pub replies: HashMap<u64, crate::http::ReplyTo>,
    /// Timers this process set, by reference (see timers.rs).
    pub timers: HashMap<u64, crate::timers::Timer>,
}

impl Process {
    pub fn new(pid: Pid, component: Arc<str>, mailbox_capacity: usize) -> Arc<Self> {
        Self::with_counting(pid, component, mailbox_capacity, true)
    }

    /// With `count` off, its mailbox does not count messages (`NodeConfig::metrics`).
    pub fn with_counting(
        pid: Pid,
        component: Arc<str>,
        mailbox_capacity: usize,
        count: bool,
    ) -> Arc<Self> {
        Arc::new(Process {
            pid,
            component,
            mailbox: Mailbox::counted(mailbox_capacity, count),
            trap_exit: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            pending_exit: Mutex::new(None),
            exit_notify: Notify::new(),
            state: Mutex::new(ProcState {
                alive: true,
                ..Default::default()
            }),
            upgradable: AtomicBool::new(false),
            code: Mutex::new(Code::default()),
            counters: Default::default(),
        })
    }

    pub fn upgradable(&self) -> bool {
        self.upgradable.load(Ordering::Acquire)
    }

    pub(crate) fn set_upgradable(&self, on: bool) {
        self.upgradable.store(on, Ordering::Release);
    }

    pub fn traps_exits(&self) -> bool {
        self.trap_exit.load(Ordering::Acquire)
    }

    /// Returns the previous value.
    pub fn set_trap_exit(&self, on: bool) -> bool {
        self.trap_exit.swap(on, Ordering::AcqRel)
    }

    /// Whether sends are still accepted: false once the process has ended.
    /// Lock-free, for the send hot path.
    pub fn accepting(&self) -> bool {
        !self.dead.load(Ordering::Acquire)
    }

    pub(crate) fn mark_dead(&self) {
        self.dead.store(true, Ordering::Release);
    }

    pub fn registered_name(&self) -> Option<String> {
        self.state.lock().name.clone()
    }

    /// Ask the process to end with `reason`; the first request wins.
    pub fn request_exit(&self, reason: ExitReason) {
        {
            let mut pending = self.pending_exit.lock();
            if pending.is_some() {
                return;
            }
            *pending = Some(reason);
        }
        self.exiting.store(true, Ordering::Release);
        self.exit_notify.notify_one();
    }

    /// Cheap check for the epoch callback of a running particle.
    pub fn exit_pending(&self) -> bool {
        self.exiting.load(Ordering::Acquire)
    }

    pub fn pending_exit(&self) -> Option<ExitReason> {
        self.pending_exit.lock().clone()
    }

    /// Resolves when an exit has been requested.
    pub async fn exit_requested(&self) -> ExitReason {
        loop {
            if let Some(r) = self.pending_exit() {
                return r;
            }
            self.exit_notify.notified().await;
        }
    }
}
