//! A real HTTP/1.1 client for tests: hyper over TCP to 127.0.0.1, one
//! keep-alive connection per [`Client`].

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Client {
    send: SendRequest<Full<Bytes>>,
    _conn: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { send, _conn: conn })
    }

    /// One request on this connection, bounded by `within`.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        within: Duration,
    ) -> Result<Reply, String> {
        self.request_with(method, path, &[], body, within).await
    }

    /// [`Client::request`] with extra headers.
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        within: Duration,
    ) -> Result<Reply, String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| e.to_string())?;
        let go = async {
            self.send
                .ready()
                .await
                .map_err(|e| format!("not ready: {e}"))?;
            let resp = self
                .send
                .send_request(req)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Reply {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(within, go)
            .await
            .map_err(|_| format!("no answer to {method} {path} within {within:?}"))?
    }
}

/// One request on a new connection.
pub async fn once(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut c = Client::connect(addr).await.unwrap();
    c.request(method, path, body, Duration::from_secs(60))
        .await
        .unwrap()
}

/// The address a release node serves HTTP on: the `http` file its node
/// folder holds (`node/`, or `nodes/<name>/`).
#[allow(dead_code)]
pub fn listening_at(node_dir: &std::path::Path) -> SocketAddr {
    let file = node_dir.join("http");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: `{text}`: {e}", file.display()))
}

/// The address `plasmoid start --http` printed (`HTTP on http://ADDR`).
#[allow(dead_code)]
pub fn logged_address(log: &str) -> SocketAddr {
    log.lines()
        .find_map(|l| l.split("HTTP on http://").nth(1))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `HTTP on http://` line in:\n{log}"))
}
