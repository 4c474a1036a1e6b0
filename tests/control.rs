//! The control CLI (`plasmoid status | spawn | send | call | stop`) against
//! running `plasmoid release run` processes: one embedded node, and a
//! release of three nodes on 127.0.0.1 where requests cross the mesh.

mod common;
use common::{Running, plasmoid, run};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn build(manifest: &Path) -> PathBuf {
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(manifest));
    assert_eq!(code, 0, "{err}");
    PathBuf::from(out.trim())
}

/// `plasmoid <args> --release <rel>`: exit code, stdout, stderr.
fn ctl(rel: &Path, args: &[&str]) -> (i32, String, String) {
    run(plasmoid().args(args).arg("--release").arg(rel))
}

/// Repeat a control command until it fails with `text` in its error (the
/// effect of an earlier command may take a moment); returns that error.
fn until_error(rel: &Path, args: &[&str], text: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, err) = ctl(rel, args);
        if code != 0 && err.contains(text) {
            return err;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{}` did not fail with `{text}` within 10 s: {err}",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn single_node_release(dir: &Path) -> PathBuf {
    let manifest = dir.join("prod.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"
[release]
name = "ctl"
version = "1"
[node]
max_particles = 64
[components.echo]
wasm = "{echo}"
[supervisor]
strategy = "one-for-one"
children = ["echo"]
"#,
            echo = common::wasm("echo").display()
        ),
    )
    .unwrap();
    build(&manifest)
}

/// Wait for the single-node release `ctl-1` to be up; where it listens.
fn up_at(node: &mut Running, rel: &Path) -> plasmoid_mesh::ControlAddr {
    assert!(
        node.wait_for("release ctl-1 is up", Duration::from_secs(60)),
        "{}",
        node.seen
    );
    std::fs::read_to_string(rel.join("node/control"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn control_cli_drives_a_single_node_release() {
    let dir = tempfile::tempdir().unwrap();
    let rel = single_node_release(dir.path());
    let mut node = Running::start(plasmoid().args(["release", "run"]).arg(&rel));
    assert!(
        node.wait_for("release ctl-1 is up", Duration::from_secs(60)),
        "{}",
        node.seen
    );

    let (code, out, err) = ctl(&rel, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("release ctl-1"), "{out}");
    let child = out
        .lines()
        .find(|l| l.trim_start().starts_with("echo echo@"))
        .unwrap_or_else(|| panic!("the tree shows the echo child: {out}"))
        .to_string();
    assert!(child.contains("restarts=0"), "{child}");
    assert!(
        !child.contains("echo@?"),
        "the child's version is shown: {child}"
    );

    let (code, pid, err) = ctl(&rel, &["spawn", "echo", "--name", "e1"]);
    assert_eq!(code, 0, "{err}");
    let pid = pid.trim().to_string();

    // 100 of 100 CLI calls in a row, each a new process dialling the node.
    for i in 0..100 {
        let msg = format!("hello {i}");
        let (code, out, err) = ctl(&rel, &["call", "e1", &msg, "--as", "postcard"]);
        assert_eq!(code, 0, "call {i} failed: {err}");
        assert_eq!(out.trim(), msg, "call {i}");
    }
    // By pid too.
    let (code, out, _) = ctl(&rel, &["call", &pid, "x", "--as", "postcard"]);
    assert_eq!((code, out.trim()), (0, "x"));

    // `send` a data message: echo ends on "stop"; its name goes with it.
    let (code, _, err) = ctl(&rel, &["send", "e1", "stop"]);
    assert_eq!(code, 0, "{err}");
    let err = until_error(&rel, &["call", "e1", "x", "--as", "postcard"], "registered");
    assert!(err.contains("no process is registered as `e1`"), "{err}");

    // `stop` of a supervised child: terminated, and it stays stopped.
    let child_pid = child
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .unwrap()
        .to_string();
    let (code, out, err) = ctl(&rel, &["stop", &child_pid]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("terminated child `echo`"), "{out}");
    let (_, out, _) = ctl(&rel, &["status"]);
    assert!(out.contains("echo echo@"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("echo echo@") && l.contains("pid=-")),
        "{out}"
    );

    // A key the node does not know is refused.
    let other = dir.path().join("other.key");
    std::fs::write(&other, "11".repeat(32)).unwrap();
    let (code, _, err) = run(plasmoid()
        .args(["status", "--release"])
        .arg(&rel)
        .arg("--key")
        .arg(&other));
    assert_ne!(code, 0);
    assert!(err.contains("client key"), "{err}");

    // `stop` without a target stops the node in order.
    let (code, _, err) = ctl(&rel, &["stop"]);
    assert_eq!(code, 0, "{err}");
    let (code, log) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("refused a control connection"), "{log}");
}

#[test]
fn control_cli_reaches_across_three_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let rel = common::echo_mesh_release(
        dir.path(),
        "trio",
        &["a", "b", "c"],
        "strategy = \"one-for-one\"\nchildren = [{ id = \"far\", component = \"echo\", node = \"b\" }]",
    );
    let prefix = |n: &str| {
        std::fs::read_to_string(rel.join("nodes").join(n).join("id")).unwrap()[..8].to_string()
    };
    let node = |name: &str| Running::release_node(&rel, name);
    let mut b = node("b");
    let mut c = node("c");
    let mut a = node("a");
    for n in [&mut b, &mut c] {
        assert!(n.wait_for("node up", Duration::from_secs(60)), "{}", n.seen);
    }
    assert!(
        a.wait_for("release trio-1 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );

    // Status on the root node: the child lives on b, with b's version.
    let (code, out, err) = ctl(&rel, &["status"]);
    assert_eq!(code, 0, "{err}");
    let far = out
        .lines()
        .find(|l| l.trim_start().starts_with("far "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(far.contains("node=b"), "{far}");
    assert!(far.contains(&format!("pid={}.", prefix("b"))), "{far}");
    assert!(!far.contains("echo@?"), "version from node b: {far}");
    assert!(out.contains("peer b") && out.contains("peer c"), "{out}");
    assert!(!out.contains("not connected"), "{out}");

    // A named particle on b, called and messaged through a and c by name@node.
    let (code, _, err) = ctl(&rel, &["spawn", "echo", "--name", "e", "--node", "b"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = ctl(&rel, &["call", "e@b", "over the mesh", "--as", "postcard"]);
    assert_eq!((code, out.trim()), (0, "over the mesh"), "{err}");

    // Spawned from a onto c; its pid works from a.
    let (code, pid, err) = ctl(&rel, &["spawn", "echo", "--on", "c"]);
    assert_eq!(code, 0, "{err}");
    let pid = pid.trim().to_string();
    assert!(pid.starts_with(&prefix("c")), "{pid}");
    let (code, out, err) = ctl(&rel, &["call", &pid, "to c", "--as", "postcard"]);
    assert_eq!((code, out.trim()), (0, "to c"), "{err}");

    // A send from c to the name on b ends it.
    let (code, _, err) = ctl(&rel, &["send", "e@b", "stop", "--node", "c"]);
    assert_eq!(code, 0, "{err}");
    let err = until_error(&rel, &["call", "e@b", "x"], "registered");
    assert!(err.contains("no process is registered as `e@b`"), "{err}");

    for n in [a, b, c] {
        let (code, log) = n.terminate();
        assert_eq!(code, Some(0), "{log}");
    }
}

/// A real node refuses a peer it does not admit and closes the connection
/// of an admitted peer (`--allow`) that sends a malformed frame; it keeps
/// answering its clients throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_node_refuses_strangers_and_survives_malformed_frames() {
    let dir = tempfile::tempdir().unwrap();
    let rel = single_node_release(dir.path());
    let admitted = iroh::SecretKey::generate();
    let stranger = iroh::SecretKey::generate();
    let allow = plasmoid_mesh::node_id(&admitted).to_hex();
    let mut node = Running::start(
        plasmoid()
            .args(["release", "run"])
            .arg(&rel)
            .args(["--allow", &allow]),
    );
    let at = up_at(&mut node, &rel);
    let public = iroh::PublicKey::from_bytes(&at.id.0).unwrap();
    let target = iroh::EndpointAddr::new(public).with_ip_addr(at.addr);

    // A stranger's connection is closed before it can say anything.
    let ep = common::raw_endpoint(stranger).await;
    if let Ok(conn) = ep.connect(target.clone(), plasmoid_mesh::ALPN).await {
        let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        assert!(closed.is_ok(), "the stranger's connection is closed");
    }
    assert!(
        node.wait_for(
            "refused a connection from a node that is not allowed",
            Duration::from_secs(5)
        ),
        "{}",
        node.seen
    );

    // An admitted peer speaking garbage loses its connection, only that.
    let ep = common::raw_endpoint(admitted).await;
    let conn = ep.connect(target, plasmoid_mesh::ALPN).await.unwrap();
    let mut stream = conn.open_uni().await.unwrap();
    let mut garbage = 5u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 5]);
    stream.write_all(&garbage).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    assert!(closed.is_ok(), "the malformed connection is closed");
    assert!(
        node.wait_for("closing the connection", Duration::from_secs(5)),
        "{}",
        node.seen
    );
    let rel2 = rel.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || ctl(&rel2, &["status"]))
        .await
        .unwrap();
    assert_eq!(code, 0, "the node still answers: {err}");
    assert!(out.contains("echo echo@"), "{out}");
    let (code, log) = node.terminate();
    assert_eq!(code, Some(0), "{log}");
}

/// A peer admitted with `--allow` (static discovery: the node has no
/// address for it) that dials in is connected both ways: the node dials it
/// back, so the peer's `name@node` lookups are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_peer_that_dials_in_is_connected_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let rel = single_node_release(dir.path());
    let key = iroh::SecretKey::generate();
    let allow = plasmoid_mesh::node_id(&key).to_hex();
    let mut node = Running::start(
        plasmoid()
            .args(["release", "run"])
            .arg(&rel)
            .args(["--allow", &allow]),
    );
    let at = up_at(&mut node, &rel);
    let peer = plasmoid_runtime::Node::new(plasmoid_runtime::NodeConfig {
        max_particles: 8,
        node_id: Some(plasmoid_mesh::node_id(&key)),
        ..Default::default()
    })
    .unwrap();
    let cfg = plasmoid_mesh::MeshConfig::new("127.0.0.1:0".parse().unwrap(), vec![at.id]);
    let mesh = plasmoid_mesh::Mesh::start(peer.clone(), key, cfg)
        .await
        .unwrap();
    mesh.add_peer(at.id, at.addr);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !mesh.connected(at.id) {
        assert!(
            std::time::Instant::now() < deadline,
            "not connected both ways within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A lookup is a request and an answer: the answer comes back.
    let found = peer
        .whereis_on(at.id, "nobody-has-this-name", Duration::from_secs(5))
        .await;
    assert_eq!(found, Ok(None));
    mesh.close().await;
    let (code, log) = node.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("dialling it back"), "{log}");
}

/// A node restarted with the same key is a new incarnation: a pid of the
/// earlier one reaches nothing (`noproc`), even where the new incarnation
/// has a process with the same serial number.
#[test]
fn pids_of_an_earlier_incarnation_reach_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rel = single_node_release(dir.path());
    let boot = || {
        let mut node = Running::start(plasmoid().args(["release", "run"]).arg(&rel));
        assert!(
            node.wait_for("release ctl-1 is up", Duration::from_secs(60)),
            "{}",
            node.seen
        );
        node
    };
    let node = boot();
    let (code, old, err) = ctl(&rel, &["spawn", "echo"]);
    assert_eq!(code, 0, "{err}");
    let old = old.trim().to_string();
    let (code, log) = node.terminate();
    assert_eq!(code, Some(0), "{log}");

    let node = boot();
    let (code, new, err) = ctl(&rel, &["spawn", "echo"]);
    assert_eq!(code, 0, "{err}");
    let new = new.trim().to_string();
    // Same node, same serial (the same start-up makes the same number of
    // processes), another creation.
    let serial = |p: &str| p.rsplit('.').next().unwrap().to_string();
    let creation = |p: &str| p.split('.').nth(1).unwrap().to_string();
    assert_eq!(serial(&old), serial(&new), "{old} {new}");
    assert_ne!(creation(&old), creation(&new), "{old} {new}");
    let (code, out, _) = ctl(&rel, &["call", &new, "x", "--as", "postcard"]);
    assert_eq!((code, out.trim()), (0, "x"));
    let (code, _, err) = ctl(&rel, &["call", &old, "x", "--as", "postcard"]);
    assert_ne!(code, 0, "the old pid reached the new process");
    assert!(err.contains("noproc"), "{err}");
    let (code, log) = node.terminate();
    assert_eq!(code, Some(0), "{log}");
}
