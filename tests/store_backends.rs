//! The store's conformance suite against a real redis-server (the embedded
//! backend runs it in plasmoid-store's own tests), quotas on the server,
//! and Redis stopped and started again under the backend's and a
//! component's feet: errors within a bounded time, then service again.

mod common;
use common::redis::RedisServer;
use common::web::once;
use plasmoid_http::{HttpConfig, HttpServer, Route, Target};
use plasmoid_runtime::kv::{KvOp, KvReply, KvStore};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_backend_passes_the_suite() {
    let server = RedisServer::start();
    let s = plasmoid_store::Redis::new(&server.url(), "suite").unwrap();
    plasmoid_store::conformance::basics(&s).await;
    plasmoid_store::conformance::listing(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_quotas_are_kept_on_the_server_for_every_node() {
    let server = RedisServer::start();
    let quotas = || [("q".to_string(), 100u64)].into_iter().collect();
    let s = plasmoid_store::Redis::with_quotas(&server.url(), "quota", quotas()).unwrap();
    plasmoid_store::conformance::quotas(&s).await;
    // Another node of the release sees the same count (the bucket is full).
    let other = plasmoid_store::Redis::with_quotas(&server.url(), "quota", quotas()).unwrap();
    let set = |k: &str, n: usize| KvOp::Set(k.into(), vec![1; n]);
    assert!(other.call("q", set("e", 0)).await.is_err());
    // A node without the quota drops the stale count, so one added again
    // later counts what is there.
    let unquoted = plasmoid_store::Redis::new(&server.url(), "quota").unwrap();
    assert_eq!(unquoted.call("q", set("e", 499)).await, Ok(KvReply::Done));
    let again = plasmoid_store::Redis::with_quotas(&server.url(), "quota", quotas()).unwrap();
    let err = again.call("q", set("f", 0)).await.unwrap_err();
    assert!(err.to_string().contains("600 used"), "{err}");
    assert_eq!(
        again.call("q", KvOp::Delete("e".into())).await,
        Ok(KvReply::Done)
    );
    assert!(again.call("q", set("f", 0)).await.is_err(), "100 used");
    assert_eq!(
        again.call("q", KvOp::Delete("d".into())).await,
        Ok(KvReply::Done)
    );
    assert_eq!(again.call("q", set("f", 62)).await, Ok(KvReply::Done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_an_error_within_bounds_and_service_comes_back() {
    let mut server = RedisServer::start();
    let s = plasmoid_store::Redis::new(&server.url(), "flaky").unwrap();
    let set = |v: &str| KvOp::Set("k".into(), v.as_bytes().to_vec());
    assert_eq!(s.call("b", set("1")).await, Ok(KvReply::Done));
    server.down();
    let t = Instant::now();
    let err = s.call("b", set("2")).await.unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t.elapsed()
    );
    assert!(err.to_string().contains("Redis"), "{err}");
    server.up();
    // Reconnects on its own; the write before the outage is still there.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match s.call("b", KvOp::Get("k".into())).await {
            Ok(v) => {
                assert_eq!(v, KvReply::Value(Some(b"1".to_vec())));
                break;
            }
            Err(e) => assert!(Instant::now() < until, "never came back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.call("b", set("3")).await, Ok(KvReply::Done));
}

/// The same outage under a component's feet: apps/kv-http (standard
/// wasi:keyvalue) on the Redis backend behind a real listener. While the
/// server is down each request fails in bounded time with the store's
/// reason; once it is back the component is served again, data intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_rides_out_a_redis_restart() {
    let mut server = RedisServer::start();
    let h = common::Harness::with(common::config(), None);
    let store = plasmoid_store::Redis::new(&server.url(), "outage").unwrap();
    h.node.set_store(std::sync::Arc::new(store));
    h.node
        .load_component("kv_http", &common::wasm("kv_http"), None)
        .unwrap();
    let route = Route::new("/kv/*", Target::Component("kv_http".into())).unwrap();
    let cfg = HttpConfig::new(([127, 0, 0, 1], 0).into(), vec![route]);
    let http = HttpServer::start(h.node.clone(), cfg).await.unwrap();
    let addr = http.local_addr();
    assert_eq!(once(addr, "PUT", "/kv/a", b"before").await.status, 204);
    server.down();
    let t = Instant::now();
    let r = once(addr, "PUT", "/kv/b", b"during").await;
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.body.contains("Redis"), "{}", r.body);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    server.up();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let r = once(addr, "PUT", "/kv/b", b"after").await;
        if r.status == 204 {
            break;
        }
        assert!(Instant::now() < until, "never served again: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = once(addr, "GET", "/kv/a", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "before"));
    let r = once(addr, "GET", "/kv/b", b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "after"));
}
