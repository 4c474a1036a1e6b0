//! `plasmoid bench cluster --simulate 10,100`: the cluster's layers at
//! sizes one machine cannot run as real endpoints (plasmoid_mesh::sim).
//!
//! Membership (gossip): iroh-gossip's protocol and the signed
//! announcements in virtual time, 1 ms one-way links, 1 s announcements:
//! the cluster formed through one seed, a join and a clean leave seen by
//! every member, and the gossip bytes each member sends per second when
//! idle. Registry: that many real runtime nodes joined in memory, ops as
//! mesh frames: a global registration whose home is another node, a
//! lookup, a `pg` join seen by every node, and a dead node's names and
//! members dropped everywhere (after the transport noticed it: the 600 ms
//! heartbeat timeout comes on top).

use super::common::{emit, median};
use anyhow::{Result, anyhow, bail};
use plasmoid_mesh::sim::{GossipSim, SimNet};
use plasmoid_runtime::{Node, NodeConfig};
use serde_json::json;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(1);
const ANNOUNCE: Duration = Duration::from_secs(1);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The membership layer of `size` members.
pub fn gossip(size: usize, runs: usize) -> Result<()> {
    let wall = Instant::now();
    let mut sim = GossipSim::new(LATENCY, ANNOUNCE);
    let seed = sim.join(&[]);
    for _ in 1..size {
        sim.join(&[seed]);
    }
    let formed = sim
        .run_until(Duration::from_secs(120), GossipSim::full)
        .ok_or_else(|| anyhow!("{size} simulated members did not form within 120 s"))?;
    sim.run_for(ANNOUNCE * 3);
    let params = json!({"nodes": size, "latency_ms": 1, "announce_ms": 1000, "virtual_time": true});
    emit("cluster.sim.formed", ms(formed), "ms", params.clone());

    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for r in 0..runs {
        let members = sim.members();
        let via = members[(r * 7 + 1) % members.len()];
        let newcomer = sim.join(&[via]);
        let seen = sim.run_until(Duration::from_secs(30), |s| {
            members
                .iter()
                .all(|m| s.knows(*m, newcomer) && s.knows(newcomer, *m))
        });
        joins.push(ms(
            seen.ok_or_else(|| anyhow!("a join was not seen by all"))?
        ));
        sim.leave(newcomer);
        let gone = sim.run_until(Duration::from_secs(30), |s| {
            members.iter().all(|m| !s.knows(*m, newcomer))
        });
        leaves.push(ms(
            gone.ok_or_else(|| anyhow!("a leave was not seen by all"))?
        ));
        sim.run_for(ANNOUNCE);
    }
    let rp = json!({"nodes": size, "runs": runs, "latency_ms": 1, "virtual_time": true});
    emit(
        "cluster.sim.join_seen_by_all",
        median(joins),
        "ms",
        rp.clone(),
    );
    emit("cluster.sim.leave_seen_by_all", median(leaves), "ms", rp);

    let window = Duration::from_secs(10);
    let before = sim.bytes_sent();
    sim.run_for(window);
    let per_node = (sim.bytes_sent() - before) as f64 / size as f64 / window.as_secs_f64();
    if !sim.full() {
        bail!("the idle simulated cluster of {size} fell apart");
    }
    emit(
        "cluster.sim.idle_gossip_bytes_per_node",
        per_node,
        "B/s",
        json!({"nodes": size, "window_s": 10, "announce_ms": 1000, "virtual_time": true,
               "wall_s": wall.elapsed().as_secs()}),
    );
    Ok(())
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) -> Result<Duration> {
    let t = Instant::now();
    while !ok() {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("{what}: not within 60 s");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(t.elapsed())
}

/// The registry layer of `size` runtime nodes.
pub async fn registry(size: usize, runs: usize) -> Result<()> {
    let size = size.max(3);
    let net = SimNet::new();
    let mut nodes = Vec::new();
    for _ in 0..size {
        let node = Node::new(NodeConfig {
            node_id: Some(plasmoid_mesh::node_id(&plasmoid_mesh::SecretKey::generate())),
            max_particles: 2,
            ..NodeConfig::default()
        })?;
        net.add(&node);
        nodes.push(node);
    }
    let here = nodes[1].clone();
    let owner = here.native("owner");
    let (mut regs, mut looks) = (Vec::new(), Vec::new());
    let (bytes0, _) = net.traffic();
    let names = runs * 200;
    for i in 0..names {
        let name = format!("sim-{i}");
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
    let last = format!("sim-{}", names - 1);
    until("the names reach every node", || {
        nodes.iter().all(|n| n.whereis_global(&last).is_some())
    })
    .await?;
    let (bytes1, _) = net.traffic();
    let p = json!({"nodes": size, "names": names, "in_memory": true});
    emit("cluster.sim.global_register", median(regs), "us", p.clone());
    emit("cluster.sim.global_lookup", median(looks), "ns", p.clone());
    emit(
        "cluster.sim.global_register_bytes",
        (bytes1 - bytes0) as f64 / names as f64,
        "B",
        p,
    );

    let mut joins = Vec::new();
    let mut members = Vec::new();
    for r in 0..runs {
        let n = &nodes[(r * 5 + 2) % size];
        let m = n.native("member");
        n.join_group("sim", m.pid())
            .map_err(|e| anyhow!("join: {e}"))?;
        let want = r + 1;
        let t = until("a group join reaches every node", || {
            nodes.iter().all(|n| n.group_members("sim").len() == want)
        })
        .await?;
        joins.push(ms(t));
        members.push(m);
    }
    emit(
        "cluster.sim.group_join_seen_by_all",
        median(joins),
        "ms",
        json!({"nodes": size, "runs": runs, "in_memory": true}),
    );

    // The last node holds 100 names and 100 group members, then dies.
    let dead = nodes[size - 1].clone();
    let mut held = Vec::new();
    for i in 0..100 {
        let p = dead.native("held");
        dead.register_global(&format!("held-{i}"), p.pid())
            .await
            .map_err(|e| anyhow!("register held-{i}: {e:?}"))?;
        dead.join_group("held", p.pid())
            .map_err(|e| anyhow!("join: {e}"))?;
        held.push(p);
    }
    let alive: Vec<Node> = nodes[..size - 1].to_vec();
    until("the dead node's entries reach every node", || {
        alive
            .iter()
            .all(|n| n.group_members("held").len() == 100 && n.whereis_global("held-99").is_some())
    })
    .await?;
    let t = Instant::now();
    net.kill(dead.id());
    until("every node drops the dead node's names and members", || {
        alive
            .iter()
            .all(|n| n.group_members("held").is_empty() && n.whereis_global("held-0").is_none())
    })
    .await?;
    emit(
        "cluster.sim.names_gone_after_death",
        ms(t.elapsed()),
        "ms",
        json!({"nodes": size, "names": 100, "members": 100, "in_memory": true,
               "plus_heartbeat_timeout_ms": 600}),
    );
    Ok(())
}
