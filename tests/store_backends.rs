//! The store's conformance suite against a real redis-server (the embedded
//! backend runs it in plasmoid-store's own tests), and Redis stopped and
//! started again under a particle's feet: errors within a bounded time,
//! then service again.

mod common;
use common::redis::RedisServer;
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
