//! `plasmoid bench boot`: from a built release folder to every child up.
//!
//! Each run does what `release run` does after its build step: verify the
//! lock, start a node, load the precompiled components and start the tree.
//! "Up" is when the root supervisor's start returns, which is after every
//! child (recursively) has reached its first `recv`.

use super::common::median;
use anyhow::{Result, anyhow, bail};
use plasmoid_runtime::{ExitReason, Msg};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

pub fn run(
    manifest: &Path,
    runs: usize,
    threads: Option<usize>,
    emit: impl Fn(&str, f64, &str, Value),
) -> Result<()> {
    let dir = crate::release::release_dir(manifest, None)?;
    let rt = crate::start::scheduler(threads)?;
    let mut total = Vec::new();
    let mut load = Vec::new();
    let mut tree = Vec::new();
    let mut children = 0;
    for _ in 0..runs {
        let (t, l, c, n) = rt.block_on(async { tokio::spawn(once(dir.clone())).await })??;
        total.push(t);
        load.push(l);
        tree.push(c);
        children = n;
    }
    let params = json!({"release": dir.display().to_string(), "workers": children, "runs": runs});
    emit("boot.time", median(total), "ms", params.clone());
    emit("boot.verify_and_load", median(load), "ms", params.clone());
    emit("boot.tree", median(tree), "ms", params);
    Ok(())
}

/// One boot: (total, verify + node + components, tree start) in ms, and the
/// number of workers started.
async fn once(dir: std::path::PathBuf) -> Result<(f64, f64, f64, usize)> {
    let start = Instant::now();
    let (m, lock) = plasmoid_release::open_release(&dir)?;
    let booted = plasmoid_release::boot(&dir, &m, &lock)?;
    let loaded = start.elapsed();
    let cli = booted.node.native("bench");
    cli.trap_exit(true);
    let root = plasmoid_supervisor::start_link(booted.node.clone(), booted.spec, Some(cli.pid()))
        .await
        .map_err(|e| anyhow!("the release did not start: {e}"))?;
    let up = start.elapsed();
    let workers = m.root.workers().len();
    // Stop it the orderly way and wait, so runs do not overlap.
    let _ = cli.send_exit(root.pid(), ExitReason::Shutdown(String::new()));
    loop {
        match cli.recv(Some(Duration::from_secs(30))).await {
            Ok(Some(Msg::Exit { sender, .. })) if sender == root.pid() => break,
            Ok(Some(_)) => {}
            Ok(None) => bail!("the release did not stop within 30 s"),
            Err(reason) => bail!("the node stopped: {reason}"),
        }
    }
    booted.node.shutdown(Duration::from_secs(5)).await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok((ms(up), ms(loaded), ms(up - loaded), workers))
}
