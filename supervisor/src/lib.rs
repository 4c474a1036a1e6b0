//! plasmoid-supervisor: OTP supervisors for particles.
//!
//! A supervisor is a native process of the runtime (same pid space, links
//! and monitors as particles): it traps exits, links to its children, starts
//! them in order and stops them in reverse order, and restarts them by its
//! strategy (one-for-one, one-for-all, rest-for-one, simple-one-for-one)
//! within its restart intensity, past which it stops everything and exits
//! with `shutdown` so its parent decides. It does not own processes, signals
//! or the engine (plasmoid-runtime), nor manifests (plasmoid-release).

mod child;
mod server;
mod service;
mod spec;

pub use server::{ChildInfo, Counts, SupervisorRef, start_link};
pub use service::{find_child, supervisor_at};
pub use spec::{ChildSpec, ChildStart, Restart, Shutdown, Strategy, SupervisorSpec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    #[error("child `{id}` failed to start: {reason}")]
    StartFailed { id: String, reason: String },
    #[error("no child `{0}` in this supervisor")]
    NotFound(String),
    #[error("a child `{0}` already exists; child ids must be unique")]
    AlreadyPresent(String),
    #[error("child `{0}` is running; terminate it first")]
    Running(String),
    #[error("the supervisor is not running")]
    NotRunning,
    #[error("{0}")]
    Invalid(String),
}
