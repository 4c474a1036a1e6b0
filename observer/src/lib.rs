//! plasmoid-observer: a running node's live dashboard and its Prometheus
//! metrics, served over HTTP from the node itself.
//!
//! It owns the sampling of a node's counters into rates and history, the
//! page (embedded: it works offline), its server-sent events, the actions
//! the page may take, `/metrics`, and who is let in. It does not count
//! (plasmoid-runtime's `stats` does), know the supervision tree or how to
//! kill, restart or swap (the host, plasmoid-release, answers through
//! [`Backend`]), or find a release's files (the CLI does).

mod auth;
mod metrics;
pub mod model;
mod sampler;
mod server;
pub mod view;

pub use model::{Event, Sample, TreeNode};
pub use server::{MAX_STREAMS, MAX_UPLOAD};

use plasmoid_runtime::Node;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, as [`Backend`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the observer asks of the node's host.
pub trait Backend: Send + Sync + 'static {
    /// The supervision tree, when this node runs one (`version`, `state`
    /// and `restarted_at` are the observer's to fill in).
    fn tree(&self) -> BoxFuture<'_, Option<TreeNode>>;
    /// Past upgrades, rollbacks and rejections (the lock's history); read
    /// every few samples, the newest 500 kept.
    fn history(&self) -> Vec<Event>;
    /// Components a `.wasm` may be swapped in for.
    fn components(&self) -> Vec<String>;
    /// Kill a pid, name or `name@node`, as `plasmoid kill`.
    fn kill<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<String, String>>;
    /// Restart a supervised child (by pid): terminate it, start it again.
    fn restart<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<String, String>>;
    /// Install a new version of `component`, as `plasmoid upgrade` does.
    fn swap<'a>(
        &'a self,
        component: &'a str,
        wasm: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, String>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    #[error(
        "the observer cannot listen on {addr}: {source} (pick another address with `[observer] listen` or `--observer`)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no randomness for the observer's token: {0}")]
    Random(String),
}

/// How to serve the observer.
#[derive(Clone, Debug)]
pub struct ObserverConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// `name-version` of the release, and this node's name in it.
    pub release: String,
    pub node: String,
    /// A token that also admits (see [`client_token`]).
    pub client_token: Option<String>,
    /// How often to sample; a crash shows within one interval.
    pub interval: Duration,
}

/// The default sampling interval: 500 ms.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// The token that admits the holder of a release's client key: derived
/// from the key's secret bytes, so `plasmoid observe` can compute it and
/// nothing needs to be stored.
pub fn client_token(secret: &[u8; 32]) -> String {
    let k = blake3::derive_key("plasmoid observer token v1", secret);
    k.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A running observer; stops when [`Observer::stop`] is called or it is
/// dropped.
pub struct Observer {
    addr: SocketAddr,
    token: String,
    sampler: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Observer {
    /// Bind `cfg.listen` and start sampling and serving.
    pub async fn start(
        node: Node,
        backend: Arc<dyn Backend>,
        cfg: ObserverConfig,
    ) -> Result<Observer, ObserverError> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| ObserverError::Random(e.to_string()))?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ObserverError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ObserverError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let (sampler, shared) = sampler::Sampler::new(
            node.clone(),
            backend.clone(),
            cfg.release.clone(),
            cfg.node.clone(),
            cfg.interval,
        );
        let mut tokens = vec![token.clone()];
        tokens.extend(cfg.client_token.clone());
        let gate = Arc::new(auth::Gate::new(
            tokens,
            addr.ip().is_loopback(),
            addr.port(),
        ));
        let app = Arc::new(server::App {
            registry: metrics::registry(node.clone(), shared.clone()),
            node,
            backend,
            shared,
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        });
        let router = server::router(app, gate);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sampler = tokio::spawn(sampler.run());
        let server = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(listener, service).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("the observer stopped serving: {e}");
            }
        });
        Ok(Observer {
            addr,
            token,
            sampler,
            server,
            stop: Some(stop),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token printed at start.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The dashboard's address, without a token.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stop sampling (which ends every live stream) and serving.
    pub async fn stop(mut self) {
        self.sampler.abort();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // Requests in flight get a moment; the rest are cut.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.server).await;
        self.server.abort();
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.sampler.abort();
        self.server.abort();
    }
}
