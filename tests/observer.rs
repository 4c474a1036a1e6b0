//! The observer, end to end: the demo release (its own prod.toml, with
//! the guests prebuilt) runs with `--observer`; a real headless Chromium,
//! driven over WebDriver by chromedriver, loads the dashboard from the
//! URL `plasmoid observe` prints, and the test checks what a user sees:
//! the tree, a crash showing up within 2 s, the particle table sorted by
//! mailbox, a particle's details with its Cedar denial, and a kill from
//! the page that the supervisor answers with a restart. `/metrics` is
//! parsed with a Prometheus parser; an observer beyond loopback refuses
//! every request without its token.

mod common;
use common::web::Client;
use common::{Running, plasmoid, run};
use fantoccini::{Client as Browser, Locator};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

/// The demo's manifest with its guests prebuilt, a probe component
/// beside them, its HTTP listener on a free port.
fn demo_release(dir: &Path) -> PathBuf {
    let demo = common::repo().join("apps/demo");
    let mut text = std::fs::read_to_string(demo.join("prod.toml")).unwrap();
    text = text.replace(
        "policies = \"policies\"",
        &format!("policies = \"{}\"", demo.join("policies").display()),
    );
    // The audit log is Python and the notifier JavaScript: built from
    // their sources, by absolute path.
    for (key, file) in [("python", "audit/app.py"), ("js", "notifier/app.js")] {
        let from = format!("{key} = \"{file}\"");
        assert!(
            text.contains(&from),
            "the demo manifest changed: no `{from}`"
        );
        text = text.replace(&from, &format!("{key} = \"{}\"", demo.join(file).display()));
    }
    for name in ["ledger", "gateway"] {
        let from = format!("path = \"{name}\"");
        assert!(
            text.contains(&from),
            "the demo manifest changed: no `{from}`"
        );
        text = text.replace(
            &from,
            &format!("wasm = \"{}\"", common::wasm(name).display()),
        );
    }
    assert!(text.contains("listen = \"127.0.0.1:8080\""));
    text = text.replace("listen = \"127.0.0.1:8080\"\n", "");
    // A probe to fill a mailbox and to be denied something, for the table
    // and the particle view.
    let probe = format!(
        "[components.probe]\nwasm = \"{}\"\n\n[supervisor]",
        common::wasm("probe").display()
    );
    text = text.replacen("[supervisor]", &probe, 1);
    let manifest = dir.join("prod.toml");
    std::fs::write(&manifest, text).unwrap();
    let (code, out, err) = run(plasmoid()
        .args(["release", "build", "--out"])
        .arg(dir.join("out"))
        .arg(&manifest));
    assert_eq!(code, 0, "{err}");
    PathBuf::from(out.trim())
}

/// The demo release running with its observer on `observer`.
fn up(rel: &Path, observer: &str) -> Running {
    let mut node = Running::start(
        plasmoid()
            .args([
                "release",
                "run",
                "--http",
                "127.0.0.1:0",
                "--observer",
                observer,
            ])
            .arg(rel),
    );
    assert!(
        node.wait_for("release shop-1.0.0 is up", 120 * SEC),
        "{}",
        node.seen
    );
    node
}

fn observer_addr(rel: &Path) -> SocketAddr {
    let url = std::fs::read_to_string(rel.join("node/observer")).unwrap();
    url.trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

fn cli(rel: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(plasmoid().args(args).arg("--release").arg(rel));
    assert_eq!(code, 0, "plasmoid {args:?}: {err}");
    out.trim().to_string()
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let port = common::free_tcp_port();
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver runs (Debian: apt-get install chromium chromium-driver; .ci/run installs them)");
    let deadline = Instant::now() + 30 * SEC;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, port }
}

async fn browser(driver: &Driver) -> Browser {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1500,1000"] }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session in headless Chromium")
}

/// Run `script` in the page until it returns something truthy.
async fn until(b: &Browser, what: &str, within: Duration, script: &str) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = b.execute(script, vec![]).await.unwrap();
        let truthy = !(v.is_null() || v == json!(false) || v == json!(""));
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            let text = b
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap_or_default();
            let text = text.as_str().unwrap_or_default();
            panic!(
                "{what}: not within {within:?}; the page shows:\n{}",
                &text[..text.len().min(6000)]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Click the element `css` names. The page redraws its table and tree
/// at every sample, so an element found may be replaced before the click
/// lands (a stale element): find it again, for up to 2 s.
async fn click(b: &Browser, css: &str) {
    let deadline = Instant::now() + 2 * SEC;
    loop {
        let tried = match b.find(Locator::Css(css)).await {
            Ok(e) => e.click().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match tried {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("cannot click `{css}`: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

const TREE: &str = "return [...document.querySelectorAll('g.tnode')].map(g => \
    [g.dataset.id, g.dataset.pid, Number(g.dataset.restarts), g.dataset.state]);";

fn child<'a>(tree: &'a Value, id: &str) -> &'a Value {
    tree.as_array()
        .unwrap()
        .iter()
        .find(|n| n[0] == id)
        .unwrap_or_else(|| panic!("no `{id}` in the tree {tree}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_demo_live_and_its_kill_restarts_a_child() {
    common::log();
    let dir = tempfile::tempdir().unwrap();
    let rel = demo_release(dir.path());
    let _node = up(&rel, "127.0.0.1:0");
    let url = cli(&rel, &["observe", "--no-open"]);
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("?token="),
        "{url}"
    );
    let driver = chromedriver();
    let b = browser(&driver).await;
    b.goto(&url).await.unwrap();

    // The tree: every child of the demo, with pids and states.
    until(
        &b,
        "the tree",
        10 * SEC,
        "return document.querySelectorAll('g.tnode').length >= 8",
    )
    .await;
    let tree = b.execute(TREE, vec![]).await.unwrap();
    for id in [
        "root",
        "audit",
        "core",
        "ledger",
        "notifier",
        "edge",
        "gateway-eu",
        "gateway-us",
    ] {
        let n = child(&tree, id);
        assert!(
            n[1].as_str().is_some_and(|p| p.contains('.')),
            "{id} has a pid: {n}"
        );
    }
    assert_eq!(child(&tree, "ledger")[3], "running");
    let mode = b
        .find(Locator::Css("#mode"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(mode, "actions enabled");

    // A crash of the notifier shows within 2 s.
    let before = child(&tree, "notifier")[2].as_u64().unwrap();
    let killed_at = Instant::now();
    let notifier = child(&tree, "notifier")[1].as_str().unwrap().to_string();
    cli(&rel, &["kill", &notifier]);
    let script = format!(
        "const g = document.querySelector('g.tnode[data-id=\"notifier\"]'); \
         return g && Number(g.dataset.restarts) > {before} && g.classList.contains('flash');"
    );
    until(&b, "the notifier's restart", 2 * SEC, &script).await;
    let seen_after = killed_at.elapsed();
    assert!(seen_after <= 2 * SEC, "shown after {seen_after:?}");

    // The particle table sorts by mailbox: a probe whose mailbox fills
    // (it waits for a reply that never comes) leads, then trails.
    let audit = child(&tree, "audit")[1].as_str().unwrap().to_string();
    let init = json!({ "controller": audit }).to_string();
    let full = cli(&rel, &["spawn", "probe", "--init", &init]);
    cli(&rel, &["send", &full, r#"{"register":"taken"}"#]);
    cli(
        &rel,
        &[
            "send",
            &full,
            r#"{"recv_ref":{"ref":7,"timeout_ms":600000}}"#,
        ],
    );
    let flooder = cli(&rel, &["spawn", "probe", "--init", &init]);
    let flood = json!({ "flood": { "to": full, "count": 300 } }).to_string();
    cli(&rel, &["send", &flooder, &flood]);
    click(&b, "nav button[data-tab=particles]").await;
    let rows = "return [...document.querySelectorAll('#particles tbody tr')].map(r => \
        [r.dataset.pid, Number(r.querySelector('td.mailbox').textContent)]);";
    let first = format!(
        "const r = document.querySelector('#particles tbody tr'); \
         return r && r.dataset.pid === '{full}' && Number(r.querySelector('td.mailbox').textContent) >= 300;"
    );
    until(&b, "the full mailbox first (descending)", 10 * SEC, &first).await;
    click(&b, "th[data-sort=mailbox]").await;
    let last = format!(
        "const rs = [...document.querySelectorAll('#particles tbody tr')]; \
         return rs.length > 2 && rs[rs.length - 1].dataset.pid === '{full}' \
           && document.querySelector('th[data-sort=mailbox]').dataset.dir === 'asc';"
    );
    until(&b, "the full mailbox last (ascending)", 5 * SEC, &last).await;
    let order = b.execute(rows, vec![]).await.unwrap();
    let boxes: Vec<u64> = order
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_u64().unwrap())
        .collect();
    assert!(
        boxes.windows(2).all(|w| w[0] <= w[1]),
        "ascending: {boxes:?}"
    );

    // The particle view: its mailbox and its Cedar denial.
    let row = format!("#particles tbody tr[data-pid=\"{full}\"]");
    click(&b, &row).await;
    until(
        &b,
        "the probe's denial in its details",
        5 * SEC,
        "return document.querySelector('#detail-denials').textContent.includes('register taken');",
    )
    .await;

    // Kill from the page, confirmed: the supervisor restarts the child.
    click(&b, "nav button[data-tab=tree]").await;
    let tree = b.execute(TREE, vec![]).await.unwrap();
    let (old_pid, old_restarts) = {
        let n = child(&tree, "gateway-us");
        (n[1].as_str().unwrap().to_string(), n[2].as_u64().unwrap())
    };
    click(&b, "g.tnode[data-id=\"gateway-us\"]").await;
    until(
        &b,
        "the details",
        5 * SEC,
        "return !document.querySelector('#kill').disabled;",
    )
    .await;
    click(&b, "#kill").await;
    until(
        &b,
        "the confirmation",
        2 * SEC,
        "return !document.querySelector('#confirm').classList.contains('hidden');",
    )
    .await;
    click(&b, "#confirm-yes").await;
    let restarted = format!(
        "const g = document.querySelector('g.tnode[data-id=\"gateway-us\"]'); \
         return g && Number(g.dataset.restarts) === {} && g.dataset.pid !== '{old_pid}' \
           && g.dataset.state === 'running';",
        old_restarts + 1
    );
    until(
        &b,
        "gateway-us restarted by its supervisor",
        10 * SEC,
        &restarted,
    )
    .await;
    let toast = b
        .find(Locator::Css("#toast"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(toast.contains("killed"), "{toast}");

    // The timeline has the restarts and the action.
    click(&b, "nav button[data-tab=history]").await;
    until(
        &b,
        "the action and the restart on the timeline",
        5 * SEC,
        "const t = document.querySelector('#events').textContent; \
         return t.includes('kill ') && t.includes('gateway-us restarted');",
    )
    .await;
    click(&b, "nav button[data-tab=tree]").await;
    // The details followed the child to its new pid.
    until(
        &b,
        "the details of the restarted child",
        5 * SEC,
        &format!(
            "return document.querySelector('#detail-title').textContent.includes('gateway-us') \
                  && !document.querySelector('#detail-title').textContent.includes('{old_pid}');"
        ),
    )
    .await;
    let shot = b.screenshot().await.unwrap();
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("observer-dashboard.png");
    std::fs::write(&file, shot).unwrap();
    eprintln!("screenshot: {}", file.display());
    b.close().await.unwrap();
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("/metrics parses");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> common::web::Reply {
    let mut c = Client::connect(addr).await.unwrap();
    c.request_with("GET", path, headers, b"", 10 * SEC)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_as_the_demo_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rel = demo_release(dir.path());
    let _node = up(&rel, "127.0.0.1:0");
    let addr = observer_addr(&rel);
    let http = common::web::listening_at(&rel.join("node"));
    let r = common::web::once(http, "GET", "/balances", b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    let first = get(addr, "/metrics", &[]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let kind = first.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let received = |t: &str| metric(t, "plasmoid_messages_received_total", &[]).unwrap();
    let alive = metric(&first.body, "plasmoid_particles_alive", &[]).unwrap();
    assert!(alive >= 5.0, "{}", first.body);
    assert!(metric(&first.body, "plasmoid_spawns_total", &[]).unwrap() >= 5.0);
    let balances = metric(
        &first.body,
        "plasmoid_http_requests_total",
        &[("route", "/balances"), ("status", "200")],
    );
    assert_eq!(balances, Some(1.0), "{}", first.body);
    // The gateways make orders up and the notifier crashes on purpose:
    // messages, sends and exceptions move.
    let deadline = Instant::now() + 30 * SEC;
    loop {
        let now = get(addr, "/metrics", &[]).await.body;
        let moved = received(&now) > received(&first.body)
            && metric(&now, "plasmoid_messages_sent_total", &[]).unwrap()
                > metric(&first.body, "plasmoid_messages_sent_total", &[]).unwrap()
            && metric(&now, "plasmoid_exits_total", &[("reason", "exception")]).unwrap() >= 1.0
            && metric(
                &now,
                "plasmoid_restarts_total",
                &[("supervisor", "root/core")],
            )
            .unwrap()
                >= 1.0;
        if moved {
            break;
        }
        assert!(Instant::now() < deadline, "counters did not move: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_every_request_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let rel = demo_release(dir.path());
    // Every interface, reached here through loopback only.
    let node = up(&rel, "0.0.0.0:0");
    let addr = SocketAddr::from(([127, 0, 0, 1], observer_addr(&rel).port()));
    // Logged before the tree starts, so before `is up`.
    let printed = node
        .seen
        .lines()
        .find(|l| l.contains("beyond loopback"))
        .and_then(|l| l.rsplit("token=").next())
        .and_then(|t| t.split_whitespace().next())
        .map(|t| t.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no token printed: {}", node.seen));
    let url = cli(&rel, &["observe", "--no-open"]);
    let key_token = url.split("?token=").nth(1).unwrap().to_string();
    let paths = [
        "/",
        "/app.js",
        "/api/history",
        "/api/whoami",
        "/api/events",
        "/metrics",
        "/api/particle/x.1",
    ];
    for p in paths {
        let r = get(addr, p, &[]).await;
        assert_eq!(r.status, 401, "{p} without a token: {}", r.body);
        let r = get(
            addr,
            p,
            &[("authorization", "Bearer 0123456789abcdef0123456789abcdef")],
        )
        .await;
        assert_eq!(r.status, 401, "{p} with a wrong token");
    }
    let mut c = Client::connect(addr).await.unwrap();
    let r = c
        .request_with(
            "POST",
            "/api/action/kill",
            &[("x-plasmoid-action", "1")],
            br#"{"target":"ledger"}"#,
            10 * SEC,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401, "an action without a token");
    for token in [&printed, &key_token] {
        let bearer = format!("Bearer {token}");
        for p in ["/", "/metrics", "/api/history"] {
            let r = get(addr, p, &[("authorization", &bearer)]).await;
            assert_eq!(r.status, 200, "{p} with the token: {}", r.body);
        }
    }
    // The URL's token becomes a cookie, and the address loses it.
    let r = get(addr, &format!("/?token={key_token}"), &[]).await;
    assert_eq!(r.status, 303);
    let cookie = r
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(r.headers.get("location").unwrap(), "/");
    // A session of its own, named after the port: never the release's token.
    let named = format!("plasmoid_observer_{}=", addr.port());
    assert!(
        cookie.starts_with(&named) && !cookie.contains(&key_token),
        "{cookie}"
    );
    // A scraper's `?token=` is admitted as it is, without a redirect.
    let r = get(addr, &format!("/metrics?token={key_token}"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pair = cookie.split(';').next().unwrap();
    let r = get(addr, "/api/whoami", &[("cookie", pair)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["can_act"],
        true
    );
    // An action also needs the header a cross-site form cannot send.
    let bearer = format!("Bearer {key_token}");
    let mut c = Client::connect(addr).await.unwrap();
    let r = c
        .request_with(
            "POST",
            "/api/action/kill",
            &[("authorization", &bearer)],
            br#"{"target":"ledger"}"#,
            10 * SEC,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
}
