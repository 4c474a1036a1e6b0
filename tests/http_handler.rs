//! Stock `wasi:http` components (apps/hello-http, built with wstd and no
//! Plasmoid SDK) as route targets: one instance per request, each failure
//! confined to its request, outgoing HTTP authorized by Cedar.

mod common;
use common::web::{Client, once};
use common::{Harness, config_with_policies};
use plasmoid_http::{HttpConfig, HttpServer, Route, Target};
use plasmoid_runtime::{Limits, NodeConfig, SpawnOpts};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEC: Duration = Duration::from_secs(1);

/// A node with `hello_http` loaded (limits small enough to hit) behind a
/// listener on `/hi/*`.
async fn serving(cfg: NodeConfig) -> (Harness, HttpServer) {
    let h = Harness::with(cfg, None);
    let limits = Limits {
        memory_bytes: 32 << 20,
        cpu_ms: 300,
        mailbox: 4,
    };
    h.node
        .load_component("hello_http", &common::wasm("hello_http"), Some(limits))
        .unwrap();
    let route = Route::new("/hi/*", Target::Component("hello_http".into())).unwrap();
    let cfg = HttpConfig::new(([127, 0, 0, 1], 0).into(), vec![route]);
    let server = HttpServer::start(h.node.clone(), cfg).await.unwrap();
    (h, server)
}

/// A real HTTP/1.1 server (hyper) that answers every request `200 pong`,
/// reading each request whole (a chunked empty body included) first.
async fn pong_server() -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        req.into_body().collect().await?;
                        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"pong"));
                        Ok::<_, hyper::Error>(hyper::Response::new(body))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_wasi_http_component_answers_one_instance_per_request() {
    let (h, server) = serving(common::config()).await;
    let addr = server.local_addr();
    let mut c = Client::connect(addr).await.unwrap();
    for i in 0..20 {
        let r = c
            .request("GET", &format!("/hi/n{i}"), b"", 5 * SEC)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, format!("hello from wasi:http at /hi/n{i}"));
    }
    let r = c
        .request("POST", "/hi/echo", b"ping", 5 * SEC)
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ping"), "{r:?}");
    // A handler is not a process: it cannot be spawned.
    let err = h
        .node
        .spawn("hello_http", "", SpawnOpts::default())
        .unwrap_err();
    assert!(err.to_string().contains("wasi:http handler"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_a_loop_or_a_memory_bomb_ends_that_request_only() {
    let (_h, server) = serving(common::config()).await;
    let addr = server.local_addr();
    for (path, why) in [
        ("/hi/trap", "unreachable"),
        ("/hi/spin", "CPU budget"),
        ("/hi/alloc", "memory"),
    ] {
        let r = once(addr, "GET", path, b"").await;
        assert_eq!(r.status, 500, "{path}: {r:?}");
        assert!(r.body.contains(why), "{path}: {}", r.body);
        // The next request runs in a fresh instance.
        let r = once(addr, "GET", "/hi/ok", b"").await;
        assert_eq!(r.status, 200, "after {path}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_http_reaches_an_allowed_destination_and_a_denied_one_is_an_error() {
    let (allowed, other) = (pong_server().await, pong_server().await);
    let policies = format!(
        "{}\npermit (principal == Particle::\"hello_http\", action == Action::\"connect\", resource == Host::\"{allowed}\");\n",
        plasmoid_runtime::DEFAULT_POLICIES
    );
    let (_h, server) = serving(config_with_policies(&policies)).await;
    let addr = server.local_addr();
    let r = once(
        addr,
        "GET",
        &format!("/hi/fetch?url=http://{allowed}/x"),
        b"",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "200 pong"), "{r:?}");
    let r = once(addr, "GET", &format!("/hi/fetch?url=http://{other}/x"), b"").await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
    // A guest that writes its body after the host is done with it (hyper
    // sends a GET without one; a denied request is never sent) still
    // learns the request's real outcome, not a closed stream.
    let r = once(
        addr,
        "GET",
        &format!("/hi/fetch-late?url=http://{allowed}/x"),
        b"",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "200"), "{r:?}");
    let r = once(
        addr,
        "GET",
        &format!("/hi/fetch-late?url=http://{other}/x"),
        b"",
    )
    .await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_host_header_cannot_change_the_path_the_handler_sees() {
    let (_h, server) = serving(common::config()).await;
    let mut raw = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    raw.write_all(b"GET /hi/ok HTTP/1.1\r\nhost: x/admin?\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(5 * SEC, raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("hello from wasi:http at /hi/ok"),
        "{answer}"
    );
}
