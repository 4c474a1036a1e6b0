//! `plasmoid bench upgrade`: a plan of ten changes applied to the running
//! demo (`apps/demo/prod.toml`) by `plasmoid release upgrade`: ms from the
//! command to the tree converged, and the HTTP calls that failed or got no
//! answer meanwhile.
//!
//! The demo runs in this process (`ReleaseNode`, as `release run` runs it,
//! on free ports); the upgrade is the real command in a child process,
//! timed from its start to its exit (it builds the new version, then the
//! node applies the plan). Two clients call through the HTTP listener the
//! whole time: `GET /balances` through `gateway-us`, which the plan does
//! not touch (it reaches the ledger, which is hot-swapped with handoff),
//! and `POST /orders` through `gateway-eu`, which the plan restarts.

mod changes;

use super::common::median;
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use changes::{absolutize, ten_changes, with_custom_section};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use plasmoid_supervisor::SupervisorRef;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a client waits for one answer before it counts the call lost.
const ANSWER: Duration = Duration::from_secs(5);

/// The steps the edited demo's plan has (checked: the figure is for ten).
const STEPS: usize = 10;

pub fn run(
    manifest: &Path,
    runs: usize,
    threads: Option<usize>,
    emit: impl Fn(&str, f64, &str, Value),
) -> Result<()> {
    let counter = super::common::app_wasm(None, "counter", "--counter")?;
    let work = std::env::temp_dir().join(format!("plasmoid-bench-upgrade-{}", std::process::id()));
    let result = versions(manifest, &work, &counter).and_then(|(v1, v2)| {
        let rt = crate::start::scheduler(threads)?;
        let mut all = Vec::new();
        for i in 0..runs {
            let (v1, v2, data) = (v1.clone(), v2.clone(), work.join(format!("data-{i}")));
            all.push(rt.block_on(async move {
                tokio::spawn(once(v1, v2, data))
                    .await
                    .context("the upgrade bench failed")?
            })?);
        }
        Ok(all)
    });
    let _ = std::fs::remove_dir_all(&work);
    let all = result?;
    let params = json!({"release": "apps/demo", "changes": STEPS, "runs": runs,
        "probation_s": 0, "clients": ["GET /balances via gateway-us (untouched)",
        "POST /orders via gateway-eu (restarted)"]});
    let figure = |f: fn(&Run) -> f64| median(all.iter().map(f).collect());
    emit(
        "upgrade.time",
        figure(|r| r.command_ms),
        "ms",
        params.clone(),
    );
    emit(
        "upgrade.apply",
        figure(|r| r.apply_ms),
        "ms",
        params.clone(),
    );
    let sum = |f: fn(&Run) -> u64| all.iter().map(f).sum::<u64>() as f64;
    emit(
        "upgrade.untouched_calls",
        sum(|r| r.untouched.ok + r.untouched.failed + r.untouched.lost),
        "calls",
        params.clone(),
    );
    emit(
        "upgrade.untouched_failed",
        sum(|r| r.untouched.failed),
        "calls",
        params.clone(),
    );
    emit(
        "upgrade.untouched_lost",
        sum(|r| r.untouched.lost),
        "calls",
        params.clone(),
    );
    emit(
        "upgrade.restarted_calls",
        sum(|r| r.touched.ok + r.touched.failed + r.touched.lost),
        "calls",
        params.clone(),
    );
    emit(
        "upgrade.restarted_failed",
        sum(|r| r.touched.failed + r.touched.lost),
        "calls",
        params,
    );
    Ok(())
}

/// The demo as shipped (paths made absolute, built into `work/v1`) and the
/// demo with ten changes (`work/v2/prod.toml`, built by the command).
fn versions(manifest: &Path, work: &Path, counter: &Path) -> Result<(PathBuf, PathBuf)> {
    let demo = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .with_context(|| format!("cannot find {}", manifest.display()))?;
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let mut v1: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", manifest.display()))?;
    absolutize(&mut v1, &demo);
    for dir in ["v1", "v2", "policies-v2"] {
        std::fs::create_dir_all(work.join(dir))?;
    }
    let v1_file = work.join("v1/prod.toml");
    std::fs::write(&v1_file, toml::to_string(&v1)?)?;
    let m = plasmoid_release::load_manifest(&v1_file)?;
    let built = crate::release::build(&m, None)?;
    let ledger = built.dir.join("components/ledger.wasm");
    let ledger_v2 = work.join("ledger-v2.wasm");
    std::fs::write(&ledger_v2, with_custom_section(&std::fs::read(&ledger)?))?;
    let v2 = ten_changes(v1, &demo, work, counter, &ledger_v2)?;
    let v2_file = work.join("v2/prod.toml");
    std::fs::write(&v2_file, toml::to_string(&v2)?)?;
    Ok((built.dir, v2_file))
}

/// One run's figures.
struct Run {
    command_ms: f64,
    apply_ms: f64,
    untouched: Tally,
    touched: Tally,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    lost: u64,
}

/// Boot the demo, upgrade it with the command while the clients call,
/// check the tree converged.
async fn once(v1: PathBuf, v2: PathBuf, data: PathBuf) -> Result<Run> {
    let local = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let http = local(free_port()?);
    let opts = plasmoid_release::RunOptions {
        swap: None,
        http: Some(http),
        observer: Some(local(0)),
        data: Some(data),
        ..Default::default()
    };
    let node = plasmoid_release::ReleaseNode::start(&v1, opts).await?;
    let root = node
        .up()
        .await
        .ok_or_else(|| anyhow!("the demo did not start"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let untouched = Counts::default();
    let touched = Counts::default();
    let clients = [
        tokio::spawn(client(http, false, stop.clone(), untouched.clone())),
        tokio::spawn(client(http, true, stop.clone(), touched.clone())),
    ];
    untouched.wait_ok(5).await?;
    touched.wait_ok(5).await?;
    let exe = std::env::current_exe().context("cannot find the plasmoid binary")?;
    let started = Instant::now();
    let (from, to) = (v1.clone(), v2.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["release", "upgrade", "--probation", "0", "--release"])
            .arg(&from)
            .arg(&to)
            .output()
    })
    .await??;
    let command_ms = started.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        bail!(
            "the upgrade failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    converged(node.node(), &root).await?;
    // Calls just after count too: a change that broke a part shows there.
    let after = untouched.ok.load(Ordering::Relaxed);
    untouched.wait_ok(after + 5).await?;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await??;
    }
    let new = v2
        .parent()
        .map(|p| p.join("target/plasmoid/shop-1.1.0"))
        .ok_or_else(|| anyhow!("no folder for the new version"))?;
    let (_, lock) = plasmoid_release::open_release(&new)?;
    let rec = lock
        .upgrades
        .last()
        .ok_or_else(|| anyhow!("the upgrade is not recorded in {}", new.display()))?;
    if rec.steps.len() != STEPS {
        bail!("the plan had {} steps, not {STEPS}", rec.steps.len());
    }
    let apply_ms = rec.ms as f64;
    node.stop();
    node.wait().await?;
    Ok(Run {
        command_ms,
        apply_ms,
        untouched: untouched.tally(),
        touched: touched.tally(),
    })
}

/// The new tree: the counter and gateway-ap up, the notifier gone, the
/// root's children in their new order.
async fn converged(node: &plasmoid_runtime::Node, root: &SupervisorRef) -> Result<()> {
    let top: Vec<String> = root
        .which_children()
        .await
        .map_err(|e| anyhow!("the root supervisor did not answer: {e}"))?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let running = |c: &str| node.particles_of(c).len();
    let seen = (running("counter"), running("gateway"), running("notifier"));
    if top != ["audit", "core", "edge", "counter"] || seen != (1, 3, 0) {
        bail!(
            "not converged: root children {top:?}, (counter, gateway, notifier) particles {seen:?}"
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A client's answers, shared with the bench.
#[derive(Clone, Default)]
struct Counts {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
}

impl Counts {
    async fn wait_ok(&self, n: u64) -> Result<()> {
        let ok = self.ok.clone();
        super::common::wait_until(
            move || ok.load(Ordering::Relaxed) >= n,
            Duration::from_secs(30),
            "the demo to answer HTTP",
        )
        .await
    }

    fn tally(&self) -> Tally {
        Tally {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// Calls one route over a keep-alive connection until `stop` (a new
/// connection after one closes). An answer of 5xx failed; a 4xx is the
/// shop's answer; no answer is lost. The orders are for more than anyone
/// has: the ledger rejects them, so they reach it without setting off the
/// demo's notifier, which crashes on every 30th settled order on purpose
/// (at 500 orders/s its supervisor would give up).
async fn client(
    addr: SocketAddr,
    orders: bool,
    stop: Arc<AtomicBool>,
    counts: Counts,
) -> Result<()> {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
            counts.lost.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            counts.lost.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let req = if orders {
                let (from, to) = if n.is_multiple_of(2) {
                    ("alice", "bob")
                } else {
                    ("bob", "alice")
                };
                let body = format!("{{\"from\":\"{from}\",\"to\":\"{to}\",\"amount\":1000000000}}");
                hyper::Request::post("/orders").body(Full::new(Bytes::from(body)))?
            } else {
                hyper::Request::get("/balances").body(Full::new(Bytes::new()))?
            };
            let (parts, body) = req.into_parts();
            let mut req = hyper::Request::from_parts(parts, body);
            req.headers_mut()
                .insert("host", hyper::header::HeaderValue::from_static("127.0.0.1"));
            if send.ready().await.is_err() {
                counts.lost.fetch_add(1, Ordering::Relaxed);
                break;
            }
            let answer = tokio::time::timeout(ANSWER, async {
                let resp = send.send_request(req).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                if status.is_server_error() {
                    tracing::warn!(%status, "{}", String::from_utf8_lossy(&body));
                }
                Ok::<_, hyper::Error>(status)
            })
            .await;
            match answer {
                Ok(Ok(status)) if status.is_server_error() => {
                    counts.failed.fetch_add(1, Ordering::Relaxed)
                }
                Ok(Ok(_)) => counts.ok.fetch_add(1, Ordering::Relaxed),
                _ => {
                    counts.lost.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
            // A steady stream, a call every 2 ms per client.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok(())
}
