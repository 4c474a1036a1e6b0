//! plasmoid-mesh: nodes connected over iroh (QUIC), so that pids work
//! across processes and machines.
//!
//! It owns the transport: each node's key and endpoint (offline: no relays,
//! no discovery, peers dialled at the addresses it is given), admission of
//! the peers it is told to allow, length-limited frames, heartbeats and
//! noticing a lost peer. What a message, link or monitor means across nodes
//! stays in plasmoid-runtime ([`plasmoid_runtime::RemoteOp`]); this crate
//! only carries those ops in order between two nodes.

mod cluster;
mod control;
mod frame;
mod key;
mod overlay;
pub mod sim;
mod transport;

pub use cluster::{ClusterConfig, ClusterKey};
pub use control::{
    CONTROL_ALPN, ControlAddr, ControlClient, ControlFuture, ControlHandler, MAX_CONTROL,
    MAX_STATUS_GLOBALS, ParticleRow, PeerStatus, Reply, Request, Status, StoreRequest, TreeRow,
};
pub use frame::{Frame, FrameError, MAX_FRAME, WireOp, decode, encode_into, frame_len};
pub use iroh::SecretKey;
pub use key::{
    load_or_create as load_or_create_key, node_id, parse_node_id, read_file as read_key_file,
};
pub use transport::{ALPN, MAX_PEER_QUEUE, Mesh, MeshConfig};

/// Everything that can go wrong setting up the mesh.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("node key: {0}")]
    Key(String),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("cannot reach the node at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("control protocol: {0}")]
    Protocol(String),
    #[error(
        "the node's id does not match its mesh key (create the node with `node_id: Some(plasmoid_mesh::node_id(&key))`)"
    )]
    WrongNode,
}
