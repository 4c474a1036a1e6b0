//! End-to-end: `plasmoid release check | build | run` on real manifests,
//! real components and the real binary.

mod common;
use common::Running;
use common::{plasmoid, run};
use std::path::PathBuf;
use std::time::Duration;

/// A fresh folder with `prod.toml` = `manifest`, where `{echo}`, `{counter}`
/// and the demo's component names stand for the built components' paths.
fn release_folder(manifest: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = manifest.to_string();
    for name in ["echo", "counter", "audit", "ledger", "notifier", "gateway"] {
        let key = format!("{{{name}}}");
        if text.contains(&key) {
            text = text.replace(&key, &common::wasm(name).display().to_string());
        }
    }
    let path = dir.path().join("prod.toml");
    std::fs::write(&path, text).expect("write manifest");
    (dir, path)
}

const SMALL: &str = r#"
[release]
name = "small"
version = "0.1.0"

[node]
max_particles = 64

[components.echo]
wasm = "{echo}"

[components.counter]
wasm = "{counter}"
depends = ["echo"]

[supervisor]
strategy = "one-for-one"
children = ["first", "pool"]

[supervisors.first]
strategy = "one-for-one"
children = ["echo"]

[supervisors.pool]
strategy = "rest-for-one"
children = ["counter", { id = "echo-2", component = "echo" }]
"#;

fn stopping_order(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("stopping child"))
        .filter_map(|l| l.split("child=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn check_prints_the_tree_in_start_order() {
    let (_dir, manifest) = release_folder(SMALL);
    let (code, out, err) = run(plasmoid().args(["release", "check"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("release small 0.1.0 (2 components, one embedded node)"),
        "{out}"
    );
    let first = out.find("1. echo (echo, permanent)").expect(&out);
    let second = out.find("2. counter (counter, permanent)").expect(&out);
    let third = out.find("3. echo-2 (echo, permanent)").expect(&out);
    assert!(first < second && second < third, "{out}");
    assert!(
        out.contains("pool (rest-for-one, at most 1 restart(s) in 5 s)"),
        "{out}"
    );
}

#[test]
fn a_malformed_manifest_names_its_position_and_starts_nothing() {
    let (dir, manifest) =
        release_folder(&SMALL.replace("strategy = \"rest-for-one\"", "strategy = \"rest-for-al\""));
    for verb in ["check", "build", "run"] {
        let (code, _, err) = run(plasmoid().args(["release", verb]).arg(&manifest));
        assert_eq!(code, 2, "{verb}: {err}");
        assert!(
            err.contains("prod.toml:25:12: unknown variant `rest-for-al`"),
            "{verb}: {err}"
        );
        assert!(!err.contains("booting"), "{verb}: {err}");
    }
    assert!(!dir.path().join("target").exists(), "nothing was built");
}

#[test]
fn build_writes_a_locked_release_and_skips_what_did_not_change() {
    let (dir, manifest) = release_folder(SMALL);
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = PathBuf::from(out.trim());
    assert_eq!(rel, dir.path().join("target/plasmoid/small-0.1.0"));
    assert!(err.contains("2 compiled, 0 unchanged"), "{err}");
    for f in [
        "release.toml",
        "release.lock",
        "components/echo.wasm",
        "components/echo.cwasm",
        "components/counter.wasm",
        "components/counter.cwasm",
        "policies/default.cedar",
        "policies/plasmoid.cedarschema",
    ] {
        assert!(rel.join(f).is_file(), "{f} missing");
    }
    // The lock lists every file with its real blake3 hash and size.
    let lock: toml::Table =
        toml::from_str(&std::fs::read_to_string(rel.join("release.lock")).unwrap()).unwrap();
    let files = lock["files"].as_array().expect("files");
    assert_eq!(files.len(), 7, "{lock:?}");
    for f in files {
        let path = f["path"].as_str().unwrap();
        let bytes = std::fs::read(rel.join(path)).unwrap();
        assert_eq!(
            f["blake3"].as_str().unwrap(),
            blake3::hash(&bytes).to_hex().as_str(),
            "{path}"
        );
        assert_eq!(
            f["size"].as_integer().unwrap() as usize,
            bytes.len(),
            "{path}"
        );
    }
    let echo = lock["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("echo"))
        .unwrap();
    assert_eq!(
        echo["source"].as_str().unwrap(),
        format!(
            "file {}",
            common::wasm("echo").canonicalize().unwrap().display()
        )
    );
    // The resolved manifest is itself a valid manifest, in start order.
    let resolved = std::fs::read_to_string(rel.join("release.toml")).unwrap();
    assert!(
        resolved.contains("wasm = \"components/echo.wasm\""),
        "{resolved}"
    );
    let (code, _, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 compiled, 2 unchanged"), "{err}");
}

#[test]
fn a_tampered_cwasm_is_refused_at_run() {
    let (_dir, manifest) = release_folder(SMALL);
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = PathBuf::from(out.trim());
    let cwasm = rel.join("components/counter.cwasm");
    let mut bytes = std::fs::read(&cwasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&cwasm, bytes).unwrap();
    let (code, _, err) = run(plasmoid().args(["release", "run"]).arg(&rel));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("components/counter.cwasm does not match release.lock"),
        "{err}"
    );
    assert!(err.contains("rebuild it"), "{err}");
    assert!(!err.contains("booting release"), "{err}");
}

#[test]
fn sigterm_stops_the_release_in_reverse_start_order() {
    let (_dir, manifest) = release_folder(SMALL);
    let running = Running::release_up(&manifest, "small-0.1.0");
    let (code, log) = running.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        stopping_order(&log),
        ["pool", "echo-2", "counter", "first", "echo"],
        "{log}"
    );
    assert!(log.contains("supervision tree stopped"), "{log}");
}

#[test]
fn the_root_giving_up_ends_the_run_with_a_failure() {
    // The notifier crashes on its first notification and nobody may restart it.
    let (_dir, manifest) = release_folder(
        r#"
[release]
name = "fragile"
version = "1"
[components.audit]
wasm = "{audit}"
[components.ledger]
wasm = "{ledger}"
depends = ["audit"]
[components.notifier]
wasm = "{notifier}"
depends = ["ledger"]
[components.gateway]
wasm = "{gateway}"
depends = ["ledger"]
[supervisor]
strategy = "one-for-one"
max_restarts = 0
children = ["audit", "ledger", { component = "notifier", init = { crash_every = 1 } },
            { component = "gateway", init = { interval_ms = 20 } }]
"#,
    );
    let (code, _, err) = run(plasmoid().args(["release", "run"]).arg(&manifest));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("notifier tripped over order #1"), "{err}");
    assert!(err.contains("the root supervisor gave up"), "{err}");
}

#[test]
fn the_demo_release_runs_and_its_supervisors_restart_the_notifier() {
    common::wasm("ledger"); // build the guest workspace once, like the other tests
    // Port 0: the manifest's 127.0.0.1:8080 may be taken on this machine.
    // A fresh data folder: the balances a previous run left are not ours.
    let data = tempfile::tempdir().unwrap();
    let mut running = Running::start(
        plasmoid()
            .args(["release", "run", "--http", "127.0.0.1:0", "--observer"])
            .args(["127.0.0.1:0", "--data"])
            .arg(data.path())
            .arg("apps/demo/prod.toml"),
    );
    assert!(
        running.wait_for("release shop-1.0.0 is up", Duration::from_secs(300)),
        "{}",
        running.seen
    );
    // The gateways take real orders.
    let addr = common::web::listening_at(
        &common::repo().join("apps/demo/target/plasmoid/shop-1.0.0/node"),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use common::web::once;
        let r = once(
            addr,
            "POST",
            "/orders",
            br#"{"from":"alice","to":"bob","amount":5}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["settled"]["to_balance"].is_u64(), "{v}");
        let r = once(
            addr,
            "POST",
            "/orders",
            br#"{"from":"alice","to":"zed","amount":5}"#,
        )
        .await;
        assert_eq!(r.status, 422, "an unknown account is refused: {r:?}");
        let r = once(addr, "POST", "/orders", b"five euros please").await;
        assert_eq!(r.status, 400, "{r:?}");
        let r = once(addr, "GET", "/orders", b"").await;
        assert_eq!(r.status, 405, "{r:?}");
        let r = once(addr, "GET", "/balances", b"").await;
        assert_eq!(r.status, 200, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["alice"].is_u64() && v["dave"].is_u64(), "{v}");
    });
    assert!(
        running.wait_for("child restarted", Duration::from_secs(20)),
        "{}",
        running.seen
    );
    let (code, log) = running.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("simulated bug"), "{log}");
    assert!(log.contains("supervisor=core"), "{log}");
    assert!(log.contains("child=notifier"), "{log}");
    assert_eq!(
        stopping_order(&log),
        [
            "edge",
            "gateway-us",
            "gateway-eu",
            "core",
            "notifier",
            "ledger",
            "audit"
        ],
        "{log}"
    );
}

#[test]
fn upgrade_swaps_a_component_of_a_running_release() {
    let (_dir, manifest) = release_folder(SMALL);
    let running = Running::release_up(&manifest, "small-0.1.0");
    let rel = manifest
        .parent()
        .unwrap()
        .join("target/plasmoid/small-0.1.0");
    let (code, out, err) = run(plasmoid()
        .arg("upgrade")
        .arg(&rel)
        .arg("counter")
        .arg(common::wasm("counter_v2")));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("counter upgraded: "), "{out}");
    assert!(out.contains("1 handed over"), "{out}");
    // It waits out the probation and reports the final outcome.
    assert!(out.contains("\ncounter confirmed: "), "{out}");
    let (code, _, err) = run(plasmoid()
        .arg("upgrade")
        .arg(&rel)
        .arg("counter")
        .arg(common::wat_particle()));
    assert_eq!(code, 1, "a WAT text file is not a component binary: {err}");
    let (code, log) = running.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("upgraded counter"), "{log}");
    assert!(log.contains("rejected components/counter.wasm"), "{log}");
}

#[test]
fn a_broken_component_leaves_no_half_built_release() {
    let (dir, _) = release_folder("");
    std::fs::write(
        dir.path().join("junk.wasm"),
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let manifest = dir.path().join("prod.toml");
    std::fs::write(
        &manifest,
        SMALL
            .replace("wasm = \"{counter}\"", "wasm = \"junk.wasm\"")
            .replace("{echo}", &common::wasm("echo").display().to_string()),
    )
    .unwrap();
    let (code, _, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a WebAssembly binary"), "{err}");
    assert!(!err.contains("utf-8"), "{err}");
    let plasmoid_dir = dir.path().join("target/plasmoid");
    let left: Vec<_> = std::fs::read_dir(&plasmoid_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");
}

#[test]
fn precompiled_code_from_elsewhere_is_not_loaded() {
    // Two builds of the same manifest: each release folder has its own secret.
    let (_a, manifest_a) = release_folder(SMALL);
    let (_b, manifest_b) = release_folder(SMALL);
    let build = |m: &PathBuf| {
        let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(m));
        assert_eq!(code, 0, "{err}");
        PathBuf::from(out.trim())
    };
    let (a, b) = (build(&manifest_a), build(&manifest_b));
    // Counter's .cwasm of release b in release a, with a's plain lock hash
    // updated to match, as someone with write access to the folder could.
    let foreign = std::fs::read(b.join("components/counter.cwasm")).unwrap();
    let mut own = std::fs::read(a.join("components/counter.cwasm")).unwrap();
    let last = own.len() - 1;
    own[last] ^= 0x01; // differ from b's too, in case the builds matched byte for byte
    let swapped = if foreign == std::fs::read(a.join("components/counter.cwasm")).unwrap() {
        own
    } else {
        foreign
    };
    std::fs::write(a.join("components/counter.cwasm"), &swapped).unwrap();
    let mut lock = plasmoid_release::Lock::read(&a).unwrap();
    for f in &mut lock.files {
        if f.path == "components/counter.cwasm" {
            f.blake3 = blake3::hash(&swapped).to_hex().to_string();
            f.size = swapped.len() as u64;
        }
    }
    lock.write(&a).unwrap();
    let node = Running::release_up(&a, "small-0.1.0");
    let (code, log) = node.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("components/counter.cwasm was not made by this plasmoid"),
        "{log}"
    );
    assert!(log.contains("compiling the .wasm"), "{log}");

    // `plasmoid start` loads no .cwasm it did not make.
    let lone = tempfile::tempdir().unwrap();
    let cwasm = lone.path().join("counter.cwasm");
    std::fs::write(&cwasm, &swapped).unwrap();
    let (code, _, err) = run(plasmoid().arg("start").arg(&cwasm));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("precompiled native code"), "{err}");
}

#[test]
fn a_tree_that_does_not_start_exits_1_not_2() {
    // A child whose `start` traps: the tree cannot start. That is a
    // runtime failure (1), not invalid input (2).
    let (dir, _) = release_folder("");
    let wat = std::fs::read_to_string(common::wat_particle()).unwrap();
    let exit = "      (call $exit (i32.const 3) (i32.const 64) (i32.const 8))\n";
    assert!(wat.contains(exit));
    std::fs::write(dir.path().join("trap.wat"), wat.replace(exit, "")).unwrap();
    let manifest = dir.path().join("prod.toml");
    std::fs::write(
        &manifest,
        format!(
            "[release]\nname = \"broken\"\nversion = \"1\"\n\
             [components.echo]\nwasm = \"{}\"\n[components.trap]\nwasm = \"trap.wat\"\n\
             [supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"echo\", \"trap\"]\n",
            common::wasm("echo").display()
        ),
    )
    .unwrap();
    let (code, _, err) = run(plasmoid().args(["release", "run"]).arg(&manifest));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the supervision tree did not start"), "{err}");
    assert!(err.contains("child `trap` failed to start"), "{err}");
    assert!(err.contains("wasm trap: wasm `unreachable`"), "{err}");
    assert!(!err.contains("wasm trap: wasm trap"), "one prefix: {err}");
}

#[test]
fn sigterm_stops_a_node_waiting_for_its_peers_at_once() {
    let (dir, _) = release_folder("");
    let [pa, pb] = [common::free_udp_port(), common::free_udp_port()];
    let manifest = dir.path().join("prod.toml");
    std::fs::write(
        &manifest,
        format!(
            "[release]\nname = \"waits\"\nversion = \"1\"\n\
             [nodes]\na = {{ listen = \"127.0.0.1:{pa}\" }}\nb = {{ listen = \"127.0.0.1:{pb}\" }}\n\
             [components.echo]\nwasm = \"{}\"\n\
             [supervisor]\nstrategy = \"one-for-one\"\nchildren = [{{ component = \"echo\", node = [\"b\", \"a\"] }}]\n",
            common::wasm("echo").display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let rel = PathBuf::from(out.trim());
    // Node b never comes: node a waits for it (60 s here) ...
    let mut a = Running::start(plasmoid().args(["release", "run"]).arg(&rel).args([
        "--node",
        "a",
        "--peer-wait-ms",
        "60000",
    ]));
    assert!(
        a.wait_for("waiting for the other nodes", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    // ... until SIGTERM, which ends the wait at once, cleanly.
    let asked = std::time::Instant::now();
    let (code, log) = a.terminate();
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "{log}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {log}");
    assert!(
        log.contains("stopped while waiting for the other nodes"),
        "{log}"
    );

    // A short wait starts the tree without the missing node.
    let mut a = Running::start(plasmoid().args(["release", "run"]).arg(&rel).args([
        "--node",
        "a",
        "--peer-wait-ms",
        "200",
    ]));
    assert!(
        a.wait_for("release waits-1 is up", Duration::from_secs(60)),
        "{}",
        a.seen
    );
    let (code, log) = a.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("starting without nodes b after waiting 200 ms"),
        "{log}"
    );
}
