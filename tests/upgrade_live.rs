//! End-to-end: `plasmoid release upgrade prod.toml` applied to a running
//! release (`plasmoid release run`, a real process) while a client calls an
//! untouched child the whole time; a failing upgrade and a crash in
//! probation roll everything back; `release rollback` goes back by hand.

mod common;
use common::{Running, plasmoid, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const V1: &str = r#"
[release]
name = "live"
version = "0.1.0"

[components.echo]
wasm = "{echo}"

[components.counter]
wasm = "{counter}"

[supervisor]
strategy = "one-for-one"
children = ["echo", "counter", "pool"]

[supervisors.pool]
strategy = "one-for-all"
max_restarts = 3
children = [{ id = "e1", component = "echo" }, { id = "e2", component = "echo" }]
"#;

fn write(dir: &Path, text: &str) -> PathBuf {
    let text = text
        .replace("{echo}", &common::wasm("echo").display().to_string())
        .replace("{counter}", &common::wasm("counter").display().to_string())
        .replace(
            "{counter-v2}",
            &common::wasm("counter_v2").display().to_string(),
        )
        .replace(
            "{counter-trap}",
            &common::wasm("counter_trap").display().to_string(),
        );
    let path = dir.join("prod.toml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn ctl(rel: &Path, args: &[&str]) -> (i32, String, String) {
    run(plasmoid().args(args).arg("--release").arg(rel))
}

fn status(rel: &Path) -> Value {
    let (code, out, err) = ctl(rel, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("status is JSON")
}

/// Every child of the tree as `path pid`, in order.
fn tree(s: &Value) -> Vec<(String, String)> {
    fn walk(row: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
        for c in row["children"].as_array().into_iter().flatten() {
            let id = c["id"].as_str().unwrap_or_default();
            let path = if prefix.is_empty() {
                id.to_string()
            } else {
                format!("{prefix}/{id}")
            };
            out.push((path.clone(), c["pid"].as_str().unwrap_or("-").to_string()));
            walk(c, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(&s["tree"], "", &mut out);
    out
}

fn pid_of(s: &Value, path: &str) -> String {
    tree(s)
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no child `{path}` in {s}"))
        .1
}

fn components(s: &Value) -> Vec<(String, String)> {
    serde_json::from_value(s["components"].clone()).expect("components")
}

/// A client calling `pid` through the CLI until stopped; counts calls and
/// failures (with the first error).
struct Client {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Client {
    fn start(rel: &Path, pid: &str) -> Client {
        let (stop, calls) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s, c, rel, pid) = (
            stop.clone(),
            calls.clone(),
            rel.to_path_buf(),
            pid.to_string(),
        );
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let (code, out, err) = ctl(&rel, &["call", &pid, "ping", "--as", "postcard"]);
                c.fetch_add(1, Ordering::Relaxed);
                if code != 0 || out.trim() != "ping" {
                    failures.push(format!("code {code}: {out} {err}"));
                }
            }
            failures
        });
        Client {
            stop,
            calls,
            thread,
        }
    }

    fn wait_calls(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.calls.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "the client made no calls");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.join().expect("client thread");
        (self.calls.load(Ordering::Relaxed), failures)
    }
}

fn upgrades(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("release.lock")).expect("lock");
    let lock: toml::Value = toml::from_str(&text).expect("lock is TOML");
    let list = lock
        .get("upgrades")
        .cloned()
        .unwrap_or(toml::Value::Array(vec![]));
    serde_json::to_value(list)
        .expect("as JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_outcome(dir: &Path, want: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let u = upgrades(dir);
        if u.last().is_some_and(|r| r["outcome"] == want) {
            return u;
        }
        assert!(
            Instant::now() < deadline,
            "no `{want}` upgrade in {dir:?}: {u:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn boot(dir: &Path) -> (PathBuf, Running) {
    let manifest = write(dir, V1);
    let (code, _, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let old = dir.join("target/plasmoid/live-0.1.0");
    let node = Running::release_up(&old, "live-0.1.0");
    (old, node)
}

#[test]
fn a_live_upgrade_converges_while_untouched_children_keep_answering() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (old, node) = boot(dir.path());
    let before = status(&old);
    let client = Client::start(&old, &pid_of(&before, "echo"));
    client.wait_calls(3);

    // Five kinds of change: a component's code (counter 1 → 2, handed
    // over), supervisor flags, a removed child, an added child, a new
    // component.
    let v2 = V1
        .replace("0.1.0", "0.2.0")
        .replace("wasm = \"{counter}\"", "wasm = \"{counter-v2}\"")
        .replace("strategy = \"one-for-all\"", "strategy = \"rest-for-one\"")
        .replace(", { id = \"e2\", component = \"echo\" }", "")
        .replace(
            "children = [\"echo\", \"counter\", \"pool\"]",
            "children = [\"echo\", { id = \"c2\", component = \"extra\" }, \"counter\", \"pool\"]",
        )
        + "\n[components.extra]\nwasm = \"{counter}\"\n";
    let manifest = write(dir.path(), &v2);
    let started = Instant::now();
    let (code, out, err) = run(plasmoid()
        .args(["release", "upgrade", "--probation", "1"])
        .arg(&manifest));
    assert_eq!(code, 0, "{out}\n{err}");
    let took = started.elapsed();
    assert!(out.contains("upgraded live-0.1.0 → live-0.2.0"), "{out}");
    assert!(out.contains("stop child `pool/e2`: done"), "{out}");
    assert!(out.contains("start child `c2`: done"), "{out}");
    let calls_during = client.calls.load(Ordering::Relaxed);
    client.wait_calls(calls_during + 3);
    let (calls, failures) = client.finish();
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {failures:?}",
        failures.len()
    );

    let new = dir.path().join("target/plasmoid/live-0.2.0");
    let after = status(&new);
    assert_eq!(after["release"], "live-0.2.0", "{after}");
    let paths: Vec<String> = tree(&after).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        ["echo", "c2", "counter", "pool", "pool/e1"],
        "{after}"
    );
    // Untouched: same pids. The counter moved to v2 under its pid (handoff).
    for path in ["echo", "counter", "pool", "pool/e1"] {
        assert_eq!(
            pid_of(&after, path),
            pid_of(&before, path),
            "{path} kept its pid"
        );
    }
    let (code, out, err) = ctl(
        &new,
        &["call", &pid_of(&after, "counter"), "03", "--as", "hex"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "02", "the counter runs version 2");
    let pool = &after["tree"]["children"][3];
    assert_eq!(pool["strategy"], "rest-for-one", "{pool}");

    // Recorded, then confirmed once the probation is over.
    let u = wait_outcome(&new, "confirmed");
    let rec = u.last().expect("a record");
    assert_eq!(
        (rec["from"].as_str(), rec["to"].as_str()),
        (Some("live-0.1.0"), Some("live-0.2.0"))
    );
    assert!(
        rec["steps"].as_array().is_some_and(|s| s.len() >= 5),
        "{rec}"
    );
    let lock = std::fs::read_to_string(new.join("release.lock")).expect("lock");
    assert!(lock.contains("previous = \"live-0.1.0\""), "{lock}");
    eprintln!(
        "upgrade of 6 steps: {} ms from the command, {calls} calls, 0 failed",
        took.as_millis()
    );

    // By hand, back to 0.1.0: the removed child returns, the added one goes.
    let (code, out, err) = ctl(&new, &["release", "rollback"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let back = status(&new);
    assert_eq!(back["release"], "live-0.1.0", "{back}");
    let paths: Vec<String> = tree(&back).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        ["echo", "counter", "pool", "pool/e1", "pool/e2"],
        "{back}"
    );
    assert_eq!(pid_of(&back, "echo"), pid_of(&before, "echo"));
    assert_eq!(components(&back), components(&before));
    let (_, log) = node.terminate();
    assert!(log.contains("upgrade recorded"), "{log}");
}

/// The WAT particle whose `start` traps: a child that cannot start.
fn trapping(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(common::wat_particle()).expect("wat");
    let exit = "      (call $exit (i32.const 3) (i32.const 64) (i32.const 8))\n";
    assert!(text.contains(exit));
    let bytes = wat::parse_str(text.replace(exit, "")).expect("wat parses");
    let path = dir.join("bad.wasm");
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn failing_upgrades_roll_back_to_exactly_the_tree_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (old, node) = boot(dir.path());
    let before = status(&old);
    let client = Client::start(&old, &pid_of(&before, "echo"));
    client.wait_calls(2);

    // A new child that cannot start, after a stop and a flag change.
    let bad = trapping(dir.path());
    let v2 = V1
        .replace("0.1.0", "0.2.0")
        .replace("strategy = \"one-for-all\"", "strategy = \"rest-for-one\"")
        .replace(", { id = \"e2\", component = \"echo\" }", "")
        .replace(
            "children = [\"echo\", \"counter\", \"pool\"]",
            "children = [\"echo\", \"counter\", \"pool\", { id = \"b\", component = \"bad\" }]",
        )
        + &format!("\n[components.bad]\nwasm = \"{}\"\n", bad.display());
    let manifest = write(dir.path(), &v2);
    let (code, out, err) = run(plasmoid().args(["release", "upgrade"]).arg(&manifest));
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("everything was put back as it was"), "{err}");
    assert!(err.contains("start child `b`: failed"), "{err}");
    let after = status(&old);
    assert_eq!(after["release"], "live-0.1.0");
    let paths = |s: &Value| -> Vec<String> { tree(s).into_iter().map(|(p, _)| p).collect() };
    assert_eq!(paths(&after), paths(&before), "{after}");
    for path in ["echo", "counter", "pool", "pool/e1"] {
        assert_eq!(
            pid_of(&after, path),
            pid_of(&before, path),
            "{path} kept its pid"
        );
    }
    assert_eq!(after["tree"]["children"][2]["strategy"], "one-for-all");
    assert_eq!(
        components(&after),
        components(&before),
        "`bad` was unloaded"
    );
    assert_eq!(
        upgrades(&old).last().expect("recorded")["outcome"],
        "failed"
    );

    // A version that crashes in probation: counter → counter-trap traps on
    // its first call, and the whole upgrade is undone.
    let v3 = V1
        .replace("0.1.0", "0.3.0")
        .replace("wasm = \"{counter}\"", "wasm = \"{counter-trap}\"")
        .replace(", { id = \"e2\", component = \"echo\" }", "");
    let manifest = write(dir.path(), &v3);
    let (code, out, err) = run(plasmoid()
        .args(["release", "upgrade", "--probation", "30"])
        .arg(&manifest));
    assert_eq!(code, 0, "{out}\n{err}");
    let v3_dir = dir.path().join("target/plasmoid/live-0.3.0");
    let counter = pid_of(&status(&v3_dir), "counter");
    let (code, _, _) = ctl(&v3_dir, &["call", &counter, "03", "--as", "hex"]);
    assert_ne!(code, 0, "counter-trap traps on a call");
    wait_outcome(&v3_dir, "rolled back");
    let back = status(&old);
    assert_eq!(back["release"], "live-0.1.0");
    assert_eq!(paths(&back), paths(&before), "{back}");
    assert_eq!(components(&back), components(&before));
    let (code, out, err) = ctl(
        &old,
        &["call", &pid_of(&back, "counter"), "03", "--as", "hex"],
    );
    assert_eq!((code, out.trim()), (0, "01"), "{err}");

    let (calls, failures) = client.finish();
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {failures:?}",
        failures.len()
    );
    node.terminate();
}

/// `plasmoid bench upgrade`: ten changes applied to the running demo while
/// HTTP clients call it; no call through the untouched gateway fails.
#[test]
fn bench_upgrade_converges_the_demo_and_untouched_calls_never_fail() {
    let (code, out, err) = run(plasmoid().args(["bench", "--runs", "1", "upgrade"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let figures: std::collections::HashMap<String, f64> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["name"].as_str().unwrap_or_default().to_string(),
                v["value"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    for name in ["upgrade.time", "upgrade.apply", "upgrade.untouched_calls"] {
        assert!(figures.get(name).is_some_and(|v| *v > 0.0), "{name}: {out}");
    }
    assert_eq!(figures["upgrade.untouched_failed"], 0.0, "{out}\n{err}");
    assert_eq!(figures["upgrade.untouched_lost"], 0.0, "{out}\n{err}");
}
