//! `plasmoid bench mesh`: two nodes over real iroh endpoints on 127.0.0.1
//! (in this process, each with its own key and endpoint): request/reply
//! round trip between native processes, and one-way throughput of 64-byte
//! messages.

use anyhow::{Result, anyhow};
use plasmoid_mesh::{Mesh, MeshConfig};
use plasmoid_runtime::{Msg, Node, NodeConfig};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn node(key: &iroh::SecretKey, peer: &iroh::SecretKey) -> Result<Mesh> {
    let node = Node::new(NodeConfig {
        max_particles: 16,
        node_id: Some(plasmoid_mesh::node_id(key)),
        ..NodeConfig::default()
    })?;
    let cfg = MeshConfig::new("127.0.0.1:0".parse()?, vec![plasmoid_mesh::node_id(peer)]);
    Ok(Mesh::start(node, key.clone(), cfg).await?)
}

pub fn run(
    rounds: usize,
    messages: u64,
    threads: Option<usize>,
    emit: impl Fn(&str, f64, &str, Value),
) -> Result<()> {
    let rt = crate::start::scheduler(threads)?;
    let (rtt, per_sec) = rt.block_on(async { tokio::spawn(measure(rounds, messages)).await })??;
    let mut sorted = rtt;
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
    let params = json!({"transport": "iroh", "address": "127.0.0.1", "rounds": sorted.len()});
    emit("mesh.round_trip.p50", pct(0.5), "us", params.clone());
    emit("mesh.round_trip.p99", pct(0.99), "us", params);
    emit(
        "mesh.one_way",
        per_sec,
        "msgs/s",
        json!({"transport": "iroh", "bytes": 64, "messages": messages}),
    );
    Ok(())
}

async fn measure(rounds: usize, messages: u64) -> Result<(Vec<f64>, f64)> {
    let (ka, kb) = (iroh::SecretKey::generate(), iroh::SecretKey::generate());
    let (a, b) = (node(&ka, &kb).await?, node(&kb, &ka).await?);
    let (ia, ib) = (a.node().id(), b.node().id());
    let addr = |m: &Mesh| m.local_addr().ok_or_else(|| anyhow!("no local address"));
    a.add_peer(ib, addr(&b)?);
    b.add_peer(ia, addr(&a)?);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.connected(ib) && b.connected(ia)) {
        if Instant::now() > deadline {
            return Err(anyhow!("the two nodes did not connect within 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // B answers every call and counts plain messages.
    let server = b.node().native("server");
    let server_pid = server.pid();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut counted = 0u64;
        let mut done = Some(done_tx);
        while let Ok(Some(m)) = server.recv(None).await {
            match m {
                Msg::Tagged {
                    sender,
                    reference,
                    payload,
                } => {
                    let _ = server.send_tagged(sender, reference, payload);
                }
                Msg::Data(_) => {
                    counted += 1;
                    if counted == messages
                        && let Some(tx) = done.take()
                    {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
    });
    let client = a.node().native("client");
    let mut rtt = Vec::with_capacity(rounds);
    for i in 0..rounds + 100 {
        let t = Instant::now();
        client
            .call(server_pid, vec![0u8; 64], Duration::from_secs(5))
            .await
            .map_err(|e| anyhow!("call over the mesh failed: {e:?}"))?;
        if i >= 100 {
            rtt.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let started = Instant::now();
    for _ in 0..messages {
        client
            .send(server_pid, vec![7u8; 64])
            .map_err(|e| anyhow!("send failed: {e:?}"))?;
    }
    tokio::time::timeout(Duration::from_secs(120), done_rx)
        .await
        .map_err(|_| anyhow!("not every message arrived within 120 s"))??;
    let per_sec = messages as f64 / started.elapsed().as_secs_f64();
    a.close().await;
    b.close().await;
    Ok((rtt, per_sec))
}
