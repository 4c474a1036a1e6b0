//! `plasmoid release check | build | run`: thin commands over plasmoid-release.

use crate::start::{scheduler, stop_signal};
use anyhow::{Context, Result};
use plasmoid_release::{BuildOptions, Built, Manifest, Progress};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

// Parsed once per process: the size of `Run` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum ReleaseCommand {
    /// Validate a manifest and print its tree and start order; builds nothing.
    Check {
        #[arg(default_value = "prod.toml")]
        manifest: PathBuf,
    },
    /// Build, validate, precompile and lock a release folder.
    Build {
        #[arg(default_value = "prod.toml")]
        manifest: PathBuf,
        /// The release folder (default: target/plasmoid/NAME-VERSION beside the manifest).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build the edited manifest as a new version, print the plan that
    /// takes the running release to it, and apply it live, all or nothing
    /// (`--dry-run`: print only).
    Upgrade(crate::release_upgrade::UpgradeArgs),
    /// Make the version on probation after an upgrade final now.
    Confirm(crate::release_upgrade::EndArgs),
    /// Go back to the version before the last upgrade.
    Rollback(crate::release_upgrade::EndArgs),
    /// Boot a release (a manifest, built first if needed, or a built release
    /// folder) and keep it alive until SIGINT/SIGTERM.
    Run {
        #[arg(default_value = "prod.toml")]
        release: PathBuf,
        /// Where to build when given a manifest.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do not hot-swap components when new .wasm files land in the
        /// release's components/ folder.
        #[arg(long)]
        no_watch: bool,
        /// Seconds a new version is on probation (a crash rolls it back).
        #[arg(long, default_value_t = 10)]
        probation: u64,
        /// For a release with [nodes]: which node this process is (default:
        /// the first, which runs the root supervisor). With --join, a name
        /// the manifest does not list makes this process an extra member of
        /// the cluster, its key kept in `<release>/nodes/NAME/`.
        #[arg(long)]
        node: Option<String>,
        /// Join the running cluster through this member (`NODE_ID@IP:PORT`,
        /// as `<release>/nodes/NAME/control` holds it); repeatable. The
        /// member admits this node by the release's cluster key, and every
        /// other member learns of it by gossip.
        #[arg(long, value_name = "NODE_ID@IP:PORT")]
        join: Vec<plasmoid_mesh::ControlAddr>,
        /// Also admit this peer node (its 64-hex id); repeatable.
        #[arg(long = "allow", value_name = "NODE_ID", value_parser = parse_id)]
        allow: Vec<plasmoid_runtime::NodeId>,
        /// Also admit this control client key (its 64-hex id); repeatable.
        /// The release's own `client/node.key` is always admitted.
        #[arg(long = "allow-client", value_name = "ID", value_parser = parse_id)]
        allow_client: Vec<plasmoid_runtime::NodeId>,
        /// Where a release without [nodes] takes control requests
        /// (default 127.0.0.1 on a free port; see `<release>/node/control`).
        #[arg(long, value_name = "IP:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// How nodes find each other: `static` dials the addresses of the
        /// manifest; `mdns` finds the release's nodes (and --allow peers) on
        /// the local network. Nothing ever goes to the internet.
        #[arg(long, value_enum, default_value = "static")]
        discovery: Discovery,
        /// How long the root node waits for the other nodes of the release
        /// before it starts its tree without them, ms (SIGTERM ends the
        /// wait at once).
        #[arg(long, value_name = "MS", default_value_t = 30_000)]
        peer_wait_ms: u64,
        /// Serve the manifest's [http] routes on this address instead of
        /// the one the manifest gives this node (port 0: a free one; the
        /// address is written to the node's folder, file `http`).
        #[arg(long, value_name = "IP:PORT")]
        http: Option<std::net::SocketAddr>,
        /// The release's data folder (its nodes' stores), default
        /// `<name>.data` beside the release folder, kept across versions.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Serve the observer (the live dashboard and /metrics) here,
        /// instead of the manifest's `[observer] listen` (port 0: a free
        /// one). `plasmoid observe` prints its URL.
        #[arg(long, value_name = "IP:PORT")]
        observer: Option<std::net::SocketAddr>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    Static,
    Mdns,
}

fn parse_id(s: &str) -> Result<plasmoid_runtime::NodeId, String> {
    plasmoid_mesh::parse_node_id(s).ok_or_else(|| format!("`{s}` is not a node id (64 hex digits)"))
}

pub fn run(cmd: ReleaseCommand) -> Result<ExitCode> {
    match cmd {
        ReleaseCommand::Check { manifest } => {
            let m = plasmoid_release::load_manifest(&manifest)?;
            print!("{}", plasmoid_release::render_tree(&m));
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Upgrade(args) => crate::release_upgrade::run(args),
        ReleaseCommand::Confirm(args) => crate::release_upgrade::confirm(args),
        ReleaseCommand::Rollback(args) => crate::release_upgrade::rollback(args),
        ReleaseCommand::Build { manifest, out } => {
            let m = plasmoid_release::load_manifest(&manifest)?;
            let built = build(&m, out)?;
            println!("{}", built.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Run {
            release,
            out,
            no_watch,
            probation,
            node,
            join,
            allow,
            allow_client,
            listen,
            discovery,
            peer_wait_ms,
            http,
            data,
            observer,
        } => {
            let dir = release_dir(&release, out)?;
            let swap = (!no_watch).then(|| plasmoid_release::SwapOptions {
                probation: std::time::Duration::from_secs(probation),
                ..Default::default()
            });
            let opts = plasmoid_release::RunOptions {
                node,
                join,
                allow,
                allow_clients: allow_client,
                listen,
                mdns: discovery == Discovery::Mdns,
                swap,
                peer_wait: std::time::Duration::from_millis(peer_wait_ms),
                http,
                data,
                observer,
            };
            run_release(&dir, opts)
        }
    }
}

/// A built release folder for `path`: the folder itself, or the manifest
/// built (incrementally) into its folder.
pub fn release_dir(path: &Path, out: Option<PathBuf>) -> Result<PathBuf> {
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let m = plasmoid_release::load_manifest(path)?;
    Ok(build(&m, out)?.dir)
}

/// Build with progress on stderr: one updating line on a terminal, plain
/// lines otherwise.
pub fn build(m: &Manifest, out: Option<PathBuf>) -> Result<Built> {
    build_with(m, BuildOptions { out, reuse: None })
}

/// [`build`] with every option (`reuse`: the running version's folder).
pub fn build_with(m: &Manifest, opts: BuildOptions) -> Result<Built> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut err = std::io::stderr();
    let mut show = |p: Progress| {
        let _ = match p {
            Progress::Component { index, total, name } if tty => {
                write!(err, "\r\x1b[2K[{}/{total}] building {name}…", index + 1)
            }
            Progress::Component { .. } => Ok(()),
            Progress::Done { name, outcome, ms } if tty => {
                write!(err, "\r\x1b[2K  {outcome:>9} {name} ({ms} ms)\n")
            }
            Progress::Done { name, outcome, ms } => {
                writeln!(err, "  {outcome:>9} {name} ({ms} ms)")
            }
        };
    };
    let built = plasmoid_release::build(m, &opts, &mut show)
        .with_context(|| format!("cannot build release {}", m.release_id()))?;
    eprintln!(
        "built {} in {} ms: {} compiled, {} unchanged → {}",
        m.release_id(),
        started.elapsed().as_millis(),
        built.compiled,
        built.unchanged,
        built.dir.display()
    );
    Ok(built)
}

fn run_release(dir: &Path, opts: plasmoid_release::RunOptions) -> Result<ExitCode> {
    let (m, _) = plasmoid_release::open_release(dir)?;
    let rt = scheduler(m.threads)?;
    rt.block_on(async move {
        // Handlers first: a SIGTERM during boot must stop the release in
        // order, not kill the process.
        let signal = stop_signal();
        let node = plasmoid_release::ReleaseNode::start(dir, opts).await?;
        let stop = node.stopper();
        tokio::spawn(async move {
            signal.await;
            stop();
        });
        Ok(exit_code(node.wait().await?))
    })
}

/// The process's exit code for how a node or tree ended: 0 when asked to
/// stop, 1 for a runtime failure (the tree did not start or gave up).
pub fn exit_code(outcome: plasmoid_release::Outcome) -> ExitCode {
    if outcome.is_success() {
        return ExitCode::SUCCESS;
    }
    eprintln!("{outcome}");
    ExitCode::from(1)
}
