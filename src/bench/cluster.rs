//! `plasmoid bench cluster`: membership, global names and process groups
//! on a cluster of real iroh endpoints on 127.0.0.1, all in this process.
//!
//! Figures: a join through one seed until every member is connected to the
//! newcomer; a clean leave until every member has let it go; a global
//! registration (its home on another node) and a global lookup; and a `pg`
//! broadcast to 1,000 members on 3 nodes until every member has it. A
//! killed node's detection (the heartbeat timeout, kill -9 of a real
//! process) is `bench nodedown`'s figure. `--idle 10,100` adds the bytes
//! each node sends per second in an idle cluster of each size (100
//! members in one process: the simulation the issue asks for, on real
//! endpoints).

use super::common::{emit, median};
use anyhow::{Result, anyhow, bail};
use plasmoid_mesh::{ClusterConfig, ClusterKey, Mesh, MeshConfig};
use plasmoid_runtime::{Msg, NativeProcess, Node, NodeConfig};
use serde_json::json;
use std::time::{Duration, Instant};

async fn member(key: &ClusterKey, name: &str) -> Result<Mesh> {
    let secret = plasmoid_mesh::SecretKey::generate();
    let node = Node::new(NodeConfig {
        node_id: Some(plasmoid_mesh::node_id(&secret)),
        max_particles: 8,
        ..NodeConfig::default()
    })?;
    let mut cfg = MeshConfig::new(([127, 0, 0, 1], 0).into(), Vec::new());
    cfg.cluster = Some(ClusterConfig::new(key.clone(), name));
    Ok(Mesh::start(node, secret, cfg).await?)
}

async fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !ok() {
        if Instant::now() > deadline {
            bail!("{what}: not within {} s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    Ok(())
}

/// Every member knows all the others.
fn full(c: &[Mesh]) -> bool {
    c.iter().all(|m| m.members().len() == c.len() - 1)
}

/// `size` members named `{prefix}{i}`, all joined through the first (the
/// seed), once every member knows every other: the members, the seed's id
/// and address.
async fn form(
    key: &ClusterKey,
    size: usize,
    prefix: &str,
    within: Duration,
) -> Result<(Vec<Mesh>, plasmoid_runtime::NodeId, std::net::SocketAddr)> {
    let mut cluster = Vec::new();
    for i in 0..size {
        cluster.push(member(key, &format!("{prefix}{i}")).await?);
    }
    let seed_id = cluster[0].node().id();
    let seed = cluster[0]
        .local_addr()
        .ok_or_else(|| anyhow!("no address"))?;
    for m in &cluster[1..] {
        m.add_peer(seed_id, seed);
    }
    until("the cluster forms", within, || full(&cluster)).await?;
    Ok((cluster, seed_id, seed))
}

pub async fn run(nodes: usize, members: usize, runs: usize) -> Result<()> {
    let nodes = nodes.max(5);
    let key = ClusterKey::from_bytes(rand_key());
    let (cluster, seed_id, seed) = form(&key, nodes - 1, "n", Duration::from_secs(30)).await?;

    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for r in 0..runs {
        let newcomer = member(&key, &format!("j{r}")).await?;
        let id = newcomer.node().id();
        let t = Instant::now();
        newcomer.add_peer(seed_id, seed);
        until("a join is seen by all", Duration::from_secs(30), || {
            newcomer.members().len() == cluster.len() && cluster.iter().all(|m| m.connected(id))
        })
        .await?;
        joins.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        newcomer.close().await;
        until("a leave is seen by all", Duration::from_secs(30), || {
            cluster.iter().all(|m| !m.connected(id))
        })
        .await?;
        leaves.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let params = json!({"nodes": nodes, "runs": runs, "announce_ms": 1000});
    emit(
        "cluster.join_seen_by_all",
        median(joins),
        "ms",
        params.clone(),
    );
    emit(
        "cluster.leave_seen_by_all",
        median(leaves),
        "ms",
        params.clone(),
    );

    // Global names: registrations whose home is another node.
    let here = cluster[1].node().clone();
    let owner = here.native("owner");
    let (mut regs, mut looks) = (Vec::new(), Vec::new());
    for i in 0..runs * 200 {
        let name = format!("bench-{i}");
        let t = Instant::now();
        here.register_global(&name, owner.pid())
            .await
            .map_err(|e| anyhow!("register {name}: {e:?}"))?;
        regs.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let found = here.whereis_global(&name);
        looks.push(t.elapsed().as_secs_f64() * 1e9);
        if found != Some(owner.pid()) {
            bail!("global lookup of {name} found {found:?}");
        }
    }
    let gp = json!({"nodes": nodes, "names": regs.len()});
    emit("cluster.global_register", median(regs), "us", gp.clone());
    emit("cluster.global_lookup", median(looks), "ns", gp);

    // pg: `members` members spread over 3 nodes, a broadcast from a 4th.
    let mut natives: Vec<NativeProcess> = Vec::new();
    for i in 0..members {
        let n = cluster[i % 3].node();
        let p = n.native("member");
        n.join_group("bench", p.pid())
            .map_err(|e| anyhow!("join: {e}"))?;
        natives.push(p);
    }
    let from = cluster[3].node().clone();
    until(
        "the group reaches every node",
        Duration::from_secs(30),
        || from.group_members("bench").len() == members,
    )
    .await?;
    let sender = from.native("sender");
    let mut casts = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for p in from.group_members("bench") {
            sender.send(p, b"hi".to_vec())?;
        }
        for n in &natives {
            match n.recv(Some(Duration::from_secs(30))).await {
                Ok(Some(Msg::Data(_))) => {}
                other => bail!("a member got {other:?} instead of the broadcast"),
            }
        }
        casts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let bp = json!({"members": members, "member_nodes": 3, "runs": runs});
    emit("cluster.pg_broadcast", median(casts), "ms", bp);
    for m in cluster {
        m.close().await;
    }
    Ok(())
}

/// Mesh bytes (UDP, both QUIC and what rides on it: heartbeats, gossip
/// announcements, keep-alives) each node sends per second while nothing
/// happens, for a cluster of `size` members formed through one seed.
pub async fn idle(size: usize, window: Duration) -> Result<()> {
    let key = ClusterKey::from_bytes(rand_key());
    let formed = Instant::now();
    let (cluster, _, _) = form(&key, size, "i", Duration::from_secs(300)).await?;
    let formed = formed.elapsed();
    // Let the joins' own traffic (syncs, first announcements) pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = |c: &[Mesh]| -> u64 {
        c.iter()
            .flat_map(|m| m.node().peer_stats())
            .map(|p| p.bytes_sent)
            .sum()
    };
    let before = sent(&cluster);
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let after = sent(&cluster);
    let secs = t.elapsed().as_secs_f64();
    let connected = full(&cluster);
    let per_node = after.saturating_sub(before) as f64 / size as f64 / secs;
    emit(
        "cluster.idle_bytes_per_node",
        per_node,
        "B/s",
        json!({"nodes": size, "window_s": window.as_secs(), "formed_ms": formed.as_millis() as u64,
               "still_full": connected, "in_one_process": true}),
    );
    for m in cluster {
        m.close().await;
    }
    Ok(())
}

fn rand_key() -> [u8; 32] {
    plasmoid_mesh::SecretKey::generate().to_bytes()
}
