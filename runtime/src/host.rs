//! The `plasmoid:runtime/process` host functions: the guest's view of the node.
//!
//! Every function that reaches outside the particle asks the Cedar gate first;
//! a denial is an error value for the guest and a warning in the log.

use crate::MAX_NAME;
use crate::node::{self, SpawnOpts};
use crate::particle::ParticleState;
use crate::pid::Pid;
use crate::policy::Action;
use crate::process::Process;
use crate::reason::Msg;
use plasmoid::runtime::process::{
    ExitReason, Host, HostPid, LinkError, LogLevel, Message, NodeInfo, RegistryError, SendError,
    SpawnError, TimerError,
};
use std::sync::{Arc, Weak};
use wasmtime::component::{HasSelf, Linker, Resource};

wasmtime::component::bindgen!({
    world: "particle",
    path: "../wit",
    imports: {
        "plasmoid:runtime/process.recv": async | trappable,
        "plasmoid:runtime/process.recv-ref": async | trappable,
        "plasmoid:runtime/process.lookup": async | trappable,
        "plasmoid:runtime/process.register-global": async | trappable,
        "plasmoid:runtime/process.spawn-on": async | trappable,
        "plasmoid:runtime/supervisor": async | trappable,
        "plasmoid:runtime/http": trappable,
        default: trappable,
    },
    exports: { default: async },
    with: { "plasmoid:runtime/process.pid": crate::host::PidRep },
});

/// What a guest's `pid` handle points at. The weak reference makes sends to
/// a local process skip the process table lookup.
pub struct PidRep {
    pub pid: Pid,
    local: Weak<Process>,
}

/// The linker every particle is checked against: WASI p2, `wasi:http`'s
/// types and outgoing handler, and `process`.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<ParticleState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::kv::add_to_linker(&mut linker, |s: &mut ParticleState| crate::kv::KvView {
        table: &mut s.table,
        node: &s.node,
        principal: &s.component.name,
    })?;
    Particle::add_to_linker::<_, HasSelf<ParticleState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Longest log line a guest may write; the rest is cut.
const MAX_LOG: usize = 4096;

impl ParticleState {
    pub(crate) fn pid_handle(&mut self, pid: Pid) -> wasmtime::Result<Resource<PidRep>> {
        let local = self
            .node
            .lookup(pid)
            .map(|p| Arc::downgrade(&p))
            .unwrap_or_default();
        Ok(self.table.push(PidRep { pid, local })?)
    }

    pub(crate) fn target(
        &self,
        r: &Resource<PidRep>,
    ) -> wasmtime::Result<(Pid, Option<Arc<Process>>)> {
        let rep = self.table.get(r)?;
        Ok((rep.pid, rep.local.upgrade()))
    }

    pub(crate) fn denied(&self, action: Action, resource: &str) -> String {
        self.node.stats.denied(
            self.proc.pid,
            &self.component.name,
            action.as_str(),
            resource,
        );
        tracing::warn!(
            pid = %self.proc.pid,
            component = %self.component.name,
            action = action.as_str(),
            resource,
            "denied by policy"
        );
        format!(
            "`{}` may not {} `{resource}`",
            self.component.name,
            action.as_str()
        )
    }

    fn spawn_with(
        &mut self,
        component: String,
        name: Option<String>,
        init: String,
        link: bool,
    ) -> Result<Resource<PidRep>, SpawnError> {
        if !self.allowed(Action::Spawn, &component) {
            return Err(SpawnError::Denied(self.denied(Action::Spawn, &component)));
        }
        let opts = SpawnOpts {
            name,
            link: link.then_some(self.proc.pid),
            ..Default::default()
        };
        let pid = self
            .node
            .spawn_particle(&component, &init, opts)
            .map_err(SpawnError::from)?;
        self.pid_handle(pid)
            .map_err(|e| SpawnError::Failed(e.to_string()))
    }

    fn send_msg(
        &mut self,
        target: Resource<PidRep>,
        msg: Msg,
    ) -> wasmtime::Result<Result<(), SendError>> {
        if self.node.config.metrics {
            // Counted as sent when tried, as Erlang counts a send.
            crate::stats::bump(&self.proc.counters.sent);
        }
        let (pid, local) = self.target(&target)?;
        let Some(t) = local.or_else(|| self.node.lookup(pid)) else {
            // Not a process here: `noproc`, or another node, which
            // authorizes the delivery itself (principal Node), since only
            // it knows the receiver's component.
            return Ok(self.node.send(pid, msg).map_err(Into::into));
        };
        if !self.allowed_on(Action::Send, &t.component) {
            return Ok(Err(SendError::Denied(
                self.denied(Action::Send, &t.component),
            )));
        }
        Ok(self.node.send_to(&t, msg).map_err(Into::into))
    }

    /// Names are guest-chosen strings: bound their length, then ask Cedar.
    fn check_name(&self, action: Action, name: &str) -> Result<(), RegistryError> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(RegistryError::Denied(format!(
                "a registered name has 1 to {MAX_NAME} bytes"
            )));
        }
        if !self.allowed(action, name) {
            return Err(RegistryError::Denied(self.denied(action, name)));
        }
        Ok(())
    }

    /// Cedar check for an action on a live target; `Err` carries the denial text.
    fn check_target(&mut self, action: Action, target: &Process) -> Result<(), String> {
        if self.allowed_on(action, &target.component) {
            Ok(())
        } else {
            Err(self.denied(action, &target.component))
        }
    }
}

impl HostPid for ParticleState {
    fn to_string(&mut self, this: Resource<PidRep>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.pid.to_string())
    }

    fn equals(
        &mut self,
        this: Resource<PidRep>,
        other: Resource<PidRep>,
    ) -> wasmtime::Result<bool> {
        Ok(self.table.get(&this)?.pid == self.table.get(&other)?.pid)
    }

    fn drop(&mut self, rep: Resource<PidRep>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl Host for ParticleState {
    fn self_pid(&mut self) -> wasmtime::Result<Resource<PidRep>> {
        let rep = PidRep {
            pid: self.proc.pid,
            local: Arc::downgrade(&self.proc),
        };
        Ok(self.table.push(rep)?)
    }

    fn self_name(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.proc.registered_name())
    }

    fn make_ref(&mut self) -> wasmtime::Result<u64> {
        Ok(self.node.next_ref())
    }

    fn spawn(
        &mut self,
        component: String,
        name: Option<String>,
        init: String,
    ) -> wasmtime::Result<Result<Resource<PidRep>, SpawnError>> {
        Ok(self.spawn_with(component, name, init, false))
    }

    fn spawn_link(
        &mut self,
        component: String,
        name: Option<String>,
        init: String,
    ) -> wasmtime::Result<Result<Resource<PidRep>, SpawnError>> {
        Ok(self.spawn_with(component, name, init, true))
    }

    async fn spawn_on(
        &mut self,
        node: String,
        component: String,
        init: String,
    ) -> wasmtime::Result<Result<Resource<PidRep>, SpawnError>> {
        if !self.allowed(Action::Spawn, &component) {
            return Ok(Err(SpawnError::Denied(
                self.denied(Action::Spawn, &component),
            )));
        }
        let here = crate::node::Node {
            inner: self.node.clone(),
        };
        let Some(id) = here.node_named(&node) else {
            return Ok(Err(SpawnError::Failed(format!(
                "no node `{node}` is known here"
            ))));
        };
        if id == self.node.id {
            return Ok(self.spawn_with(component, None, init, true));
        }
        let timeout = crate::start::DEFAULT_START_TIMEOUT;
        match crate::start::start_linked(
            &self.node,
            &self.proc,
            Some(id),
            crate::start::Child::Particle {
                component: &component,
                init: &init,
            },
            timeout,
        )
        .await
        {
            Ok(pid) => Ok(Ok(self.pid_handle(pid)?)),
            Err(why) => Ok(Err(SpawnError::Failed(format!("on node `{node}`: {why}")))),
        }
    }

    fn exit(&mut self, reason: ExitReason) -> wasmtime::Result<()> {
        self.exit_request = Some(reason.into());
        Err(wasmtime::Error::msg("particle called exit"))
    }

    fn send_exit(
        &mut self,
        target: Resource<PidRep>,
        reason: ExitReason,
    ) -> wasmtime::Result<Result<(), SendError>> {
        let (pid, local) = self.target(&target)?;
        let Some(t) = local.or_else(|| self.node.lookup(pid)) else {
            return Ok(self
                .node
                .send_exit(self.proc.pid, pid, reason.into())
                .map_err(Into::into));
        };
        if let Err(d) = self.check_target(Action::Exit, &t) {
            return Ok(Err(SendError::Denied(d)));
        }
        self.node
            .deliver_exit(self.proc.pid, &t, reason.into(), false);
        Ok(Ok(()))
    }

    fn send(
        &mut self,
        target: Resource<PidRep>,
        msg: Vec<u8>,
    ) -> wasmtime::Result<Result<(), SendError>> {
        self.send_msg(target, Msg::Data(msg))
    }

    fn send_tagged(
        &mut self,
        target: Resource<PidRep>,
        reference: u64,
        msg: Vec<u8>,
    ) -> wasmtime::Result<Result<(), SendError>> {
        let tagged = Msg::Tagged {
            sender: self.proc.pid,
            reference,
            payload: msg,
        };
        self.send_msg(target, tagged)
    }

    fn send_after(
        &mut self,
        target: Resource<PidRep>,
        ms: u64,
        msg: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, TimerError>> {
        self.set_timer(&target, ms, false, msg)
    }

    fn send_interval(
        &mut self,
        target: Resource<PidRep>,
        ms: u64,
        msg: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, TimerError>> {
        self.set_timer(&target, ms, true, msg)
    }

    fn cancel_timer(&mut self, reference: u64) -> wasmtime::Result<Option<u64>> {
        let left = self.node.cancel_timer(&self.proc, reference);
        Ok(left.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
    }

    async fn recv(&mut self, timeout_ms: Option<u64>) -> wasmtime::Result<Option<Message>> {
        self.wait(None, timeout_ms).await
    }

    async fn recv_ref(
        &mut self,
        reference: u64,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Option<Message>> {
        self.wait(Some(reference), timeout_ms).await
    }

    fn resolve(&mut self, pid: String) -> wasmtime::Result<Option<Resource<PidRep>>> {
        match self.node.resolve(&pid) {
            Some(p) => Ok(Some(self.pid_handle(p)?)),
            None => Ok(None),
        }
    }

    fn register(&mut self, name: String) -> wasmtime::Result<Result<(), RegistryError>> {
        if let Err(e) = self.check_name(Action::Register, &name) {
            return Ok(Err(e));
        }
        Ok(self
            .node
            .register(&self.proc, &name)
            .map_err(registry_error))
    }

    fn unregister(&mut self, name: String) -> wasmtime::Result<Result<(), RegistryError>> {
        if let Err(e) = self.check_name(Action::Register, &name) {
            return Ok(Err(e));
        }
        Ok(self.node.unregister(&name).map_err(registry_error))
    }

    /// `name`, or `name@node` for a name registered on another node (the
    /// other node's policy decides too; a lost node reads as not found).
    async fn lookup(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<PidRep>, RegistryError>> {
        let bare = name.rsplit_once('@').map_or(name.as_str(), |(n, _)| n);
        if let Err(e) = self.check_name(Action::Lookup, bare) {
            return Ok(Err(e));
        }
        let node = crate::node::Node {
            inner: self.node.clone(),
        };
        let found = node
            .whereis_qualified(&name, std::time::Duration::from_secs(2))
            .await;
        let found = match found {
            Ok(None) if !name.contains('@') => Ok(node.whereis_global(&name)),
            other => other,
        };
        match found {
            Ok(Some(pid)) => Ok(Ok(self.pid_handle(pid)?)),
            Ok(None) => Ok(Err(RegistryError::NotFound)),
            Err(e) => {
                tracing::debug!("lookup of `{name}`: {e}");
                Ok(Err(RegistryError::NotFound))
            }
        }
    }

    async fn register_global(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<(), RegistryError>> {
        if let Err(e) = self.check_name(Action::Register, &name) {
            return Ok(Err(e));
        }
        if name.contains('@') {
            return Ok(Err(RegistryError::Denied(
                "a global name cannot contain `@` (that is how `lookup` names another node)".into(),
            )));
        }
        let node = crate::node::Node {
            inner: self.node.clone(),
        };
        Ok(node
            .register_global(&name, self.proc.pid)
            .await
            .map_err(registry_error))
    }

    fn unregister_global(&mut self, name: String) -> wasmtime::Result<Result<(), RegistryError>> {
        let node = crate::node::Node {
            inner: self.node.clone(),
        };
        Ok(node
            .unregister_global(&name, self.proc.pid)
            .map_err(registry_error))
    }

    fn lookup_global(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<PidRep>, RegistryError>> {
        if let Err(e) = self.check_name(Action::Lookup, &name) {
            return Ok(Err(e));
        }
        let node = crate::node::Node {
            inner: self.node.clone(),
        };
        match node.whereis_global(&name) {
            Some(pid) => Ok(Ok(self.pid_handle(pid)?)),
            None => Ok(Err(RegistryError::NotFound)),
        }
    }

    fn link(&mut self, target: Resource<PidRep>) -> wasmtime::Result<Result<(), LinkError>> {
        let (pid, local) = self.target(&target)?;
        if let Some(t) = local.or_else(|| self.node.lookup(pid))
            && let Err(d) = self.check_target(Action::Link, &t)
        {
            return Ok(Err(LinkError::Denied(d)));
        }
        Ok(self
            .node
            .link(&self.proc, pid)
            .map_err(|_| LinkError::Noproc))
    }

    fn unlink(&mut self, target: Resource<PidRep>) -> wasmtime::Result<()> {
        let (pid, _) = self.target(&target)?;
        self.node.unlink(&self.proc, pid);
        Ok(())
    }

    fn monitor(&mut self, target: Resource<PidRep>) -> wasmtime::Result<Result<u64, LinkError>> {
        let (pid, local) = self.target(&target)?;
        if let Some(t) = local.or_else(|| self.node.lookup(pid))
            && let Err(d) = self.check_target(Action::Monitor, &t)
        {
            return Ok(Err(LinkError::Denied(d)));
        }
        Ok(Ok(self.node.monitor(&self.proc, pid)))
    }

    fn demonitor(&mut self, reference: u64) -> wasmtime::Result<bool> {
        Ok(self.node.demonitor(&self.proc, reference))
    }

    fn trap_exit(&mut self, enabled: bool) -> wasmtime::Result<bool> {
        Ok(self.proc.set_trap_exit(enabled))
    }

    fn set_upgradable(&mut self, enabled: bool) -> wasmtime::Result<()> {
        self.proc.set_upgradable(enabled);
        Ok(())
    }

    fn handoff(&mut self, state: Vec<u8>) -> wasmtime::Result<()> {
        self.handoff_out = Some(state);
        Ok(())
    }

    fn take_handoff(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.handoff_in.take())
    }

    fn monitor_nodes(&mut self, enabled: bool) -> wasmtime::Result<Result<bool, String>> {
        if !self.allowed(Action::MonitorNodes, "local") {
            return Ok(Err(
                "monitor_nodes on Node::\"local\" denied by policy".into()
            ));
        }
        let node = node::Node {
            inner: self.node.clone(),
        };
        Ok(Ok(node.monitor_nodes(self.proc.pid, enabled)))
    }

    fn nodes(&mut self) -> wasmtime::Result<Result<Vec<NodeInfo>, String>> {
        if !self.allowed(Action::MonitorNodes, "local") {
            return Ok(Err(
                "monitor_nodes on Node::\"local\" denied by policy".into()
            ));
        }
        let node = node::Node {
            inner: self.node.clone(),
        };
        Ok(Ok(node
            .connected_nodes()
            .into_iter()
            .map(|(id, name)| NodeInfo {
                id: id.to_hex(),
                name: name.unwrap_or_default(),
            })
            .collect()))
    }

    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        if !self.allowed(Action::Log, "local") {
            return Ok(());
        }
        let mut message = message;
        if message.len() > MAX_LOG {
            let mut cut = MAX_LOG;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let pid = self.proc.pid;
        let component = &*self.component.name;
        match level {
            LogLevel::Trace => tracing::trace!(target: "particle", %pid, component, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "particle", %pid, component, "{message}"),
            LogLevel::Info => tracing::info!(target: "particle", %pid, component, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "particle", %pid, component, "{message}"),
            LogLevel::Error => tracing::error!(target: "particle", %pid, component, "{message}"),
        }
        Ok(())
    }
}

fn registry_error(e: node::RegistryError) -> RegistryError {
    match e {
        node::RegistryError::Taken => RegistryError::Taken,
        node::RegistryError::NotFound => RegistryError::NotFound,
        node::RegistryError::Denied(d) => RegistryError::Denied(d),
    }
}
