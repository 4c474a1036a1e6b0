//! The node: process table, name registry, loaded components and the engine.
//!
//! Everything a process does to another process goes through the node, so
//! that the same rules hold for wasm particles and native (host) processes.

use crate::components::{Components, LoadedComponent};
use crate::engine::{EngineHandle, Limits};
use crate::error::Result;
use crate::pid::{NodeId, Pid};
use crate::policy::PolicyGate;
use crate::process::Process;
use crate::reason::{ExitReason, Msg};
use crate::remote::Place;
use dashmap::DashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Settings fixed when a node starts. Each field names its default (see
/// [`NodeConfig::default`]) and its unit.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// How many particles may be alive at once (a count); sizes the
    /// instance pool, whose slots are reserved up front. Default: as many
    /// as `vm.max_map_count` allows (see [`crate::particles_within_map_limit`]),
    /// at most 10,000. A spawn past it fails with "node at capacity".
    pub max_particles: u32,
    /// Limits for components loaded without their own. Default:
    /// [`Limits::default`] (64 MiB memory, 5,000 ms CPU per turn, 10,000
    /// messages per mailbox).
    pub default_limits: Limits,
    /// Largest memory cap any component may ask for, in bytes (sizes pool
    /// slots). Default: 256 MiB.
    pub max_memory_bytes: u64,
    /// Epoch tick: the preemption slice and the CPU budget's resolution.
    /// Default: 5 ms.
    pub tick: std::time::Duration,
    /// Folder with a `.cedarschema` and `.cedar` files. Default `None`:
    /// the built-in policies (see policy.rs).
    pub policy_dir: Option<std::path::PathBuf>,
    /// The node's identity: its mesh key's public half. Default `None`: a
    /// random id (a node that is not part of a mesh).
    pub node_id: Option<NodeId>,
    /// This incarnation of the node (Erlang's creation), part of every pid
    /// it makes: a release keeps it across restarts and counts it up at
    /// each boot, so pids of an earlier incarnation answer `noproc`.
    /// Default 0: none (a node that never restarts under the same id).
    pub creation: u32,
    /// Pool resources budgeted per particle slot (core instances, linear
    /// memories, tables); totals are this times the slots. Default:
    /// [`crate::engine::DEFAULT_POOL_PER_PARTICLE`].
    pub pool_per_particle: crate::footprint::Footprint,
    /// Folder of compiled components, keyed by content hash and engine
    /// settings, so a `.wasm` is compiled once per machine. Default: see
    /// [`crate::cache::default_dir`]; `None` compiles every time.
    pub compile_cache: Option<std::path::PathBuf>,
    /// Run every component on the async-ABI engine, not only those that
    /// need it. Default off; on only to measure what that engine costs
    /// (`plasmoid bench call`).
    pub all_on_async_engine: bool,
    /// Count messages, CPU ticks and memory per process for the observer
    /// (stats.rs). Default on; off only to measure what counting costs.
    pub metrics: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            // As many as the kernel's map limit allows, up to 10,000.
            max_particles: crate::engine::particles_within_map_limit()
                .map_or(10_000, |fit| fit.min(10_000)),
            default_limits: Limits::default(),
            max_memory_bytes: 256 << 20,
            tick: std::time::Duration::from_millis(5),
            policy_dir: None,
            node_id: None,
            creation: 0,
            metrics: true,
            pool_per_particle: crate::engine::DEFAULT_POOL_PER_PARTICLE,
            compile_cache: crate::cache::default_dir(),
            all_on_async_engine: false,
        }
    }
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Noproc,
    MailboxFull,
    Denied(String),
    Noconnection,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Noproc => f.write_str("no such process (noproc)"),
            SendError::MailboxFull => f.write_str("its mailbox is full"),
            SendError::Denied(why) => write!(f, "denied: {why}"),
            SendError::Noconnection => f.write_str("its node is not connected (noconnection)"),
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::UnknownComponent(c) => write!(f, "no component `{c}` is loaded here"),
            SpawnError::NameTaken(n) => write!(f, "the name `{n}` is taken"),
            SpawnError::Denied(why) => write!(f, "denied: {why}"),
            SpawnError::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// Why a spawn failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    UnknownComponent(String),
    NameTaken(String),
    Denied(String),
    Failed(String),
}

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    Taken,
    NotFound,
    Denied(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::Taken => {
                f.write_str("the name is taken (or the process already has a name)")
            }
            RegistryError::NotFound => f.write_str("no process is registered under that name"),
            RegistryError::Denied(why) => write!(f, "denied: {why}"),
        }
    }
}

impl std::error::Error for RegistryError {}
impl std::error::Error for SendError {}
impl std::error::Error for SpawnError {}

/// Options for a spawn.
#[derive(Default, Clone, Debug)]
pub struct SpawnOpts {
    pub name: Option<String>,
    /// Link the new process to this one before it runs.
    pub link: Option<Pid>,
    /// Monitor the new process from this watcher with this reference (from
    /// `make_ref`) before it runs, so not even an instant crash goes unseen.
    pub monitor: Option<(Pid, u64)>,
    /// Tell this process, with a tagged message carrying this reference and
    /// an empty payload, when the particle first waits in `recv`: its `start`
    /// has initialised (what OTP's start_link waits for).
    pub ack: Option<(Pid, u64)>,
}

/// A handle to a running node; cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    pub id: NodeId,
    seq: AtomicU64,
    refs: AtomicU64,
    pub(crate) procs: DashMap<u64, Arc<Process>>,
    pub(crate) names: DashMap<String, Pid>,
    pub components: Components,
    pub engine: EngineHandle,
    pub policy: PolicyGate,
    pub config: NodeConfig,
    pub live_particles: AtomicUsize,
    /// Live particles that have initialised (waited in `recv` at least
    /// once): `started_particles`, against `live_particles`.
    pub started: AtomicUsize,
    pub rt: tokio::runtime::Handle,
    /// Installed by plasmoid-supervisor so particles can reach supervisors.
    pub supervision: parking_lot::RwLock<Option<Arc<dyn crate::supervision::Supervision>>>,
    /// Hot-swap events (rollbacks) for whoever manages versions.
    pub(crate) swap_events: tokio::sync::broadcast::Sender<crate::swap::SwapEvent>,
    /// The transport to other nodes (plasmoid-mesh), once installed.
    pub(crate) remote: parking_lot::RwLock<Option<Arc<dyn crate::remote::Remote>>>,
    /// Other nodes by name, for `name@node` and spawns on a named node.
    pub(crate) peers: parking_lot::RwLock<std::collections::HashMap<String, NodeId>>,
    /// Particles that asked for node-up and node-down messages (node_monitor.rs).
    pub(crate) node_watchers: parking_lot::Mutex<std::collections::HashSet<Pid>>,
    /// Process groups, local and of the connected nodes (groups.rs).
    pub(crate) groups: parking_lot::Mutex<crate::groups::Groups>,
    /// Partition handling: members, reachability, standing (partition.rs).
    pub(crate) partition: crate::partition::Partition,
    /// The release version of this node and of its peers (versions.rs).
    pub(crate) versions: crate::versions::Versions,
    /// This node's copy of the cluster-wide names (global.rs).
    pub(crate) globals: parking_lot::Mutex<crate::global::Globals>,
    /// `name@node` lookups waiting for the other node's answer.
    pub(crate) lookups: DashMap<u64, crate::names::PendingLookup>,
    /// HTTP requests sent to other nodes, waiting for their answers.
    pub(crate) http_pending: DashMap<u64, crate::remote_http::PendingHttp>,
    /// Requests to other nodes' supervisors, waiting for their answers.
    pub(crate) sup_asks: DashMap<u64, crate::remote_sup::PendingAsk>,
    /// Requests from other nodes to supervisors here, being served now.
    pub(crate) sup_serving: AtomicUsize,
    /// HTTP requests this node serves for other nodes right now.
    pub(crate) http_serving: AtomicUsize,
    /// References of starts this node gave up on, and when (start.rs).
    pub(crate) abandoned: DashMap<u64, std::time::Instant>,
    /// Particles started for a parent on another node that have not
    /// acknowledged yet, by (parent, reference) (start.rs).
    pub(crate) peer_starts: DashMap<(Pid, u64), Pid>,
    /// WASI environment and arguments per component (the manifest's
    /// `env`, `env_from` and `args`); none: an empty environment.
    pub(crate) guest_env: DashMap<String, Arc<GuestEnv>>,
    /// Instances wasi:http handlers may hold at once (handler.rs): the
    /// pool has this many slots beyond `max_particles`, so a flood of
    /// requests never takes the slots a supervisor needs for a restart.
    pub(crate) handler_slots: Arc<tokio::sync::Semaphore>,
    /// Where `wasi:keyvalue` calls go (kv.rs); none: no store.
    pub(crate) store: parking_lot::RwLock<Option<Arc<dyn crate::kv::KvStore>>>,
    /// Counters for the observer (stats.rs).
    pub(crate) stats: crate::stats::NodeStats,
}

/// What a component's particles see as their WASI environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestEnv {
    pub env: Vec<(String, String)>,
    /// After the program name (the component's name, as `args[0]`).
    pub args: Vec<String>,
    /// Host folders preopened through WASI filesystem (the manifest's
    /// `files`, checked and resolved by the release).
    pub files: Vec<Preopen>,
}

/// One host folder a component's particles see at `guest` (e.g. `/data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: std::path::PathBuf,
    pub guest: String,
    pub read_only: bool,
}

/// The first reference a node hands out: 21 bits of its id, then a 32-bit
/// counter. Every ref stays below 2^53, so a JavaScript engine that gives
/// u64 as a Number (QuickJS) hands it back exact.
fn ref_base(id: &NodeId) -> u64 {
    let prefix = u32::from_le_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]) & REF_PREFIX_MASK;
    (u64::from(prefix) << 32) | 1
}

const REF_PREFIX_MASK: u32 = (1 << 21) - 1;

impl Node {
    /// Start a node on the current tokio runtime.
    pub fn new(config: NodeConfig) -> Result<Node> {
        let policy = match &config.policy_dir {
            Some(dir) => PolicyGate::from_dir(dir)?,
            None => PolicyGate::defaults()?,
        };
        let engine = EngineHandle::new(&config)?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            crate::error::RuntimeError::Config(
                "a node must be created inside a tokio runtime".into(),
            )
        })?;
        let id = config.node_id.unwrap_or_else(NodeId::random);
        Ok(Node {
            inner: Arc::new(NodeInner {
                id,
                seq: AtomicU64::new(1),
                // References travel to other nodes (monitors, calls): start
                // this node's at its id's prefix so they do not clash.
                refs: AtomicU64::new(ref_base(&id)),
                procs: DashMap::new(),
                names: DashMap::new(),
                components: Components::default(),
                engine,
                policy,
                live_particles: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                rt,
                supervision: parking_lot::RwLock::new(None),
                swap_events: tokio::sync::broadcast::channel(64).0,
                remote: parking_lot::RwLock::new(None),
                peers: parking_lot::RwLock::new(Default::default()),
                node_watchers: parking_lot::Mutex::new(Default::default()),
                groups: parking_lot::Mutex::new(Default::default()),
                globals: parking_lot::Mutex::new(Default::default()),
                partition: Default::default(),
                versions: Default::default(),
                lookups: DashMap::new(),
                http_pending: DashMap::new(),
                sup_asks: DashMap::new(),
                sup_serving: AtomicUsize::new(0),
                http_serving: AtomicUsize::new(0),
                abandoned: DashMap::new(),
                peer_starts: DashMap::new(),
                guest_env: DashMap::new(),
                store: parking_lot::RwLock::new(None),
                stats: Default::default(),
                handler_slots: Arc::new(tokio::sync::Semaphore::new(crate::engine::handler_slots(
                    config.max_particles,
                ) as usize)),
                config,
            }),
        })
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The WASI environment and arguments particles of `component` start
    /// with from now on (a particle already running keeps its own).
    /// What `set_guest_env` last set for `component`.
    pub fn guest_env(&self, component: &str) -> Option<GuestEnv> {
        self.inner.guest_env.get(component).map(|g| (**g).clone())
    }

    pub fn set_guest_env(&self, component: &str, env: GuestEnv) {
        self.inner
            .guest_env
            .insert(component.to_string(), Arc::new(env));
    }

    /// Compile, validate and register a component under `name`.
    pub fn load_component(&self, name: &str, path: &Path, limits: Option<Limits>) -> Result<()> {
        self.install_component(name, path, limits, "-", None)
            .map(|_| ())
    }

    /// Load `version` of a component and make it the code new particles of
    /// `name` run; returns the version it replaced. With `probation`, a
    /// particle running it that crashes within that time puts the replaced
    /// version back (see [`Node::swap_events`]). Running particles keep
    /// their code until asked to move ([`Node::request_upgrade`]).
    pub fn install_component(
        &self,
        name: &str,
        path: &Path,
        limits: Option<Limits>,
        version: &str,
        probation: Option<std::time::Duration>,
    ) -> Result<Option<Arc<str>>> {
        let limits = limits.unwrap_or_else(|| self.inner.config.default_limits.clone());
        let loaded = LoadedComponent::load(&self.inner.engine, name, path, limits, version)?;
        let previous = self.inner.components.get(name);
        if let (Some(window), Some(prev)) = (probation, &previous) {
            *loaded.probation.lock() = Some(crate::components::Probation {
                previous: prev.clone(),
                until: std::time::Instant::now() + window,
            });
        }
        self.inner.components.insert(loaded);
        if previous.is_some() {
            self.inner.stats.swaps.fetch_add(1, Ordering::Relaxed);
        }
        Ok(previous.map(|p| p.version.clone()))
    }

    /// Swap every Cedar policy of the node for the folder's, at once: the
    /// new set is validated first, and on error the old one stays in force.
    /// Cached decisions (the node's and each particle's) are dropped.
    pub fn replace_policies(&self, dir: &Path) -> Result<()> {
        self.inner.policy.replace_from_dir(dir)
    }

    /// Same as `load_component`, from bytes (wasm or WAT text).
    pub fn load_component_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        limits: Option<Limits>,
    ) -> Result<()> {
        let limits = limits.unwrap_or_else(|| self.inner.config.default_limits.clone());
        let loaded = LoadedComponent::from_bytes(&self.inner.engine, name, bytes, limits, "-")?;
        self.inner.components.insert(loaded);
        Ok(())
    }

    pub fn component_names(&self) -> Vec<String> {
        self.inner.components.names()
    }

    /// Unload a component: no new particle runs it. Particles still running
    /// it keep their code (they hold it) until they exit. Returns whether
    /// it was loaded.
    pub fn remove_component(&self, name: &str) -> bool {
        self.inner.components.remove(name).is_some()
    }

    /// Whether a component called `name` is loaded here.
    pub fn has_component(&self, name: &str) -> bool {
        self.inner.components.get(name).is_some()
    }

    /// Spawn a particle on behalf of the host (not Cedar-checked: the host is trusted).
    pub fn spawn(&self, component: &str, init: &str, opts: SpawnOpts) -> Result<Pid, SpawnError> {
        self.inner.spawn_particle(component, init, opts)
    }

    /// A native process owned by the caller, for host code that needs a pid.
    pub fn native(&self, label: &str) -> crate::native::NativeProcess {
        crate::native::NativeProcess::new(self.clone(), label)
    }

    /// Parse a printable pid of this node.
    pub fn resolve(&self, text: &str) -> Option<Pid> {
        self.inner.resolve(text)
    }

    /// Let particles reach supervisors through the `supervisor` interface.
    pub fn set_supervision(&self, service: Arc<dyn crate::supervision::Supervision>) {
        *self.inner.supervision.write() = Some(service);
    }

    /// Whether a supervision service is installed.
    pub fn has_supervision(&self) -> bool {
        self.inner.supervision.read().is_some()
    }

    /// The node's supervision service, installed by `make` if there is none
    /// yet (under one lock, so two supervisors starting at once share it).
    pub fn supervision_or_install(
        &self,
        make: impl FnOnce() -> Arc<dyn crate::supervision::Supervision>,
    ) -> Arc<dyn crate::supervision::Supervision> {
        if let Some(s) = self.inner.supervision.read().clone() {
            return s;
        }
        let mut slot = self.inner.supervision.write();
        slot.get_or_insert_with(make).clone()
    }

    /// A reference unique on this node (for monitors and request/reply).
    pub fn make_ref(&self) -> u64 {
        self.inner.next_ref()
    }

    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.inner.names.get(name).map(|p| *p)
    }

    pub fn is_alive(&self, pid: Pid) -> bool {
        self.inner.lookup(pid).is_some()
    }

    /// Send an exit signal from the host, as Erlang's exit/2.
    pub fn exit(&self, from: Pid, target: Pid, reason: ExitReason) -> Result<(), SendError> {
        self.inner.send_exit(from, target, reason)
    }

    pub fn live_particles(&self) -> usize {
        self.inner.live_particles.load(Ordering::Acquire)
    }

    /// Live particles that have initialised (reached their first `recv`
    /// wait); the others are still starting.
    pub fn started_particles(&self) -> usize {
        self.inner.started.load(Ordering::Acquire)
    }

    /// Ask every process to stop with `shutdown` and wait until none is left
    /// or `timeout` passes. Returns how many were still alive.
    pub async fn shutdown(&self, timeout: std::time::Duration) -> usize {
        let all: Vec<Arc<Process>> = self.inner.procs.iter().map(|e| e.value().clone()).collect();
        for p in all {
            p.request_exit(ExitReason::Shutdown("node stopping".into()));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while self.live_particles() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        self.live_particles()
    }
}

impl NodeInner {
    pub fn next_ref(&self) -> u64 {
        self.refs.fetch_add(1, Ordering::Relaxed)
    }

    pub fn new_pid(&self) -> Pid {
        loop {
            let serial = self.seq.fetch_add(1, Ordering::Relaxed);
            // 2^32 pids per incarnation; past that the creation's bits
            // would be overwritten, so the counter wraps within them (as
            // Erlang's serial does), skipping pids still alive.
            let seq = Pid::seq_of(self.config.creation, serial as u32);
            // Before the first wrap every serial is new: no table lookup.
            if serial <= u64::from(u32::MAX) {
                return Pid { node: self.id, seq };
            }
            // Serial 0 stands for the node itself (a failed remote spawn).
            if serial as u32 != 0 && !self.procs.contains_key(&seq) {
                return Pid { node: self.id, seq };
            }
        }
    }

    /// The process of this node with this pid, if it is in the table.
    pub fn lookup(&self, pid: Pid) -> Option<Arc<Process>> {
        match self.place(pid) {
            Place::Local(p) => Some(p),
            Place::Remote | Place::Gone => None,
        }
    }

    /// A printable pid of this node or of a known peer.
    pub fn resolve(&self, text: &str) -> Option<Pid> {
        let (node, seq) = Pid::parse_parts(text)?;
        if node.eq_ignore_ascii_case(&self.id.short()) {
            return Some(Pid { node: self.id, seq });
        }
        let peers = self.peers.read();
        let id = peers
            .values()
            .find(|id| node.eq_ignore_ascii_case(&id.short()))?;
        Some(Pid { node: *id, seq })
    }

    pub fn remove_process(&self, pid: Pid) {
        self.procs.remove(&pid.seq);
    }

    pub fn insert_process(&self, p: Arc<Process>) {
        self.procs.insert(p.pid.seq, p);
    }

    pub fn register(&self, p: &Process, name: &str) -> Result<(), RegistryError> {
        let mut st = p.state.lock();
        if !st.alive || st.name.is_some() {
            return Err(RegistryError::Taken);
        }
        match self.names.entry(name.to_string()) {
            dashmap::Entry::Occupied(_) => Err(RegistryError::Taken),
            dashmap::Entry::Vacant(v) => {
                v.insert(p.pid);
                st.name = Some(name.to_string());
                Ok(())
            }
        }
    }

    pub fn unregister(&self, name: &str) -> Result<(), RegistryError> {
        let (_, pid) = self.names.remove(name).ok_or(RegistryError::NotFound)?;
        if let Some(p) = self.lookup(pid) {
            let mut st = p.state.lock();
            if st.name.as_deref() == Some(name) {
                st.name = None;
            }
        }
        Ok(())
    }

    pub fn spawn_particle(
        self: &Arc<Self>,
        component: &str,
        init: &str,
        opts: SpawnOpts,
    ) -> Result<Pid, SpawnError> {
        let comp = self
            .components
            .get(component)
            .ok_or_else(|| SpawnError::UnknownComponent(component.to_string()))?;
        if comp.particle().is_none() {
            return Err(SpawnError::Failed(format!(
                "component `{component}` is a wasi:http handler (it exports wasi:http/incoming-handler): \
                 route HTTP requests to it; it runs one instance per request and cannot be spawned"
            )));
        }
        let max = self.config.max_particles as usize;
        if self.live_particles.fetch_add(1, Ordering::AcqRel) >= max {
            self.live_particles.fetch_sub(1, Ordering::AcqRel);
            return Err(SpawnError::Failed(format!(
                "node at capacity ({max} particles)"
            )));
        }
        // The pool's share for this instance, before there is a pid: a
        // spawn the pool cannot hold is an error here, not a crash later.
        let lease = match self.engine.budget.take(comp.footprint) {
            Ok(lease) => lease,
            Err(why) => {
                self.live_particles.fetch_sub(1, Ordering::AcqRel);
                return Err(SpawnError::Failed(format!(
                    "cannot start a particle of `{component}`: {why}"
                )));
            }
        };
        let pid = self.new_pid();
        let proc = Process::with_counting(
            pid,
            comp.name.clone(),
            comp.limits.mailbox,
            self.config.metrics,
        );
        self.insert_process(proc.clone());
        if let Some(name) = &opts.name
            && self.register(&proc, name).is_err()
        {
            self.remove_process(pid);
            self.live_particles.fetch_sub(1, Ordering::AcqRel);
            return Err(SpawnError::NameTaken(name.clone()));
        }
        // Counted once it exists for good: every spawn counted ends in an exit.
        self.stats.spawns.fetch_add(1, Ordering::Relaxed);
        if let Some(parent) = opts.link {
            match self.place(parent) {
                Place::Remote => {
                    // The parent's side travels ahead of anything the child
                    // can send it (one ordered stream per pair of nodes).
                    proc.state.lock().links.insert(parent);
                    if !self.link_remote(pid, parent) {
                        proc.request_exit(ExitReason::Noconnection);
                    }
                }
                Place::Local(pp) => {
                    let linked = {
                        let mut st = pp.state.lock();
                        st.alive && st.links.insert(pid)
                    };
                    if linked {
                        proc.state.lock().links.insert(parent);
                    } else {
                        // Like spawn_link from a process that is already gone.
                        proc.request_exit(ExitReason::Noproc);
                    }
                }
                Place::Gone => proc.request_exit(ExitReason::Noproc),
            }
        }
        if let Some((watcher, reference)) = opts.monitor {
            match self.place(watcher) {
                // The watcher's node holds its own entry (see start.rs).
                Place::Remote => {
                    proc.state.lock().watchers.insert(reference, watcher);
                }
                Place::Local(w) => {
                    let mut st = w.state.lock();
                    if st.alive {
                        st.monitoring.insert(reference, pid);
                        proc.state.lock().watchers.insert(reference, watcher);
                    }
                }
                Place::Gone => {}
            }
        }
        self.rt.spawn(crate::particle::run(
            self.clone(),
            proc,
            comp,
            init.to_string(),
            opts.ack,
            lease,
        ));
        Ok(pid)
    }
}

impl NodeInner {
    /// Deliver `msg` to a local process entry.
    pub fn send_to(&self, target: &Process, msg: Msg) -> Result<(), SendError> {
        if !target.accepting() {
            return Err(SendError::Noproc);
        }
        target.mailbox.push(msg, false).map_err(|_| {
            self.stats.mailbox_full.fetch_add(1, Ordering::Relaxed);
            SendError::MailboxFull
        })
    }

    /// Deliver `msg` to a pid, here or on another node.
    pub fn send(&self, to: Pid, msg: Msg) -> Result<(), SendError> {
        match self.place(to) {
            Place::Local(t) => self.send_to(&t, msg),
            Place::Remote => self.send_remote(to, msg),
            Place::Gone => Err(SendError::Noproc),
        }
    }
}
