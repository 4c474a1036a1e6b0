//! The `plasmoid:runtime/supervisor` host functions: OTP's supervisor API for
//! particles, each call authorized by Cedar (`supervise` on the supervisor),
//! on this node or on another (remote_sup.rs).

use crate::host::PidRep;
use crate::host::plasmoid::runtime::supervisor::{
    ChildCounts, ChildInfo, ChildSpec, Host, SupervisorError,
};
use crate::particle::ParticleState;

use crate::policy::Action;
use crate::supervision::{Shutdown, SupReply, SupRequest, Supervision};
use std::sync::Arc;
use wasmtime::component::Resource;

type Answer<T> = wasmtime::Result<Result<T, SupervisorError>>;

impl ParticleState {
    /// Resolve the supervisor, check the policy, and send it the request.
    async fn ask_supervisor(
        &mut self,
        sup: &Resource<PidRep>,
        req: SupRequest,
    ) -> wasmtime::Result<Result<SupReply, SupervisorError>> {
        let (pid, local) = self.target(sup)?;
        if pid.node != self.node.id {
            // Checked here as for a local one, and again there with this
            // node as principal (remote_sup.rs).
            let resource: Arc<str> = Arc::from("supervisor");
            if !self.allowed_on(Action::Supervise, &resource) {
                let why = self.denied(Action::Supervise, "supervisor");
                return Ok(Err(SupervisorError::Denied(why)));
            }
            let node = crate::node::Node {
                inner: self.node.clone(),
            };
            let timeout = crate::remote_sup::SUPERVISOR_ASK_TIMEOUT;
            return Ok(node
                .ask_supervisor(pid, req, timeout)
                .await
                .map_err(Into::into));
        }
        let Some(target) = local.or_else(|| self.node.lookup(pid)) else {
            return Ok(Err(SupervisorError::NotASupervisor));
        };
        if !self.allowed_on(Action::Supervise, &target.component) {
            let why = self.denied(Action::Supervise, &target.component);
            return Ok(Err(SupervisorError::Denied(why)));
        }
        let service: Option<Arc<dyn Supervision>> = self.node.supervision.read().clone();
        let Some(service) = service else {
            return Ok(Err(SupervisorError::NotASupervisor));
        };
        Ok(service.request(pid, req).await.map_err(Into::into))
    }

    fn pid_reply(&mut self, reply: Result<SupReply, SupervisorError>) -> Answer<Resource<PidRep>> {
        match reply {
            Ok(SupReply::Pid(p)) => Ok(Ok(self.pid_handle(p)?)),
            Ok(_) => Ok(Err(unexpected())),
            Err(e) => Ok(Err(e)),
        }
    }
}

fn unexpected() -> SupervisorError {
    SupervisorError::Invalid("the supervisor gave an unexpected answer".into())
}

fn done(reply: Result<SupReply, SupervisorError>) -> Result<(), SupervisorError> {
    match reply {
        Ok(SupReply::Done) => Ok(()),
        Ok(_) => Err(unexpected()),
        Err(e) => Err(e),
    }
}

impl Host for ParticleState {
    async fn which_children(&mut self, sup: Resource<PidRep>) -> Answer<Vec<ChildInfo>> {
        let rows = match self.ask_supervisor(&sup, SupRequest::Which).await? {
            Ok(SupReply::Rows(rows)) => rows,
            Ok(_) => return Ok(Err(unexpected())),
            Err(e) => return Ok(Err(e)),
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let pid = match r.pid {
                Some(p) => Some(self.pid_handle(p)?),
                None => None,
            };
            out.push(ChildInfo {
                id: r.id,
                pid,
                supervisor: r.supervisor,
                restarts: r.restarts,
            });
        }
        Ok(Ok(out))
    }

    async fn count_children(&mut self, sup: Resource<PidRep>) -> Answer<ChildCounts> {
        Ok(match self.ask_supervisor(&sup, SupRequest::Count).await? {
            Ok(SupReply::Counts(c)) => Ok(ChildCounts::from(c)),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(e),
        })
    }

    async fn start_child(
        &mut self,
        sup: Resource<PidRep>,
        spec: ChildSpec,
    ) -> Answer<Resource<PidRep>> {
        let req = SupRequest::Start {
            id: spec.id,
            component: spec.component,
            init: spec.init,
            restart: spec.restart.into(),
            // The WIT spec has no `infinity`: a particle starts workers.
            shutdown: spec.shutdown_ms.map_or(Shutdown::BrutalKill, |ms| {
                Shutdown::Timeout(std::time::Duration::from_millis(ms))
            }),
        };
        let reply = self.ask_supervisor(&sup, req).await?;
        self.pid_reply(reply)
    }

    async fn terminate_child(&mut self, sup: Resource<PidRep>, id: String) -> Answer<()> {
        Ok(done(
            self.ask_supervisor(&sup, SupRequest::Terminate(id)).await?,
        ))
    }

    async fn restart_child(
        &mut self,
        sup: Resource<PidRep>,
        id: String,
    ) -> Answer<Resource<PidRep>> {
        let reply = self.ask_supervisor(&sup, SupRequest::Restart(id)).await?;
        self.pid_reply(reply)
    }

    async fn delete_child(&mut self, sup: Resource<PidRep>, id: String) -> Answer<()> {
        Ok(done(
            self.ask_supervisor(&sup, SupRequest::Delete(id)).await?,
        ))
    }
}
