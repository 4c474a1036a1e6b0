//! OTP's supervisor API for particles. Each call is authorized by Cedar
//! (action `supervise` on the supervisor); a denial is `SupervisorError::Denied`.

use crate::Pid;
use crate::bindings::plasmoid::runtime::supervisor as sup;

pub use sup::{ChildCounts, ChildInfo, ChildSpec, Restart, SupervisorError};

/// The children of `sup`, in start order.
pub fn which_children(sup: &Pid) -> Result<Vec<ChildInfo>, SupervisorError> {
    sup::which_children(sup)
}

pub fn count_children(sup: &Pid) -> Result<ChildCounts, SupervisorError> {
    sup::count_children(sup)
}

/// Add and start a worker (for simple-one-for-one: one more instance with `spec.init`).
pub fn start_child(sup: &Pid, spec: &ChildSpec) -> Result<Pid, SupervisorError> {
    sup::start_child(sup, spec)
}

pub fn terminate_child(sup: &Pid, id: &str) -> Result<(), SupervisorError> {
    sup::terminate_child(sup, id)
}

pub fn restart_child(sup: &Pid, id: &str) -> Result<Pid, SupervisorError> {
    sup::restart_child(sup, id)
}

pub fn delete_child(sup: &Pid, id: &str) -> Result<(), SupervisorError> {
    sup::delete_child(sup, id)
}

impl From<SupervisorError> for String {
    fn from(e: SupervisorError) -> String {
        match e {
            SupervisorError::NotASupervisor => "not-a-supervisor".into(),
            SupervisorError::NotFound(s) => format!("not-found: {s}"),
            SupervisorError::AlreadyPresent(s) => format!("already-present: {s}"),
            SupervisorError::Running(s) => format!("running: {s}"),
            SupervisorError::StartFailed(s) => format!("start-failed: {s}"),
            SupervisorError::Invalid(s) => format!("invalid: {s}"),
            SupervisorError::Denied(s) => format!("denied: {s}"),
        }
    }
}
