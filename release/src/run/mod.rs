//! Running one node of a built release, as a library: [`ReleaseNode`].
//!
//! `ReleaseNode::start` verifies the release folder, boots the node, joins
//! the mesh, serves control requests and writes the control address; a task
//! then waits for the peers (root node only), starts the hot-swap watcher
//! and runs the root supervisor until [`ReleaseNode::stop`], a control
//! client's `plasmoid stop`, or the root giving up. Every phase can be
//! stopped at once. The CLI (signals, printing, exit codes), tests and
//! benches all run a release this way. It does not parse manifests or
//! build releases (see `build`), nor own the mesh transport.

mod files;
mod join;
mod observe;
mod tree;
mod web;

pub use observe::OBSERVER_FILE;
pub use tree::{Outcome, run_tree};

use crate::error::ReleaseError;
use crate::model::Manifest;
use crate::swap::SwapOptions;
use plasmoid_runtime::{Node, NodeId};
use plasmoid_supervisor::SupervisorRef;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a root node waits for its peers before it starts its tree
/// without the missing ones (children placed there go to their other
/// candidates): 30 s.
pub const DEFAULT_PEER_WAIT: Duration = Duration::from_secs(30);

/// How long a stopping node waits for its particles to end: 5 s.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// How to run a node of a release.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// For a release with `[nodes]`: which node this process is (default:
    /// the first, which runs the root supervisor).
    pub node: Option<String>,
    /// Members of the running cluster to join through (`--join`).
    pub join: Vec<plasmoid_mesh::ControlAddr>,
    /// Peer nodes admitted besides the release's own (`--allow`).
    pub allow: Vec<NodeId>,
    /// Control client keys admitted besides the release's own (`--allow-client`).
    pub allow_clients: Vec<NodeId>,
    /// Where a release without `[nodes]` listens (default 127.0.0.1, a free port).
    pub listen: Option<SocketAddr>,
    /// Find the other nodes by mDNS on the local network instead of the
    /// manifest's addresses.
    pub mdns: bool,
    /// Hot swap of new `.wasm` files in `components/`; `None` = off.
    pub swap: Option<SwapOptions>,
    /// How long the root node waits for the other nodes ([`DEFAULT_PEER_WAIT`]).
    pub peer_wait: Duration,
    /// Serve the manifest's `[http]` routes here instead of the address the
    /// manifest gives this node (`release run --http`; port 0: any free one).
    pub http: Option<SocketAddr>,
    /// The release's data folder ([`data_dir`] by default): each node's
    /// store, `<data>/<node>/store.redb`.
    pub data: Option<std::path::PathBuf>,
    /// Serve the observer here instead of where the manifest's
    /// `[observer] listen` says (root node); `None` and no `[observer]`:
    /// no dashboard.
    pub observer: Option<SocketAddr>,
}

/// Where a release keeps its data by default: beside its version folders,
/// named after the release (`target/plasmoid/shop.data` for
/// `target/plasmoid/shop-1.0.0`), so a new version, a rebuild or a hot swap
/// finds the data the last one wrote.
pub fn data_dir(release_dir: &std::path::Path, m: &crate::model::Manifest) -> std::path::PathBuf {
    let parent = release_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    parent.join(format!("{}.data", m.name))
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            node: None,
            join: Vec::new(),
            allow: Vec::new(),
            allow_clients: Vec::new(),
            listen: None,
            mdns: false,
            swap: Some(SwapOptions::default()),
            peer_wait: DEFAULT_PEER_WAIT,
            http: None,
            data: None,
            observer: None,
        }
    }
}

/// One running node of a release.
pub struct ReleaseNode {
    node: Node,
    name: String,
    root: bool,
    dir: PathBuf,
    manifest: Manifest,
    stop: Arc<watch::Sender<bool>>,
    up: watch::Receiver<Option<SupervisorRef>>,
    task: tokio::task::JoinHandle<Result<Outcome, ReleaseError>>,
}

impl ReleaseNode {
    /// Verify the release folder `dir` against its lock, boot this node and
    /// join the mesh; the tree starts in the background (see [`Self::up`]).
    pub async fn start(dir: &Path, opts: RunOptions) -> Result<ReleaseNode, ReleaseError> {
        let started = Instant::now();
        let (m, lock) = crate::lock::open_release(dir)?;
        let mut joined = join::join(dir, &m, &lock, &opts).await?;
        let (stop, stop_rx) = watch::channel(false);
        let stop = Arc::new(stop);
        // A client's `plasmoid stop` stops the node as `stop()` does.
        {
            let control = joined.control.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                control.stop_requested().await;
                stop.send_replace(true);
            });
        }
        let (up_tx, up) = watch::channel(None);
        let node = joined.booted.node.clone();
        let (name, root) = (joined.name.clone(), joined.root);
        // Bound before anything runs: an address in use fails the start.
        let listen = web::address(&m, &name, root, opts.http);
        let node_dir = crate::nodes::node_dir(dir, (!name.is_empty()).then_some(name.as_str()));
        // The store is there before any child starts (their init may read it).
        let data = opts.data.clone().unwrap_or_else(|| data_dir(dir, &m));
        if let Err(e) = files::preopen(&node, &m, &data) {
            joined.mesh.close().await;
            return Err(e);
        }
        let opened: Result<Arc<dyn plasmoid_runtime::kv::KvStore>, _> = match &m.store {
            crate::model::StoreDef::Embedded => {
                let file = data
                    .join(if name.is_empty() { "node" } else { &name })
                    .join("store.redb");
                let quotas = m.quotas.iter().cloned().collect();
                plasmoid_store::Embedded::open_with_quotas(&file, quotas).map(|s| Arc::new(s) as _)
            }
            // Shared by every node: a child failed over to another node
            // finds what it wrote.
            crate::model::StoreDef::Redis(url) => {
                let quotas = m.quotas.iter().cloned().collect();
                plasmoid_store::Redis::with_quotas(url, &m.name, quotas).map(|s| Arc::new(s) as _)
            }
        };
        match opened {
            Ok(store) => node.set_store(store),
            Err(e) => {
                joined.mesh.close().await;
                return Err(ReleaseError::Node(e.to_string()));
            }
        }
        joined.http = match web::start(&node, &m, listen, &node_dir, up.clone()).await {
            Ok(h) => h,
            Err(e) => {
                joined.mesh.close().await;
                return Err(e);
            }
        };
        let observe = opts.observer.or(if root { m.observer } else { None });
        if let Some(listen) = observe {
            let release = m.release_id();
            match observe::start(&joined.control, dir, &node_dir, listen, release, &name).await {
                Ok(o) => joined.observer = Some(o),
                Err(e) => {
                    if let Some(h) = joined.http.take() {
                        h.stop().await;
                    }
                    joined.mesh.close().await;
                    return Err(e);
                }
            }
        }
        let task = tokio::spawn(run(
            joined,
            dir.to_path_buf(),
            m.clone(),
            opts,
            stop_rx,
            up_tx,
            started,
        ));
        Ok(ReleaseNode {
            node,
            name,
            root,
            dir: dir.to_path_buf(),
            manifest: m,
            stop,
            up,
            task,
        })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// This node's name in a release with `[nodes]` (empty otherwise).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this node runs the root supervisor.
    pub fn is_root(&self) -> bool {
        self.root
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The root supervisor once the tree is up; `None` on a node that runs
    /// no tree, or when the node stopped before its tree came up.
    pub async fn up(&self) -> Option<SupervisorRef> {
        if !self.root {
            return None;
        }
        let mut up = self.up.clone();
        up.wait_for(Option::is_some).await.ok()?.clone()
    }

    /// Ask the node to stop: in any phase, at once; the tree stops in
    /// reverse start order. [`Self::wait`] tells when it is done.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// A handle that stops this node from elsewhere (a signal handler).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.stop.clone();
        move || {
            stop.send_replace(true);
        }
    }

    /// Wait until the node has stopped, and say why.
    pub async fn wait(self) -> Result<Outcome, ReleaseError> {
        self.task
            .await
            .map_err(|e| ReleaseError::Node(format!("the node's task failed: {e}")))?
    }
}

/// Resolves once a stop was asked for.
async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means every sender is gone: nobody can stop it any more,
    // so it runs until the process ends.
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run(
    mut joined: join::Joined,
    dir: PathBuf,
    m: Manifest,
    opts: RunOptions,
    stop: watch::Receiver<bool>,
    up: watch::Sender<Option<SupervisorRef>>,
    started: Instant,
) -> Result<Outcome, ReleaseError> {
    let node = joined.booted.node.clone();
    // Stops in reverse: the listener first (requests in flight finish
    // while their particles still run), then the mesh and the particles.
    let http = std::sync::Mutex::new(joined.http.take());
    let observer = std::sync::Mutex::new(joined.observer.take());
    let finish = |mesh: plasmoid_mesh::Mesh, node: Node| {
        let http = http.lock().ok().and_then(|mut h| h.take());
        let observer = observer.lock().ok().and_then(|mut o| o.take());
        async move {
            if let Some(o) = observer {
                o.stop().await;
            }
            if let Some(h) = http {
                h.stop().await;
            }
            mesh.close().await;
            node.shutdown(SHUTDOWN_WAIT).await;
        }
    };
    if !joined.root {
        tracing::info!(node = %joined.name, "node up; it hosts the children the root places here");
        stopped(stop).await;
        finish(joined.mesh, node).await;
        return Ok(Outcome::Stopped);
    }
    if !joined.peers.is_empty() {
        tracing::info!(
            peers = joined.peers.len(),
            wait_ms = opts.peer_wait.as_millis() as u64,
            "waiting for the other nodes"
        );
    }
    tokio::select! {
        _ = join::await_peers(&joined, opts.peer_wait) => {}
        _ = stopped(stop.clone()) => {
            tracing::info!("stopped while waiting for the other nodes");
            finish(joined.mesh, node).await;
            return Ok(Outcome::Stopped);
        }
    }
    tracing::info!(
        release = %m.release_id(),
        node = %node.id(),
        components = m.components.len(),
        "booting release"
    );
    // The root node's versions: hot swaps of the running one, and
    // declarative upgrades to the next.
    let lock = match crate::lock::Lock::read(&dir) {
        Ok(l) => l,
        Err(e) => {
            finish(joined.mesh, node).await;
            return Err(e);
        }
    };
    let current = crate::upgrade::Version {
        dir: dir.clone(),
        manifest: m.clone(),
        lock,
    };
    let releases = joined.control.enable_upgrades(current, opts.swap.clone());
    if opts.swap.is_some() {
        if let Err(e) = releases.watch_swaps().await {
            finish(joined.mesh, node).await;
            return Err(e);
        }
        tracing::info!(
            "watching {} for new versions",
            dir.join("components").display()
        );
    }
    let control = joined.control.clone();
    let release = m.release_id();
    let outcome = run_tree(&node, joined.booted.spec, stopped(stop), move |root| {
        control.set_root(root.clone());
        up.send_replace(Some(root.clone()));
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "release {release} is up"
        );
    })
    .await;
    finish(joined.mesh, node).await;
    Ok(outcome)
}
