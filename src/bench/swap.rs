//! `plasmoid bench swap`: time from a new `.wasm` landing in a running
//! release to the new version answering, and messages lost across swaps
//! while a sender keeps casting to the swapped particle.

use anyhow::{Context, Result, anyhow, bail};
use plasmoid_runtime::{NativeProcess, Pid};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const GET: u8 = 0;
const VERSION: u8 = 3;
const INCREMENT_CAST: u8 = 0;

/// Builds `apps/<dir>` of this checkout and returns its component `artifact`.
fn app(dir: &str, artifact: &str) -> Result<PathBuf> {
    let path = PathBuf::from("apps").join(dir);
    if !path.join("Cargo.toml").is_file() {
        bail!("apps/{dir} not found here: run `plasmoid bench swap` from the plasmoid checkout");
    }
    let built = plasmoid_release::build_guest(&path)?;
    built
        .get(artifact)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("building apps/{dir} produced no {artifact}.wasm"))
}

pub fn run(
    swaps: usize,
    threads: Option<usize>,
    emit: impl Fn(&str, f64, &str, Value),
) -> Result<()> {
    let v1 = std::fs::read(app("counter", "counter")?)?;
    let v2 = std::fs::read(app("counter-v2", "counter_v2")?)?;
    let work = std::env::temp_dir().join(format!("plasmoid-bench-swap-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("v1.wasm"), &v1)?;
    let manifest = work.join("prod.toml");
    std::fs::write(
        &manifest,
        "[release]\nname = \"swap\"\nversion = \"1\"\n[node]\nmax_particles = 64\n\
         [components.counter]\nwasm = \"v1.wasm\"\n\
         [supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"counter\"]\n",
    )?;
    let m = plasmoid_release::load_manifest(&manifest)?;
    let built = plasmoid_release::build(&m, &Default::default(), &mut |_| {})?;
    let rt = crate::start::scheduler(threads)?;
    let result =
        rt.block_on(async { tokio::spawn(measure(built.dir.clone(), swaps, v1, v2)).await });
    let _ = std::fs::remove_dir_all(&work);
    let (times, sent, counted) = result.context("the benchmark task failed")??;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let params = json!({"swaps": times.len(), "mode": "handoff", "settle_ms": 50});
    emit("swap.time", sorted[sorted.len() / 2], "ms", params.clone());
    emit(
        "swap.time_max",
        sorted[sorted.len() - 1],
        "ms",
        params.clone(),
    );
    emit("swap.messages_sent", sent as f64, "msgs", params.clone());
    emit(
        "swap.messages_lost",
        sent.saturating_sub(counted) as f64,
        "msgs",
        params,
    );
    Ok(())
}

async fn measure(
    dir: PathBuf,
    swaps: usize,
    v1: Vec<u8>,
    v2: Vec<u8>,
) -> Result<(Vec<f64>, u64, u64)> {
    let (m, lock) = plasmoid_release::open_release(&dir)?;
    let booted = plasmoid_release::boot(&dir, &m, &lock)?;
    let me = booted.node.native("bench");
    me.trap_exit(true);
    plasmoid_supervisor::start_link(booted.node.clone(), booted.spec, Some(me.pid()))
        .await
        .map_err(|e| anyhow!("the release did not start: {e}"))?;
    let _swapper = plasmoid_release::watch(booted.node.clone(), &dir, m, Default::default())?;
    let counter = booted
        .node
        .particles_of("counter")
        .first()
        .map(|p| p.pid)
        .ok_or_else(|| anyhow!("no counter running"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let sender = booted.node.native("load");
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if sender.send(counter, vec![INCREMENT_CAST]).is_ok() {
                    sent += 1;
                }
                // A steady stream, not a flood that only measures the mailbox bound.
                if sent.is_multiple_of(16) {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            sent
        })
    };
    let live = dir.join("components/counter.wasm");
    let mut times = Vec::new();
    for i in 0..swaps {
        let (bytes, want) = if i % 2 == 0 { (&v2, 2) } else { (&v1, 1) };
        let part = live.with_extension("wasm.part");
        std::fs::write(&part, bytes)?;
        let landed = Instant::now();
        std::fs::rename(&part, &live)?;
        wait_version(&me, counter, want).await?;
        times.push(landed.elapsed().as_secs_f64() * 1e3);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = load.await?;
    let counted = ask(&me, counter, GET).await?;
    Ok((times, sent, counted))
}

async fn ask(me: &NativeProcess, pid: Pid, request: u8) -> Result<u64> {
    let reply = me
        .call(pid, vec![request], Duration::from_secs(10))
        .await
        .map_err(|e| anyhow!("the counter did not answer: {e}"))?;
    let mut v = 0u64;
    for (i, b) in reply.iter().enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok(v)
}

async fn wait_version(me: &NativeProcess, pid: Pid, want: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ask(me, pid, VERSION).await? == want {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("version {want} did not answer within 30 s")
}
