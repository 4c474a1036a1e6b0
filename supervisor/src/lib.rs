//! plasmoid-supervisor: OTP supervisors for particles.
//!
//! A supervisor is a native process of the runtime (same pid space, links
//! and monitors as particles): it traps exits, links to its children, starts
//! them in order and stops them in reverse order, and restarts them by its
//! strategy (one-for-one, one-for-all, rest-for-one, simple-one-for-one)
//! within its restart intensity, past which it stops everything and exits
//! with `shutdown` so its parent decides. Each node has its own registry of
//! supervisors and their children. It does not own processes, signals or the
//! engine (plasmoid-runtime), nor manifests (plasmoid-release).
//!
//! - `plan`: the restart rules as a pure function, and restart intensity;
//! - `handle`: [`SupervisorRef`] and its operations;
//! - `server`: the loop that carries plans out;
//! - `child`: starting and stopping one child;
//! - `registry`: one node's supervisors, and the child → supervisor map;
//! - `update`: changes a release upgrade makes in place (flags, a child
//!   started at its place).

mod child;
mod handle;
mod partition;
pub mod plan;
mod registry;
mod server;
mod spec;
mod update;

pub use handle::{ChildInfo, Counts, Flags, MAX_QUEUED_OPS, SupervisorRef};
pub use registry::{Registry, find_child, supervisor_at};
pub use server::start_link;
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
    #[error("child `{0}` is being restarted; wait until it runs, or terminate it first")]
    Restarting(String),
    #[error("the supervisor is not running")]
    NotRunning,
    #[error("the supervisor has {0} operations waiting already; try again when it has caught up")]
    Busy(usize),
    #[error("{0}")]
    Invalid(String),
}
