//! The listener: the accept loop, the bound on connections, and a graceful
//! stop that lets requests in flight finish.

use crate::request::{Shared, handle};
use crate::{HttpError, Route};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use plasmoid_runtime::Node;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How long a client may take to send a request's headers (10 s): a
/// connection that trickles them in is closed, not held.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most headers one request may have (100).
const MAX_HEADERS: usize = 100;

/// One listener.
#[derive(Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub routes: Vec<Route>,
    /// Connections served at once; one more gets 503 and is closed.
    pub max_connections: usize,
    /// How long a stop waits for requests in flight.
    pub shutdown: Duration,
}

impl HttpConfig {
    pub fn new(listen: SocketAddr, routes: Vec<Route>) -> Self {
        HttpConfig {
            listen,
            routes,
            max_connections: crate::DEFAULT_MAX_CONNECTIONS,
            shutdown: crate::DEFAULT_SHUTDOWN,
        }
    }
}

/// A running listener; [`HttpServer::stop`] ends it gracefully, dropping
/// it ends it at once.
pub struct HttpServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    /// Bind and start serving `cfg.routes` for `node`.
    pub async fn start(node: Node, cfg: HttpConfig) -> Result<HttpServer, HttpError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| HttpError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| HttpError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            node,
            routes: cfg.routes.clone(),
            authority: addr.to_string(),
        });
        let task = tokio::spawn(accept_loop(listener, shared, cfg, stopped));
        tracing::info!(%addr, "HTTP listening");
        Ok(HttpServer {
            addr,
            stop,
            task: Some(task),
        })
    }

    /// Where it listens (the port, when it was asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, let requests in flight finish (within the config's
    /// shutdown timeout), then return.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    cfg: HttpConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    // An HTTP/2 connection that stops answering pings is closed.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            // Out of file descriptors and the like: this connection is
            // lost, the listener stays.
            Err(e) => {
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Over the bound: a fixed 503 (bounded in time), then closed,
            // so connections past the bound cost nothing that lasts.
            tokio::spawn(refuse(stream));
            continue;
        };
        let io = TokioIo::new(stream);
        let watcher = graceful.watcher();
        let (builder, shared) = (builder.clone(), shared.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let conn = builder.serve_connection(io, service).into_owned();
            // A malformed request or a reset ends this connection only.
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
        });
    }
    drop(listener);
    // In flight: finish within the shutdown timeout. Past it the stop
    // returns; the connections left end with the node's runtime (their
    // requests' particles are being stopped, so they answer 500 or 503).
    if tokio::time::timeout(cfg.shutdown, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP: requests still in flight after {} ms; stopping without them",
            cfg.shutdown.as_millis()
        );
    }
}

/// The answer to a connection past the bound: its first request's head is
/// read (so the client is answered, not reset), a fixed 503 written, and
/// the connection closed; all within 1 s and 16 KiB.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 48\r\n\r\nthis listener serves its maximum of connections\n";
    let answer = async {
        let mut head = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        while head.len() < 16 << 10 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = stream.write_all(FULL).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}
