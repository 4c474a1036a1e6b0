//! Changes a release upgrade makes to a running supervisor in place, as
//! OTP's release handler does with `{update, M, supervisor}`: new flags
//! (strategy, intensity, pool size), a new child started at its place in
//! the start order, and a child's stored spec replaced without a restart
//! (so that a nested supervisor restarted later comes back as the new
//! manifest says). The running children are left alone; what to change is
//! plasmoid-release's decision.

use crate::SupervisorError;
use crate::plan::Intensity;
use crate::server::{Child, Sup};
use crate::spec::{ChildSpec, Strategy};
use plasmoid_runtime::Pid;
use std::time::Duration;

/// A supervisor's flags: what an upgrade may change without a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    pub strategy: Strategy,
    pub max_restarts: u32,
    pub max_seconds: Duration,
    /// Instances of a simple-one-for-one template (ignored otherwise).
    pub instances: u32,
}

impl Sup {
    fn flags(&self) -> Flags {
        Flags {
            strategy: self.spec.strategy,
            max_restarts: self.spec.max_restarts,
            max_seconds: self.spec.max_seconds,
            instances: self.spec.instances,
        }
    }

    pub(crate) async fn update(&mut self, new: Flags) -> Result<Flags, SupervisorError> {
        let old = self.flags();
        let simple = |s: Strategy| s == Strategy::SimpleOneForOne;
        if simple(old.strategy) != simple(new.strategy) {
            return Err(SupervisorError::Invalid(format!(
                "a supervisor cannot change between {} and {} in place: its children are of another kind; restart it",
                old.strategy.as_str(),
                new.strategy.as_str()
            )));
        }
        if simple(new.strategy) {
            self.resize(new.instances).await?;
        }
        self.spec.strategy = new.strategy;
        *self.strategy.write() = new.strategy;
        if (old.max_restarts, old.max_seconds) != (new.max_restarts, new.max_seconds) {
            // A new window: restarts counted under the old one do not carry
            // over (the limit they were counted against is gone).
            self.intensity = Intensity::new(new.max_restarts, new.max_seconds);
        }
        self.spec.max_restarts = new.max_restarts;
        self.spec.max_seconds = new.max_seconds;
        self.spec.instances = new.instances;
        tracing::info!(supervisor = %self.spec.name, sup_pid = %self.me.pid(),
            strategy = new.strategy.as_str(), max_restarts = new.max_restarts,
            max_seconds = new.max_seconds.as_secs_f64(), "supervisor updated in place");
        Ok(old)
    }

    /// A pool grows by new instances of its template, or shrinks by
    /// stopping its newest ones.
    async fn resize(&mut self, want: u32) -> Result<(), SupervisorError> {
        let want = want as usize;
        while self.children.len() > want {
            let last = self.children.len() - 1;
            if let Some(pid) = self.children[last].pid() {
                crate::child::stop(&self.me, pid, self.children[last].spec.shutdown).await;
            }
            self.remove_at(last);
        }
        let Some(template) = self.spec.children.first().cloned() else {
            return Ok(());
        };
        while self.children.len() < want {
            self.start_instance(template.clone()).await?;
        }
        Ok(())
    }

    fn remove_at(&mut self, i: usize) {
        if let Some(pid) = self.children[i].pid() {
            self.registry.child_down(pid);
        }
        self.children.remove(i);
        self.table.write().remove(i);
    }

    /// Start `spec` and put it right after the child `after` (first when
    /// `None`, last when `after` is not a child any more).
    pub(crate) async fn add_after(
        &mut self,
        spec: ChildSpec,
        after: Option<String>,
    ) -> Result<Pid, SupervisorError> {
        if self.simple() {
            return Err(SupervisorError::Invalid(
                "a simple-one-for-one supervisor starts instances of its template (start_instance)"
                    .into(),
            ));
        }
        if self.find(&spec.id).is_some() {
            return Err(SupervisorError::AlreadyPresent(spec.id));
        }
        let at = match &after {
            None => 0,
            Some(id) => self.find(id).map_or(self.children.len(), |i| i + 1),
        };
        let running = self.start_spec(&spec).await?;
        let pid = running.pid();
        self.registry.child_up(pid, self.me.pid(), &spec.id);
        tracing::info!(supervisor = %self.spec.name, sup_pid = %self.me.pid(),
            child = %spec.id, %pid, after = after.as_deref().unwrap_or("-"), "child started");
        let child = Child {
            spec,
            running: Some(running),
            restarts: 0,
        };
        self.table.write().insert(at, child.info());
        self.children.insert(at, child);
        Ok(pid)
    }

    /// Replace the spec child `id` restarts from; it keeps running.
    pub(crate) fn set_spec(&mut self, spec: ChildSpec) -> Result<(), SupervisorError> {
        let Some(i) = self.find(&spec.id) else {
            return Err(SupervisorError::NotFound(spec.id));
        };
        if self.children[i].spec.is_supervisor() != spec.is_supervisor() {
            return Err(SupervisorError::Invalid(format!(
                "child `{}` cannot change between worker and supervisor in place",
                spec.id
            )));
        }
        self.children[i].spec = spec;
        self.table.write()[i] = self.children[i].info();
        Ok(())
    }
}
