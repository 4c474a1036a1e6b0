//! Two and three real nodes in one process, connected over real iroh
//! endpoints on 127.0.0.1: remote send, request/reply, links and monitors,
//! a lost peer, a node that is not allowed, a malformed frame.

mod common;
use plasmoid_mesh::{Mesh, MeshConfig};
use plasmoid_runtime::{ExitReason, Msg, Node, NodeConfig, SpawnOpts};
use std::time::{Duration, Instant};

struct Peer {
    mesh: Mesh,
    _dir: tempfile::TempDir,
}

impl Peer {
    fn node(&self) -> &Node {
        self.mesh.node()
    }
}

/// A node with the echo component, its own key, listening on 127.0.0.1.
async fn peer(keys: &[iroh::SecretKey], me: usize, allow: &[usize]) -> Peer {
    let cfg = NodeConfig {
        max_particles: 32,
        ..NodeConfig::default()
    };
    peer_with(keys, me, allow, cfg).await
}

async fn peer_with(keys: &[iroh::SecretKey], me: usize, allow: &[usize], cfg: NodeConfig) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let key = keys[me].clone();
    let node = Node::new(NodeConfig {
        node_id: Some(plasmoid_mesh::node_id(&key)),
        ..cfg
    })
    .unwrap();
    node.load_component("echo", &common::wasm("echo"), None)
        .unwrap();
    let allow = allow
        .iter()
        .map(|i| plasmoid_mesh::node_id(&keys[*i]))
        .collect();
    let cfg = MeshConfig::new("127.0.0.1:0".parse().unwrap(), allow);
    let mesh = Mesh::start(node, key, cfg).await.unwrap();
    Peer { mesh, _dir: dir }
}

fn keys(n: usize) -> Vec<iroh::SecretKey> {
    (0..n).map(|_| iroh::SecretKey::generate()).collect()
}

async fn connect(a: &Peer, b: &Peer) {
    a.mesh.add_peer(b.node().id(), b.mesh.local_addr().unwrap());
    b.mesh.add_peer(a.node().id(), a.mesh.local_addr().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.mesh.connected(b.node().id()) && b.mesh.connected(a.node().id())) {
        assert!(Instant::now() < deadline, "peers connect within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_calls_links_and_monitors_cross_nodes() {
    let k = keys(2);
    let (a, b) = (peer(&k, 0, &[1]).await, peer(&k, 1, &[0]).await);
    connect(&a, &b).await;

    // A plain message from a process on A to one on B.
    let on_a = a.node().native("a");
    let on_b = b.node().native("b");
    on_a.send(on_b.pid(), b"over the mesh".to_vec()).unwrap();
    assert_eq!(
        on_b.recv(Some(5 * SEC)).await.unwrap(),
        Some(Msg::Data(b"over the mesh".to_vec()))
    );

    // Request/reply with a particle on B: the reply routes back to A.
    let echo = b
        .node()
        .spawn("echo", "null", SpawnOpts::default())
        .unwrap();
    let reply = on_a.call(echo, vec![2, b'h', b'i'], 5 * SEC).await.unwrap();
    assert_eq!(reply, vec![2, b'h', b'i']);

    // A link across nodes: B's particle dies, A's trapping process hears it.
    on_a.trap_exit(true);
    on_a.link(echo).unwrap();
    // Linking again is the same one link (no spurious EXIT below).
    on_a.link(echo).unwrap();
    let reference = on_a.monitor(echo);
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.node().exit(on_b.pid(), echo, ExitReason::Kill).unwrap();
    let mut got_exit = false;
    let mut got_down = false;
    let deadline = Instant::now() + 5 * SEC;
    while !(got_exit && got_down) && Instant::now() < deadline {
        match on_a.recv(Some(5 * SEC)).await.unwrap() {
            Some(Msg::Exit { sender, reason }) if sender == echo => {
                assert_eq!(reason, ExitReason::Killed);
                got_exit = true;
            }
            Some(Msg::Down {
                sender,
                reference: r,
                reason,
            }) if sender == echo => {
                assert_eq!((r, reason), (reference, ExitReason::Killed));
                got_down = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got_exit && got_down);

    // Monitoring a pid that is gone on the other node: DOWN noproc.
    let r = on_a.monitor(echo);
    let down = on_a.recv(Some(5 * SEC)).await.unwrap();
    assert_eq!(
        down,
        Some(Msg::Down {
            sender: echo,
            reference: r,
            reason: ExitReason::Noproc
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_peer_breaks_links_and_monitors_with_noconnection() {
    let k = keys(2);
    let (a, b) = (peer(&k, 0, &[1]).await, peer(&k, 1, &[0]).await);
    connect(&a, &b).await;
    let on_a = a.node().native("a");
    on_a.trap_exit(true);
    let far = b.node().native("far");
    on_a.link(far.pid()).unwrap();
    let reference = on_a.monitor(far.pid());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // B goes away without a word (like a killed process: its endpoint closes).
    let lost_at = Instant::now();
    b.mesh.close().await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match on_a.recv(Some(5 * SEC)).await.unwrap() {
            Some(m) => seen.push(m),
            None => panic!("no noconnection within 5 s: {seen:?}"),
        }
    }
    let waited = lost_at.elapsed();
    assert!(
        seen.contains(&Msg::Exit {
            sender: far.pid(),
            reason: ExitReason::Noconnection
        }),
        "{seen:?}"
    );
    assert!(
        seen.contains(&Msg::Down {
            sender: far.pid(),
            reference,
            reason: ExitReason::Noconnection
        }),
        "{seen:?}"
    );
    assert!(waited < 2 * SEC, "noticed in {waited:?}");
    // Sends to the lost node fail at once instead of vanishing.
    assert_eq!(
        on_a.send(far.pid(), vec![1]),
        Err(plasmoid_runtime::SendError::Noconnection)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_allowed_is_refused() {
    let k = keys(3);
    // A allows only B; C knows A's address and tries anyway.
    let (a, c) = (peer(&k, 0, &[1]).await, peer(&k, 2, &[0]).await);
    c.mesh.add_peer(a.node().id(), a.mesh.local_addr().unwrap());
    let on_a = a.node().native("a");
    let on_c = c.node().native("c");
    let deadline = Instant::now() + 2 * SEC;
    while Instant::now() < deadline {
        let _ = on_c.send(on_a.pid(), b"let me in".to_vec());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        on_a.recv(Some(Duration::from_millis(200))).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_only_that_connection() {
    let k = keys(3);
    let (a, b) = (peer(&k, 0, &[1, 2]).await, peer(&k, 1, &[0]).await);
    connect(&a, &b).await;
    // Node 2 is allowed, but speaks garbage: a raw iroh connection.
    let rogue = common::raw_endpoint(k[2].clone()).await;
    let target = iroh::EndpointAddr::new(k[0].public()).with_ip_addr(a.mesh.local_addr().unwrap());
    let conn = rogue.connect(target, plasmoid_mesh::ALPN).await.unwrap();
    let mut stream = conn.open_uni().await.unwrap();
    let mut garbage = 5u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 5]);
    stream.write_all(&garbage).await.unwrap();
    // A closes the rogue connection...
    let closed = tokio::time::timeout(5 * SEC, conn.closed()).await;
    assert!(closed.is_ok(), "the rogue connection is closed");
    // ...and keeps working with B.
    let on_a = a.node().native("a");
    let on_b = b.node().native("b");
    on_b.send(on_a.pid(), b"still here".to_vec()).unwrap();
    assert_eq!(
        on_a.recv(Some(5 * SEC)).await.unwrap(),
        Some(Msg::Data(b"still here".to_vec()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_actions_are_authorized_with_the_node_as_principal() {
    let k = keys(2);
    // B lets other nodes message its particles but not start any.
    let policies = r#"
        permit (principal, action in [Action::"send", Action::"link", Action::"monitor", Action::"exit"], resource);
        permit (principal, action == Action::"spawn", resource);
        forbid (principal is Node, action == Action::"spawn", resource);
    "#;
    let b_cfg = common::config_with_policies(policies);
    let (a, b) = (peer(&k, 0, &[1]).await, peer_with(&k, 1, &[0], b_cfg).await);
    connect(&a, &b).await;
    let on_a = a.node().native("a");
    match on_a
        .start_child(Some(b.node().id()), "echo", "null", 5 * SEC)
        .await
    {
        Err(why) => {
            assert!(
                why.contains("spawn on `echo` denied by policy for node"),
                "{why}"
            );
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert!(b.node().particles_of("echo").is_empty());
    // Messages are still allowed.
    let on_b = b.node().native("b");
    on_a.send(on_b.pid(), b"hello".to_vec()).unwrap();
    assert_eq!(
        on_b.recv(Some(5 * SEC)).await.unwrap(),
        Some(Msg::Data(b"hello".to_vec()))
    );
}

/// The next JSON report from a probe to `ctl` that `want` accepts.
async fn report(
    ctl: &plasmoid_runtime::NativeProcess,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    loop {
        match ctl.recv(Some(10 * SEC)).await.unwrap() {
            Some(Msg::Data(d)) => {
                let v: serde_json::Value = serde_json::from_slice(&d).unwrap();
                if want(&v) {
                    return v;
                }
            }
            Some(_) => {}
            None => panic!("no report from the probe within 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_spawns_on_a_named_node_and_looks_up_names_there() {
    let k = keys(2);
    let (a, b) = (peer(&k, 0, &[1]).await, peer(&k, 1, &[0]).await);
    for p in [&a, &b] {
        p.node().set_peers([
            ("a".to_string(), a.node().id()),
            ("b".to_string(), b.node().id()),
        ]);
    }
    connect(&a, &b).await;
    a.node()
        .load_component("probe", &common::wasm("probe"), None)
        .unwrap();
    let ctl = a.node().native("ctl");
    let init = serde_json::json!({"controller": ctl.pid().to_string()}).to_string();
    let probe = a
        .node()
        .spawn("probe", &init, SpawnOpts::default())
        .unwrap();
    report(&ctl, |v| v.get("ready").is_some()).await;
    let ask = |cmd: serde_json::Value| {
        ctl.send(probe, cmd.to_string().into_bytes()).unwrap();
        report(&ctl, |v| v.get("ok").is_some() || v.get("err").is_some())
    };

    // spawn-on: the particle runs on b, linked to the probe on a.
    let r = ask(serde_json::json!({"spawn_on": {"node": "b", "component": "echo"}})).await;
    let child = r["ok"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    assert!(child.starts_with(&b.node().id().short()), "{child}");
    let r = ask(serde_json::json!({"call": {"to": child, "data": "hi"}})).await;
    assert_eq!(r["ok"], "hi", "{r}");
    let r = ask(serde_json::json!({"spawn_on": {"node": "nowhere", "component": "echo"}})).await;
    assert!(r["err"].as_str().unwrap_or("").contains("nowhere"), "{r}");

    // name@node: a name registered on b, looked up from a guest on a.
    let named = b
        .node()
        .spawn(
            "echo",
            "null",
            SpawnOpts {
                name: Some("e".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let r = ask(serde_json::json!({"lookup": "e@b"})).await;
    assert_eq!(r["ok"], named.to_string(), "{r}");
    let r = ask(serde_json::json!({"lookup": "missing@b"})).await;
    assert!(r.get("err").is_some(), "{r}");

    // The link from spawn-on works across: killing the child on b reaches
    // the trapping probe on a.
    ask(serde_json::json!({"trap_exit": true})).await;
    let child_pid = b.node().resolve(&child).unwrap();
    b.node().exit(named, child_pid, ExitReason::Kill).unwrap();
    let ev = report(&ctl, |v| v.get("event").is_some()).await;
    let text = ev.to_string();
    assert!(text.contains(&child) && text.contains("killed"), "{text}");
}

/// One start handshake, one timeout policy: a start that times out leaves
/// no particle behind, here or on the far node, and nothing reaches the
/// parent afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_times_out_leaves_no_particle_here_or_there() {
    let k = keys(2);
    let cfg = || NodeConfig {
        max_particles: 4200,
        ..NodeConfig::default()
    };
    let (a, b) = (
        peer_with(&k, 0, &[1], cfg()).await,
        peer_with(&k, 1, &[0], cfg()).await,
    );
    connect(&a, &b).await;
    let parent = a.node().native("parent");
    // A ring orchestrator spawns its 2000 workers before its first wait in
    // `recv`: tens of ms, far past a 1 ms start timeout.
    for n in [&a, &b] {
        n.node()
            .load_component("ring", &common::wasm("ring"), None)
            .unwrap();
    }
    let slow = r#"{"orchestrator":{"procs":2000,"msgs":1}}"#;
    // Far: the spawn reaches b and starts; the cancel follows it.
    let why = parent
        .start_child(Some(b.node().id()), "ring", slow, Duration::from_millis(1))
        .await
        .expect_err("the ring takes longer than 1 ms to start");
    assert!(why.contains("did not initialise within 1 ms"), "{why}");
    // Here: killed at once.
    let why = parent
        .start_child(None, "ring", slow, Duration::from_millis(1))
        .await
        .expect_err("the ring takes longer than 1 ms to start");
    assert!(why.contains("did not initialise"), "{why}");
    let deadline = Instant::now() + 5 * SEC;
    loop {
        // The orchestrators and the workers linked to them.
        let there = b.node().live_particles();
        let here = a.node().live_particles();
        if there == 0 && here == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{there} on b and {here} on a still running after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // No late acknowledgement, DOWN or EXIT reaches the parent.
    assert_eq!(
        parent.recv(Some(Duration::from_millis(300))).await,
        Ok(None)
    );
    // A lost connection later says nothing about particles it never had.
    b.mesh.close().await;
    parent.trap_exit(true);
    assert_eq!(
        parent.recv(Some(Duration::from_millis(1500))).await,
        Ok(None)
    );
    // And a start with time enough still works.
    let pid = parent
        .start_child(None, "echo", "null", 5 * SEC)
        .await
        .unwrap();
    assert!(a.node().is_alive(pid));
}

/// The rows of supervisor `sup`, asked from `node` (over the mesh when
/// `sup` lives elsewhere).
async fn rows(node: &Node, sup: plasmoid_runtime::Pid) -> Vec<plasmoid_runtime::ChildInfo> {
    match node
        .ask_supervisor(sup, plasmoid_runtime::SupRequest::Which, 5 * SEC)
        .await
    {
        Ok(plasmoid_runtime::SupReply::Rows(rows)) => rows,
        other => panic!("which_children of {sup}: {other:?}"),
    }
}

fn edge_on(nodes: Vec<plasmoid_runtime::NodeId>) -> plasmoid_supervisor::SupervisorSpec {
    use plasmoid_supervisor::{ChildSpec, Strategy, SupervisorSpec};
    let mut edge = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(3, 10 * SEC)
        .child(ChildSpec::worker("e1", "echo", "null"))
        .child(ChildSpec::worker("e2", "echo", "null"))
        .on(nodes);
    edge.name = "edge".into();
    let mut root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, 10 * SEC)
        .child(ChildSpec::supervisor("edge", edge));
    root.name = "root".into();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_supervisor_on_b_fails_over_to_c_with_its_subtree() {
    let k = keys(3);
    let (a, b, c) = (
        peer(&k, 0, &[1, 2]).await,
        peer(&k, 1, &[0, 2]).await,
        peer(&k, 2, &[0, 1]).await,
    );
    connect(&a, &b).await;
    connect(&a, &c).await;
    connect(&b, &c).await;
    for p in [&b, &c] {
        plasmoid_supervisor::Registry::of(p.node());
    }
    let (bid, cid) = (b.node().id(), c.node().id());
    let host = a.node().native("host");
    host.trap_exit(true);
    let root = plasmoid_supervisor::start_link(
        a.node().clone(),
        edge_on(vec![bid, cid]),
        Some(host.pid()),
    )
    .await
    .expect("the tree starts");
    let edge = root.which_children().await.unwrap()[0]
        .pid
        .expect("edge runs");
    assert_eq!(edge.node, bid, "placed on b first");
    // Its children run on b, and b's supervisor answers a over the mesh.
    let kids = rows(a.node(), edge).await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(
        kids.iter().all(|k| k.pid.is_some_and(|p| p.node == bid)),
        "{kids:?}"
    );
    assert_eq!(b.node().particles_of("echo").len(), 2);

    // B goes away: the subtree starts again on c, whole.
    b.mesh.close().await;
    let deadline = Instant::now() + 10 * SEC;
    let moved = loop {
        let now = root.which_children().await.unwrap()[0].pid;
        if let Some(p) = now.filter(|p| p.node == cid) {
            let kids = rows(a.node(), p).await;
            if kids.len() == 2 && kids.iter().all(|k| k.pid.is_some_and(|p| p.node == cid)) {
                break p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "edge not on c within 10 s: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(c.node().particles_of("echo").len(), 2);
    assert!(c.node().is_alive(moved));

    // Stopping the tree stops the subtree on c too.
    host.send_exit(root.pid(), ExitReason::Shutdown(String::new()))
        .unwrap();
    let deadline = Instant::now() + 10 * SEC;
    while !c.node().particles_of("echo").is_empty() || c.node().is_alive(moved) {
        assert!(Instant::now() < deadline, "the subtree on c still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtree_is_placed_only_where_the_node_policy_allows() {
    let k = keys(3);
    // B does not let other nodes supervise here; c lets them supervise but
    // not spawn `echo`, which the subtree needs.
    let b_cfg = common::config_with_policies(
        r#"permit (principal, action, resource);
           forbid (principal is Node, action == Action::"supervise", resource);"#,
    );
    let c_cfg = common::config_with_policies(
        r#"permit (principal, action, resource);
           forbid (principal is Node, action == Action::"spawn", resource == Component::"echo");"#,
    );
    let (a, b, c) = (
        peer(&k, 0, &[1, 2]).await,
        peer_with(&k, 1, &[0], b_cfg).await,
        peer_with(&k, 2, &[0], c_cfg).await,
    );
    connect(&a, &b).await;
    connect(&a, &c).await;
    for p in [&b, &c] {
        plasmoid_supervisor::Registry::of(p.node());
    }
    let host = a.node().native("host");
    host.trap_exit(true);
    let spec = edge_on(vec![b.node().id(), c.node().id()]);
    let why = match plasmoid_supervisor::start_link(a.node().clone(), spec, Some(host.pid())).await
    {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the subtree started against both nodes' policies"),
    };
    assert!(
        why.contains("supervise on `supervisor` denied by policy for node"),
        "{why}"
    );
    assert!(
        why.contains("spawn on `echo` denied by policy for node"),
        "{why}"
    );
    for p in [&b, &c] {
        assert!(p.node().particles_of("echo").is_empty());
        assert!(plasmoid_supervisor::Registry::of(p.node()).is_empty());
    }
    // B's own supervisors do not answer a either.
    let own = plasmoid_supervisor::start_link(
        b.node().clone(),
        plasmoid_supervisor::SupervisorSpec::new(plasmoid_supervisor::Strategy::OneForOne),
        None,
    )
    .await
    .expect("a supervisor of b's own");
    match a
        .node()
        .ask_supervisor(own.pid(), plasmoid_runtime::SupRequest::Which, 5 * SEC)
        .await
    {
        Err(plasmoid_runtime::SupError::Denied(why)) => {
            assert!(why.contains("supervise on `supervisor` denied"), "{why}")
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}
