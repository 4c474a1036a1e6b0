//! plasmoid-release: from a `prod.toml` to a running supervision tree.
//!
//! It owns the manifest (parsing with positions, validation), the start
//! order (petgraph), building guest crates, the release folder with its
//! precompiled components and `release.lock`, and booting a built release on
//! a node, and running a release node ([`ReleaseNode`]: boot, mesh,
//! control, swap watcher, root supervisor, orderly stop). It does not own
//! process semantics (plasmoid-runtime), restart strategies
//! (plasmoid-supervisor) or signal handling and printing (the `plasmoid`
//! binary).

mod boot;
mod build;
mod control;
mod error;
mod guest;
mod lock;
mod manifest;
mod model;
mod native_code;
mod nodes;
mod order;
mod run;
mod swap;
pub mod toolchain;
pub mod upgrade;

pub use boot::{Booted, boot, boot_as, boot_node, node_config, supervisor_spec};
pub use build::{BuildOptions, Built, Progress, build, default_out_dir};
pub use control::{Control, MAX_CALL_MS};
pub use error::ReleaseError;
pub use guest::{GuestBuild, build_guest, ensure_wasm_target};
pub use lock::{
    LOCK_FILE, Lock, LockedComponent, LockedFile, SwapOutcome, SwapRecord, hash, open_release,
};
pub use manifest::{
    load as load_manifest, load_tree, parse as parse_manifest, parse_tree, render_tree,
    resolved_toml,
};
pub use model::{
    ChildDef, ChildKind, ComponentDef, LimitsDef, Manifest, NodeDef, Source, SupervisorDef, Upgrade,
};
pub use nodes::{
    client_key, ensure_keys, next_creation, node_dir, node_ids, read_control_addr,
    write_control_addr,
};
pub use run::{DEFAULT_PEER_WAIT, OBSERVER_FILE, Outcome, ReleaseNode, RunOptions, run_tree};
pub use swap::{SwapOptions, Swapper, watch};
