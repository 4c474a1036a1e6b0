//! Python and JavaScript particles in a node: built from apps/py/pyapp and
//! apps/js/jsapp with the toolchains the build provisions (componentize-py;
//! componentize-js for StarlingMonkey and QuickJS), real components in real
//! wasmtime. They are called from Rust particles and call them, crash with
//! their traceback in the exit reason, a thousand Python ones live at once,
//! and a pool that is full refuses with a spawn error instead of a
//! crashing pid.

mod common;

use common::{Harness, repo};
use plasmoid_release::toolchain::JsEngine;
use plasmoid_runtime::{ExitReason, NodeConfig, SpawnOpts, footprint::Footprint};
use serde_json::json;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
enum Lang {
    Python,
    Js(JsEngine),
}

const LANGS: [Lang; 3] = [
    Lang::Python,
    Lang::Js(JsEngine::StarlingMonkey),
    Lang::Js(JsEngine::QuickJs),
];

/// The test app of `lang`, built once per test binary (a componentize run
/// takes ~15 s, and nothing when the build cache has it).
fn app(lang: Lang) -> PathBuf {
    static BUILT: [OnceLock<PathBuf>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let (slot, build): (usize, Box<dyn Fn() -> PathBuf>) = match lang {
        Lang::Python => (
            0,
            Box::new(|| {
                let app = repo().join("apps/py/pyapp/app.py");
                plasmoid_release::toolchain::build_python("pyapp", &app).expect("pyapp builds")
            }),
        ),
        Lang::Js(engine) => (
            if engine == JsEngine::StarlingMonkey {
                1
            } else {
                2
            },
            Box::new(move || {
                let app = repo().join("apps/js/jsapp/app.js");
                plasmoid_release::toolchain::build_js("jsapp", &app, engine).expect("jsapp builds")
            }),
        ),
    };
    BUILT[slot].get_or_init(build).clone()
}

/// A harness with `lang`'s app loaded as `app`.
fn harness_with(cfg: NodeConfig, lang: Lang) -> Harness {
    let h = Harness::with(cfg, None);
    h.node.load_component("app", &app(lang), None).unwrap();
    h
}

fn harness(cfg: NodeConfig) -> Harness {
    harness_with(cfg, Lang::Python)
}

/// counter-proto's requests, in postcard.
const GET: &[u8] = &[0];
fn add(n: u8) -> Vec<u8> {
    vec![2, n]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_js_and_rust_gen_servers_call_each_other() {
    for lang in LANGS {
        calls_both_ways(lang).await;
    }
}

async fn calls_both_ways(lang: Lang) {
    let h = harness_with(common::config(), lang);
    // Rust (the node's native process) calls a Python counter.
    let py = h
        .node
        .spawn(
            "app",
            &json!({"role": "counter", "start": 5}).to_string(),
            SpawnOpts::default(),
        )
        .unwrap();
    let reply = h.ctl.call(py, add(3), Duration::from_secs(10)).await;
    assert_eq!(
        reply.unwrap(),
        vec![8],
        "{lang:?}: 5 + 3, as a postcard u64"
    );

    // A Rust particle (the probe, through the Rust SDK's `call`) calls a
    // Python echo server.
    let echo = h
        .node
        .spawn("app", "\"echo\"", SpawnOpts::default())
        .unwrap();
    let probe = h.probe().await;
    let got = h
        .ok(
            probe,
            json!({"call": {"to": echo.to_string(), "data": "from rust", "timeout_ms": 10_000}}),
        )
        .await;
    assert_eq!(got, "from rust", "{lang:?}");

    // A Python particle calls a Rust counter (apps/counter) by name.
    h.node
        .spawn(
            "counter",
            "40",
            SpawnOpts {
                name: Some("rust-counter".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let relay = h
        .node
        .spawn(
            "app",
            &json!({"role": "relay", "to": "rust-counter"}).to_string(),
            SpawnOpts::default(),
        )
        .unwrap();
    let reply = h.ctl.call(relay, add(2), Duration::from_secs(10)).await;
    assert_eq!(
        reply.unwrap(),
        vec![42],
        "{lang:?}: 40 + 2 from the Rust counter"
    );
    let reply = h
        .ctl
        .call(relay, GET.to_vec(), Duration::from_secs(10))
        .await;
    assert_eq!(reply.unwrap(), vec![42]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncaught_exception_is_the_exit_reason_with_its_traceback() {
    for lang in LANGS {
        crash_reason(lang).await;
    }
}

async fn crash_reason(lang: Lang) {
    let h = harness_with(common::config(), lang);
    let (py, reference) = h
        .ctl
        .spawn_monitor(
            "app",
            &json!({"role": "counter", "start": 7}).to_string(),
            SpawnOpts::default(),
        )
        .unwrap();
    assert_eq!(
        h.ctl
            .call(py, GET.to_vec(), Duration::from_secs(10))
            .await
            .unwrap(),
        vec![7]
    );
    h.ctl.send(py, b"crash".to_vec()).unwrap();
    let reason = h
        .down_reason(reference, Duration::from_secs(10))
        .await
        .expect("a DOWN");
    let ExitReason::Exception(text) = reason else {
        panic!("{lang:?}: not an exception: {reason}")
    };
    match lang {
        Lang::Python => {
            assert!(
                text.starts_with("Traceback (most recent call last)"),
                "{text}"
            );
            assert!(text.contains("in handle_info"), "{text}");
            assert!(text.contains("ZeroDivisionError"), "{text}");
        }
        Lang::Js(_) => {
            assert!(
                text.starts_with("TypeError: cannot count past 7"),
                "{lang:?}: {text}"
            );
            assert!(
                text.contains("handleInfo"),
                "{lang:?}: the stack names the handler: {text}"
            );
        }
    }
    // No doubled prefixes from any layer.
    assert!(!text.contains("wasm trap: wasm trap"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_particles_keep_state_in_the_store() {
    for lang in LANGS {
        stored(lang).await;
    }
}

/// The SDKs' `store`: compare-and-swap, the atomic counter, batches and
/// key listing on the embedded backend, in bytes a Rust particle reads.
async fn stored(lang: Lang) {
    use plasmoid_runtime::kv::{KvOp, KvReply, KvStore};
    const INCREMENT: &[u8] = &[1];
    const VERSION: &[u8] = &[3];
    let dir = tempfile::tempdir().unwrap();
    let h = harness_with(common::config(), lang);
    let store =
        std::sync::Arc::new(plasmoid_store::Embedded::open(&dir.path().join("s.redb")).unwrap());
    h.node.set_store(store.clone());
    let init = json!({"role": "stored"}).to_string();
    let call = |pid, req: &[u8]| h.ctl.call(pid, req.to_vec(), Duration::from_secs(10));
    let first = h.node.spawn("app", &init, SpawnOpts::default()).unwrap();
    assert_eq!(call(first, &add(3)).await.unwrap(), vec![3], "{lang:?}");
    assert_eq!(call(first, &add(4)).await.unwrap(), vec![7], "{lang:?}");
    assert_eq!(call(first, INCREMENT).await.unwrap(), vec![1], "{lang:?}");
    assert_eq!(call(first, INCREMENT).await.unwrap(), vec![2], "{lang:?}");
    // Another particle of the component sees what the first wrote.
    let second = h.node.spawn("app", &init, SpawnOpts::default()).unwrap();
    assert_eq!(call(second, GET).await.unwrap(), vec![7], "{lang:?}");
    assert_eq!(
        call(second, VERSION).await.unwrap(),
        vec![4],
        "{lang:?}: count, hits, log/3 and log/7"
    );
    // The count is a postcard u64, as the Rust SDK stores it; the log
    // entries went in as postcard strings.
    let got = store.call("app", KvOp::Get("count".into())).await.unwrap();
    assert_eq!(got, KvReply::Value(Some(vec![7])), "{lang:?}");
    let got = store.call("app", KvOp::Get("log/7".into())).await.unwrap();
    assert_eq!(got, KvReply::Value(Some(b"\x02+4".to_vec())), "{lang:?}");
    // A bucket the policy does not grant: the refusal is the exit reason.
    let (denied, reference) = h
        .ctl
        .spawn_monitor(
            "app",
            &json!({"role": "stored", "bucket": "ledger"}).to_string(),
            SpawnOpts::default(),
        )
        .unwrap();
    assert!(call(denied, GET).await.is_err(), "{lang:?}");
    let reason = h
        .down_reason(reference, Duration::from_secs(10))
        .await
        .expect("a DOWN");
    assert!(
        reason
            .to_string()
            .contains("access to bucket `ledger` denied by policy"),
        "{lang:?}: {reason}"
    );
}

/// An HTTP server on 127.0.0.1 that answers `<n> bytes` for a body of n.
async fn counting_server() -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let text = format!("{} bytes", body.len());
                        Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(text),
                        )))
                    },
                );
                let io = hyper_util::rt::TokioIo::new(s);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    addr
}

/// The Python SDK's `http`: a GET and a 100 KB POST (past wasi:io's 4 KiB
/// writes) to a host the policy permits; another host is refused, and the
/// refusal is the exit reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_particle_sends_http_to_a_host_its_policy_permits() {
    let allowed = counting_server().await;
    let other = counting_server().await;
    let policies = format!(
        "{}\npermit (principal == Particle::\"app\", action == Action::\"connect\", resource == Host::\"{allowed}\");\n",
        plasmoid_runtime::DEFAULT_POLICIES
    );
    let h = harness_with(common::config_with_policies(&policies), Lang::Python);
    let fetch = |addr: std::net::SocketAddr| {
        h.ctl.spawn_monitor(
            "app",
            &json!({"role": "fetch", "url": format!("http://{addr}/count")}).to_string(),
            SpawnOpts::default(),
        )
    };
    let (py, _) = fetch(allowed).unwrap();
    let call = |req: Vec<u8>| h.ctl.call(py, req, Duration::from_secs(20));
    assert_eq!(
        call(GET.to_vec()).await.unwrap(),
        postcard_u64(200_000_000_000),
        "GET: 200 and 0 bytes"
    );
    // Add(100_000): variant 2, then 100_000 as a varint.
    let mut big = vec![2];
    big.extend(postcard_u64(100_000));
    assert_eq!(
        call(big).await.unwrap(),
        postcard_u64(200_000_100_000),
        "POST of 100,000 bytes: 200 and the server counted them all"
    );
    let (denied, reference) = fetch(other).unwrap();
    assert!(
        h.ctl
            .call(denied, GET.to_vec(), Duration::from_secs(20))
            .await
            .is_err()
    );
    let reason = h
        .down_reason(reference, Duration::from_secs(10))
        .await
        .expect("a DOWN");
    assert!(
        reason
            .to_string()
            .contains("HttpError: http-request-denied"),
        "{reason}"
    );
}

/// A u64 as postcard writes it (a varint).
fn postcard_u64(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A JS gen_server whose handlers are all `async`: under StarlingMonkey the
/// SDK's loop awaits each, in order, and a rejected promise is the exit
/// reason; QuickJS cannot run an export's promise, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_js_handlers_are_awaited_in_order() {
    let init = json!({"role": "async", "start": 1}).to_string();
    let h = harness_with(common::config(), Lang::Js(JsEngine::StarlingMonkey));
    let (pid, reference) = h
        .ctl
        .spawn_monitor("app", &init, SpawnOpts::default())
        .unwrap();
    let call = |req: Vec<u8>| h.ctl.call(pid, req, Duration::from_secs(10));
    assert_eq!(call(add(2)).await.unwrap(), vec![3]);
    for _ in 0..10 {
        h.ctl.send(pid, vec![0]).unwrap(); // CounterCast::Increment
    }
    assert_eq!(call(GET.to_vec()).await.unwrap(), vec![13]);
    h.ctl.send(pid, b"crash".to_vec()).unwrap();
    let reason = h
        .down_reason(reference, Duration::from_secs(10))
        .await
        .expect("a DOWN");
    assert!(
        reason
            .to_string()
            .contains("RangeError: async handler gave up at 13"),
        "{reason}"
    );

    let h = harness_with(common::config(), Lang::Js(JsEngine::QuickJs));
    let (pid, reference) = h
        .ctl
        .spawn_monitor("app", &init, SpawnOpts::default())
        .unwrap();
    assert!(
        h.ctl
            .call(pid, add(2), Duration::from_secs(10))
            .await
            .is_err()
    );
    let reason = h
        .down_reason(reference, Duration::from_secs(10))
        .await
        .expect("a DOWN");
    assert!(
        reason
            .to_string()
            .contains("async handlers need StarlingMonkey"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_python_particles_live_at_once_on_the_default_node() {
    let h = harness(NodeConfig::default());
    let before = h.node.started_particles();
    let t = Instant::now();
    for _ in 0..1000 {
        h.node
            .spawn("app", "\"idle\"", SpawnOpts::default())
            .expect("a Python particle spawns");
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while h.node.started_particles() < before + 1000 {
        assert!(
            Instant::now() < deadline,
            "only {} of 1000 started",
            h.node.started_particles() - before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("1000 Python particles up in {:?}", t.elapsed());
    assert_eq!(h.node.live_particles(), before + 1000, "none crashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_refuses_a_spawn_with_the_reason_and_no_pid() {
    // Budget 4 core instances per slot, as before pools were sized per
    // component: 10 slots hold 40, so two CPython particles (14 each).
    let cfg = NodeConfig {
        max_particles: 8,
        pool_per_particle: Footprint {
            core_instances: 4,
            memories: 2,
            tables: 4,
        },
        ..common::config()
    };
    let h = harness(cfg);
    let mut alive = Vec::new();
    let refusal = loop {
        match h.node.spawn("app", "\"idle\"", SpawnOpts::default()) {
            Ok(pid) => alive.push(pid),
            Err(e) => break e.to_string(),
        }
        assert!(alive.len() < 8, "the pool never filled");
    };
    assert!(
        refusal.contains("instance pool is full") && refusal.contains("core instances"),
        "{refusal}"
    );
    assert_eq!(alive.len(), 2, "{refusal}");
    // Those that got a pid run: none crashed for want of a slot.
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.node.started_particles() < alive.len() {
        assert!(Instant::now() < deadline, "the spawned ones did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.node.live_particles(), alive.len());
    // Ending one gives its share back: the next spawn fits.
    h.ctl.send_exit(alive[0], ExitReason::Kill).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.node.live_particles() == alive.len() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.node
        .spawn("app", "\"idle\"", SpawnOpts::default())
        .expect("the freed share is reused");
}

/// The real binary: `release build` of a manifest naming `python = ...`,
/// `release run`, a crash restarted by the supervisor with the traceback
/// in the log under the particle's pid, and a hot swap to a new Python
/// version that keeps the state.
#[test]
fn a_python_release_is_supervised_logged_and_hot_swapped_with_its_state() {
    use common::{Running, plasmoid, run};
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("prod.toml");
    let app = repo().join("apps/py/pyapp/app.py");
    std::fs::write(
        &manifest,
        format!(
            r#"
[release]
name = "py"
version = "1"
[node]
max_particles = 64
[components.pyapp]
python = "{app}"
upgrade = "handoff"
[supervisor]
strategy = "one-for-one"
max_restarts = 5
children = [{{ id = "pycounter", component = "pyapp", init = {{ role = "counter", start = 5, name = "pycounter" }} }}]
"#,
            app = app.display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = PathBuf::from(out.trim());
    let ctl = |args: &[&str]| run(plasmoid().args(args).arg("--release").arg(&rel));
    let call_until = |msg: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, out, err) = ctl(&["call", "pycounter", msg, "--as", "hex"]);
            if code == 0 && out.trim() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "call {msg} never answered {want}: {out} {err}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut node = Running::start(plasmoid().args(["release", "run"]).arg(&rel));
    assert!(
        node.wait_for("release py-1 is up", Duration::from_secs(120)),
        "{}",
        node.seen
    );
    call_until("0203", "08");

    // A crash: the supervisor restarts it, and the log has the traceback
    // under the pid that died.
    let (code, _, err) = ctl(&["send", "pycounter", "crash"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        node.wait_for("ZeroDivisionError", Duration::from_secs(30)),
        "{}",
        node.seen
    );
    let line = node
        .seen
        .lines()
        .find(|l| l.contains("about to divide 8 by zero"))
        .unwrap_or_else(|| panic!("the particle's print is in the log: {}", node.seen))
        .to_string();
    assert!(
        line.contains("pid="),
        "stdout is logged under the pid: {line}"
    );
    call_until("00", "05");
    call_until("0202", "07");

    // A new version, built from a copy that says VERSION = 2, dropped into
    // the running release: same state, new code.
    let v2 = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(&app).unwrap();
    assert!(source.contains("VERSION = 1"));
    std::fs::write(
        v2.path().join("app.py"),
        source.replace("VERSION = 1", "VERSION = 2"),
    )
    .unwrap();
    let built =
        plasmoid_release::toolchain::build_python("pyapp", &v2.path().join("app.py")).unwrap();
    let live = rel.join("components/pyapp.wasm");
    let part = live.with_extension("wasm.part");
    std::fs::copy(&built, &part).unwrap();
    std::fs::rename(&part, &live).unwrap();
    call_until("03", "02");
    call_until("00", "07");
    drop(node);
}

/// The SDKs' own tests (their codecs against the bytes the Rust SDK
/// writes), under a plain CPython and Node.js.
#[test]
fn the_python_and_js_sdks_pass_their_own_tests() {
    let py = std::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(repo().join("sdk-py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let js = std::process::Command::new("node")
        .args(["--test", "test/"])
        .current_dir(repo().join("sdk-js"))
        .output()
        .expect("node runs");
    assert!(
        js.status.success(),
        "{}",
        String::from_utf8_lossy(&js.stdout)
    );
}
