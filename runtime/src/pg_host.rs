//! The `plasmoid:runtime/pg` host functions: process groups for particles
//! (groups.rs holds the groups), joins authorized by Cedar (`join` on
//! `Group::"<name>"`).

use crate::host::PidRep;
use crate::host::plasmoid::runtime::pg::Host;
use crate::particle::ParticleState;
use crate::pid::Pid;
use crate::policy::Action;
use wasmtime::component::Resource;

impl ParticleState {
    fn pid_handles(&mut self, pids: Vec<Pid>) -> wasmtime::Result<Vec<Resource<PidRep>>> {
        pids.into_iter().map(|p| self.pid_handle(p)).collect()
    }
}

impl Host for ParticleState {
    fn join(&mut self, group: String) -> wasmtime::Result<Result<bool, String>> {
        if group.is_empty() || group.len() > crate::MAX_NAME {
            return Ok(Err(crate::groups::GroupError::BadName.to_string()));
        }
        if !self.allowed(Action::Join, &group) {
            return Ok(Err(format!("join on Group::\"{group}\" denied by policy")));
        }
        Ok(self
            .node
            .join_group(&group, self.proc.pid)
            .map_err(|e| e.to_string()))
    }

    fn leave(&mut self, group: String) -> wasmtime::Result<bool> {
        Ok(self.node.leave_group(&group, self.proc.pid))
    }

    fn members(&mut self, group: String) -> wasmtime::Result<Vec<Resource<PidRep>>> {
        let pids = crate::node::Node {
            inner: self.node.clone(),
        }
        .group_members(&group);
        self.pid_handles(pids)
    }

    fn local_members(&mut self, group: String) -> wasmtime::Result<Vec<Resource<PidRep>>> {
        let pids = crate::node::Node {
            inner: self.node.clone(),
        }
        .local_group_members(&group);
        self.pid_handles(pids)
    }

    fn which_groups(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(crate::node::Node {
            inner: self.node.clone(),
        }
        .which_groups())
    }
}
