//! `plasmoid bench http`: requests/s and p50/p99 latency through the HTTP
//! listener at 64 and 256 concurrent keep-alive connections, to one
//! gen_server particle, to a pool of 4 and to a stock wasi:http component
//! (one instance per request), against a plain hyper handler
//! doing the same work natively (the limit; each figure also as a ratio).
//!
//! The load generator runs in the same process, on the same scheduler, for
//! every target alike: the ratio compares like with like.

use super::common::{emit, median, pct};
use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use plasmoid_http::{Balance, HttpConfig, HttpServer, Pool, Route, Target};
use plasmoid_runtime::{Node, NodeConfig, SpawnOpts};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each measurement sends requests (after a warm-up of a tenth).
const DURATION: Duration = Duration::from_secs(3);

pub async fn run(web: std::path::PathBuf, handler: std::path::PathBuf, runs: usize) -> Result<()> {
    // 1,024 slots: a quarter (256) may hold handler instances at once, one
    // per connection at the most.
    let node = Node::new(NodeConfig {
        max_particles: 1024,
        ..NodeConfig::default()
    })?;
    node.load_component("web", &web, None)?;
    node.load_component("hello", &handler, None)?;
    let one = node.spawn("web", "null", named("web"))?;
    let pool: Vec<_> = (0..4)
        .map(|_| node.spawn("web", "null", SpawnOpts::default()))
        .collect::<Result<_, _>>()?;
    let _ = one;
    let members = pool.clone();
    let routes = vec![
        Route::new("/one/*", Target::Name("web".into()))?,
        Route::new("/stock/*", Target::Component("hello".into()))?,
        Route::new(
            "/pool/*",
            Target::Pool(Arc::new(Pool::new("web", Balance::RoundRobin, move || {
                members.clone()
            }))),
        )?,
    ];
    let server = HttpServer::start(node.clone(), HttpConfig::new(local(), routes)).await?;
    let native = native_server().await?;
    for conns in [64usize, 256] {
        let mut figures: Vec<(&str, SocketAddr, &str)> = vec![
            ("native", native, "/hello"),
            ("gen_server", server.local_addr(), "/one/hello"),
            ("pool4", server.local_addr(), "/pool/hello"),
            ("wasi_http", server.local_addr(), "/stock/hello"),
        ];
        let mut rps: std::collections::HashMap<&str, Vec<f64>> = Default::default();
        let mut p50: std::collections::HashMap<&str, Vec<f64>> = Default::default();
        let mut p99: std::collections::HashMap<&str, Vec<f64>> = Default::default();
        // Runs alternate the targets, so drift on a shared machine hits all.
        for _ in 0..runs {
            for (name, addr, path) in &figures {
                let (r, lat) = load(*addr, path, conns).await?;
                rps.entry(name).or_default().push(r);
                p50.entry(name).or_default().push(pct(&lat, 50.0));
                p99.entry(name).or_default().push(pct(&lat, 99.0));
            }
        }
        let native_rps = median(rps["native"].clone());
        for (name, _, _) in figures.drain(..) {
            let r = median(rps[name].clone());
            let params = json!({"target": name, "connections": conns, "runs": runs,
                "seconds": DURATION.as_secs(), "ratio_to_native": r / native_rps.max(1.0)});
            emit("http.requests_per_s", r, "req/s", params.clone());
            emit(
                "http.latency.p50",
                median(p50[name].clone()),
                "µs",
                params.clone(),
            );
            emit("http.latency.p99", median(p99[name].clone()), "µs", params);
        }
    }
    server.stop().await;
    Ok(())
}

fn named(name: &str) -> SpawnOpts {
    SpawnOpts {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn local() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// The limit: hyper answering the same text from a plain handler.
async fn native_server() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(local()).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    let body = Full::new(Bytes::from("hello from native"));
                    let mut a = hyper::Response::new(body);
                    a.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    Ok::<_, std::convert::Infallible>(a)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// `conns` keep-alive connections sending `GET path` for [`DURATION`]:
/// requests/s and the sorted latencies in µs.
async fn load(addr: SocketAddr, path: &str, conns: usize) -> Result<(f64, Vec<f64>)> {
    let warm = Instant::now() + DURATION / 10;
    let end = warm + DURATION;
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let path = path.to_string();
            tokio::spawn(async move { one_connection(addr, &path, warm, end).await })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.context("a load task failed")??);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok((lat.len() as f64 / DURATION.as_secs_f64(), lat))
}

async fn one_connection(
    addr: SocketAddr,
    path: &str,
    warm: Instant,
    end: Instant,
) -> Result<Vec<f64>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut lat = Vec::new();
    loop {
        let t = Instant::now();
        if t >= end {
            return Ok(lat);
        }
        let req = hyper::Request::get(path)
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::new()))?;
        send.ready().await?;
        let resp = tokio::time::timeout(Duration::from_secs(30), send.send_request(req))
            .await
            .map_err(|_| anyhow!("no answer within 30 s"))??;
        let status = resp.status();
        resp.into_body().collect().await?;
        if !status.is_success() {
            return Err(anyhow!("{path} answered {status}"));
        }
        if t >= warm {
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
}
