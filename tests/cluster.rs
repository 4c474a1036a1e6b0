//! Membership by gossip: nodes that join through one member are seen by
//! every member, node-up and node-down reach particles that monitor nodes,
//! and a node without the cluster key is refused. In one process (real iroh
//! endpoints on 127.0.0.1) and as real `plasmoid release run` processes.

mod common;
use common::{Running, plasmoid, run};
use plasmoid_mesh::{ClusterConfig, ClusterKey, Mesh, MeshConfig};
use plasmoid_runtime::{Msg, NativeProcess, Node, NodeConfig, NodeId, Pid, SpawnOpts};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

async fn member(key: &ClusterKey, name: &str) -> Mesh {
    let secret = iroh::SecretKey::generate();
    let node = Node::new(NodeConfig {
        node_id: Some(plasmoid_mesh::node_id(&secret)),
        max_particles: 8,
        ..NodeConfig::default()
    })
    .expect("node");
    let mut cfg = MeshConfig::new("127.0.0.1:0".parse().expect("addr"), Vec::new());
    let mut cluster = ClusterConfig::new(key.clone(), name);
    cluster.announce_every = Duration::from_millis(200);
    cfg.cluster = Some(cluster);
    Mesh::start(node, secret, cfg).await.expect("mesh")
}

async fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn id(m: &Mesh) -> NodeId {
    m.node().id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_learn_of_each_other_through_one_seed_and_particles_see_nodes_come_and_go() {
    common::log();
    let key = ClusterKey::from_bytes([7; 32]);
    let a = member(&key, "a").await;
    let seed = a.local_addr().expect("a listens");
    let watcher = a.node().native("watcher");
    assert!(!a.node().monitor_nodes(watcher.pid(), true));

    let b = member(&key, "b").await;
    let c = member(&key, "c").await;
    // b and c only know a; they learn of each other from the gossip.
    b.add_peer(id(&a), seed);
    c.add_peer(id(&a), seed);
    until(
        "b and c connected to each other",
        Duration::from_secs(10),
        || b.connected(id(&c)) && c.connected(id(&b)),
    )
    .await;
    until("a sees both", Duration::from_secs(5), || {
        a.members() == sorted(vec![id(&b), id(&c)])
    })
    .await;
    until(
        "members know each other's names",
        Duration::from_secs(5),
        || {
            b.node().node_name(id(&c)).as_deref() == Some("c")
                && c.node().node_name(id(&a)).as_deref() == Some("a")
        },
    )
    .await;

    let mut ups = Vec::new();
    while ups.len() < 2 {
        match watcher
            .recv(Some(Duration::from_secs(5)))
            .await
            .expect("recv")
        {
            Some(Msg::NodeUp(n)) => ups.push(n),
            other => panic!("expected node-up, got {other:?}"),
        }
    }
    assert_eq!(sorted(ups), sorted(vec![id(&b), id(&c)]));

    // b leaves cleanly: everyone forgets it, and a's watcher hears of it.
    let gone = id(&b);
    b.close().await;
    match watcher
        .recv(Some(Duration::from_secs(5)))
        .await
        .expect("recv")
    {
        Some(Msg::NodeDown(n)) => assert_eq!(n, gone),
        other => panic!("expected node-down, got {other:?}"),
    }
    until(
        "c sees b gone and forgets it",
        Duration::from_secs(5),
        || c.members() == vec![id(&a)] && c.node().node_name(gone).is_none(),
    )
    .await;

    // A node holding another cluster's key is refused by the seed.
    let stranger = member(&ClusterKey::from_bytes([8; 32]), "x").await;
    stranger.add_peer(id(&a), seed);
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        assert!(!a.connected(id(&stranger)) && !stranger.connected(id(&a)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.members(), vec![id(&c)]);
    for m in [a, c, stranger] {
        m.close().await;
    }
}

/// A probe particle on `m`'s node, scripted by a native controller.
struct Probe {
    ctl: NativeProcess,
    pid: Pid,
}

impl Probe {
    async fn on(m: &Mesh) -> Probe {
        let node = m.node();
        if !node.component_names().contains(&"probe".to_string()) {
            node.load_component("probe", &common::wasm("probe"), None)
                .expect("load probe");
        }
        let ctl = node.native("ctl");
        let init = json!({"controller": ctl.pid().to_string()}).to_string();
        let pid = node
            .spawn("probe", &init, SpawnOpts::default())
            .expect("spawn probe");
        let probe = Probe { ctl, pid };
        let ready = probe.next(|v| v.get("ready").is_some()).await;
        assert_eq!(ready["ready"], pid.to_string());
        probe
    }

    /// The next report that `want` takes (others are skipped).
    async fn next(&self, want: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.ctl.recv(Some(Duration::from_secs(10))).await {
                Ok(Some(Msg::Data(d))) => {
                    let v: Value = serde_json::from_slice(&d).expect("probe JSON");
                    if want(&v) {
                        return v;
                    }
                }
                Ok(Some(_)) => {}
                other => panic!("no report from the probe: {other:?}"),
            }
        }
    }

    fn send(&self, cmd: Value) {
        self.ctl
            .send(self.pid, cmd.to_string().into_bytes())
            .expect("send to probe");
    }

    async fn cmd(&self, cmd: Value) -> Value {
        self.send(cmd);
        self.next(|v| v.get("ok").is_some() || v.get("err").is_some())
            .await
    }
}

async fn until_async<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut ok: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !ok().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_global_names_span_the_cluster_and_go_with_their_node() {
    common::log();
    let key = ClusterKey::from_bytes([5; 32]);
    let a = member(&key, "a").await;
    let b = member(&key, "b").await;
    let c = member(&key, "c").await;
    let seed = a.local_addr().expect("a listens");
    b.add_peer(id(&a), seed);
    c.add_peer(id(&a), seed);
    until("a full mesh", Duration::from_secs(10), || {
        a.members().len() == 2 && b.members().len() == 2 && c.members().len() == 2
    })
    .await;
    let (pa, pb, pc) = (
        Probe::on(&a).await,
        Probe::on(&b).await,
        Probe::on(&c).await,
    );

    // Groups, as pg: two members on two nodes, seen from the third.
    assert_eq!(
        pa.cmd(json!({"join": "workers"})).await,
        json!({"ok": true})
    );
    assert_eq!(
        pb.cmd(json!({"join": "workers"})).await,
        json!({"ok": true})
    );
    let mut both = vec![pa.pid.to_string(), pb.pid.to_string()];
    both.sort();
    until_async("c sees both workers", Duration::from_secs(2), || {
        let want = json!({"ok": both.clone()});
        let pc = &pc;
        async move { pc.cmd(json!({"members": "workers"})).await == want }
    })
    .await;
    assert_eq!(
        pc.cmd(json!({"local_members": "workers"})).await,
        json!({"ok": []})
    );
    assert_eq!(
        pc.cmd(json!({"broadcast": {"group": "workers", "data": "hi"}}))
            .await,
        json!({"ok": 2})
    );
    let got = pa.next(|v| v.get("event").is_some()).await;
    assert_eq!(got, json!({"event": {"data": "hi"}}));

    // One global name, claimed from two nodes at once: exactly one wins.
    pb.send(json!({"register_global": "leader"}));
    pc.send(json!({"register_global": "leader"}));
    let replies = [
        pb.next(|v| v.get("ok").is_some() || v.get("err").is_some())
            .await,
        pc.next(|v| v.get("ok").is_some() || v.get("err").is_some())
            .await,
    ];
    let winners: Vec<usize> = (0..2)
        .filter(|i| replies[*i] == json!({"ok": null}))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one wins: {replies:?}");
    let loser = 1 - winners[0];
    assert!(
        replies[loser]["err"]
            .as_str()
            .unwrap_or_default()
            .contains("taken"),
        "{replies:?}"
    );
    let (winner_pid, winner_mesh, other) = if winners[0] == 0 {
        (pb.pid, &b, &c)
    } else {
        (pc.pid, &c, &b)
    };
    for m in [&a, &b, &c] {
        until("every node has the winner", Duration::from_secs(1), || {
            m.node().whereis_global("leader") == Some(winner_pid)
        })
        .await;
    }
    assert_eq!(
        pa.cmd(json!({"lookup_global": "leader"})).await,
        json!({"ok": winner_pid.to_string()})
    );

    // The winner's node goes: its name and group members go everywhere
    // within a second.
    let gone = Instant::now();
    winner_mesh.close().await;
    for m in [&a, other] {
        until("the name is gone", Duration::from_secs(1), || {
            m.node().whereis_global("leader").is_none()
        })
        .await;
    }
    let took = gone.elapsed();
    assert!(took < Duration::from_secs(1), "names gone after {took:?}");
    let survivors: Vec<String> = if winner_pid == pb.pid {
        vec![pa.pid.to_string()]
    } else {
        both.clone()
    };
    until_async(
        "the group lost the gone node's member",
        Duration::from_secs(1),
        || {
            let want = json!({"ok": survivors.clone()});
            let pa = &pa;
            async move { pa.cmd(json!({"members": "workers"})).await == want }
        },
    )
    .await;
    for m in [a, b, c] {
        m.close().await;
    }
}

fn sorted(mut v: Vec<NodeId>) -> Vec<NodeId> {
    v.sort();
    v
}

fn status(rel: &Path, node: &str) -> serde_json::Value {
    let (code, out, err) = run(plasmoid()
        .args(["status", "--json", "--node", node, "--release"])
        .arg(rel));
    assert_eq!(code, 0, "status of {node}: {err}");
    serde_json::from_str(&out).expect("status is JSON")
}

/// `plasmoid status` of `node`, or `None` when the CLI could not reach it.
fn try_status(rel: &Path, node: &str) -> Option<serde_json::Value> {
    let (code, out, _) = run(plasmoid()
        .args(["status", "--json", "--node", node, "--release"])
        .arg(rel));
    if code != 0 {
        return None;
    }
    serde_json::from_str(&out).ok()
}

/// The names of the peers `node` shows as connected.
fn connected_peers(rel: &Path, node: &str) -> Vec<String> {
    connected_names(&status(rel, node))
}

/// The names of the peers a status shows as connected, sorted.
fn connected_names(s: &Value) -> Vec<String> {
    let mut names: Vec<String> = s["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["connected"] == true)
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn until_peers(rel: &Path, node: &str, want: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = connected_peers(rel, node);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{node} shows {got:?} connected, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_release_node_joins_through_one_seed_and_everyone_sees_it_go() {
    let dir = tempfile::tempdir().expect("dir");
    let rel = common::echo_mesh_release(
        dir.path(),
        "club",
        &["a", "b", "c"],
        "strategy = \"one-for-one\"\nchildren = [{ id = \"e\", component = \"echo\" }]",
    );
    let node = |name: &str| Running::release_node(&rel, name);
    let mut b = node("b");
    let mut c = node("c");
    let mut a = node("a");
    assert!(
        a.wait_for("release club-1 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    for n in [&mut b, &mut c] {
        assert!(n.wait_for("node up", Duration::from_secs(60)), "{}", n.seen);
    }

    // d knows only a; b and c learn of it by gossip, and d of them.
    let seed = std::fs::read_to_string(rel.join("nodes/a/control")).expect("a's address");
    let mut d = Running::start(plasmoid().args(["release", "run"]).arg(&rel).args([
        "--node",
        "d",
        "--join",
        seed.trim(),
    ]));
    assert!(d.wait_for("node up", Duration::from_secs(60)), "{}", d.seen);
    let within = Duration::from_secs(10);
    if std::panic::catch_unwind(|| until_peers(&rel, "d", &["a", "b", "c"], within)).is_err() {
        d.wait_for("never", Duration::from_millis(100));
        b.wait_for("never", Duration::from_millis(100));
        panic!("d:\n{}\nb:\n{}", d.seen, b.seen);
    }
    for n in ["a", "b", "c"] {
        let others: Vec<&str> = ["a", "b", "c", "d"]
            .into_iter()
            .filter(|o| *o != n)
            .collect();
        until_peers(&rel, n, &others, within);
    }

    // A node of another release (another cluster key) is refused.
    let other = tempfile::tempdir().expect("dir");
    let stranger_rel = common::echo_mesh_release(
        other.path(),
        "club",
        &["a"],
        "strategy = \"one-for-one\"\nchildren = [{ id = \"e\", component = \"echo\" }]",
    );
    let mut x = Running::start(
        plasmoid()
            .args(["release", "run"])
            .arg(&stranger_rel)
            .args(["--node", "x", "--join", seed.trim()]),
    );
    assert!(
        a.wait_for(
            "not made with this release's cluster key",
            Duration::from_secs(20)
        ),
        "{}",
        a.seen
    );
    assert_eq!(connected_peers(&rel, "a"), vec!["b", "c", "d"]);
    x.kill();

    // kill -9 of d: every member sees it down.
    d.kill();
    for n in ["a", "b", "c"] {
        let others: Vec<&str> = ["a", "b", "c"].into_iter().filter(|o| *o != n).collect();
        until_peers(&rel, n, &others, Duration::from_secs(5));
    }
    for n in [b, c, a] {
        let (code, log) = n.terminate();
        assert_eq!(code, Some(0), "{log}");
    }
}

/// Ten `release run` processes, each on its own loopback address
/// (127.0.0.21..30): the cluster forms, every node sees every node's
/// global name, and a node killed with kill -9 is gone everywhere (its
/// connection, and its name until its worker runs again elsewhere).
#[test]
fn ten_release_nodes_on_their_own_addresses_form_one_cluster() {
    const N: usize = 10;
    let name = |i: usize| format!("n{i}");
    let ip = |i: usize| format!("127.0.0.{}", 21 + i);
    let port = |ip: &str| {
        std::net::UdpSocket::bind((ip, 0))
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    };
    let nodes: String = (0..N)
        .map(|i| {
            format!(
                "{} = {{ listen = \"{}:{}\" }}\n",
                name(i),
                ip(i),
                port(&ip(i))
            )
        })
        .collect();
    // Each node runs one worker holding a global name; n0 is its fallback.
    let children: String = (0..N)
        .map(|i| {
            format!(
                "{{ id = \"w{i}\", component = \"web\", init = {{ global = \"g{i}\" }}, node = [\"{}\", \"n0\"] }},\n",
                name(i)
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let manifest = dir.path().join("prod.toml");
    let text = format!(
        "[release]\nname = \"ten\"\nversion = \"1\"\n[node]\nmax_particles = 32\n[nodes]\n{nodes}\
         [components.web]\nwasm = \"{}\"\n\
         [supervisor]\nstrategy = \"one-for-one\"\nmax_restarts = 20\nmax_seconds = 10\n\
         children = [\n{children}]\n",
        common::wasm("web").display()
    );
    std::fs::write(&manifest, text).expect("write the manifest");
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = std::path::PathBuf::from(out.trim());
    let prefix = |i: usize| {
        let id = std::fs::read_to_string(rel.join("nodes").join(name(i)).join("id")).expect("id");
        format!("{}.", &id[..8])
    };

    let mut procs: Vec<Running> = (1..N)
        .map(|i| Running::release_node(&rel, &name(i)))
        .collect();
    procs.insert(0, Running::release_node(&rel, "n0"));
    for (i, p) in procs.iter_mut().enumerate() {
        let ready = if i == 0 {
            "release ten-1 is up"
        } else {
            "node up"
        };
        assert!(
            p.wait_for(ready, Duration::from_secs(60)),
            "n{i}:\n{}",
            p.seen
        );
    }
    let globals = |s: &Value| -> Vec<(String, String)> {
        let mut g: Vec<(String, String)> = s["globals"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| Some((g[0].as_str()?.to_string(), g[1].as_str()?.to_string())))
            .collect();
        g.sort();
        g
    };
    let peers = connected_names;
    let until_all = |alive: &[usize], what: &str, ok: &dyn Fn(usize, &Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A status the node did not answer (a control connection
            // refused while ten nodes and their gossip load two cores) is
            // asked again on the next round.
            let views: Vec<(usize, Value)> = alive
                .iter()
                .map(|i| (*i, try_status(&rel, &name(*i)).unwrap_or(Value::Null)))
                .collect();
            if views.iter().all(|(i, s)| ok(*i, s)) {
                return;
            }
            let shown: Vec<String> = views
                .iter()
                .map(|(i, s)| {
                    let g: Vec<String> =
                        globals(s).iter().map(|(n, p)| format!("{n}={p}")).collect();
                    format!("n{i}: peers {:?} globals {}", peers(s), g.join(" "))
                })
                .collect();
            assert!(Instant::now() < deadline, "{what}:\n{shown:#?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let all: Vec<usize> = (0..N).collect();
    let others = |i: usize, among: &[usize]| -> Vec<String> {
        let mut v: Vec<String> = among
            .iter()
            .filter(|o| **o != i)
            .map(|o| name(*o))
            .collect();
        v.sort();
        v
    };
    // Everyone connected to everyone, and each g<i> held on n<i>.
    until_all(&all, "the ten nodes form one cluster", &|i, s| {
        let g = globals(s);
        peers(s) == others(i, &all)
            && g.len() == N
            && (0..N).all(|k| {
                g.iter()
                    .any(|(n, p)| *n == format!("g{k}") && p.starts_with(&prefix(k)))
            })
    });

    // kill -9 of n7: every other node drops it, and g7 comes back from n0.
    procs[7].kill();
    let alive: Vec<usize> = all.iter().copied().filter(|i| *i != 7).collect();
    let (gone, fallback) = (prefix(7), prefix(0));
    until_all(&alive, "n7 gone everywhere, g7 moved to n0", &|i, s| {
        let g = globals(s);
        peers(s) == others(i, &alive)
            && g.iter().all(|(_, p)| !p.starts_with(&gone))
            && g.iter().any(|(n, p)| n == "g7" && p.starts_with(&fallback))
    });
    for (i, p) in procs.into_iter().enumerate() {
        if i != 7 {
            let (code, log) = p.terminate();
            assert_eq!(code, Some(0), "n{i}: {log}");
        }
    }
}
