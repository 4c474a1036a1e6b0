//! `plasmoid bench restart`: how fast a supervisor brings crashed children
//! back, measured from the kill to every restarted child answering a call.

use super::common::pct;
use anyhow::{Context, Result, anyhow, bail};
use plasmoid_runtime::{ExitReason, NativeProcess, Node, Pid};
use plasmoid_supervisor::{ChildSpec, Strategy, SupervisorRef, SupervisorSpec, start_link};
use serde_json::json;
use std::time::{Duration, Instant};

/// A postcard-encoded `Vec<u8>` request for the echo gen_server.
const PING: [u8; 3] = [2, b'h', b'i'];

pub async fn run(
    node: &Node,
    restarts: usize,
    emit: impl Fn(&str, f64, &str, serde_json::Value),
) -> Result<()> {
    let me = node.native("bench");
    let one = time_restarts(node, &me, Strategy::OneForOne, 1, restarts).await?;
    let params = json!({"strategy": "one-for-one", "children": 1, "restarts": one.len()});
    emit(
        "restart.one_for_one.p50",
        pct(&one, 50.0),
        "us",
        params.clone(),
    );
    emit("restart.one_for_one.p99", pct(&one, 99.0), "us", params);
    let rounds = (restarts / 10).max(1);
    let rest = time_restarts(node, &me, Strategy::RestForOne, 10, rounds).await?;
    let params = json!({"strategy": "rest-for-one", "children": 10, "restarts": rest.len()});
    emit(
        "restart.rest_for_one.p50",
        pct(&rest, 50.0),
        "us",
        params.clone(),
    );
    emit("restart.rest_for_one.p99", pct(&rest, 99.0), "us", params);
    Ok(())
}

async fn time_restarts(
    node: &Node,
    me: &NativeProcess,
    strategy: Strategy,
    children: usize,
    rounds: usize,
) -> Result<Vec<f64>> {
    let mut spec = SupervisorSpec::new(strategy).intensity(u32::MAX, Duration::from_secs(1));
    for i in 0..children {
        spec = spec.child(ChildSpec::worker(&format!("echo{i}"), "echo", "null"));
    }
    let sup = start_link(node.clone(), spec, None)
        .await
        .map_err(|e| anyhow!("the benchmark supervisor did not start: {e}"))?;
    let mut samples = Vec::with_capacity(rounds);
    let mut pids = current(&sup).await?;
    for _ in 0..rounds {
        let start = Instant::now();
        let first = *pids.first().context("the supervisor has no child")?;
        me.send_exit(first, ExitReason::Kill)
            .map_err(|e| anyhow!("cannot kill the child: {e}"))?;
        let fresh = loop {
            // Every child running again, each under a new pid (the table
            // shows a child being restarted without a pid).
            let now = current(&sup).await?;
            if now.len() == pids.len() && now.iter().zip(&pids).all(|(a, b)| a != b) {
                break now;
            }
            tokio::task::yield_now().await;
        };
        for pid in &fresh {
            let reply = me
                .call(*pid, PING.to_vec(), Duration::from_secs(5))
                .await
                .map_err(|e| anyhow!("restarted child did not answer: {e}"))?;
            if reply != PING {
                bail!("echo answered {reply:?}");
            }
        }
        samples.push(start.elapsed().as_secs_f64() * 1e6);
        pids = fresh;
    }
    let _ = me.send_exit(sup.pid(), ExitReason::Kill);
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok(samples)
}

async fn current(sup: &SupervisorRef) -> Result<Vec<Pid>> {
    let rows = sup
        .which_children()
        .await
        .context("the supervisor stopped")?;
    Ok(rows
        .into_iter()
        .map(|c| c.pid)
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default())
}
