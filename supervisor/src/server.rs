//! The supervisor process: a native process that traps exits, links to its
//! children and restarts them by its strategy, within its restart intensity.

use crate::SupervisorError;
use crate::child::{self, Running};
use crate::spec::{ChildSpec, ChildStart, Restart, Strategy, SupervisorSpec};
use plasmoid_runtime::{ExitReason, Msg, NativeProcess, Node, Pid};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// A handle to a running supervisor.
#[derive(Clone)]
pub struct SupervisorRef {
    pid: Pid,
    ops: mpsc::UnboundedSender<Op>,
    simple: bool,
    strategy: Strategy,
}

/// One row of `which_children`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    pub id: String,
    pub pid: Option<Pid>,
    pub supervisor: bool,
    pub restarts: u32,
    /// The component of a worker; `None` for a supervisor.
    pub component: Option<String>,
    /// The strategy of a nested supervisor.
    pub strategy: Option<Strategy>,
}

/// `count_children`, as OTP counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counts {
    pub specs: usize,
    pub active: usize,
    pub supervisors: usize,
    pub workers: usize,
}

/// What `start_link` returns.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<SupervisorRef, SupervisorError>> + Send>>;

type Reply<T> = oneshot::Sender<Result<T, SupervisorError>>;

enum Op {
    Which(Reply<Vec<ChildInfo>>),
    Count(Reply<Counts>),
    Start(ChildSpec, Reply<Pid>),
    StartInstance(String, Reply<Pid>),
    Terminate(String, Reply<()>),
    Restart(String, Reply<Pid>),
    Delete(String, Reply<()>),
}

impl SupervisorRef {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether this is a simple-one-for-one supervisor (children are
    /// instances of one template).
    pub fn is_simple(&self) -> bool {
        self.simple
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    async fn ask<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(op(tx))
            .map_err(|_| SupervisorError::NotRunning)?;
        rx.await.map_err(|_| SupervisorError::NotRunning)?
    }

    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.ask(Op::Which).await
    }

    pub async fn count_children(&self) -> Result<Counts, SupervisorError> {
        self.ask(Op::Count).await
    }

    /// Add and start a child (not for simple-one-for-one).
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        self.ask(|r| Op::Start(spec, r)).await
    }

    /// Start one more instance of a simple-one-for-one template with `init`.
    pub async fn start_instance(&self, init: &str) -> Result<Pid, SupervisorError> {
        self.ask(|r| Op::StartInstance(init.to_string(), r)).await
    }

    /// Stop a child; its spec stays (for simple-one-for-one, `id` is the pid).
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.ask(|r| Op::Terminate(id.to_string(), r)).await
    }

    /// Start a terminated child again.
    pub async fn restart_child(&self, id: &str) -> Result<Pid, SupervisorError> {
        self.ask(|r| Op::Restart(id.to_string(), r)).await
    }

    /// Remove a terminated child's spec.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.ask(|r| Op::Delete(id.to_string(), r)).await
    }
}

struct Child {
    spec: ChildSpec,
    running: Option<Running>,
    restarts: u32,
}

impl Child {
    fn pid(&self) -> Option<Pid> {
        self.running.as_ref().map(Running::pid)
    }
}

struct Sup {
    me: NativeProcess,
    spec: SupervisorSpec,
    children: Vec<Child>,
    restarts: VecDeque<Instant>,
    parent: Option<Pid>,
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
            restarts: VecDeque::new(),
            parent,
            spec,
        };
        if sup.spec.strategy != Strategy::SimpleOneForOne {
            for cs in sup.spec.children.clone() {
                if let Err(e) = sup.add_and_start(cs).await {
                    sup.stop_all().await;
                    let reason = ExitReason::Shutdown(e.to_string());
                    sup.me.exit(reason);
                    return Err(e);
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = SupervisorRef {
            pid: sup.me.pid(),
            ops: tx,
            simple: sup.spec.strategy == Strategy::SimpleOneForOne,
            strategy: sup.spec.strategy,
        };
        crate::service::register(sup.me.node(), &handle);
        tokio::spawn(sup.run(rx));
        Ok(handle)
    })
}

impl Sup {
    fn find(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    async fn add_and_start(&mut self, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        if self.find(&spec.id).is_some() {
            return Err(SupervisorError::AlreadyPresent(spec.id));
        }
        let running = self.start_spec(&spec).await?;
        let pid = running.pid();
        tracing::info!(supervisor = %self.spec.name,
                sup_pid = %self.me.pid(), child = %spec.id, %pid, "child started");
        self.children.push(Child {
            spec,
            running: Some(running),
            restarts: 0,
        });
        Ok(pid)
    }

    async fn run(self, ops: mpsc::UnboundedReceiver<Op>) {
        let pid = self.me.pid();
        self.serve(ops).await;
        crate::service::unregister(pid);
    }

    async fn serve(mut self, mut ops: mpsc::UnboundedReceiver<Op>) {
        loop {
            tokio::select! {
                m = self.me.recv(None) => match m {
                    // Killed: the runtime already sent `killed` to every child.
                    Err(_) => return,
                    Ok(Some(Msg::Exit { sender, reason })) => {
                        if Some(sender) == self.parent {
                            self.stop_all().await;
                            self.me.exit(reason);
                            return;
                        }
                        if let Err(reason) = self.child_exited(sender, reason).await {
                            self.stop_all().await;
                            self.me.exit(reason);
                            return;
                        }
                    }
                    Ok(_) => {}
                },
                Some(op) = ops.recv() => {
                    if let Err(reason) = self.op(op).await {
                        self.stop_all().await;
                        self.me.exit(reason);
                        return;
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
        self.children[i].running = None;
        let restart = match self.children[i].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !matches!(reason, ExitReason::Normal | ExitReason::Shutdown(_)),
            Restart::Temporary => false,
        };
        if !restart {
            if self.children[i].spec.restart == Restart::Temporary
                || self.spec.strategy == Strategy::SimpleOneForOne
            {
                self.children.remove(i);
            }
            return Ok(());
        }
        self.restart_from(i, pid, reason).await
    }

    /// Record a restart; past the intensity, give up.
    fn count_restart(&mut self) -> Result<(), ExitReason> {
        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.spec.max_seconds)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() as u32 > self.spec.max_restarts {
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
        Ok(())
    }

    /// Apply the strategy to a crash of child `i` (already marked stopped).
    async fn restart_from(
        &mut self,
        i: usize,
        old: Pid,
        reason: ExitReason,
    ) -> Result<(), ExitReason> {
        let strategy = self.spec.strategy;
        // Siblings a strategy takes down are stopped, not crashed: they are
        // restarted without counting toward the intensity.
        let range = match strategy {
            Strategy::OneForOne | Strategy::SimpleOneForOne => i..i + 1,
            Strategy::OneForAll => 0..self.children.len(),
            Strategy::RestForOne => i..self.children.len(),
        };
        let mut old_pids = vec![(self.children[i].spec.id.clone(), old)];
        for j in range.clone().rev() {
            if j != i
                && let Some(pid) = self.children[j].pid()
            {
                child::stop(&self.me, pid, self.children[j].spec.shutdown).await;
                self.children[j].running = None;
                old_pids.push((self.children[j].spec.id.clone(), pid));
            }
        }
        // Temporary siblings taken down are not restarted, and are forgotten.
        let crashed_id = self.children[i].spec.id.clone();
        let affected: Vec<String> = self.children[range]
            .iter()
            .filter(|c| c.spec.id == crashed_id || c.spec.restart != Restart::Temporary)
            .map(|c| c.spec.id.clone())
            .collect();
        self.children.retain(|c| {
            c.running.is_some()
                || affected.contains(&c.spec.id)
                || c.spec.restart != Restart::Temporary
        });
        let mut first_attempt = true;
        loop {
            self.count_restart()?;
            let mut failed = false;
            for id in &affected {
                let Some(j) = self.find(id) else { continue };
                if self.children[j].running.is_some() {
                    continue;
                }
                let spec = self.children[j].spec.clone();
                match child::start(&self.me, &spec, self.spec.start_timeout).await {
                    Ok(running) => {
                        let new = running.pid();
                        let old = old_pids
                            .iter()
                            .find(|(k, _)| *k == spec.id)
                            .map_or(old, |(_, p)| *p);
                        self.children[j].restarts += 1;
                        self.children[j].running = Some(running);
                        tracing::info!(
                                    supervisor = %self.spec.name,
                        sup_pid = %self.me.pid(),
                                    child = %spec.id,
                                    old_pid = %old,
                                    new_pid = %new,
                                    %reason,
                                    strategy = strategy.as_str(),
                                    crashed = %crashed_id,
                                    "child restarted"
                                );
                    }
                    Err(why) => {
                        tracing::warn!(supervisor = %self.spec.name, child = %spec.id, "restart failed: {why}");
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                return Ok(());
            }
            // A failed restart counts as another restart, as in OTP.
            if !first_attempt {
                tokio::task::yield_now().await;
            }
            first_attempt = false;
        }
    }

    /// Stop every running child, last started first.
    async fn stop_all(&mut self) {
        for j in (0..self.children.len()).rev() {
            if let Some(pid) = self.children[j].pid() {
                tracing::info!(supervisor = %self.spec.name,
                sup_pid = %self.me.pid(), child = %self.children[j].spec.id, %pid, "stopping child");
                child::stop(&self.me, pid, self.children[j].spec.shutdown).await;
                self.children[j].running = None;
            }
        }
    }

    async fn op(&mut self, op: Op) -> Result<(), ExitReason> {
        let simple = self.spec.strategy == Strategy::SimpleOneForOne;
        match op {
            Op::Which(r) => {
                let rows = self
                    .children
                    .iter()
                    .map(|c| ChildInfo {
                        id: c.spec.id.clone(),
                        pid: c.pid(),
                        supervisor: c.spec.is_supervisor(),
                        restarts: c.restarts,
                        component: match &c.spec.start {
                            ChildStart::Particle { component, .. } => Some(component.clone()),
                            ChildStart::Supervisor(_) => None,
                        },
                        strategy: match &c.spec.start {
                            ChildStart::Supervisor(s) => Some(s.strategy),
                            ChildStart::Particle { .. } => None,
                        },
                    })
                    .collect();
                let _ = r.send(Ok(rows));
            }
            Op::Count(r) => {
                let mut n = Counts {
                    specs: if simple { 1 } else { self.children.len() },
                    ..Counts::default()
                };
                for c in &self.children {
                    n.active += usize::from(c.running.is_some());
                    if c.spec.is_supervisor() {
                        n.supervisors += 1;
                    } else {
                        n.workers += 1;
                    }
                }
                let _ = r.send(Ok(n));
            }
            Op::Start(spec, r) => {
                let res = if simple {
                    Err(SupervisorError::Invalid(
                        "a simple-one-for-one supervisor starts instances of its template (start_instance)".into(),
                    ))
                } else {
                    self.add_and_start(spec).await
                };
                let _ = r.send(res);
            }
            Op::StartInstance(init, r) => {
                let res = match (simple, self.spec.children.first()) {
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
                            self.children[i].running = None;
                        }
                        if simple || self.children[i].spec.restart == Restart::Temporary {
                            self.children.remove(i);
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
                        self.start_spec(&spec).await.map(|running| {
                            let pid = running.pid();
                            self.children[i].running = Some(running);
                            pid
                        })
                    }
                    Err(e) => Err(e),
                };
                let _ = r.send(res);
            }
            Op::Delete(id, r) => {
                let res = self.stopped_child(id).map(|i| {
                    self.children.remove(i);
                });
                let _ = r.send(res);
            }
        }
        Ok(())
    }

    /// The index of a child that exists and is not running.
    fn stopped_child(&self, id: String) -> Result<usize, SupervisorError> {
        match self.find(&id) {
            None => Err(SupervisorError::NotFound(id)),
            Some(i) if self.children[i].running.is_some() => Err(SupervisorError::Running(id)),
            Some(i) => Ok(i),
        }
    }

    /// Start a child from its spec, naming it in the error.
    async fn start_spec(&self, spec: &ChildSpec) -> Result<Running, SupervisorError> {
        child::start(&self.me, spec, self.spec.start_timeout)
            .await
            .map_err(|reason| SupervisorError::StartFailed {
                id: spec.id.clone(),
                reason,
            })
    }

    async fn start_instance(&mut self, mut spec: ChildSpec) -> Result<Pid, SupervisorError> {
        let running = self.start_spec(&spec).await?;
        let pid = running.pid();
        spec.id = pid.to_string();
        self.children.push(Child {
            spec,
            running: Some(running),
            restarts: 0,
        });
        Ok(pid)
    }
}
