//! The control protocol: how `plasmoid status | spawn | send | call | stop | kill`
//! talk to a running node.
//!
//! A client is an iroh endpoint with its own key; the node serves it on the
//! same endpoint as its peers but under another ALPN, and only when the
//! client's id is one it allows, so the QUIC handshake is the
//! authentication. Each request is one bidirectional stream: the client
//! writes a postcard [`Request`] and finishes, the node answers with one
//! postcard `Result<Reply, String>`. Bytes that do not decode close that
//! connection only. Clients dial the node's direct address; nothing is
//! looked up.

use crate::MeshError;
use iroh::endpoint::Connection;
use iroh::{EndpointAddr, PublicKey, SecretKey};
use plasmoid_runtime::NodeId;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub const CONTROL_ALPN: &[u8] = b"plasmoid/control/1";

/// A request or reply larger than this is refused (a message payload is
/// at most a mesh frame anyway).
pub const MAX_CONTROL: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The node, its peers, its particles and (on the root node) the
    /// supervision tree.
    Status,
    /// Start a particle on this node, or on the named `node` of its mesh.
    Spawn {
        component: String,
        init: String,
        name: Option<String>,
        node: Option<String>,
    },
    /// A data message to a pid, a name, or `name@node`.
    Send { target: String, data: Vec<u8> },
    /// Request/reply: a tagged message, answered within `timeout_ms`.
    Call {
        target: String,
        data: Vec<u8>,
        timeout_ms: u64,
    },
    /// Stop a particle (a supervised child stays stopped, as with OTP's
    /// `terminate_child`), or the whole node when `target` is `None`.
    Stop { target: Option<String> },
    /// Read or write one of the node's store buckets, for an operator.
    Store { bucket: String, op: StoreRequest },
    /// Kill a particle, as Erlang's `exit(Pid, kill)`: it cannot trap it,
    /// and its supervisor restarts it per its restart policy. (Last, so
    /// the variants before it keep their numbers on the wire.)
    Kill { target: String },
    /// Converge the running release to the built release folder `dir` (a
    /// new version of it): apply the upgrade plan, all or nothing, then
    /// keep the new version on probation for `probation_ms`.
    Upgrade { dir: String, probation_ms: u64 },
    /// Make the version on probation final now.
    Confirm,
    /// Go back to the previous version: undo the upgrade on probation, or
    /// apply the way back to the version before a confirmed one.
    Rollback,
}

/// What `plasmoid store` asks of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreRequest {
    Get(String),
    Put(String, Vec<u8>),
    Delete(String),
    /// Every key, one per line.
    List,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Status(Box<Status>),
    Pid(String),
    Answer(Vec<u8>),
    Done(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's name in its release (empty when it has none).
    pub node: String,
    pub id: String,
    pub release: String,
    pub uptime_ms: u64,
    pub peers: Vec<PeerStatus>,
    /// Component name and the version (short hash) this node runs.
    pub components: Vec<(String, String)>,
    pub particles: Vec<ParticleRow>,
    /// The supervision tree, on the node that runs the release's root.
    pub tree: Option<TreeRow>,
    /// `[cluster]`'s partition policy and this node's standing under it
    /// (`serving`, `pending`, `stopped`); `None` without a policy.
    #[serde(default)]
    pub partition: Option<(String, String)>,
    /// Cluster-wide names as this node sees them (name, owner pid), at
    /// most [`MAX_STATUS_GLOBALS`].
    #[serde(default)]
    pub globals: Vec<(String, String)>,
}

/// A status lists this many global names at most.
pub const MAX_STATUS_GLOBALS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    pub id: String,
    pub connected: bool,
    /// The release (`name-version`) the peer said it runs, and whether its
    /// components are the same as this node's (it hosts children only then).
    #[serde(default)]
    pub release: Option<(String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticleRow {
    pub pid: String,
    pub component: String,
    pub version: String,
    pub name: Option<String>,
}

/// One supervisor or child in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRow {
    pub id: String,
    pub pid: Option<String>,
    /// The node the child runs on (its name when known).
    pub node: Option<String>,
    /// `Some(strategy)` for a supervisor.
    pub strategy: Option<String>,
    pub component: Option<String>,
    pub restarts: u32,
    pub children: Vec<TreeRow>,
    /// Its restart type (`permanent`, `transient`, `temporary`); `None`
    /// for the root.
    pub restart: Option<String>,
}

pub type ControlFuture = Pin<Box<dyn Future<Output = Result<Reply, String>> + Send>>;

/// What answers control requests (plasmoid-release implements it over a
/// booted release).
pub trait ControlHandler: Send + Sync {
    fn handle(&self, request: Request) -> ControlFuture;
    /// Called once the client has received the answer to `request`.
    fn replied(&self, _request: &Request) {}
}

/// Who may send control requests to a node, and who answers them.
pub(crate) struct ControlServer {
    pub clients: std::collections::HashSet<NodeId>,
    pub handler: Arc<dyn ControlHandler>,
}

/// Answer the requests of one client connection until it closes.
pub(crate) async fn serve(server: Arc<ControlServer>, conn: Connection) {
    let client = NodeId(*conn.remote_id().as_bytes());
    if !server.clients.contains(&client) {
        tracing::warn!(client = %client.to_hex(), "refused a control connection from a key that is not allowed");
        conn.close(1u32.into(), b"not allowed");
        return;
    }
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let server = server.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            let bytes = match recv.read_to_end(MAX_CONTROL).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(client = %client.short(), "control request unreadable: {e}");
                    conn.close(2u32.into(), b"bad request");
                    return;
                }
            };
            let request: Request = match postcard::from_bytes(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(client = %client.short(), "closing a control connection: request does not decode ({e})");
                    conn.close(2u32.into(), b"bad request");
                    return;
                }
            };
            tracing::debug!(client = %client.short(), ?request, "control request");
            let reply = server.handler.handle(request.clone()).await;
            let Ok(out) = postcard::to_allocvec(&reply) else {
                return;
            };
            if send.write_all(&out).await.is_ok() {
                let _ = send.finish();
                // Wait until the client has it; dropping the stream early
                // could reset it.
                let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
            }
            server.handler.replied(&request);
        });
    }
}

/// Where a node takes control requests: its id and direct address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlAddr {
    pub id: NodeId,
    pub addr: SocketAddr,
}

impl std::fmt::Display for ControlAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id.to_hex(), self.addr)
    }
}

impl std::str::FromStr for ControlAddr {
    type Err = String;

    /// `<64-hex node id>@<ip:port>`, as a node writes to its `control` file.
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, addr) = s
            .trim()
            .split_once('@')
            .ok_or_else(|| format!("`{s}` is not NODE_ID@IP:PORT"))?;
        let id = crate::parse_node_id(id)
            .ok_or_else(|| format!("`{id}` is not a node id (64 hex digits)"))?;
        let addr = addr
            .parse()
            .map_err(|e| format!("`{addr}` is not IP:PORT ({e})"))?;
        Ok(ControlAddr { id, addr })
    }
}

/// A control client: one endpoint and one connection to one node.
pub struct ControlClient {
    endpoint: iroh::Endpoint,
    conn: Connection,
}

impl ControlClient {
    /// Dial the node at `to` with the client key `key` (offline: the direct
    /// address only, within `timeout`).
    pub async fn connect(
        key: SecretKey,
        to: ControlAddr,
        timeout: Duration,
    ) -> Result<ControlClient, MeshError> {
        let bind: SocketAddr = if to.addr.ip().is_loopback() {
            ([127, 0, 0, 1], 0).into()
        } else {
            ([0, 0, 0, 0], 0).into()
        };
        let endpoint = crate::transport::offline_endpoint(key, bind, vec![], false).await?;
        let unreachable = |reason: String| MeshError::Connect {
            addr: to.to_string(),
            reason,
        };
        let public = PublicKey::from_bytes(&to.id.0).map_err(|e| unreachable(e.to_string()))?;
        let target = EndpointAddr::new(public).with_ip_addr(to.addr);
        let conn = match tokio::time::timeout(timeout, endpoint.connect(target, CONTROL_ALPN)).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {} ms: is the node running?",
                    timeout.as_millis()
                )));
            }
        };
        Ok(ControlClient { endpoint, conn })
    }

    /// Send one request and wait (up to `timeout`) for its answer.
    pub async fn request(
        &self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Result<Reply, String>, MeshError> {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(Ok(answer)) => postcard::from_bytes(&answer)
                .map_err(|e| MeshError::Protocol(format!("the answer does not decode: {e}"))),
            Ok(Err(e)) => Err(self.why(e)),
            Err(_) => Err(MeshError::Protocol(format!(
                "no answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    async fn exchange(&self, request: &Request) -> Result<Vec<u8>, String> {
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| e.to_string())?;
        let bytes = postcard::to_allocvec(request).map_err(|e| e.to_string())?;
        send.write_all(&bytes).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        recv.read_to_end(MAX_CONTROL)
            .await
            .map_err(|e| e.to_string())
    }

    /// A failed exchange, explained by how the node closed the connection.
    fn why(&self, error: String) -> MeshError {
        let closed = self.conn.close_reason().map(|r| r.to_string());
        match closed {
            Some(r) if r.contains("not allowed") => MeshError::Protocol(
                "the node refused this client key (not allowed); use the release's client key or start the node with --allow-client <id>".into(),
            ),
            Some(r) => MeshError::Protocol(format!("the node closed the connection: {r}")),
            None => MeshError::Protocol(format!(
                "the node did not answer ({error}); is this client key allowed there?"
            )),
        }
    }

    pub async fn close(self) {
        self.conn.close(0u32.into(), b"done");
        self.endpoint.close().await;
    }
}
