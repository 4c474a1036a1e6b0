//! A release across three real `plasmoid` processes on 127.0.0.1: the root
//! supervisor on node a places a child and a nested supervisor on b (or
//! else c); `kill -9` of b makes the supervisor see `noconnection` and
//! start the child, and the subtree whole, on c.

mod common;
use common::{Running, plasmoid, run};
use std::time::{Duration, Instant};

#[test]
fn a_child_on_a_killed_node_is_restarted_on_the_next_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let rel = common::echo_mesh_release(
        dir.path(),
        "mesh",
        &["a", "b", "c"],
        "strategy = \"one-for-one\"\nmax_restarts = 3\nmax_seconds = 10\n\
         children = [{ id = \"far\", component = \"echo\", node = [\"b\", \"c\"] }, \"edge\"]\n\
         [supervisors.edge]\nstrategy = \"one-for-all\"\nnode = [\"b\", \"c\"]\n\
         children = [{ id = \"e1\", component = \"echo\" }, { id = \"e2\", component = \"echo\" }]",
    );
    let prefix = |n: &str| {
        std::fs::read_to_string(rel.join("nodes").join(n).join("id")).unwrap()[..8].to_string()
    };
    let (b_id, c_id) = (prefix("b"), prefix("c"));

    let node = |name: &str| Running::release_node(&rel, name);
    let mut b = node("b");
    let mut c = node("c");
    assert!(b.wait_for("node up", Duration::from_secs(60)), "{}", b.seen);
    assert!(c.wait_for("node up", Duration::from_secs(60)), "{}", c.seen);
    let mut a = node("a");
    assert!(
        a.wait_for("release mesh-1 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    let first = a
        .seen
        .lines()
        .find(|l| l.contains("child started") && l.contains("child=far"))
        .unwrap_or_default()
        .to_string();
    assert!(
        first.contains(&format!("pid={b_id}.")),
        "placed on b first: {first}\n{}",
        a.seen
    );

    // The nested supervisor and its children run on b; a lists them.
    assert_eq!(edge_on(&rel), ("b".to_string(), vec!["b".to_string(); 2]));

    let killed = Instant::now();
    b.kill();
    let restarted = |seen: &str, id: &str| {
        seen.lines()
            .find(|l| l.contains("child restarted") && l.contains(&format!("child={id} ")))
            .map(str::to_string)
    };
    while restarted(&a.seen, "far").is_none() || restarted(&a.seen, "edge").is_none() {
        assert!(
            a.wait_for("child restarted", Duration::from_secs(10)),
            "{}",
            a.seen
        );
    }
    let took = killed.elapsed();
    let line = restarted(&a.seen, "far").unwrap_or_default();
    assert!(line.contains("reason=noconnection"), "{line}");
    assert!(
        line.contains(&format!("new_pid={c_id}.")),
        "restarted on c: {line}"
    );
    assert!(
        took < Duration::from_secs(2),
        "running again {took:?} after kill -9"
    );
    // The subtree moved to c whole.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = edge_on(&rel);
        if now == ("c".to_string(), vec!["c".to_string(); 2]) {
            break;
        }
        assert!(Instant::now() < deadline, "edge not on c: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (code, log) = a.terminate();
    assert_eq!(code, Some(0), "{log}");
    let (code, log) = c.terminate();
    assert_eq!(code, Some(0), "{log}");
}

/// Where `plasmoid status` on a shows the nested supervisor `edge` and its
/// children (node names).
fn edge_on(rel: &std::path::Path) -> (String, Vec<String>) {
    let (code, out, err) = run(plasmoid()
        .args(["status", "--json", "--node", "a", "--release"])
        .arg(rel));
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("status is JSON");
    let Some(edge) = s["tree"]["children"]
        .as_array()
        .and_then(|c| c.iter().find(|r| r["id"] == "edge"))
    else {
        return (String::new(), Vec::new());
    };
    let name = |v: &serde_json::Value| v["node"].as_str().unwrap_or_default().to_string();
    let kids = edge["children"]
        .as_array()
        .map(|c| c.iter().map(name).collect())
        .unwrap_or_default();
    (name(edge), kids)
}

/// `--discovery mdns`: the manifest gives no usable addresses (port 0);
/// the two nodes find each other on the local network by mDNS.
#[test]
fn nodes_find_each_other_by_mdns_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("prod.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"
[release]
name = "mdns"
version = "1"
[node]
max_particles = 32
[nodes]
a = {{ listen = "127.0.0.1:0" }}
b = {{ listen = "127.0.0.1:0" }}
[components.echo]
wasm = "{echo}"
[supervisor]
strategy = "one-for-one"
children = [{{ id = "far", component = "echo", node = "b" }}]
"#,
            echo = common::wasm("echo").display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = std::path::PathBuf::from(out.trim());
    let b_id = std::fs::read_to_string(rel.join("nodes/b/id")).unwrap()[..8].to_string();
    let node = |name: &str| {
        Running::start(plasmoid().args(["release", "run"]).arg(&rel).args([
            "--node",
            name,
            "--discovery",
            "mdns",
        ]))
    };
    let b = node("b");
    let mut a = node("a");
    assert!(
        a.wait_for("release mdns-1 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    let started = a
        .seen
        .lines()
        .find(|l| l.contains("child started") && l.contains("child=far"))
        .unwrap_or_default()
        .to_string();
    assert!(started.contains(&format!("pid={b_id}.")), "{}", a.seen);
    let (code, log) = a.terminate();
    assert_eq!(code, Some(0), "{log}");
    let (code, log) = b.terminate();
    assert_eq!(code, Some(0), "{log}");
}

/// A route on node a's listener to `web@b`: the request crosses the mesh to
/// the particle registered on b and its answer comes back; once b is gone
/// the route answers 503 at once instead of hanging.
#[test]
fn a_route_to_a_name_on_another_node_crosses_the_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let ports = (common::free_udp_port(), common::free_udp_port());
    let manifest = dir.path().join("prod.toml");
    std::fs::write(
        &manifest,
        format!(
            "[release]\nname = \"far\"\nversion = \"1\"\n[node]\nmax_particles = 64\n\
             [nodes]\na = {{ listen = \"127.0.0.1:{}\" }}\nb = {{ listen = \"127.0.0.1:{}\" }}\n\
             [components.web]\nwasm = \"{}\"\n\
             [supervisor]\nstrategy = \"one-for-one\"\n\
             children = [{{ id = \"web\", component = \"web\", init = {{ name = \"web\" }}, node = [\"b\", \"a\"] }}]\n\
             [http]\nroutes = [{{ path = \"/far/*\", to = \"web@b\", timeout_ms = 5000 }},\n\
               {{ path = \"/here/*\", to = \"web@a\" }}]\n",
            ports.0,
            ports.1,
            common::wasm("web").display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = std::path::PathBuf::from(out.trim());
    let b_id = std::fs::read_to_string(rel.join("nodes/b/id")).unwrap()[..8].to_string();
    let mut b = Running::start(
        plasmoid()
            .args(["release", "run"])
            .arg(&rel)
            .args(["--node", "b"]),
    );
    assert!(b.wait_for("node up", Duration::from_secs(60)), "{}", b.seen);
    let mut a = Running::start(
        plasmoid()
            .args(["release", "run", "--http", "127.0.0.1:0"])
            .arg(&rel)
            .args(["--node", "a"]),
    );
    assert!(
        a.wait_for("release far-1 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    let addr = common::web::listening_at(&rel.join("nodes/a"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = common::web::once(addr, "GET", "/far/hello", b"").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains(&b_id), "answered on b ({b_id}): {}", r.body);
        let r = common::web::once(addr, "POST", "/far/echo", b"across").await;
        assert_eq!((r.status, r.body.as_str()), (200, "across"));
    });
    b.kill();
    rt.block_on(async {
        let t = Instant::now();
        let r = common::web::once(addr, "GET", "/far/hello", b"").await;
        assert_eq!(r.status, 503, "{r:?}");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t.elapsed()
        );
    });
    let (code, log) = a.terminate();
    assert_eq!(code, Some(0), "{log}");
}

/// `[store] backend = "redis://…"`: a child on node b writes, b is
/// `kill -9`ed, its supervisor restarts it on c, and it reads what it
/// wrote (one real redis-server for the release).
#[test]
fn a_child_failed_over_to_another_node_finds_its_data_in_redis() {
    let redis = common::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = || common::free_udp_port();
    let manifest = dir.path().join("prod.toml");
    std::fs::write(
        &manifest,
        format!(
            "[release]\nname = \"kept\"\nversion = \"1\"\n[node]\nmax_particles = 64\n\
             [nodes]\na = {{ listen = \"127.0.0.1:{}\" }}\nb = {{ listen = \"127.0.0.1:{}\" }}\n\
             c = {{ listen = \"127.0.0.1:{}\" }}\n\
             [store]\nbackend = \"{}\"\n\
             [components.web]\nwasm = \"{}\"\n\
             [supervisor]\nstrategy = \"one-for-one\"\nmax_restarts = 3\nmax_seconds = 10\n\
             children = [{{ id = \"web\", component = \"web\", init = {{ name = \"web\" }}, node = [\"b\", \"c\"] }}]\n\
             [http]\nroutes = [{{ path = \"/b/*\", to = \"web@b\" }}, {{ path = \"/c/*\", to = \"web@c\" }}]\n",
            port(),
            port(),
            port(),
            redis.url(),
            common::wasm("web").display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = std::path::PathBuf::from(out.trim());
    let node = |name: &str, http: bool| {
        let mut c = plasmoid();
        c.args(["release", "run"]);
        if http {
            c.args(["--http", "127.0.0.1:0"]);
        }
        Running::start(c.arg(&rel).args(["--node", name]))
    };
    let mut b = node("b", false);
    let c = node("c", false);
    let mut a = node("a", true);
    assert!(
        a.wait_for("release kept-1 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    let addr = common::web::listening_at(&rel.join("nodes/a"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = common::web::once(addr, "PUT", "/b/kv?key=note", b"written on b").await;
        assert_eq!(r.status, 204, "{r:?}");
    });
    b.kill();
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let r = common::web::once(addr, "GET", "/c/kv?key=note", b"").await;
            if r.status == 200 {
                assert_eq!(r.body, "written on b");
                break;
            }
            assert!(Instant::now() < until, "never read on c: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (code, log) = a.terminate();
    assert_eq!(code, Some(0), "{log}");
    c.terminate();
}
