//! Durable state through `wasi:keyvalue`: apps/kv-http (a wasmCloud-style
//! component, wit-bindgen over the standard WIT, no SDK) on the embedded
//! redb backend, behind a real listener; Cedar on every bucket access; and
//! compare-and-swap through the SDK (apps/web) under contention.

mod common;
use common::web::once;
use common::{Harness, config_with_policies};
use plasmoid_http::{HttpConfig, HttpServer, Route, Target};
use plasmoid_runtime::NodeConfig;
use std::sync::Arc;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

/// A node whose store is `file`, serving kv_http on `/kv/*`.
async fn serving(cfg: NodeConfig, file: &std::path::Path) -> (Harness, HttpServer) {
    let h = Harness::with(cfg, None);
    h.node
        .set_store(Arc::new(plasmoid_store::Embedded::open(file).unwrap()));
    h.node
        .load_component("kv_http", &common::wasm("kv_http"), None)
        .unwrap();
    let route = Route::new("/kv/*", Target::Component("kv_http".into()))
        .unwrap()
        .max_body(4 << 20);
    let cfg = HttpConfig::new(([127, 0, 0, 1], 0).into(), vec![route]);
    let server = HttpServer::start(h.node.clone(), cfg).await.unwrap();
    (h, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_keyvalue_component_keeps_its_data_across_nodes_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node/store.redb");
    {
        let (h, server) = serving(common::config(), &file).await;
        let addr = server.local_addr();
        assert_eq!(once(addr, "GET", "/kv/a", b"").await.status, 404);
        assert_eq!(once(addr, "PUT", "/kv/a", b"apple").await.status, 204);
        assert_eq!(once(addr, "PUT", "/kv/b", b"berry").await.status, 204);
        let r = once(addr, "GET", "/kv/a", b"").await;
        assert_eq!((r.status, r.body.as_str()), (200, "apple"));
        assert_eq!(once(addr, "POST", "/kv/n/incr?by=5", b"").await.body, "5");
        assert_eq!(once(addr, "POST", "/kv/n/incr", b"").await.body, "6");
        let r = once(addr, "GET", "/kv?keys=a,zz,b", b"").await;
        assert_eq!(r.body, "a=apple,zz=,b=berry");
        assert_eq!(once(addr, "GET", "/kv", b"").await.body, "a,b,n");
        assert_eq!(once(addr, "DELETE", "/kv/b", b"").await.status, 204);
        server.stop().await;
        h.node.shutdown(std::time::Duration::from_secs(5)).await;
    }
    // A new node on the same file sees every write.
    let (_h, server) = serving(common::config(), &file).await;
    let addr = server.local_addr();
    let r = once(addr, "GET", "/kv/a", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "apple"));
    assert_eq!(once(addr, "GET", "/kv/b", b"").await.status, 404);
    assert_eq!(once(addr, "POST", "/kv/n/incr", b"").await.body, "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_components_bucket_is_denied_and_oversize_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_h, server) = serving(common::config(), &dir.path().join("s.redb")).await;
    let addr = server.local_addr();
    // The default policies give a component the bucket named after it only.
    let r = once(addr, "GET", "/kv/a?bucket=ledger", b"").await;
    assert_eq!((r.status, r.body.as_str()), (403, "access denied"));
    let big = vec![b'x'; (1 << 20) + 1];
    let r = once(addr, "PUT", "/kv/big", &big).await;
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.body.contains("over the 1048576-byte limit"), "{}", r.body);
    let long_key = "k".repeat(1025);
    let r = once(addr, "PUT", &format!("/kv/{long_key}"), b"v").await;
    assert!(r.body.contains("a key of 1025 bytes"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_can_share_a_bucket_for_reading_only() {
    let policies = format!(
        "{}\npermit (principal == Particle::\"kv_http\", action == Action::\"read\", resource == Bucket::\"shared\");\n",
        plasmoid_runtime::DEFAULT_POLICIES
    );
    let dir = tempfile::tempdir().unwrap();
    let (_h, server) = serving(config_with_policies(&policies), &dir.path().join("s.redb")).await;
    let addr = server.local_addr();
    assert_eq!(
        once(addr, "GET", "/kv/a?bucket=shared", b"").await.status,
        404
    );
    let r = once(addr, "PUT", "/kv/a?bucket=shared", b"v").await;
    assert_eq!((r.status, r.body.as_str()), (403, "access denied"));
}

/// Four web particles (SDK gen_servers) at once add to one total through
/// `store::update` (read, then compare-and-swap, again on a lost race):
/// every addition counts. The first `claim` of a key wins, the rest see
/// who holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_keeps_every_concurrent_addition() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::with(common::config(), None);
    h.node.set_store(Arc::new(
        plasmoid_store::Embedded::open(&dir.path().join("cas.redb")).unwrap(),
    ));
    h.node
        .load_component("web", &common::wasm("web"), None)
        .unwrap();
    let mut routes = Vec::new();
    for i in 0..4 {
        let name = format!("w{i}");
        let init = format!(r#"{{"name":"{name}"}}"#);
        h.node
            .spawn("web", &init, plasmoid_runtime::SpawnOpts::default())
            .unwrap();
        routes.push(Route::new(&format!("/{name}/*"), Target::Name(name.clone())).unwrap());
    }
    let cfg = HttpConfig::new(([127, 0, 0, 1], 0).into(), routes);
    let server = HttpServer::start(h.node.clone(), cfg).await.unwrap();
    let addr = server.local_addr();
    // Each registers in its init; wait until all four answer.
    let until = std::time::Instant::now() + 10 * SEC;
    for i in 0..4 {
        while once(addr, "GET", &format!("/w{i}/hello"), b"").await.status != 200 {
            assert!(std::time::Instant::now() < until, "w{i} never registered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let adders: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(async move {
                let mut c = common::web::Client::connect(addr).await.unwrap();
                for _ in 0..25 {
                    let r = c
                        .request("POST", &format!("/w{i}/add?key=total&by=2"), b"", 10 * SEC)
                        .await
                        .unwrap();
                    assert_eq!(r.status, 200, "{r:?}");
                }
            })
        })
        .collect();
    for a in adders {
        a.await.unwrap();
    }
    let r = once(addr, "POST", "/w0/add?key=total&by=0", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "200"), "{r:?}");
    let r = once(addr, "POST", "/w1/claim?key=owner", b"w1").await;
    assert_eq!((r.status, r.body.as_str()), (200, "claimed"));
    let r = once(addr, "POST", "/w2/claim?key=owner", b"w2").await;
    assert_eq!((r.status, r.body.as_str()), (409, "taken by w1"));
}
