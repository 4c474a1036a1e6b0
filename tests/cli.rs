//! End-to-end: the real `plasmoid` binary, as a user runs it.

mod common;
use common::{plasmoid, run};

#[test]
fn start_runs_the_ring_demo_from_its_crate_folder() {
    let (code, _, err) = run(plasmoid().args([
        "start",
        "apps/ring",
        "--init",
        r#"{"orchestrator":{"procs":50,"msgs":20}}"#,
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ring: 50 procs x 20 msgs"), "{err}");
    assert!(err.contains("particle exited normally"), "{err}");
}

#[test]
fn start_exits_non_zero_with_the_reason_when_the_particle_fails() {
    let wat = common::wat_particle();
    let (code, _, err) = run(plasmoid().arg("start").arg(&wat));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exited: shutdown(from-wat)"), "{err}");
    assert!(
        err.contains("hello from a hand-written WAT particle"),
        "{err}"
    );
}

#[test]
fn start_refuses_a_garbage_wasm_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("plasmoid-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, b"not wasm at all").unwrap();
    let (code, _, err) = run(plasmoid().arg("start").arg(&bad));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`bad` is not a valid WebAssembly component"),
        "{err}"
    );
}

#[test]
fn json_logs_and_rust_log_are_respected() {
    let wat = common::wat_particle();
    let (_, _, err) = run(plasmoid()
        .env("RUST_LOG", "warn")
        .args(["--log-format", "json", "start"])
        .arg(&wat));
    // The info line from the particle is filtered out by RUST_LOG=warn ...
    assert!(
        !err.contains("hello from a hand-written WAT particle"),
        "{err}"
    );
    let (_, _, err) = run(plasmoid().args(["--log-format", "json", "start"]).arg(&wat));
    // ... and shown as a JSON object otherwise.
    let line = err
        .lines()
        .find(|l| l.contains("hello from a hand-written WAT particle"))
        .expect("log line");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["level"], "INFO");
}

#[test]
fn bench_prints_one_json_object_per_figure() {
    let ring = common::wasm("ring");
    let (code, out, err) = run(plasmoid()
        .args(["bench", "--runs", "1", "--wasm"])
        .arg(&ring)
        .args(["ring", "--procs", "10", "--msgs", "10"]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Hop and throughput counting on, the hop with it off, and their ratio.
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0]["name"], "ring.hop");
    assert_eq!(lines[2]["params"]["metrics"], false);
    assert_eq!(lines[3]["name"], "ring.metrics_cost");
    assert!(lines[3]["value"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[0]["unit"], "ns");
    assert!(lines[0]["value"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[0]["params"]["hops"], 100);
    let (code, out, err) = run(plasmoid()
        .args(["bench", "--runs", "1", "--wasm"])
        .arg(&ring)
        .args(["spawn", "--count", "100"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"spawn.time\"") && out.contains("\"spawn.idle_pss\""),
        "{out}"
    );
    let (code, out, err) = run(plasmoid()
        .args(["bench", "--runs", "1", "--wasm"])
        .arg(&ring)
        .args(["call", "--iters", "1000"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"call.send_recv\""), "{out}");
}

#[test]
fn new_app_is_a_release_and_new_components_run() {
    let base = std::env::temp_dir().join(format!("plasmoid-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let (code, _, err) = run(plasmoid().current_dir(&base).args(["new", "shop"]));
    assert_eq!(code, 0, "{err}");
    let app = base.join("shop");
    assert!(app.join("prod.toml").is_file());
    let (code, _, err) = run(plasmoid()
        .current_dir(&app)
        .args(["component", "new", "greeter"]));
    assert_eq!(code, 0, "{err}");
    let manifest = std::fs::read_to_string(app.join("prod.toml")).unwrap();
    assert!(manifest.contains("[components.greeter]"), "{manifest}");
    // Share the guest target dir of the checkout so the SDK is not rebuilt.
    let guest_target = common::repo().join("apps/target");
    let mut release = common::Running::start(
        plasmoid()
            .current_dir(&app)
            .env("PLASMOID_GUEST_TARGET_DIR", &guest_target)
            .args(["release", "run"]),
    );
    assert!(
        release.wait_for("hello from shop", std::time::Duration::from_secs(300)),
        "{}",
        release.seen
    );
    let (code, log) = release.terminate();
    assert_eq!(code, Some(0), "{log}");
    let mut greeter = common::Running::start(
        plasmoid()
            .current_dir(&app)
            .env("PLASMOID_GUEST_TARGET_DIR", &guest_target)
            .args([
                "start",
                "components/greeter",
                "--init",
                r#"{"greeting":"hej"}"#,
            ]),
    );
    assert!(
        greeter.wait_for("hej from greeter", std::time::Duration::from_secs(300)),
        "{}",
        greeter.seen
    );
    let (code, log) = greeter.terminate();
    assert_eq!(code, Some(0), "{log}");
    let _ = std::fs::remove_dir_all(&base);
}

fn write_tree(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("plasmoid-tree-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_root_supervisor_that_gives_up_exits_non_zero_with_the_reason() {
    // A permanent child that ends at once is restarted until the root's
    // intensity (2 in 5 s) is exceeded.
    let tree = write_tree(
        "giveup.toml",
        r#"
[supervisor]
strategy = "one-for-one"
max_restarts = 2
max_seconds = 5
children = [
  { id = "steady", component = "echo" },
  { id = "flaky", component = "ring", init = { orchestrator = { procs = 2, msgs = 1 } } },
]
"#,
    );
    let (code, _, err) = run(plasmoid()
        .arg("start")
        .arg(common::wasm("echo"))
        .arg(common::wasm("ring"))
        .arg("--tree")
        .arg(&tree));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the root supervisor gave up (shutdown)"),
        "{err}"
    );
    assert_eq!(err.matches("child restarted").count(), 2, "{err}");
    assert!(err.contains("reached max restart intensity"), "{err}");
    // Orderly: the remaining child was stopped before the exit.
    assert!(
        err.contains("stopping child") && err.contains("child=steady"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_a_tree_in_reverse_start_order() {
    let tree = write_tree(
        "tree.toml",
        r#"
[supervisor]
strategy = "one-for-one"
children = [{ id = "first", component = "echo" }, "pool"]

[supervisors.pool]
strategy = "rest-for-one"
children = [{ id = "second", component = "counter" }, { id = "third", component = "echo" }]
"#,
    );
    let mut child = plasmoid()
        .arg("start")
        .arg(common::wasm("echo"))
        .arg(common::wasm("counter"))
        .arg("--tree")
        .arg(&tree)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (up_tx, up_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("supervision tree started") {
                let _ = up_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Wait for the tree to be up (signal handlers installed), then stop it.
    up_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the tree starts");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("supervision tree started"), "{err}");
    let order: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("stopping child"))
        .filter_map(|l| l.split("child=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(order, ["pool", "third", "second", "first"], "{err}");
}

#[test]
fn start_serves_http_routes_to_a_registered_particle() {
    let mut node = common::Running::start(
        plasmoid()
            .arg("start")
            .arg(common::wasm("web"))
            .args(["--name", "web", "--http", "127.0.0.1:0"])
            .args(["--route", "/hello=web", "--route", "/api/*=web"]),
    );
    assert!(
        node.wait_for("HTTP on http://", std::time::Duration::from_secs(60)),
        "{}",
        node.seen
    );
    let addr = common::web::logged_address(&node.seen);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = common::web::once(addr, "GET", "/hello", b"").await;
        assert_eq!(r.status, 200, "{r:?}");
        let r = common::web::once(addr, "POST", "/api/echo", b"hi").await;
        assert_eq!((r.status, r.body.as_str()), (200, "hi"));
        let r = common::web::once(addr, "GET", "/other", b"").await;
        assert_eq!(r.status, 404, "{r:?}");
    });
    let (code, _) = node.terminate();
    assert_eq!(code, Some(0));
    // A route without `=` is refused with what to write.
    let (code, _, err) = run(plasmoid().arg("start").arg(common::wasm("web")).args([
        "--http",
        "127.0.0.1:0",
        "--route",
        "/hello",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("write PATH=NAME"), "{err}");
}

#[test]
fn start_serves_a_stock_wasi_http_component_on_every_path() {
    let mut node = common::Running::start(
        plasmoid()
            .arg("start")
            .arg(common::wasm("hello_http"))
            .args(["--http", "127.0.0.1:0"]),
    );
    assert!(
        node.wait_for("HTTP on http://", std::time::Duration::from_secs(60)),
        "{}",
        node.seen
    );
    let addr = common::web::logged_address(&node.seen);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = common::web::once(addr, "GET", "/any/where", b"").await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "hello from wasi:http at /any/where")
        );
    });
    let (code, _) = node.terminate();
    assert_eq!(code, Some(0));
    // Without --http it says how to serve it, instead of spawning it.
    let (code, _, err) = run(plasmoid().arg("start").arg(common::wasm("hello_http")));
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("serve it with --http"), "{err}");
}
