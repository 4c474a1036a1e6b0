//! The shop keeps its money: orders stream in over HTTP while the node is
//! `kill -9`ed, again and again; after each restart every order that got a
//! 200 is in the balances (an order in flight at the kill may be too), and
//! the money in the system is what it was. In one round the ledger itself
//! is killed (`plasmoid kill ledger`) mid-stream: its supervisor restarts
//! it, it reloads the store, and it too loses nothing.

mod common;
use common::web::once;
use common::{Running, plasmoid, run};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

const SHOP: &str = r#"
[release]
name = "kept"
version = "1"
policies = "{policies}"
[components.audit]
wasm = "{audit}"
[components.ledger]
wasm = "{ledger}"
depends = ["audit"]
[components.gateway]
wasm = "{gateway}"
depends = ["ledger"]
[supervisor]
strategy = "one-for-one"
max_restarts = 3
children = ["audit", "ledger", { component = "gateway", init = { region = "eu" } }]
[http]
routes = [
  { path = "/orders", methods = ["POST"], to = "gateway-eu" },
  { path = "/balances", methods = ["GET"], to = "gateway-eu" },
]
"#;

fn up(rel: &Path, data: &Path) -> (Running, std::net::SocketAddr) {
    let mut node = Running::start(
        plasmoid()
            .args(["release", "run", "--http", "127.0.0.1:0", "--data"])
            .arg(data)
            .arg(rel),
    );
    assert!(
        node.wait_for("release kept-1 is up", 120 * SEC),
        "{}",
        node.seen
    );
    let addr = common::web::listening_at(&rel.join("node"));
    (node, addr)
}

async fn balances(addr: std::net::SocketAddr) -> BTreeMap<String, u64> {
    let r = once(addr, "GET", "/balances", b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_str(&r.body).unwrap()
}

fn apply(b: &mut BTreeMap<String, u64>, from: &str, to: &str, amount: u64) {
    *b.get_mut(from).unwrap() -= amount;
    *b.get_mut(to).unwrap() += amount;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_order_survives_kill_9_and_no_money_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = SHOP.replace(
        "{policies}",
        &common::repo()
            .join("apps/demo/policies")
            .display()
            .to_string(),
    );
    for name in ["audit", "ledger", "gateway"] {
        text = text.replace(
            &format!("{{{name}}}"),
            &common::wasm(name).display().to_string(),
        );
    }
    let manifest = dir.path().join("prod.toml");
    std::fs::write(&manifest, text).unwrap();
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = std::path::PathBuf::from(out.trim());
    let data = dir.path().join("data");
    let accounts = ["alice", "bob", "carol", "dave"];
    let mut expected: Option<BTreeMap<String, u64>> = None;
    let mut acknowledged = 0;
    for round in 0..3 {
        let (mut node, addr) = up(&rel, &data);
        let now = balances(addr).await;
        assert_eq!(now.values().sum::<u64>(), 4_000, "round {round}: {now:?}");
        if let Some(want) = expected.take() {
            assert_eq!(now, want, "round {round}: an acknowledged order is missing");
        }
        // One order at a time, so at most one is in flight at the kill.
        let mut want = now.clone();
        let mut last: Option<(String, String, u64)> = None;
        let stop = Instant::now() + Duration::from_millis(400);
        let mut i = 0usize;
        // Round 1 kills the ledger after 30 orders; orders not answered 200
        // from then until the kill is done may or may not have settled.
        let mut killing: Option<tokio::task::JoinHandle<(i32, String, String)>> = None;
        let mut unsure: Vec<(String, String, u64)> = Vec::new();
        let mut after_kill = 0;
        while Instant::now() < stop || (round == 1 && after_kill < 10) {
            if round == 1 && i == 30 {
                let rel = rel.clone();
                killing = Some(tokio::task::spawn_blocking(move || {
                    let mut c = plasmoid();
                    c.args(["kill", "ledger", "--release"]).arg(&rel);
                    run(&mut c)
                }));
            }
            let (from, to) = (accounts[i % 4], accounts[(i + 1 + i / 4) % 4]);
            i += 1;
            if from == to {
                continue;
            }
            let amount = 1 + (i as u64 % 3);
            let body = format!(r#"{{"from":"{from}","to":"{to}","amount":{amount}}}"#);
            let r = once(addr, "POST", "/orders", body.as_bytes()).await;
            if r.status == 200 {
                apply(&mut want, from, to, amount);
                acknowledged += 1;
                if killing.as_ref().is_some_and(|k| k.is_finished()) {
                    after_kill += 1;
                }
            } else if killing.is_some() {
                unsure.push((from.into(), to.into(), amount));
            }
            last = Some((from.into(), to.into(), amount));
            assert!(
                Instant::now() < stop + 30 * SEC,
                "the ledger did not come back after the kill"
            );
        }
        if let Some(k) = killing {
            let (code, out, err) = k.await.unwrap();
            assert_eq!(code, 0, "{err}");
            assert!(out.contains("killed"), "{out}");
            // It was restarted, not left running.
            let mut c = plasmoid();
            c.args(["status", "--release"]).arg(&rel);
            let (code, out, err) = run(&mut c);
            assert_eq!(code, 0, "{err}");
            let line = out
                .lines()
                .find(|l| l.trim_start().starts_with("ledger "))
                .unwrap_or_else(|| panic!("the tree shows the ledger: {out}"));
            assert!(line.contains("restarts=1"), "{line}");
            // What the restarted ledger reloaded: every acknowledged order,
            // and perhaps one that was being settled when it died.
            let now = balances(addr).await;
            let maybe: Vec<_> = std::iter::once(want.clone())
                .chain(unsure.iter().map(|(f, t, a)| {
                    let mut w = want.clone();
                    apply(&mut w, f, t, *a);
                    w
                }))
                .collect();
            assert!(
                maybe.contains(&now),
                "after the ledger's crash {now:?} is none of {maybe:?}"
            );
            want = now;
        }
        // An order sent just before the kill, maybe settled, never answered.
        let (from, to, amount) = last.unwrap();
        let body = format!(r#"{{"from":"{from}","to":"{to}","amount":{amount}}}"#);
        let racing =
            tokio::spawn(async move { once(addr, "POST", "/orders", body.as_bytes()).await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        node.kill();
        let raced = racing.await.map(|r| r.status).unwrap_or(0);
        if raced == 200 {
            apply(&mut want, &from, &to, amount);
            expected = Some(want);
        } else {
            // Either outcome is right for an unanswered order: check both.
            let mut with = want.clone();
            apply(&mut with, &from, &to, amount);
            let (node2, addr2) = up(&rel, &data);
            let now = balances(addr2).await;
            assert!(
                now == want || now == with,
                "round {round}: {now:?} is neither {want:?} nor {with:?}"
            );
            expected = Some(now);
            node2.terminate();
        }
    }
    assert!(
        acknowledged > 50,
        "only {acknowledged} orders were acknowledged"
    );
    let (node, addr) = up(&rel, &data);
    let now = balances(addr).await;
    assert_eq!(Some(now.clone()), expected, "after the last kill");
    assert_eq!(now.values().sum::<u64>(), 4_000);
    // An operator reads and writes buckets of the running release.
    let store = |args: &[&str]| {
        let mut c = plasmoid();
        c.arg("store").args(args).arg("--release").arg(&rel);
        run(&mut c)
    };
    let (code, out, err) = store(&["list", "ledger"]);
    assert_eq!((code, out.trim()), (0, "state"), "{err}");
    let (code, _, err) = store(&["put", "notes", "motd", "closed on sunday"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = store(&["get", "notes", "motd"]);
    assert_eq!((code, out.trim()), (0, "closed on sunday"), "{err}");
    let (code, _, err) = store(&["get", "notes", "nothing"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no key"), "{err}");
    node.terminate();
}
