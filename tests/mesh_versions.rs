//! Nodes agree on the release version at the mesh handshake: each says
//! what it runs (`plasmoid status` shows it per peer), and a node that runs
//! other components than the root (left behind by an upgrade) is refused
//! work: the child goes to the next candidate instead of running stale
//! code there.

mod common;
use common::{Running, plasmoid, run};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn status(rel: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(plasmoid()
        .arg("status")
        .args(args)
        .arg("--release")
        .arg(rel)
        .args(["--node", "a"]));
    assert_eq!(code, 0, "{err}");
    out
}

/// The release peer b says it runs, as node a's status shows it.
fn b_runs(rel: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s: Value = serde_json::from_str(&status(rel, &["--json"])).expect("JSON");
        let release = s["peers"][0]["release"].clone();
        if !release.is_null() {
            return release;
        }
        assert!(Instant::now() < deadline, "b never said what it runs: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn started_on(seen: &str, child: &str) -> String {
    seen.lines()
        .find(|l| l.contains("child started") && l.contains(&format!("child={child}")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_node_with_other_components_hosts_nothing_and_status_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let v1 = common::echo_mesh_release(
        dir.path(),
        "ver",
        &["a", "b"],
        "strategy = \"one-for-one\"\n\
         children = [{ id = \"far\", component = \"echo\", node = [\"b\", \"a\"] }]",
    );
    let id = |n: &str| {
        std::fs::read_to_string(v1.join("nodes").join(n).join("id")).expect("id")[..8].to_string()
    };
    let (a_id, b_id) = (id("a"), id("b"));
    let mut b = Running::release_node(&v1, "b");
    assert!(b.wait_for("node up", Duration::from_secs(60)), "{}", b.seen);
    let mut a = Running::release_node(&v1, "a");
    assert!(
        a.wait_for("release ver-1 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    assert!(
        started_on(&a.seen, "far").contains(&format!("pid={b_id}.")),
        "{}",
        a.seen
    );
    assert_eq!(b_runs(&v1), serde_json::json!(["ver-1", true]));

    // Version 2 swaps the echo component's code; built with v1's keys
    // (a dry run changes nothing that runs).
    let manifest = dir.path().join("prod.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let echo = common::wasm("echo").display().to_string();
    let counter = common::wasm("counter").display().to_string();
    let text = text
        .replace("version = \"1\"", "version = \"2\"")
        .replace(&echo, &counter);
    std::fs::write(&manifest, text).expect("write");
    let (code, out, err) = run(plasmoid()
        .args(["release", "upgrade", "--dry-run"])
        .arg(&manifest)
        .arg("--release")
        .arg(&v1));
    assert_eq!(code, 0, "{out}\n{err}");
    let v2 = dir.path().join("target/plasmoid/ver-2");

    // Node a moves to version 2; b stays on 1.
    a.terminate();
    let mut a = Running::release_node(&v2, "a");
    assert!(
        a.wait_for("release ver-2 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    let line = started_on(&a.seen, "far");
    assert!(
        line.contains(&format!("pid={a_id}.")),
        "not on stale b: {line}\n{}",
        a.seen
    );
    assert_eq!(b_runs(&v2), serde_json::json!(["ver-1", false]));
    let text = status(&v2, &[]);
    assert!(
        text.contains("runs ver-1: other components, it hosts nothing for this node"),
        "{text}"
    );
    assert!(
        b.wait_for("with other components", Duration::from_secs(10)),
        "{}",
        b.seen
    );
    a.terminate();
    b.terminate();
}
