//! A release after validation: every name resolved, every path checked, the
//! children of each supervisor in start order.

use plasmoid_supervisor::{Restart, Shutdown, Strategy};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Manifest {
    /// The manifest file, for messages.
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    /// A folder of Cedar policies for the whole release (absolute).
    pub policies: Option<PathBuf>,
    pub max_particles: Option<u32>,
    pub threads: Option<usize>,
    /// Mesh nodes, in manifest order; empty means one embedded node.
    pub nodes: Vec<NodeDef>,
    /// Components in a dependency order (dependencies first, otherwise the
    /// manifest's order).
    pub components: Vec<ComponentDef>,
    pub root: SupervisorDef,
    /// `[http]`; `None`: no listener.
    pub http: Option<HttpDef>,
    /// `[store]`: where the buckets live.
    pub store: StoreDef,
    /// `[store.quotas]`: bucket → most bytes (either backend).
    pub quotas: Vec<(String, u64)>,
    /// `[observer] listen`: the root node's dashboard (off without it).
    pub observer: Option<std::net::SocketAddr>,
    /// `[cluster]`: the partition policy; `None`: no partition handling
    /// (every side restarts what it lost, as before).
    pub cluster: Option<ClusterDef>,
}

/// `[cluster]` after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDef {
    pub policy: plasmoid_runtime::PartitionPolicy,
    pub stable_after: std::time::Duration,
}

/// A release's store backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StoreDef {
    /// redb, one file per node in the release's data folder.
    #[default]
    Embedded,
    /// One Redis server for every node (`redis://…`).
    Redis(String),
}

#[derive(Clone, Debug)]
pub struct NodeDef {
    pub name: String,
    pub listen: String,
    /// This node's HTTP listener.
    pub http: Option<std::net::SocketAddr>,
}

/// `[http]`: the routes every listener of the release serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpDef {
    /// The listener of the embedded node, or of the root node when the
    /// release has `[nodes]` and that node names none.
    pub listen: Option<std::net::SocketAddr>,
    pub routes: Vec<RouteDef>,
    pub max_connections: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDef {
    pub path: String,
    /// Upper case; empty: any.
    pub methods: Vec<String>,
    pub to: RouteTo,
    pub timeout_ms: Option<u64>,
    pub max_body: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTo {
    /// A registered name on the node.
    Name(String),
    /// The instances of the simple-one-for-one `[supervisors.NAME]`.
    Pool {
        supervisor: String,
        least_loaded: bool,
    },
    /// A stock `wasi:http` handler component, one instance per request.
    Component(String),
}

#[derive(Clone, Debug)]
pub struct ComponentDef {
    pub name: String,
    pub source: Source,
    pub depends: Vec<String>,
    pub limits: LimitsDef,
    pub upgrade: Upgrade,
    /// Extra `.cedar` files for this component (absolute).
    pub policies: Vec<PathBuf>,
    /// What its particles get as WASI environment and arguments.
    pub config: GuestConfig,
}

/// A component's configuration, as its particles see it through WASI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestConfig {
    /// `env = { KEY = "value" }`, in manifest order.
    pub env: Vec<(String, String)>,
    /// `args = [...]`.
    pub args: Vec<String>,
    /// `env_from = ["NAME"]`: read from the operator's environment when the
    /// node boots; only the names are ever written down.
    pub env_from: Vec<String>,
    /// `files`: folders preopened for the guest.
    pub files: Vec<FileDef>,
}

/// One `files` entry: `host` as written (relative: inside the data folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDef {
    pub guest: String,
    pub host: String,
    pub read_only: bool,
}

/// Where a component comes from (absolute paths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A guest crate, built with cargo for wasm32-wasip2.
    Crate(PathBuf),
    /// A prebuilt `.wasm` component or `.wat` text.
    Wasm(PathBuf),
    /// A Python module (`app.py`), built with componentize-py (toolchain/).
    Python(PathBuf),
    /// A JavaScript module (`app.js`), bundled with the SDK and built with
    /// componentize-js for the engine named.
    Js(PathBuf, crate::toolchain::JsEngine),
}

/// Per-component limits; `None` takes the node default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitsDef {
    pub memory_mb: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub mailbox: Option<u64>,
}

/// How a running component moves to a new version (hot swap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Upgrade {
    /// Hand the particle's state to the new version under the same pid.
    #[default]
    Handoff,
    /// Restart the particles with the new version.
    Restart,
}

impl Upgrade {
    pub fn as_str(self) -> &'static str {
        match self {
            Upgrade::Handoff => "handoff",
            Upgrade::Restart => "restart",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SupervisorDef {
    /// `supervisor` for the root, else its key in `[supervisors]`.
    pub name: String,
    pub strategy: Strategy,
    pub max_restarts: u32,
    pub max_seconds: u64,
    pub children: Vec<ChildDef>,
    /// Simple-one-for-one: instances of the template started with it.
    pub instances: u32,
    /// Candidate nodes for the whole subtree, in order of preference
    /// (`node = [...]`); empty: its parent's node.
    pub nodes: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ChildDef {
    pub id: String,
    pub restart: Restart,
    pub shutdown: Shutdown,
    pub kind: ChildKind,
}

#[derive(Clone, Debug)]
pub enum ChildKind {
    Worker {
        component: String,
        /// Handed to the guest's `start` as JSON.
        init: serde_json::Value,
        /// Candidate nodes, in order of preference; empty: the root's node.
        nodes: Vec<String>,
    },
    Supervisor(SupervisorDef),
}

impl Manifest {
    pub fn component(&self, name: &str) -> Option<&ComponentDef> {
        self.components.iter().find(|c| c.name == name)
    }

    /// `name-version`, the release folder's name.
    pub fn release_id(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

impl SupervisorDef {
    /// Every worker in start order, depth first, with its path of ids.
    pub fn workers(&self) -> Vec<(Vec<&str>, &ChildDef)> {
        let mut out = Vec::new();
        self.collect_workers(&mut Vec::new(), &mut out);
        out
    }

    fn collect_workers<'a>(
        &'a self,
        path: &mut Vec<&'a str>,
        out: &mut Vec<(Vec<&'a str>, &'a ChildDef)>,
    ) {
        for c in &self.children {
            path.push(&c.id);
            match &c.kind {
                ChildKind::Worker { .. } => out.push((path.clone(), c)),
                ChildKind::Supervisor(s) => s.collect_workers(path, out),
            }
            path.pop();
        }
    }
}
