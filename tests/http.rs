//! HTTP in: a real hyper listener in front of real particles, a real HTTP
//! client on 127.0.0.1. Every failure is a status, the listener survives
//! handlers that trap, loop or allocate without end.

mod common;
use common::web::{Client, once};
use common::{Harness, s};
use plasmoid_http::{HttpConfig, HttpServer, Route, Target};
use plasmoid_runtime::{Limits, NodeConfig, SpawnOpts};
use plasmoid_supervisor::{ChildSpec, Strategy, SupervisorSpec, start_link};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEC: Duration = Duration::from_secs(1);

fn to(name: &str) -> Target {
    Target::Name(name.into())
}

/// A node with `web` (limits small enough to hit) under a supervisor that
/// restarts it, registered as `web`, and a listener with `routes`.
async fn serving(routes: Vec<Route>) -> (Harness, HttpServer) {
    let h = Harness::with(
        NodeConfig {
            max_particles: 64,
            ..common::config()
        },
        None,
    );
    let limits = Limits {
        memory_bytes: 32 << 20,
        cpu_ms: 300,
        mailbox: 4,
    };
    h.node
        .load_component("web", &common::wasm("web"), Some(limits))
        .unwrap();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1000, SEC)
        .child(ChildSpec::worker("web", "web", r#"{"name":"web"}"#));
    let sup = start_link(h.node.clone(), spec, None).await.unwrap();
    std::mem::forget(sup);
    let cfg = HttpConfig::new(([127, 0, 0, 1], 0).into(), routes);
    let server = HttpServer::start(h.node.clone(), cfg).await.unwrap();
    (h, server)
}

/// Poll until `GET path` answers 200 (the handler is back after a crash).
async fn until_ok(addr: std::net::SocketAddr, path: &str) {
    let deadline = Instant::now() + 10 * SEC;
    loop {
        let r = once(addr, "GET", path, b"").await;
        if r.status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never answered 200: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gen_server_answers_and_every_failure_is_its_status() {
    let (_h, server) = serving(vec![
        Route::new("/hello", to("web")).unwrap().methods(&["GET"]),
        Route::new("/echo", to("web")).unwrap().max_body(16),
        Route::new("/missing", to("nobody")).unwrap(),
        Route::new("/slow", to("web"))
            .unwrap()
            .timeout(Duration::from_millis(200)),
    ])
    .await;
    let addr = server.local_addr();
    let mut c = Client::connect(addr).await.unwrap();
    // Keep-alive: several requests on one connection.
    for _ in 0..3 {
        let r = c.request("GET", "/hello", b"", 5 * SEC).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.starts_with("hello from "), "{r:?}");
    }
    let r = c.request("POST", "/echo", b"ping", 5 * SEC).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ping"));
    let r = c
        .request("POST", "/echo", &[b'x'; 17], 5 * SEC)
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.body.contains("at most 16 bytes"), "{r:?}");
    let r = once(addr, "GET", "/nowhere", b"").await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = once(addr, "POST", "/hello", b"").await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.headers["allow"], "GET");
    let r = once(addr, "GET", "/missing", b"").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.headers["retry-after"], "1");
    let t = Instant::now();
    let r = once(addr, "GET", "/slow?ms=2000", b"").await;
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        t.elapsed() < 2 * SEC,
        "the timeout answered, not the handler"
    );
    // The slow handler still works through its backlog; then it answers.
    until_ok(addr, "/hello").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_multiplexes_requests_on_one_connection() {
    use http_body_util::{BodyExt, Full};
    let (_h, server) = serving(vec![Route::new("/hello", to("web")).unwrap()]).await;
    let stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    // Four streams at once on the one connection (the mailbox holds 4).
    let asks = (0..4).map(|_| {
        let mut send = send.clone();
        async move {
            let req = hyper::Request::get("http://127.0.0.1/hello")
                .body(Full::new(bytes::Bytes::new()))
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let h2 = resp.version() == hyper::Version::HTTP_2;
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, h2, String::from_utf8_lossy(&body).into_owned())
        }
    });
    for (status, h2, body) in futures_join(asks).await {
        assert_eq!(status, 200, "{body}");
        assert!(h2, "answered over HTTP/2");
        assert!(body.starts_with("hello from "), "{body}");
    }
}

/// Run every future as its own task; their outputs in order.
async fn futures_join<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_closes_one_connection_and_the_listener_serves_on() {
    let (_h, server) = serving(vec![Route::new("/hello", to("web")).unwrap()]).await;
    let addr = server.local_addr();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(5 * SEC, raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let r = once(addr, "GET", "/hello", b"").await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_traps_loops_or_allocates_gives_500_and_is_restarted() {
    let (_h, server) = serving(vec![Route::new("/*", to("web")).unwrap()]).await;
    let addr = server.local_addr();
    for path in ["/trap", "/spin", "/alloc"] {
        let t = Instant::now();
        let r = once(addr, "GET", path, b"").await;
        assert_eq!(r.status, 500, "{path}: {r:?}");
        assert!(r.body.contains("ended before it answered"), "{path}: {r:?}");
        assert!(t.elapsed() < 10 * SEC, "{path} took {:?}", t.elapsed());
        // Its supervisor restarted it; the listener kept serving.
        until_ok(addr, "/hello").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_is_503_and_answered_requests_are_not_lost() {
    let (_h, server) = serving(vec![Route::new("/*", to("web")).unwrap()]).await;
    let addr = server.local_addr();
    // One slow request at a time; the mailbox holds 4.
    let tasks: Vec<_> = (0..12)
        .map(|_| tokio::spawn(async move { once(addr, "GET", "/slow?ms=300", b"").await }))
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().status);
    }
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_particle_answers_with_respond() {
    let h = Harness::new();
    let p = h
        .probe_opts(SpawnOpts {
            name: Some("fp".into()),
            ..Default::default()
        })
        .await;
    let cfg = HttpConfig::new(
        ([127, 0, 0, 1], 0).into(),
        vec![Route::new("/fp/*", to("fp")).unwrap()],
    );
    let server = HttpServer::start(h.node.clone(), cfg).await.unwrap();
    let r = once(server.local_addr(), "PUT", "/fp/items/7?x=1", b"body").await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["http"]["method"], "PUT");
    assert_eq!(v["http"]["path"], "/fp/items/7");
    assert_eq!(v["http"]["query"], "x=1");
    assert_eq!(v["http"]["body"], "body");
    // The probe reported it too: the request reached it as a message.
    let ev = h.event(5 * SEC).await.expect("the probe saw the request");
    assert_eq!(ev["http"]["path"], "/fp/items/7", "{ev} from {}", s(p));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_listener_finishes_requests_in_flight() {
    let (_h, server) = serving(vec![Route::new("/*", to("web")).unwrap()]).await;
    let addr = server.local_addr();
    let slow = tokio::spawn(async move { once(addr, "GET", "/slow?ms=500", b"").await });
    // Give the request time to get in (the handler then sleeps on it for
    // 500 ms); the stop must let it finish.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop().await;
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_the_bound_gets_503_and_is_closed() {
    let (h, _server) = serving(vec![]).await;
    let mut cfg = HttpConfig::new(
        ([127, 0, 0, 1], 0).into(),
        vec![Route::new("/*", to("web")).unwrap()],
    );
    cfg.max_connections = 1;
    let bounded = HttpServer::start(h.node.clone(), cfg).await.unwrap();
    let addr = bounded.local_addr();
    // The one connection allowed, kept open (keep-alive).
    let mut first = Client::connect(addr).await.unwrap();
    let r = first.request("GET", "/hello", b"", 5 * SEC).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = once(addr, "GET", "/hello", b"").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("maximum of connections"), "{r:?}");
    // The first one is still served.
    let r = first.request("GET", "/hello", b"", 5 * SEC).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
}
