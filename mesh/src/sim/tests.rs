//! 100 simulated nodes: the membership layer in virtual time, the registry
//! layer on real runtime nodes.

use super::*;
use plasmoid_runtime::{Node, NodeConfig, NodeId};
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(1);
const ANNOUNCE: Duration = Duration::from_secs(1);

/// `n` members, each joining through the first.
fn formed(n: usize) -> (GossipSim, NodeId) {
    let mut sim = GossipSim::new(LATENCY, ANNOUNCE);
    let seed = sim.join(&[]);
    for _ in 1..n {
        sim.join(&[seed]);
    }
    let wall = Instant::now();
    let took = sim.run_until(Duration::from_secs(60), GossipSim::full);
    eprintln!(
        "{n} formed in {took:?} virtual, {:?} wall, {} messages",
        wall.elapsed(),
        sim.messages_sent()
    );
    assert!(
        took.is_some(),
        "100 members did not all learn of each other"
    );
    (sim, seed)
}

#[test]
fn a_hundred_members_see_a_join_through_one_seed_and_a_leave() {
    let (mut sim, _) = formed(100);
    let members = sim.members();
    let via = members[members.len() / 2];
    let newcomer = sim.join(&[via]);
    let seen = sim.run_until(Duration::from_secs(10), |s| {
        members
            .iter()
            .all(|m| s.knows(*m, newcomer) && s.knows(newcomer, *m))
    });
    let seen = seen.expect("the join was not seen by all 100 within 10 s");
    // A few gossip rounds of 1 ms links, not the 1 s announcement period.
    assert!(seen < ANNOUNCE, "join seen by all after {seen:?}");
    eprintln!("join seen in {seen:?}, {} messages", sim.messages_sent());

    sim.leave(newcomer);
    let gone = sim.run_until(Duration::from_secs(10), |s| {
        members.iter().all(|m| !s.knows(*m, newcomer))
    });
    assert!(gone.is_some(), "the leave was not seen by all");
    assert_eq!(sim.rejected(), 0, "every announcement was signed");

    // Idle traffic is bounded: per node per second, under 100 KB.
    let before = sim.bytes_sent();
    sim.run_for(Duration::from_secs(5));
    let per_node = (sim.bytes_sent() - before) as f64 / 100.0 / 5.0;
    eprintln!("idle {per_node} B/s per node");
    assert!(per_node > 0.0 && per_node < 100_000.0, "{per_node} B/s");
    assert!(sim.full(), "an idle cluster stays whole");
}

#[test]
fn a_killed_member_does_not_split_the_gossip() {
    let (mut sim, seed) = formed(30);
    // The seed, known to everyone first, dies without a word.
    sim.kill(seed);
    let members = sim.members();
    let newcomer = sim.join(&[members[3]]);
    let seen = sim.run_until(Duration::from_secs(10), |s| {
        members.iter().all(|m| s.knows(*m, newcomer))
    });
    assert!(seen.is_some(), "a join after a death was not seen by all");
}

async fn nodes(n: usize) -> (SimNet, Vec<Node>) {
    let net = SimNet::new();
    let mut all = Vec::new();
    for _ in 0..n {
        let node = Node::new(NodeConfig {
            node_id: Some(crate::node_id(&iroh::SecretKey::generate())),
            max_particles: 2,
            ..NodeConfig::default()
        })
        .expect("a node");
        net.add(&node);
        all.push(node);
    }
    (net, all)
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_nodes_share_global_names_and_groups_and_drop_a_dead_nodes() {
    let (net, all) = nodes(100).await;
    let mut natives = Vec::new();
    for (i, node) in all.iter().enumerate() {
        let p = node.native("member");
        node.join_group("everyone", p.pid()).expect("join");
        node.register_global(&format!("n{i}"), p.pid())
            .await
            .expect("register");
        natives.push(p);
    }
    until("every node sees 100 names and 100 members", || {
        all.iter()
            .all(|n| n.global_names().len() == 100 && n.group_members("everyone").len() == 100)
    })
    .await;

    // All at once, on every node: exactly one registration wins, and
    // every node agrees on it.
    let claims: Vec<_> = all
        .iter()
        .zip(&natives)
        .map(|(n, p)| {
            let (n, pid) = (n.clone(), p.pid());
            tokio::spawn(async move { n.register_global("contested", pid).await.is_ok() })
        })
        .collect();
    let mut won = Vec::new();
    for c in claims {
        won.push(c.await.expect("a claim task"));
    }
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "winners: {won:?}");
    let winner = natives[won.iter().position(|w| *w).expect("a winner")].pid();
    until("every node names the one winner", || {
        all.iter()
            .all(|n| n.whereis_global("contested") == Some(winner))
    })
    .await;

    // Node 7 dies: its name and its member go everywhere.
    let dead = all[7].id();
    net.kill(dead);
    let alive: Vec<&Node> = all.iter().filter(|n| n.id() != dead).collect();
    until("every node drops the dead node's name and member", || {
        alive.iter().all(|n| {
            n.whereis_global("n7").is_none()
                && n.group_members("everyone").iter().all(|p| p.node != dead)
                && n.global_names().iter().all(|(_, p)| p.node != dead)
        })
    })
    .await;
    assert!(
        alive
            .iter()
            .all(|n| n.group_members("everyone").len() == 99)
    );
    let (bytes, frames) = net.traffic();
    assert!(frames > 0 && bytes > frames * 4, "ops crossed as frames");
}
