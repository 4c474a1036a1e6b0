//! The supervisor loop: a native process that traps exits, links to its
//! children and carries out the planner's decisions (plan.rs) within its
//! restart intensity.
//!
//! A restart that fails is not retried in a tight loop inside one event:
//! like OTP's `try_again_restart`, the children still to start are queued
//! and the loop serves operations and exit signals between attempts, each
//! attempt counting toward the intensity. The children table that
//! `which_children` reads is republished at every change.

use crate::SupervisorError;
use crate::child::{self, Running};
use crate::handle::{ChildInfo, MAX_QUEUED_OPS, Op, SupervisorRef};
use crate::plan::{self, Exit, Intensity, Member};
use crate::registry::Registry;
use crate::spec::{ChildSpec, ChildStart, Restart, Strategy, SupervisorSpec};
use parking_lot::RwLock;
use plasmoid_runtime::{ExitReason, Msg, NativeProcess, Node, Pid};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What `start_link` returns.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<SupervisorRef, SupervisorError>> + Send>>;

pub(crate) struct Child {
    pub(crate) spec: ChildSpec,
    pub(crate) running: Option<Running>,
    pub(crate) restarts: u32,
}

impl Child {
    pub(crate) fn pid(&self) -> Option<Pid> {
        self.running.as_ref().map(Running::pid)
    }

    pub(crate) fn info(&self) -> ChildInfo {
        ChildInfo {
            id: self.spec.id.clone(),
            pid: self.pid(),
            supervisor: self.spec.is_supervisor(),
            restarts: self.restarts,
            component: match &self.spec.start {
                ChildStart::Particle { component, .. } => Some(component.clone()),
                ChildStart::Supervisor(_) => None,
            },
            strategy: match &self.spec.start {
                ChildStart::Supervisor(s) => Some(s.strategy),
                ChildStart::Particle { .. } => None,
            },
            restart: self.spec.restart,
        }
    }
}

/// A restart still to finish: the children to start, in order, after the
/// exit of `crashed` with `reason`.
pub(crate) struct Pending {
    pub(crate) ids: VecDeque<String>,
    pub(crate) crashed: String,
    pub(crate) reason: ExitReason,
    /// Old pids by child id, for the log.
    pub(crate) old: Vec<(String, Pid)>,
    /// Already counted toward the intensity (or not to be counted: the
    /// held children of a partition).
    pub(crate) counted: bool,
}

pub(crate) struct Sup {
    pub(crate) me: NativeProcess,
    pub(crate) spec: SupervisorSpec,
    pub(crate) children: Vec<Child>,
    pub(crate) table: Arc<RwLock<Vec<ChildInfo>>>,
    pub(crate) intensity: Intensity,
    parent: Option<Pid>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) pending: VecDeque<Pending>,
    /// The node's partition standing (partition.rs).
    pub(crate) standing: tokio::sync::watch::Receiver<plasmoid_runtime::Standing>,
    /// Failover children waiting for the standing to allow them.
    pub(crate) held: Vec<String>,
    /// The strategy as handles read it (update.rs changes both).
    pub(crate) strategy: Arc<RwLock<Strategy>>,
}

/// Start a supervisor linked to `parent` and all its children, in order.
/// Returns when every child has initialised; if one fails, the ones already
/// started are stopped and the error names the child (OTP's
/// `failed_to_start_child`).
pub fn start_link(node: Node, spec: SupervisorSpec, parent: Option<Pid>) -> StartFuture {
    // Boxed and named: a supervisor starting a nested supervisor is a
    // recursive future, and the spawned loop must be provably `Send`.
    Box::pin(async move {
        let me = node.native("supervisor");
        me.trap_exit(true);
        if let Some(p) = parent
            && me.link(p).is_err()
        {
            return Err(SupervisorError::NotRunning);
        }
        let mut sup = Sup {
            me,
            children: Vec::new(),
            table: Arc::new(RwLock::new(Vec::new())),
            intensity: Intensity::new(spec.max_restarts, spec.max_seconds),
            parent,
            registry: Registry::of(&node),
            pending: VecDeque::new(),
            standing: node.standing(),
            held: Vec::new(),
            strategy: Arc::new(RwLock::new(spec.strategy)),
            spec,
        };
        let (tx, rx) = mpsc::channel(MAX_QUEUED_OPS);
        let handle = SupervisorRef {
            pid: sup.me.pid(),
            ops: tx,
            strategy: sup.strategy.clone(),
            table: sup.table.clone(),
        };
        // Known from the start: a child's supervisor is found while the
        // later siblings are still starting.
        sup.registry.add_supervisor(&handle);
        // A pool's first instances start with it, each with the
        // template's init; one that fails fails the start, as a child would.
        let instances = match (sup.spec.strategy, sup.spec.children.first()) {
            (Strategy::SimpleOneForOne, Some(t)) => vec![t.clone(); sup.spec.instances as usize],
            _ => Vec::new(),
        };
        for template in instances {
            if let Err(e) = sup.start_instance(template).await {
                sup.stop_all().await;
                sup.registry.remove_supervisor(sup.me.pid());
                sup.me.exit(ExitReason::Shutdown(e.to_string()));
                return Err(e);
            }
        }
        if sup.spec.strategy != Strategy::SimpleOneForOne {
            for cs in sup.spec.children.clone() {
                if let Err(e) = sup.add_and_start(cs).await {
                    sup.stop_all().await;
                    sup.registry.remove_supervisor(sup.me.pid());
                    let reason = ExitReason::Shutdown(e.to_string());
                    sup.me.exit(reason);
                    return Err(e);
                }
            }
        }
        tokio::spawn(sup.run(rx));
        Ok(handle)
    })
}

impl Sup {
    pub(crate) fn find(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    /// Child `i` now runs `running` (or nothing).
    pub(crate) fn set_running(&mut self, i: usize, running: Option<Running>) {
        let me = self.me.pid();
        if let Some(old) = self.children[i].pid() {
            self.registry.child_down(old);
        }
        if let Some(r) = &running {
            self.registry
                .child_up(r.pid(), me, &self.children[i].spec.id);
        }
        self.children[i].running = running;
        self.table.write()[i] = self.children[i].info();
    }

    fn push(&mut self, spec: ChildSpec, running: Running) -> Pid {
        let pid = running.pid();
        self.registry.child_up(pid, self.me.pid(), &spec.id);
        let child = Child {
            spec,
            running: Some(running),
            restarts: 0,
        };
        self.table.write().push(child.info());
        self.children.push(child);
        pid
    }

    fn remove(&mut self, i: usize) {
        if let Some(pid) = self.children[i].pid() {
            self.registry.child_down(pid);
        }
        let id = self.children.remove(i).spec.id;
        self.table.write().remove(i);
        for p in &mut self.pending {
            p.ids.retain(|x| *x != id);
        }
    }

    async fn add_and_start(&mut self, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        if self.find(&spec.id).is_some() {
            return Err(SupervisorError::AlreadyPresent(spec.id));
        }
        let running = self.start_spec(&spec).await?;
        tracing::info!(supervisor = %self.spec.name, sup_pid = %self.me.pid(),
            child = %spec.id, pid = %running.pid(), "child started");
        Ok(self.push(spec, running))
    }

    async fn run(mut self, ops: mpsc::Receiver<Op>) {
        let reason = self.serve(ops).await;
        if let Some(reason) = reason {
            self.stop_all().await;
            self.registry.remove_supervisor(self.me.pid());
            self.me.exit(reason);
        } else {
            // Killed: the runtime already sent `killed` to every child.
            for c in &self.children {
                if let Some(pid) = c.pid() {
                    self.registry.child_down(pid);
                }
            }
            self.registry.remove_supervisor(self.me.pid());
        }
    }

    /// Serve until the supervisor must exit; `Some(reason)` to exit with,
    /// `None` when it was killed (the runtime already told its children).
    async fn serve(&mut self, mut ops: mpsc::Receiver<Op>) -> Option<ExitReason> {
        loop {
            tokio::select! {
                biased;
                m = self.me.recv(None) => match m {
                    Err(_) => return None,
                    Ok(Some(Msg::Exit { sender, reason })) => {
                        if Some(sender) == self.parent {
                            return Some(reason);
                        }
                        if let Err(reason) = self.child_exited(sender, reason).await {
                            return Some(reason);
                        }
                    }
                    Ok(_) => {}
                },
                Some(op) = ops.recv() => self.op(op).await,
                r = self.standing.changed() => match r {
                    Ok(()) => {
                        let now = *self.standing.borrow_and_update();
                        self.on_standing(now).await;
                    }
                    // The node is gone: so is this supervisor.
                    Err(_) => return None,
                },
                // A restart still to finish: one attempt, then back to the
                // signals and operations above.
                _ = std::future::ready(()), if !self.pending.is_empty() => {
                    if let Err(reason) = self.try_again().await {
                        return Some(reason);
                    }
                }
            }
        }
    }

    /// A linked child exited. `Err` means the supervisor must give up.
    async fn child_exited(&mut self, pid: Pid, reason: ExitReason) -> Result<(), ExitReason> {
        let Some(i) = self.children.iter().position(|c| c.pid() == Some(pid)) else {
            return Ok(()); // an exit we already handled (a child we stopped)
        };
        if self.hold_on_exit(i, &reason) {
            return Ok(());
        }
        self.set_running(i, None);
        let members: Vec<Member> = self
            .children
            .iter()
            .map(|c| Member {
                restart: c.spec.restart,
                running: c.running.is_some(),
            })
            .collect();
        let plan = plan::on_exit(self.spec.strategy, &members, i, Exit::from(&reason));
        let crashed = self.children[i].spec.id.clone();
        let mut old = vec![(crashed.clone(), pid)];
        // Siblings a strategy takes down are stopped, not crashed: they are
        // restarted without counting toward the intensity.
        for &j in &plan.stop {
            if let Some(p) = self.children[j].pid() {
                child::stop(&self.me, p, self.children[j].spec.shutdown).await;
                old.push((self.children[j].spec.id.clone(), p));
                self.set_running(j, None);
            }
        }
        let ids: VecDeque<String> = plan
            .start
            .iter()
            .map(|&j| self.children[j].spec.id.clone())
            .collect();
        let mut remove = plan.remove;
        remove.sort_unstable();
        for &j in remove.iter().rev() {
            self.remove(j);
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.pending.push_back(Pending {
            ids,
            crashed,
            reason,
            old,
            counted: false,
        });
        self.try_again().await
    }

    /// One attempt at the oldest pending restart: count it, then start its
    /// children in order until one fails (it stays queued) or all run.
    async fn try_again(&mut self) -> Result<(), ExitReason> {
        // A restart whose children were all removed or stopped by hand is
        // no restart: it does not count toward the intensity.
        self.pending.retain(|p| !p.ids.is_empty());
        let Some(mut p) = self.pending.pop_front() else {
            return Ok(());
        };
        if !p.counted && !self.intensity.record(Instant::now()) {
            tracing::error!(
                supervisor = %self.spec.name,
                sup_pid = %self.me.pid(),
                strategy = self.spec.strategy.as_str(),
                max_restarts = self.spec.max_restarts,
                max_seconds = self.spec.max_seconds.as_secs_f64(),
                "reached max restart intensity; shutting down"
            );
            return Err(ExitReason::Shutdown(String::new()));
        }
        while let Some(id) = p.ids.front().cloned() {
            let Some(j) = self.find(&id) else {
                p.ids.pop_front();
                continue;
            };
            if self.children[j].running.is_some() {
                p.ids.pop_front();
                continue;
            }
            if self.must_wait(j) {
                self.hold(j);
                p.ids.pop_front();
                continue;
            }
            let spec = self.children[j].spec.clone();
            match child::start(&self.me, &spec, self.spec.start_timeout).await {
                Ok(running) => {
                    let new = running.pid();
                    let old = p
                        .old
                        .iter()
                        .find(|(k, _)| *k == id)
                        .map(|(_, pid)| pid.to_string())
                        .unwrap_or_else(|| "-".into());
                    self.children[j].restarts += 1;
                    self.set_running(j, Some(running));
                    tracing::info!(
                        supervisor = %self.spec.name,
                        sup_pid = %self.me.pid(),
                        child = %id,
                        old_pid = %old,
                        new_pid = %new,
                        reason = %p.reason,
                        strategy = self.spec.strategy.as_str(),
                        crashed = %p.crashed,
                        "child restarted"
                    );
                    p.ids.pop_front();
                }
                Err(why) => {
                    tracing::warn!(supervisor = %self.spec.name, child = %id,
                        "restart failed: {why}; trying again");
                    // OTP's try_again_restart: queued behind whatever else
                    // arrived, counted again on the next attempt.
                    p.counted = false;
                    self.pending.push_back(p);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Stop every running child, last started first.
    async fn stop_all(&mut self) {
        self.pending.clear();
        for j in (0..self.children.len()).rev() {
            if let Some(pid) = self.children[j].pid() {
                tracing::info!(supervisor = %self.spec.name, sup_pid = %self.me.pid(),
                    child = %self.children[j].spec.id, %pid, "stopping child");
                child::stop(&self.me, pid, self.children[j].spec.shutdown).await;
                self.set_running(j, None);
            }
        }
    }

    pub(crate) fn simple(&self) -> bool {
        self.spec.strategy == Strategy::SimpleOneForOne
    }

    async fn op(&mut self, op: Op) {
        match op {
            Op::Start(spec, r) => {
                let res = if self.simple() {
                    Err(SupervisorError::Invalid(
                        "a simple-one-for-one supervisor starts instances of its template (start_instance)".into(),
                    ))
                } else {
                    self.add_and_start(spec).await
                };
                let _ = r.send(res);
            }
            Op::StartInstance(init, r) => {
                let res = match (self.simple(), self.spec.children.first()) {
                    (true, Some(template)) => {
                        let mut spec = template.clone();
                        if let ChildStart::Particle { init: i, .. } = &mut spec.start {
                            *i = init;
                        }
                        self.start_instance(spec).await
                    }
                    _ => Err(SupervisorError::Invalid(
                        "only a simple-one-for-one supervisor with a template starts instances"
                            .into(),
                    )),
                };
                let _ = r.send(res);
            }
            Op::Terminate(id, r) => {
                let res = match self.find(&id) {
                    None => Err(SupervisorError::NotFound(id)),
                    Some(i) => {
                        if let Some(pid) = self.children[i].pid() {
                            child::stop(&self.me, pid, self.children[i].spec.shutdown).await;
                            self.set_running(i, None);
                        }
                        // A terminated child is no longer waiting for a restart.
                        for p in &mut self.pending {
                            p.ids.retain(|x| *x != id);
                        }
                        self.pending.retain(|p| !p.ids.is_empty());
                        if self.simple() || self.children[i].spec.restart == Restart::Temporary {
                            self.remove(i);
                        }
                        Ok(())
                    }
                };
                let _ = r.send(res);
            }
            Op::Restart(id, r) => {
                let res = match self.stopped_child(id) {
                    Ok(i) => {
                        let spec = self.children[i].spec.clone();
                        match self.start_spec(&spec).await {
                            Ok(running) => {
                                let pid = running.pid();
                                self.set_running(i, Some(running));
                                Ok(pid)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                let _ = r.send(res);
            }
            Op::Delete(id, r) => {
                let res = self.stopped_child(id).map(|i| self.remove(i));
                let _ = r.send(res);
            }
            Op::StartAfter(spec, after, r) => {
                let res = self.add_after(spec, after).await;
                let _ = r.send(res);
            }
            Op::Update(flags, r) => {
                let res = self.update(flags).await;
                let _ = r.send(res);
            }
            Op::SetSpec(spec, r) => {
                let _ = r.send(self.set_spec(spec));
            }
        }
    }

    /// The index of a child that exists and is not running (nor waiting
    /// for a restart: OTP's `{error, restarting}`).
    fn stopped_child(&self, id: String) -> Result<usize, SupervisorError> {
        match self.find(&id) {
            None => Err(SupervisorError::NotFound(id)),
            Some(i) if self.children[i].running.is_some() => Err(SupervisorError::Running(id)),
            Some(_) if self.pending.iter().any(|p| p.ids.contains(&id)) => {
                Err(SupervisorError::Restarting(id))
            }
            Some(i) => Ok(i),
        }
    }

    /// Start a child from its spec, naming it in the error.
    pub(crate) async fn start_spec(&self, spec: &ChildSpec) -> Result<Running, SupervisorError> {
        child::start(&self.me, spec, self.spec.start_timeout)
            .await
            .map_err(|reason| SupervisorError::StartFailed {
                id: spec.id.clone(),
                reason,
            })
    }

    pub(crate) async fn start_instance(
        &mut self,
        mut spec: ChildSpec,
    ) -> Result<Pid, SupervisorError> {
        let running = self.start_spec(&spec).await?;
        spec.id = running.pid().to_string();
        Ok(self.push(spec, running))
    }
}
