//! HTTP from a real `plasmoid release run`: the manifest's routes to a
//! registered name, to a pool and to a stock wasi:http component, the
//! component's configuration, 256 keep-alive clients through a hot swap and
//! a handler that keeps crashing, and the shop's notifier posting to a
//! webhook the test serves.

mod common;
use common::web::{Client, once};
use common::{Running, plasmoid, run};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

fn build(dir: &Path, manifest: &str) -> PathBuf {
    let path = dir.join("prod.toml");
    let mut text = manifest.to_string();
    for name in [
        "web",
        "hello_http",
        "audit",
        "ledger",
        "notifier",
        "gateway",
    ] {
        let key = format!("{{{name}}}");
        if text.contains(&key) {
            text = text.replace(&key, &common::wasm(name).display().to_string());
        }
    }
    std::fs::write(&path, text).unwrap();
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&path));
    assert_eq!(code, 0, "{err}");
    PathBuf::from(out.trim())
}

/// `release run --http 127.0.0.1:0 [extra]` with `env`; the address it
/// serves.
fn up(rel: &Path, id: &str, extra: &[&str], env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let mut cmd = plasmoid();
    cmd.args(["release", "run", "--http", "127.0.0.1:0"])
        .args(extra)
        .arg(rel);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut node = Running::start(&mut cmd);
    assert!(
        node.wait_for(&format!("release {id} is up"), 120 * SEC),
        "{}",
        node.seen
    );
    let addr = common::web::listening_at(&rel.join("node"));
    (node, addr)
}

const SERVICE: &str = r#"
[release]
name = "svc"
version = "1"
[node]
max_particles = 64
[components.web]
wasm = "{web}"
env = { GREETING = "hi" }
env_from = ["WEB_SECRET"]
args = ["--mode", "test"]
[components.hello]
wasm = "{hello_http}"
env = { TONE = "calm" }
[supervisor]
strategy = "one-for-one"
max_restarts = 1000
max_seconds = 1
children = [{ id = "web", component = "web", init = { name = "web" } }, "webs"]
[supervisors.webs]
strategy = "simple-one-for-one"
max_restarts = 1000
max_seconds = 1
instances = 4
children = ["web"]
[http]
routes = [
  { path = "/hello", methods = ["GET"], to = "web" },
  { path = "/env", to = "web" },
  { path = "/args", to = "web" },
  { path = "/pool/*", pool = "webs" },
  { path = "/stock/*", component = "hello" },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_serves_its_routes_from_a_name_and_a_pool_with_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let rel = build(dir.path(), SERVICE);
    let (node, addr) = up(&rel, "svc-1", &[], &[("WEB_SECRET", "s3cret-value")]);
    let r = once(addr, "GET", "/hello", b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    // Round-robin over the pool's 4 instances.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let r = once(addr, "GET", "/pool/hello", b"").await;
        assert_eq!(r.status, 200, "{r:?}");
        seen.insert(r.body);
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        once(addr, "GET", "/env?name=GREETING", b"").await.body,
        "hi"
    );
    assert_eq!(
        once(addr, "GET", "/env?name=WEB_SECRET", b"").await.body,
        "s3cret-value"
    );
    let args = once(addr, "GET", "/args", b"").await.body;
    assert_eq!(args, r#"["web","--mode","test"]"#);
    // A stock wasi:http component, one instance per request, configured too.
    let r = once(addr, "GET", "/stock/x", b"").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "hello from wasi:http at /stock/x")
    );
    let r = once(addr, "GET", "/stock/env?name=TONE", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "calm"));
    node.terminate();
    // The operator's secret is never written into the release folder.
    for entry in walk(&rel) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("s3cret-value"),
            "{} holds the secret",
            entry.display()
        );
    }
    // Without it the release does not start, and says what is missing.
    let mut cmd = plasmoid();
    cmd.args(["release", "run", "--http", "127.0.0.1:0"])
        .arg(&rel)
        .env_remove("WEB_SECRET");
    let (code, _, err) = run(&mut cmd);
    assert_ne!(code, 0);
    assert!(err.contains("WEB_SECRET is not set"), "{err}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

const FLAKY: &str = r#"
[release]
name = "flaky"
version = "1"
[node]
max_particles = 64
[components.web]
wasm = "{web}"
[supervisor]
strategy = "one-for-one"
max_restarts = 100000
max_seconds = 1
children = [{ id = "web", component = "web", init = { name = "web", crash_every = 100 } }]
[http]
routes = [{ path = "/*", to = "web" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_one_of_256_clients_gets_answers_through_a_hot_swap_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let rel = build(dir.path(), FLAKY);
    // No probation: the new version crashes on every 100th request too,
    // which would (rightly) roll it back within a probation window.
    let (node, addr) = up(&rel, "flaky-1", &["--probation", "0"], &[]);
    assert_eq!(once(addr, "GET", "/version", b"").await.body, "1");
    const CLIENTS: usize = 256;
    const EACH: usize = 20;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let done = std::sync::Arc::new(AtomicUsize::new(0));
    let swapped = std::sync::Arc::new(AtomicBool::new(false));
    // Each client alternates /flaky (a crash every 100th) and /version,
    // and keeps going until the new version answered someone.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (done, swapped) = (done.clone(), swapped.clone());
            tokio::spawn(async move {
                let (mut statuses, mut versions) = (Vec::new(), Vec::new());
                let mut c = Client::connect(addr).await?;
                for i in 0..10_000 {
                    let path = if i % 2 == 0 { "/flaky" } else { "/version" };
                    let r = c.request("GET", path, b"", 60 * SEC).await?;
                    statuses.push(r.status);
                    if path == "/version" && r.status == 200 {
                        if r.body == "2" {
                            swapped.store(true, Ordering::Relaxed);
                        }
                        versions.push(r.body);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    if i >= EACH && swapped.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Ok::<_, String>((statuses, versions))
            })
        })
        .collect();
    // Swap in the middle of the load.
    let deadline = Instant::now() + 120 * SEC;
    while done.load(Ordering::Relaxed) < CLIENTS * EACH / 3 {
        assert!(Instant::now() < deadline, "the load does not progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live = rel.join("components/web.wasm");
    let part = rel.join("components/web.wasm.part");
    std::fs::copy(common::wasm("web_v2"), &part).unwrap();
    std::fs::rename(&part, &live).unwrap();
    let (mut all, mut versions) = (Vec::new(), Vec::new());
    for c in clients {
        match c.await.unwrap() {
            Ok((statuses, seen)) => {
                all.extend(statuses);
                versions.extend(seen);
            }
            Err(e) => panic!("a client lost a request: {e}"),
        }
    }
    let count = |s: u16| all.iter().filter(|x| **x == s).count();
    let (ok, crashed, unavailable) = (count(200), count(500), count(503));
    eprintln!(
        "{} requests: {ok} × 200, {crashed} × 500, {unavailable} × 503",
        all.len()
    );
    assert_eq!(ok + crashed + unavailable, all.len(), "only 200/500/503");
    // One 500 per crash: the request it crashed on (requests still queued
    // go to the restarted handler).
    let flaky = all.len().div_ceil(2);
    assert!(
        crashed >= 1 && crashed <= flaky / 100 + 2,
        "{crashed} × 500 for {flaky} /flaky"
    );
    assert!(
        ok * 100 >= all.len() * 95,
        "{ok} of {} succeeded",
        all.len()
    );
    assert!(versions.iter().any(|v| v == "1") && versions.iter().any(|v| v == "2"));
    // After the swap every answer is the new version's.
    assert_eq!(once(addr, "GET", "/version", b"").await.body, "2");
    node.terminate();
}

/// A webhook receiver on 127.0.0.1: answers 204 and keeps each body.
async fn receiver() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use http_body_util::BodyExt;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            keep.lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            let mut r =
                                hyper::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                            *r.status_mut() = hyper::StatusCode::NO_CONTENT;
                            Ok::<_, hyper::Error>(r)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(s);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_posts_to_a_webhook_its_policy_allows_and_not_to_another() {
    webhooks("wasm = \"{notifier}\"").await;
}

/// The demo's notifier, in JavaScript: `fetch` in an async handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_notifier_fetches_a_webhook_its_policy_allows_and_not_another() {
    let app = common::repo().join("apps/demo/notifier/app.js");
    webhooks(&format!("js = \"{}\"", app.display())).await;
}

/// The webhook test, with the notifier component given by `notifier`.
async fn webhooks(notifier: &str) {
    let (allowed, got) = receiver().await;
    let (other, other_got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    let shop =
        std::fs::read_to_string(common::repo().join("apps/demo/policies/shop.cedar")).unwrap();
    std::fs::write(
        dir.path().join("policies/shop.cedar"),
        format!("{shop}\npermit (principal == Particle::\"notifier\", action == Action::\"connect\", resource == Host::\"{allowed}\");\n"),
    )
    .unwrap();
    let manifest = format!(
        r#"
[release]
name = "hooked"
version = "1"
policies = "policies"
[components.audit]
wasm = "{{audit}}"
[components.ledger]
wasm = "{{ledger}}"
depends = ["audit"]
[components.notifier]
{notifier}
depends = ["ledger"]
[components.gateway]
wasm = "{{gateway}}"
depends = ["ledger"]
[supervisor]
strategy = "one-for-one"
children = ["audit", "ledger",
  {{ id = "notifier", component = "notifier", init = {{ webhook = "http://{allowed}/hook" }} }},
  {{ id = "stray", component = "notifier", init = {{ webhook = "http://{other}/hook" }} }},
  {{ component = "gateway", init = {{ region = "eu", interval_ms = 50 }} }}]
"#
    );
    let rel = build(dir.path(), &manifest);
    let mut node = Running::start(plasmoid().args(["release", "run"]).arg(&rel));
    assert!(
        node.wait_for("release hooked-1 is up", 120 * SEC),
        "{}",
        node.seen
    );
    let deadline = Instant::now() + 30 * SEC;
    while got.lock().unwrap().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the webhook got {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first: serde_json::Value = serde_json::from_str(&got.lock().unwrap()[0]).unwrap();
    assert!(
        first["order"].is_u64() && first["to"].is_string(),
        "{first}"
    );
    let (_, log) = node.terminate();
    assert!(
        other_got.lock().unwrap().is_empty(),
        "a denied host was posted to"
    );
    assert!(
        log.contains(&format!("outgoing HTTP to {other} denied by policy")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_preopen_folders_of_the_data_folder_and_nothing_escapes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("files/conf")).unwrap();
    std::fs::write(data.join("files/conf/motd"), "hello").unwrap();
    let manifest = |files: &str| {
        format!(
            "[release]\nname = \"files\"\nversion = \"1\"\n[node]\nmax_particles = 16\n\
             [components.web]\nwasm = \"{{web}}\"\nfiles = {{ {files} }}\n\
             [supervisor]\nstrategy = \"one-for-one\"\n\
             children = [{{ id = \"web\", component = \"web\", init = {{ name = \"web\" }} }}]\n\
             [http]\nroutes = [{{ path = \"/file\", to = \"web\" }}]\n"
        )
    };
    let rel = build(
        dir.path(),
        &manifest(r#""/data" = "web", "/conf" = { path = "conf", read_only = true }"#),
    );
    let (node, addr) = up(&rel, "files-1", &["--data", data.to_str().unwrap()], &[]);
    let r = once(addr, "PUT", "/file?path=/data/note", b"kept").await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(data.join("files/web/note")).unwrap(),
        "kept"
    );
    let r = once(addr, "GET", "/file?path=/conf/motd", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello"));
    let r = once(addr, "PUT", "/file?path=/conf/motd", b"changed").await;
    assert_eq!(r.status, 500, "a read-only folder: {r:?}");
    assert_eq!(
        std::fs::read_to_string(data.join("files/conf/motd")).unwrap(),
        "hello"
    );
    // Outside the preopened folders there is nothing.
    let r = once(addr, "GET", "/file?path=/etc/passwd", b"").await;
    assert_eq!(r.status, 404, "{r:?}");
    node.terminate();

    // `..` is refused when the manifest is read, with where and what to write.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let path = bad.join("prod.toml");
    std::fs::write(
        &path,
        manifest(r#""/data" = "../../etc""#)
            .replace("{web}", &common::wasm("web").display().to_string()),
    )
    .unwrap();
    let (code, _, err) = run(plasmoid().args(["release", "build"]).arg(&path));
    assert_ne!(code, 0);
    assert!(
        err.contains("prod.toml:8:21:") && err.contains("leaves the release's data folder"),
        "{err}"
    );

    // A symlink out of the data folder is refused when the node runs.
    let outside = tempfile::tempdir().unwrap();
    std::fs::remove_dir_all(data.join("files/web")).unwrap();
    std::os::unix::fs::symlink(outside.path(), data.join("files/web")).unwrap();
    let mut cmd = plasmoid();
    cmd.args(["release", "run", "--http", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg(&rel);
    let (code, _, err) = run(&mut cmd);
    assert_ne!(code, 0);
    assert!(err.contains("refused"), "{err}");
    // Nor may a folder be the nodes' stores: "." names nothing to preopen,
    // and an absolute path onto the data folder is refused at start.
    std::fs::remove_file(data.join("files/web")).unwrap();
    std::fs::create_dir_all(dir.path().join("onto")).unwrap();
    let onto = build(
        &dir.path().join("onto"),
        &manifest(&format!(r#""/data" = "{}""#, data.join("node").display())),
    );
    let mut cmd = plasmoid();
    cmd.args(["release", "run", "--http", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg(&onto);
    let (code, _, err) = run(&mut cmd);
    assert_ne!(code, 0);
    assert!(err.contains("onto the nodes' stores"), "{err}");
}
