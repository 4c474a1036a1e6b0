//! `plasmoid bench mesh`: two nodes in two processes, over real iroh
//! endpoints on 127.0.0.1. This process is node a; it starts node b as
//! `plasmoid bench mesh-peer` (a hidden command), which registers a native
//! server as `bench-server`. Figures: request/reply round trip between
//! native processes, and one-way throughput of 64-byte messages (timed
//! until a final call returns, which the ordered stream puts after them).

use anyhow::{Context, Result, anyhow, bail};
use plasmoid_mesh::{ControlAddr, Mesh, MeshConfig};
use plasmoid_runtime::{Msg, Node, NodeConfig, NodeId};
use serde_json::{Value, json};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn node(key: &iroh::SecretKey, peer: NodeId) -> Result<Mesh> {
    let node = Node::new(NodeConfig {
        max_particles: 16,
        node_id: Some(plasmoid_mesh::node_id(key)),
        ..NodeConfig::default()
    })?;
    let cfg = MeshConfig::new("127.0.0.1:0".parse()?, vec![peer]);
    Ok(Mesh::start(node, key.clone(), cfg).await?)
}

/// Node b of `bench mesh`: answers calls with the number of data messages
/// counted so far. Prints its `ID@ADDR` on stdout, then runs until killed.
pub fn peer(key_dir: PathBuf, peer: ControlAddr, threads: Option<usize>) -> Result<()> {
    // Node a holds our stdin: when it ends, however it ends, so do we.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let rt = crate::start::scheduler(threads)?;
    rt.block_on(async move {
        let key = plasmoid_mesh::load_or_create_key(&key_dir)?;
        let mesh = node(&key, peer.id).await?;
        mesh.add_peer(peer.id, peer.addr);
        let server = mesh.node().native("server");
        server
            .register("bench-server")
            .map_err(|e| anyhow!("cannot register: {e}"))?;
        let addr = mesh.local_addr().ok_or_else(|| anyhow!("no address"))?;
        println!("{}@{addr}", mesh.node().id().to_hex());
        let mut counted = 0u64;
        while let Ok(Some(m)) = server.recv(None).await {
            match m {
                Msg::Tagged {
                    sender, reference, ..
                } => {
                    let _ = server.send_tagged(sender, reference, counted.to_le_bytes().to_vec());
                }
                Msg::Data(_) => counted += 1,
                _ => {}
            }
        }
        Ok(())
    })
}

pub fn run(
    rounds: usize,
    messages: u64,
    threads: Option<usize>,
    emit: impl Fn(&str, f64, &str, Value),
) -> Result<()> {
    let rt = crate::start::scheduler(threads)?;
    // Node b gets as many scheduler threads as this node.
    let peer_threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (rtt, per_sec, lost) =
        rt.block_on(async { tokio::spawn(measure(rounds, messages, peer_threads)).await })??;
    let mut sorted = rtt;
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
    let params = json!({"transport": "iroh", "address": "127.0.0.1", "processes": 2, "rounds": sorted.len()});
    emit("mesh.round_trip.p50", pct(0.5), "us", params.clone());
    emit("mesh.round_trip.p99", pct(0.99), "us", params);
    let params = json!({"transport": "iroh", "processes": 2, "bytes": 64, "messages": messages});
    emit("mesh.one_way", per_sec, "msgs/s", params.clone());
    emit("mesh.one_way.lost", lost as f64, "msgs", params);
    Ok(())
}

/// Kills node b when the bench ends, however it ends.
struct PeerProcess(std::process::Child);

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn measure(rounds: usize, messages: u64, threads: usize) -> Result<(Vec<f64>, f64, u64)> {
    let work = tempdir()?;
    let ka = iroh::SecretKey::generate();
    let kb = plasmoid_mesh::load_or_create_key(&work)?;
    let b_id = plasmoid_mesh::node_id(&kb);
    let a = node(&ka, b_id).await?;
    let a_addr = ControlAddr {
        id: a.node().id(),
        addr: a.local_addr().ok_or_else(|| anyhow!("no local address"))?,
    };
    let exe = std::env::current_exe().context("cannot find the plasmoid binary")?;
    let mut child = Command::new(exe)
        .args([
            "bench",
            "mesh-peer",
            "--threads",
            &threads.to_string(),
            "--key-dir",
        ])
        .arg(&work)
        .args(["--peer", &a_addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start node b")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let _b = PeerProcess(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await??;
    let b_at: ControlAddr = line.parse().map_err(|e: String| anyhow!("node b: {e}"))?;
    let b_addr: SocketAddr = b_at.addr;
    a.add_peer(b_id, b_addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.connected(b_id) {
        if Instant::now() > deadline {
            bail!("the two nodes did not connect within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = a
        .node()
        .whereis_on(b_id, "bench-server", Duration::from_secs(5))
        .await
        .map_err(|e| anyhow!("lookup of bench-server@b: {e}"))?
        .ok_or_else(|| anyhow!("node b has no bench-server"))?;
    let client = a.node().native("client");
    let mut rtt = Vec::with_capacity(rounds);
    for i in 0..rounds + 100 {
        let t = Instant::now();
        client
            .call(server, vec![0u8; 64], Duration::from_secs(5))
            .await
            .map_err(|e| anyhow!("call over the mesh failed: {e}"))?;
        if i >= 100 {
            rtt.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let started = Instant::now();
    for _ in 0..messages {
        // The per-peer queue is bounded: when it is full, wait for the
        // writer to drain it (backpressure), as a real sender would.
        loop {
            match client.send(server, vec![7u8; 64]) {
                Ok(()) => break,
                Err(plasmoid_runtime::SendError::MailboxFull) => tokio::task::yield_now().await,
                Err(e) => return Err(anyhow!("send failed: {e}")),
            }
        }
    }
    let count = client
        .call(server, Vec::new(), Duration::from_secs(120))
        .await
        .map_err(|e| anyhow!("the final call failed: {e}"))?;
    let per_sec = messages as f64 / started.elapsed().as_secs_f64();
    let counted = u64::from_le_bytes(count.try_into().unwrap_or([0; 8]));
    a.close().await;
    let _ = std::fs::remove_dir_all(&work);
    Ok((rtt, per_sec, messages.saturating_sub(counted)))
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("plasmoid-bench-mesh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
