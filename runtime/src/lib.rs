//! plasmoid-runtime: the node that runs particles.
//!
//! It owns the wasmtime engine and the `plasmoid:runtime/process` host
//! functions, pids, mailboxes, links, monitors, exit signals, the name
//! registry and the Cedar gate, plus native processes for host code. It does
//! not own supervision strategies (plasmoid-supervisor), manifests and
//! builds (plasmoid-release) or the command line (the `plasmoid` binary).

pub mod cache;
mod components;
mod convert;
mod engine;
mod error;
pub mod footprint;
pub mod global;
pub mod groups;
pub mod handler;
mod host;
mod host_recv;
pub mod http;
pub mod kv;
mod mailbox;
mod names;
mod native;
mod node;
mod node_monitor;
mod outgoing;
pub mod output;
mod particle;
pub mod partition;
mod pg_host;
mod pid;
mod policy;
mod process;
mod reason;
mod remote;
pub mod remote_http;
mod remote_sup;
mod signals;
mod start;
pub mod stats;
mod supervision;
mod supervisor_host;
mod swap;
mod timers;
pub mod versions;

/// Longest name a particle may register or look up.
pub const MAX_NAME: usize = 255;

pub use components::precompile;
pub use engine::{Limits, maps_needed, max_map_count, particles_within_map_limit};
pub use error::{Result, RuntimeError};
pub use names::LookupError;
pub use native::{CallError, NativeProcess};
pub use node::{
    GuestEnv, Node, NodeConfig, Preopen, RegistryError, SendError, SpawnError, SpawnOpts,
};
pub use partition::{PartitionConfig, PartitionPolicy, PartitionView, Standing};
pub use pid::{NodeId, Pid};
pub use policy::{Action, DEFAULT_POLICIES, DEFAULT_SCHEMA, PolicyGate, PolicySource};
pub use reason::{ExitReason, Msg};
pub use remote::{PeerStats, Remote, RemoteOp};
pub use signals::Noproc;
pub use start::DEFAULT_START_TIMEOUT;
pub use supervision::{
    ChildCounts, ChildInfo, Restart, Shutdown, Strategy, SupError, SupFuture, SupReply, SupRequest,
    SupStartFuture, Supervision,
};
pub use swap::{ParticleInfo, SwapEvent};
pub use timers::{MAX_TIMERS, MIN_INTERVAL};
