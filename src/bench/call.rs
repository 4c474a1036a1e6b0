//! `bench call`: what one host call costs on each engine, and a gen_server
//! round trip to a Rust, Python or JavaScript particle.
//!
//! The send-to-self pair runs in the ring particle twice in one process: on
//! the lean engine (component-model async off) and on the engine that async
//! components get, so the ratio is what that engine costs every host call.
//! The round trip is the node's native process calling a particle's
//! gen_server with an 8-byte postcard `Vec<u8>`, which apps/echo and the
//! `"echo"` role of apps/py/pyapp and apps/js/jsapp all answer.

use super::common::{emit, median};
use super::report;
use anyhow::{Context, Result, anyhow};
use plasmoid_runtime::{Node, NodeConfig, SpawnOpts};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn node(wasm: &Path, name: &str, all_on_async_engine: bool) -> Result<Node> {
    let node = Node::new(NodeConfig {
        max_particles: 16,
        all_on_async_engine,
        ..NodeConfig::default()
    })?;
    node.load_component(name, wasm, None)?;
    Ok(node)
}

/// ns per send-to-self + recv, each engine in turn within every run.
pub async fn send_recv(ring: &Path, iters: u64, runs: usize) -> Result<()> {
    let lean = node(ring, "ring", false)?;
    let asynch = node(ring, "ring", true)?;
    let (mut on_lean, mut on_async) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (node, out) in [(&lean, &mut on_lean), (&asynch, &mut on_async)] {
            let me = node.native("bench");
            let init = json!({"self_call": {"iters": iters, "report_to": me.pid().to_string()}});
            let r = report(&me, init).await?;
            let ns = r["elapsed_ns"]
                .as_f64()
                .context("report without elapsed_ns")?;
            out.push(ns / iters as f64);
        }
    }
    let params = json!({"iters": iters, "runs": runs});
    let (lean_ns, async_ns) = (median(on_lean), median(on_async));
    emit("call.send_recv", lean_ns, "ns", params.clone());
    emit(
        "call.send_recv_async_engine",
        async_ns,
        "ns",
        params.clone(),
    );
    emit(
        "call.async_engine_cost",
        async_ns / lean_ns,
        "ratio",
        params,
    );
    Ok(())
}

/// µs per gen_server call from the node to a particle of `server`.
pub async fn round_trip(server: &Path, init: &str, calls: u32, runs: usize) -> Result<()> {
    let node = node(server, "server", false)?;
    let me = node.native("bench");
    let pid = node
        .spawn("server", init, SpawnOpts::default())
        .map_err(|e| anyhow!("cannot spawn the server: {e}"))?;
    // postcard Vec<u8> of 8 bytes.
    let request: Vec<u8> = std::iter::once(8).chain(0..8).collect();
    let ask = |timeout| me.call(pid, request.clone(), timeout);
    // The first answer waits for the particle's start (a Python one takes
    // milliseconds); then every answer must come back the same.
    let first = ask(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow!("the server did not answer: {e:?}"))?;
    anyhow::ensure!(
        first == request,
        "the server answered {first:?}, not the request back"
    );
    let mut per_call = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..calls {
            ask(Duration::from_secs(5))
                .await
                .map_err(|e| anyhow!("a call failed: {e:?}"))?;
        }
        per_call.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(calls));
    }
    let params = json!({"calls": calls, "runs": runs, "server": server.file_name().map(|f| f.to_string_lossy().to_string())});
    emit("call.round_trip", median(per_call), "us", params);
    Ok(())
}
