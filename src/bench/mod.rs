//! `plasmoid bench`: figures as JSON lines `{"name", "value", "unit", "params"}`.
//!
//! Each figure is the median of several runs: the machines are shared and
//! noisy, and a median is what compares run to run.

mod boot;
mod call;
mod cluster;
mod cluster_sim;
mod common;
mod http;
mod mesh;
mod nodedown;
mod restart;
mod store;
mod swap;
mod upgrade;

use crate::start::default_capacity;
use anyhow::{Context, Result, anyhow, bail};
use common::{SETTLE, THREADS, app_wasm, emit, map_count, median, num_cpus, pss_kib, wait_until};
use plasmoid_runtime::{ExitReason, Msg, NativeProcess, Node, NodeConfig, SpawnOpts};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
    /// The ring component (default: build apps/ring of this checkout).
    #[arg(long, global = true)]
    wasm: Option<PathBuf>,
    /// The echo component for `restart` (default: build apps/echo).
    #[arg(long, global = true)]
    echo: Option<PathBuf>,
    /// How many times to repeat each measurement.
    #[arg(long, global = true, default_value_t = 5)]
    runs: usize,
    /// Scheduler threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(clap::Subcommand)]
enum Which {
    /// A token passed around a ring of particles: ns per hop, hops/s.
    Ring {
        /// Particles in the ring (with --msgs; default: the three standard shapes).
        #[arg(long, requires = "msgs")]
        procs: Option<u32>,
        /// Rounds of the token around the ring.
        #[arg(long, requires = "procs")]
        msgs: Option<u32>,
    },
    /// Spawn many idle particles: µs per spawn, resident KiB per particle.
    Spawn {
        #[arg(long, default_value_t = 10_000)]
        count: u32,
    },
    /// Supervisor restarts: crash → restarted children answering a call.
    Restart {
        /// Restarts to time (the rest-for-one case does a tenth as many rounds).
        #[arg(long, default_value_t = 10_000)]
        restarts: usize,
    },
    /// Boot a release until every child is up: ms (the release is built first, untimed).
    Boot {
        /// A `prod.toml`, or a built release folder.
        manifest: PathBuf,
    },
    /// Hot swaps of a counter under load: ms from the file landing to the
    /// new version answering, and messages lost.
    Swap {
        #[arg(long, default_value_t = 20)]
        swaps: usize,
    },
    /// A plan of ten changes applied to the running demo by `plasmoid
    /// release upgrade` while HTTP clients call it: ms from the command to
    /// converged, calls failed or unanswered.
    Upgrade {
        /// The demo's manifest.
        #[arg(default_value = "apps/demo/prod.toml")]
        manifest: PathBuf,
    },
    /// Two nodes (this process and a second `plasmoid`) over iroh on
    /// 127.0.0.1: round trip µs, one-way msgs/s.
    Mesh {
        #[arg(long, default_value_t = 10_000)]
        rounds: usize,
        #[arg(long, default_value_t = 500_000)]
        messages: u64,
    },
    /// A three-node release with its peers as real processes: ms from
    /// kill -9 / kill -STOP of a node to noconnection, and to the
    /// supervised child running again elsewhere.
    Nodedown,
    /// Node b of `bench mesh` (started by it).
    #[command(hide = true)]
    MeshPeer {
        #[arg(long)]
        key_dir: PathBuf,
        /// Node a, as NODE_ID@IP:PORT.
        #[arg(long)]
        peer: String,
    },
    /// HTTP through the listener at 64 and 256 keep-alive connections, to
    /// one gen_server particle, a pool of 4 and a stock wasi:http component
    /// (an instance per request), against a native hyper handler:
    /// requests/s, p50/p99 µs, ratio to native.
    Http {
        /// The web component (default: build apps/web of this checkout).
        #[arg(long)]
        web: Option<PathBuf>,
        /// The wasi:http component (default: build apps/hello-http).
        #[arg(long)]
        handler: Option<PathBuf>,
    },
    /// Durable writes/s (single and batched) and get p50/p99 through a
    /// particle, on the embedded and the Redis backend, against raw redb
    /// and a raw Redis client.
    Store {
        /// The bench particle (default: build apps/kvbench).
        #[arg(long)]
        wasm: Option<PathBuf>,
        /// A Redis server to use (default: start redis-server on a free port).
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
        /// Writes (and reads) per measurement.
        #[arg(long, default_value_t = 2000)]
        count: u32,
    },
    /// A cluster in this process (real iroh endpoints on 127.0.0.1): join
    /// and leave seen by every member, ms; global register µs and lookup
    /// ns; a pg broadcast to 1,000 members on 3 nodes, ms. With
    /// `--simulate`, simulated clusters instead (plasmoid_mesh::sim).
    Cluster {
        /// Members after the join (at least 5).
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        /// Members of the broadcast group.
        #[arg(long, default_value_t = 1000)]
        members: usize,
        /// Also measure idle mesh traffic per node for clusters of these
        /// sizes (comma-separated, e.g. `10,100`; none by default).
        #[arg(long, value_delimiter = ',')]
        idle: Vec<usize>,
        /// Instead, simulate clusters of these sizes in this process
        /// (comma-separated, e.g. `10,100`): the gossip layer in virtual
        /// time, the registry layer on that many runtime nodes in memory.
        #[arg(long, value_delimiter = ',')]
        simulate: Vec<usize>,
    },
    /// A send to self followed by its recv, inside one particle, on the
    /// lean engine and on the async-ABI one: ns per pair; and a gen_server
    /// call round trip from the node to a particle: µs.
    Call {
        #[arg(long, default_value_t = 200_000)]
        iters: u64,
        /// The gen_server to call (default: build apps/echo): a Python or
        /// JS one such as apps/py/pyapp built with `--server-init '"echo"'`.
        #[arg(long)]
        server: Option<PathBuf>,
        /// Init args for the server.
        #[arg(long, default_value = "")]
        server_init: String,
        /// Round trips per run.
        #[arg(long, default_value_t = 20_000)]
        calls: u32,
    },
}

fn ring_wasm(given: Option<PathBuf>) -> Result<PathBuf> {
    app_wasm(given, "ring", "--wasm")
}

fn echo_wasm(given: Option<PathBuf>) -> Result<PathBuf> {
    app_wasm(given, "echo", "--echo")
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let Which::Mesh { rounds, messages } = &args.which {
        let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
        return mesh::run((*rounds).max(1), (*messages).max(1), args.threads, emit);
    }
    if let Which::MeshPeer { key_dir, peer } = &args.which {
        let peer = peer.parse().map_err(|e: String| anyhow!(e))?;
        return mesh::peer(key_dir.clone(), peer, args.threads);
    }
    if let Which::Nodedown = &args.which {
        let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
        return nodedown::run(args.threads, args.runs.max(1), emit);
    }
    if let Which::Swap { swaps } = &args.which {
        let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
        return swap::run((*swaps).max(1), args.threads, emit);
    }
    if let Which::Upgrade { manifest } = &args.which {
        let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
        return upgrade::run(manifest, args.runs.max(1), args.threads, emit);
    }
    if let Which::Boot { manifest } = &args.which {
        let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
        return boot::run(manifest, args.runs.max(1), args.threads, emit);
    }
    if let Which::Store { wasm, redis, count } = &args.which {
        let wasm = app_wasm(wasm.clone(), "kvbench", "--wasm")?;
        let rt = crate::start::scheduler(args.threads)?;
        let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
        let (runs, redis, count) = (args.runs.max(1), redis.clone(), (*count).max(1));
        return rt.block_on(async move {
            tokio::spawn(store::run(wasm, redis, count, runs))
                .await
                .context("the store bench failed")?
        });
    }
    if let Which::Cluster {
        nodes,
        members,
        idle,
        simulate,
    } = &args.which
    {
        let rt = crate::start::scheduler(args.threads)?;
        let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
        let (nodes, members, runs) = (*nodes, (*members).max(1), args.runs.max(1));
        let idle: Vec<usize> = idle.iter().map(|n| (*n).clamp(2, 200)).collect();
        if !simulate.is_empty() {
            let sizes: Vec<usize> = simulate.iter().map(|n| (*n).clamp(3, 1000)).collect();
            return rt.block_on(async move {
                for size in sizes {
                    tokio::task::spawn_blocking(move || cluster_sim::gossip(size, runs))
                        .await
                        .context("the gossip simulation failed")??;
                    tokio::spawn(cluster_sim::registry(size, runs))
                        .await
                        .context("the registry simulation failed")??;
                }
                Ok(())
            });
        }
        return rt.block_on(async move {
            tokio::spawn(cluster::run(nodes, members, runs))
                .await
                .context("the cluster bench failed")??;
            for size in idle {
                tokio::spawn(cluster::idle(size, Duration::from_secs(10)))
                    .await
                    .context("the idle cluster bench failed")??;
            }
            Ok(())
        });
    }
    if let Which::Http { web, handler } = &args.which {
        let web = app_wasm(web.clone(), "web", "--web")?;
        let handler = app_wasm(handler.clone(), "hello_http", "--handler")?;
        let rt = crate::start::scheduler(args.threads)?;
        let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
        let runs = args.runs.max(1);
        return rt.block_on(async move {
            tokio::spawn(http::run(web, handler, runs))
                .await
                .context("the HTTP bench failed")?
        });
    }
    // Components are built before the scheduler starts (cargo runs blocking).
    let wasm = match args.which {
        Which::Restart { .. } => echo_wasm(args.echo)?,
        _ => ring_wasm(args.wasm)?,
    };
    let runs = args.runs.max(1);
    let rt = crate::start::scheduler(args.threads)?;
    let _ = THREADS.set(args.threads.unwrap_or_else(num_cpus));
    // The measuring code runs as a task on the scheduler's workers, like the
    // particles: driving it from the main thread would add a cross-thread
    // wake-up (futex + eventfd) to every figure.
    rt.block_on(async move {
        let work = tokio::spawn(async move {
            match args.which {
                Which::Ring { procs, msgs } => {
                    let shapes = match (procs, msgs) {
                        (Some(p), Some(m)) => vec![(p, m)],
                        _ => vec![(100, 1000), (1000, 100), (10, 10_000)],
                    };
                    let max = shapes.iter().map(|s| s.0).max().unwrap_or(1) + 16;
                    // The observer's counting on and off, in the same run.
                    let on = node_with(&wasm, max)?;
                    let off = node_with_metrics(&wasm, max, false)?;
                    for (p, m) in shapes {
                        bench_ring(&on, &off, p, m, runs).await?;
                    }
                }
                Which::Spawn { count } => bench_spawn(&wasm, count, runs).await?,
                Which::Restart { restarts } => {
                    let node = Node::new(NodeConfig {
                        max_particles: 64,
                        ..NodeConfig::default()
                    })?;
                    node.load_component("echo", &wasm, None)?;
                    restart::run(&node, restarts.max(1), emit).await?;
                }
                Which::Boot { .. }
                | Which::Swap { .. }
                | Which::Upgrade { .. }
                | Which::Mesh { .. }
                | Which::Http { .. }
                | Which::Store { .. }
                | Which::Cluster { .. }
                | Which::MeshPeer { .. }
                | Which::Nodedown => {}
                Which::Call {
                    iters,
                    server,
                    server_init,
                    calls,
                } => {
                    call::send_recv(&wasm, iters, runs).await?;
                    let server = echo_wasm(server)?;
                    call::round_trip(&server, &server_init, calls, runs).await?;
                }
            }
            Ok(())
        });
        work.await.context("the benchmark task failed")?
    })
}

fn node_with(wasm: &Path, max_particles: u32) -> Result<Node> {
    node_with_metrics(wasm, max_particles, true)
}

fn node_with_metrics(wasm: &Path, max_particles: u32, metrics: bool) -> Result<Node> {
    let cfg = NodeConfig {
        max_particles,
        metrics,
        ..NodeConfig::default()
    };
    let node = Node::new(cfg)?;
    node.load_component("ring", wasm, None)?;
    Ok(node)
}

/// Spawn a ring particle with `init` and wait for the JSON report it sends back.
pub(super) async fn report(me: &NativeProcess, init: Value) -> Result<Value> {
    let (_, reference) = me
        .spawn_monitor("ring", &init.to_string(), SpawnOpts::default())
        .map_err(|e| anyhow!("spawn failed: {e}"))?;
    loop {
        match me.recv(Some(Duration::from_secs(300))).await {
            Ok(Some(Msg::Data(d))) => {
                me.demonitor(reference);
                return serde_json::from_slice(&d)
                    .context("the ring sent a report that is not JSON");
            }
            Ok(Some(Msg::Down { reason, .. })) if reason != ExitReason::Normal => {
                bail!("the benchmark particle crashed: {reason}")
            }
            Ok(Some(_)) => continue,
            Ok(None) => bail!("no report from the benchmark particle within 300 s"),
            Err(r) => bail!("the benchmark process was stopped: {r}"),
        }
    }
}

/// One ring run on `node`: ns per hop.
async fn ring_once(node: &Node, procs: u32, msgs: u32) -> Result<f64> {
    let me = node.native("bench");
    let init =
        json!({"orchestrator": {"procs": procs, "msgs": msgs, "report_to": me.pid().to_string()}});
    let r = report(&me, init).await?;
    let elapsed = r["elapsed_ns"]
        .as_f64()
        .context("report without elapsed_ns")?;
    let hops = r["hops"].as_f64().context("report without hops")?;
    // Let the workers finish exiting before the next run.
    while node.live_particles() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(elapsed / hops)
}

/// The ring on a node that counts for the observer (`on`) and on one that
/// does not (`off`), runs alternating (and which goes first, too) so
/// drift on a shared machine hits both; the figures are medians, and
/// `ring.metrics_cost` is their ratio (on / off).
async fn bench_ring(on: &Node, off: &Node, procs: u32, msgs: u32, runs: usize) -> Result<()> {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for run in 0..runs {
        if run % 2 == 0 {
            with.push(ring_once(on, procs, msgs).await?);
            without.push(ring_once(off, procs, msgs).await?);
        } else {
            without.push(ring_once(off, procs, msgs).await?);
            with.push(ring_once(on, procs, msgs).await?);
        }
    }
    let (ns, ns_off) = (median(with), median(without));
    let params =
        json!({"procs": procs, "msgs": msgs, "hops": procs as u64 * msgs as u64, "runs": runs});
    emit("ring.hop", ns, "ns", params.clone());
    emit("ring.throughput", 1e9 / ns, "hops/s", params.clone());
    let mut p_off = params.clone();
    p_off["metrics"] = json!(false);
    emit("ring.hop", ns_off, "ns", p_off);
    emit("ring.metrics_cost", ns / ns_off, "ratio", params);
    Ok(())
}

async fn bench_spawn(wasm: &Path, count: u32, runs: usize) -> Result<()> {
    let capacity = count + 16;
    let fits = default_capacity(capacity);
    if fits < capacity {
        let needed = plasmoid_runtime::maps_needed(capacity);
        bail!(
            "{count} particles need vm.max_map_count >= {needed}; run `sysctl -w vm.max_map_count={needed}` as root"
        );
    }
    let node = node_with(wasm, capacity)?;
    let me = node.native("bench");
    // Warm the pool and the code once so the runs measure steady spawning.
    let warm = node
        .spawn("ring", "\"idle\"", SpawnOpts::default())
        .map_err(|e| anyhow!("cannot spawn a ring particle: {e}"))?;
    wait_until(
        || node.started_particles() == 1,
        SETTLE,
        "the first particle to start",
    )
    .await?;
    me.send_exit(warm, ExitReason::Kill).ok();
    wait_until(
        || node.live_particles() == 0,
        SETTLE,
        "every particle to end",
    )
    .await?;

    // Resident memory per particle comes from the first run only: later runs
    // reuse pool slots whose pages a freed particle may have left resident,
    // which would hide (or, compared with the node before any run, inflate)
    // what one idle particle costs.
    let mut first_pss = None;
    let mut per_spawn = Vec::new();
    let mut per_maps = Vec::new();
    let mut peak_maps = 0;
    for _ in 0..runs {
        let before = pss_kib().unwrap_or(0);
        let maps_before = map_count().unwrap_or(0);
        let start = Instant::now();
        let mut pids = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let pid = node
                .spawn("ring", "\"idle\"", SpawnOpts::default())
                .map_err(|e| anyhow!("spawn failed: {e}"))?;
            pids.push(pid);
        }
        wait_until(
            || node.started_particles() >= count as usize,
            SETTLE,
            "every particle to start",
        )
        .await?;
        let elapsed = start.elapsed();
        let after = pss_kib().unwrap_or(0);
        let maps_after = map_count().unwrap_or(0);
        peak_maps = peak_maps.max(maps_after);
        per_maps.push(maps_after.saturating_sub(maps_before) as f64 / count as f64);
        per_spawn.push(elapsed.as_secs_f64() * 1e6 / count as f64);
        first_pss.get_or_insert(after.saturating_sub(before) as f64 / count as f64);
        for pid in pids {
            me.send_exit(pid, ExitReason::Kill).ok();
        }
        wait_until(
            || node.live_particles() == 0,
            SETTLE,
            "every particle to end",
        )
        .await?;
    }
    let params = json!({"count": count, "runs": runs});
    let first_spawn = per_spawn.first().copied().unwrap_or(0.0);
    emit("spawn.time", median(per_spawn), "us", params.clone());
    emit("spawn.time_first_run", first_spawn, "us", params.clone());
    emit(
        "spawn.idle_pss",
        first_pss.unwrap_or(0.0),
        "KiB",
        params.clone(),
    );
    emit(
        "spawn.maps",
        median(per_maps),
        "maps/particle",
        params.clone(),
    );
    emit("spawn.maps_at_peak", peak_maps as f64, "maps", params);
    Ok(())
}
