//! Booting a built release: a node configured from the manifest, its
//! components loaded from the precompiled files, and the supervision tree
//! as specs for plasmoid-supervisor.

use crate::error::ReleaseError;
use crate::lock::Lock;
use crate::model::{ChildDef, ChildKind, ComponentDef, Manifest, SupervisorDef};
use plasmoid_runtime::{Limits, Node, NodeConfig, NodeId};
use plasmoid_supervisor::{ChildSpec, ChildStart, SupervisorSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The node settings a release asks for. `release build` precompiles with
/// the same settings, so its `.cwasm` files load without recompiling.
pub fn node_config(m: &Manifest, policy_dir: Option<PathBuf>) -> NodeConfig {
    let mut cfg = NodeConfig {
        policy_dir,
        ..NodeConfig::default()
    };
    if let Some(n) = m.max_particles {
        cfg.max_particles = n;
    }
    let largest = m
        .components
        .iter()
        .filter_map(|c| c.limits.memory_mb)
        .max()
        .unwrap_or(0)
        << 20;
    cfg.max_memory_bytes = cfg
        .max_memory_bytes
        .max(largest)
        .max(cfg.default_limits.memory_bytes);
    cfg
}

/// The limits of one component: its own where given, else the node's.
pub fn limits(c: &ComponentDef, defaults: &Limits) -> Limits {
    Limits {
        memory_bytes: c
            .limits
            .memory_mb
            .map_or(defaults.memory_bytes, |m| m << 20),
        cpu_ms: c.limits.cpu_ms.unwrap_or(defaults.cpu_ms),
        mailbox: c.limits.mailbox.map_or(defaults.mailbox, |m| {
            usize::try_from(m).unwrap_or(usize::MAX)
        }),
    }
}

/// The tree as plasmoid-supervisor specs. Init arguments become JSON text;
/// node names become the ids in `ids`.
pub fn supervisor_spec(def: &SupervisorDef, ids: &HashMap<String, NodeId>) -> SupervisorSpec {
    let mut spec = SupervisorSpec::new(def.strategy);
    spec.name = def.name.clone();
    spec.max_restarts = def.max_restarts;
    spec.max_seconds = Duration::from_secs(def.max_seconds);
    spec.children = def.children.iter().map(|c| child_spec(c, ids)).collect();
    spec.instances = def.instances;
    spec.nodes = def
        .nodes
        .iter()
        .filter_map(|n| ids.get(n).copied())
        .collect();
    spec
}

pub(crate) fn child_spec(c: &ChildDef, ids: &HashMap<String, NodeId>) -> ChildSpec {
    let start = match &c.kind {
        ChildKind::Worker {
            component,
            init,
            nodes,
        } => ChildStart::Particle {
            component: component.clone(),
            init: init.to_string(),
            nodes: nodes.iter().filter_map(|n| ids.get(n).copied()).collect(),
        },
        ChildKind::Supervisor(s) => ChildStart::Supervisor(Box::new(supervisor_spec(s, ids))),
    };
    ChildSpec {
        id: c.id.clone(),
        start,
        restart: c.restart,
        shutdown: c.shutdown,
    }
}

/// A node with the release's components loaded, ready for its tree.
pub struct Booted {
    pub node: Node,
    pub spec: SupervisorSpec,
}

/// Start a node for a verified release folder and load its components.
///
/// A `.cwasm` that this engine cannot use (built by another plasmoid
/// version, or for another memory cap) is not an error: the `.wasm` beside
/// it, checked by the same lock, is compiled instead.
pub fn boot(dir: &Path, m: &Manifest, lock: &Lock) -> Result<Booted, ReleaseError> {
    boot_as(dir, m, lock, None)
}

/// [`boot`] with the node's identity (its mesh key's id) for multi-node releases.
pub fn boot_as(
    dir: &Path,
    m: &Manifest,
    lock: &Lock,
    node_id: Option<NodeId>,
) -> Result<Booted, ReleaseError> {
    boot_node(dir, m, lock, node_id, 0)
}

/// A component's WASI environment: its `env`, then each `env_from`
/// variable read from this process's environment now (never written to
/// the release folder). A missing `env_from` variable stops the boot.
fn guest_env(c: &ComponentDef) -> Result<plasmoid_runtime::GuestEnv, ReleaseError> {
    let mut env = c.config.env.clone();
    for name in &c.config.env_from {
        match std::env::var(name) {
            Ok(v) => env.push((name.clone(), v)),
            Err(_) => {
                return Err(ReleaseError::Boot(format!(
                    "component `{}` takes {name} from the environment (env_from), but {name} is not set (or not UTF-8); set it before `plasmoid release run`",
                    c.name
                )));
            }
        }
    }
    Ok(plasmoid_runtime::GuestEnv {
        env,
        args: c.config.args.clone(),
        // Resolved against the data folder when the node runs (run/files.rs).
        files: Vec::new(),
    })
}

/// [`boot_as`] as incarnation `creation` of the node (see
/// `NodeConfig::creation`).
pub fn boot_node(
    dir: &Path,
    m: &Manifest,
    lock: &Lock,
    node_id: Option<NodeId>,
    creation: u32,
) -> Result<Booted, ReleaseError> {
    let mut cfg = node_config(m, Some(dir.join("policies")));
    cfg.node_id = node_id;
    cfg.creation = creation;
    let defaults = cfg.default_limits.clone();
    let node = Node::new(cfg).map_err(|e| ReleaseError::Boot(e.to_string()))?;
    // Before the mesh connects: peers learn the version at the handshake.
    node.set_release(crate::lock::tag(m, lock));
    // Every node of a release can host a subtree a parent elsewhere
    // places on it (`node = [...]` on a supervisor), root or not.
    plasmoid_supervisor::Registry::of(&node);
    for c in &m.components {
        let Some(locked) = lock.component(&c.name) else {
            return Err(ReleaseError::NotARelease(
                dir.to_path_buf(),
                format!("component `{}` is missing from release.lock", c.name),
            ));
        };
        load_component(&node, dir, c, locked, &defaults, None)?;
    }
    Ok(Booted {
        node,
        spec: supervisor_spec(&m.root, &crate::nodes::node_ids(dir, m)?),
    })
}

/// Load one component of a verified release folder into `node`: its
/// environment, then its precompiled code when the folder's key vouches
/// for it, else its `.wasm` compiled here. With `probation`, a particle of
/// the new code that crashes within it puts the replaced version back.
/// Returns the version it replaced.
pub(crate) fn load_component(
    node: &Node,
    dir: &Path,
    c: &ComponentDef,
    locked: &crate::lock::LockedComponent,
    defaults: &Limits,
    probation: Option<Duration>,
) -> Result<Option<std::sync::Arc<str>>, ReleaseError> {
    let limits = limits(c, defaults);
    let mut env = guest_env(c)?;
    // Folders opened for it when the node started stay open (an upgrade
    // reloads a component under a running node; run/files.rs opens them).
    if let Some(running) = node.guest_env(&c.name) {
        env.files = running.files;
    }
    node.set_guest_env(&c.name, env);
    let cwasm = dir.join(&locked.cwasm);
    let version = crate::lock::short_hash(&locked.blake3);
    let trusted = crate::native_code::check(dir, &locked.cwasm, &locked.cwasm_mac)
        .map_err(|why| format!("not loaded: {why}"))
        .and_then(|_| {
            node.install_component(&c.name, &cwasm, Some(limits.clone()), version, probation)
                .map_err(|e| e.to_string())
        });
    match trusted {
        Ok(replaced) => Ok(replaced),
        Err(e) => {
            tracing::warn!(component = %c.name, "precompiled code not usable ({e}); compiling the .wasm");
            node.install_component(
                &c.name,
                &dir.join(&locked.wasm),
                Some(limits),
                version,
                probation,
            )
            .map_err(|e| ReleaseError::Component {
                component: c.name.clone(),
                reason: e.to_string(),
            })
        }
    }
}
