//! Outgoing TCP from a real guest (the probe, with std's TcpStream over
//! wasi:sockets) to real servers on 127.0.0.1, each destination authorized
//! by Cedar (`connect` on `Host::"IP:PORT"`); the default is deny.

mod common;
use common::{Harness, config_with_policies};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that answers `pong:` and what it read, then closes.
async fn pong_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let _ = s.write_all(b"pong:").await;
                let _ = s.write_all(&got).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_destination_answers_and_a_denied_one_is_an_error_value() {
    let (allowed, other) = (pong_server().await, pong_server().await);
    let policies = format!(
        "{}\npermit (principal == Particle::\"probe\", action == Action::\"connect\", resource == Host::\"{allowed}\");\n",
        plasmoid_runtime::DEFAULT_POLICIES
    );
    let h = Harness::with(config_with_policies(&policies), None);
    let p = h.probe().await;
    let r = h
        .cmd(
            p,
            json!({"tcp": {"addr": allowed.to_string(), "send": "ping"}}),
        )
        .await;
    assert_eq!(r["ok"], "pong:ping", "{r}");
    let r = h
        .cmd(
            p,
            json!({"tcp": {"addr": other.to_string(), "send": "ping"}}),
        )
        .await;
    let err = r["err"].as_str().unwrap_or_default();
    assert!(err.contains("PermissionDenied"), "{r}");
    // The probe lives on: a denial is a value, not a crash.
    assert!(h.ok(p, json!("self_pid")).await.is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_no_particle_reaches_out() {
    let server = pong_server().await;
    let h = Harness::new();
    let p = h.probe().await;
    let r = h
        .cmd(
            p,
            json!({"tcp": {"addr": server.to_string(), "send": "ping"}}),
        )
        .await;
    assert!(
        r["err"]
            .as_str()
            .unwrap_or_default()
            .contains("PermissionDenied"),
        "{r}"
    );
    // Nor resolves names.
    let r = h
        .cmd(p, json!({"tcp": {"addr": "localhost:1", "send": "ping"}}))
        .await;
    assert!(r.get("err").is_some(), "{r}");
}
