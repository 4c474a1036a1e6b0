//! `plasmoid start`: boot a node, load components, spawn one particle and
//! live until it exits or the user presses Ctrl-C.

use crate::load;
use anyhow::{Context, Result, bail};
use plasmoid_runtime::{ExitReason, Limits, Msg, Node, NodeConfig, SpawnOpts};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct StartArgs {
    /// Components: .wasm/.wat/.cwasm files, guest crate folders, or Python (.py) and JavaScript (.js) modules to build.
    pub inputs: Vec<PathBuf>,
    /// Also load every component file in this folder.
    #[arg(long)]
    pub load_path: Vec<PathBuf>,
    /// Component to spawn (default: the only one loaded).
    #[arg(long)]
    pub spawn: Option<String>,
    /// Register the spawned particle under this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Init arguments (JSON) handed to the particle's `start`.
    #[arg(long, default_value = "null")]
    pub init: String,
    /// Folder of Cedar policies (a .cedarschema and .cedar files).
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Most particles alive at once (sizes the instance pool).
    #[arg(long)]
    pub max_particles: Option<u32>,
    /// Memory cap per particle, MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mb: u64,
    /// CPU a particle may use without returning to recv, ms (0 = no limit).
    #[arg(long, default_value_t = 5000)]
    pub cpu_ms: u64,
    /// Mailbox bound per particle.
    #[arg(long, default_value_t = 10_000)]
    pub mailbox: usize,
    /// Scheduler threads running particles (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Boot this supervision tree instead of spawning one particle: a TOML
    /// file with a `[supervisor]` table (and `[supervisors.NAME]`), as in
    /// a prod.toml, over the loaded components.
    #[arg(long, conflicts_with_all = ["spawn", "name"])]
    pub tree: Option<PathBuf>,
    /// Serve HTTP here (e.g. 127.0.0.1:8080), with the `--route`s.
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<std::net::SocketAddr>,
    /// `PATH=NAME`: requests for PATH (or `/api/*` for everything under
    /// /api) go to the process registered as NAME, or to the loaded
    /// wasi:http handler component NAME; repeatable. A handler started
    /// alone is served on `/*` by default.
    #[arg(long = "route", value_name = "PATH=NAME", requires = "http")]
    pub routes: Vec<String>,
}

/// The `--route PATH=NAME` flags as routes.
fn routes(flags: &[String]) -> Result<Vec<plasmoid_http::Route>> {
    flags
        .iter()
        .map(|f| {
            let (path, name) = f.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--route `{f}`: write PATH=NAME, like --route /orders=gateway")
            })?;
            Ok(plasmoid_http::Route::new(
                path,
                plasmoid_http::Target::Name(name.to_string()),
            )?)
        })
        .collect()
}

/// The tokio runtime particles run on: one worker per core unless told.
pub fn scheduler(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all()
        .build()
        .context("cannot start the async runtime")
}

impl StartArgs {
    pub fn node_config(&self) -> NodeConfig {
        let mut cfg = NodeConfig {
            policy_dir: self.policies.clone(),
            default_limits: Limits {
                memory_bytes: self.memory_mb << 20,
                cpu_ms: self.cpu_ms,
                mailbox: self.mailbox,
            },
            ..NodeConfig::default()
        };
        cfg.max_memory_bytes = cfg.max_memory_bytes.max(cfg.default_limits.memory_bytes);
        cfg.max_particles = self
            .max_particles
            .unwrap_or_else(|| default_capacity(cfg.max_particles));
        cfg
    }
}

/// The default capacity, lowered to what the kernel's map limit allows.
pub fn default_capacity(wanted: u32) -> u32 {
    plasmoid_runtime::particles_within_map_limit().map_or(wanted, |fit| wanted.min(fit))
}

pub fn run(args: StartArgs) -> Result<ExitCode> {
    let inputs = load::collect(&args.inputs, &args.load_path)?;
    if inputs.is_empty() {
        bail!("nothing to load: pass a component (.wasm), a guest crate folder or --load-path");
    }
    let rt = scheduler(args.threads)?;
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let tree = match &args.tree {
        Some(path) => Some(plasmoid_release::load_tree(path, &names)?),
        None => None,
    };
    let mut routes = routes(&args.routes)?;
    rt.block_on(async move {
        let stop = stop_signal();
        let node = Node::new(args.node_config())?;
        load::load_all(&node, &inputs)?;
        // A route to a loaded wasi:http handler runs that component per
        // request; any other name is a registered process.
        for r in &mut routes {
            if let plasmoid_http::Target::Name(n) = &r.to
                && node.is_http_handler(n)
            {
                r.to = plasmoid_http::Target::Component(n.clone());
            }
        }
        let http = async |routes| -> Result<Option<plasmoid_http::HttpServer>> {
            let Some(addr) = args.http else {
                return Ok(None);
            };
            let cfg = plasmoid_http::HttpConfig::new(addr, routes);
            let server = plasmoid_http::HttpServer::start(node.clone(), cfg).await?;
            eprintln!("HTTP on http://{}", server.local_addr());
            Ok(Some(server))
        };
        if let Some(def) = tree {
            // Requests before the tree is up get 503 (nobody registered yet).
            let _http = http(routes).await?;
            let spec = plasmoid_release::supervisor_spec(&def, &Default::default());
            let outcome = plasmoid_release::run_tree(&node, spec, stop, |_| {}).await;
            node.shutdown(Duration::from_secs(5)).await;
            return Ok(crate::release::exit_code(outcome));
        }
        let component = match (&args.spawn, inputs.as_slice()) {
            (Some(c), _) => c.clone(),
            (None, [only]) => only.name.clone(),
            (None, _) => bail!(
                "several components are loaded ({}); say which to start with --spawn",
                node.component_names().join(", ")
            ),
        };
        if node.is_http_handler(&component) {
            // A stock wasi:http component is served, not spawned: every
            // path goes to it unless --route says otherwise.
            if args.http.is_none() {
                bail!(
                    "`{component}` is a wasi:http handler (it exports wasi:http/incoming-handler); serve it with --http IP:PORT"
                );
            }
            if routes.is_empty() {
                routes.push(plasmoid_http::Route::new(
                    "/*",
                    plasmoid_http::Target::Component(component.clone()),
                )?);
            }
            let _http = http(routes).await?;
            stop.await;
            node.shutdown(Duration::from_secs(5)).await;
            return Ok(ExitCode::SUCCESS);
        }
        let watcher = node.native("cli");
        let opts = SpawnOpts {
            name: args.name.clone(),
            ..Default::default()
        };
        let (pid, reference) = watcher
            .spawn_monitor(&component, &args.init, opts)
            .map_err(|e| anyhow::anyhow!("cannot spawn `{component}`: {e}"))?;
        tracing::info!(%pid, component, node = %node.id(), "particle started");
        // After the spawn, so its name is registered when the first request
        // comes; dropped at the end of this block, with the node.
        let _http = http(routes).await?;
        let outcome = tokio::select! {
            m = watcher.recv_ref(reference, None) => m.ok().flatten(),
            _ = stop => None,
        };
        let code = match outcome {
            Some(Msg::Down {
                reason: ExitReason::Normal,
                ..
            }) => {
                tracing::info!(%pid, "particle exited normally");
                ExitCode::SUCCESS
            }
            Some(Msg::Down { reason, .. }) => {
                eprintln!("particle {pid} ({component}) exited: {reason}");
                ExitCode::from(1)
            }
            _ => {
                tracing::info!("interrupted; stopping the node");
                ExitCode::SUCCESS
            }
        };
        let left = node.shutdown(Duration::from_secs(5)).await;
        if left > 0 {
            tracing::warn!(left, "particles still running at exit");
        }
        Ok(code)
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when
/// this is called, not when first polled, so a signal that arrives right
/// after start-up is not lost to the default action.
pub fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {}
            _ = wait(int) => {}
        }
    }
}
