//! A release node's place on the network. Every node of a release gets an
//! iroh endpoint with its key from the release folder: it takes control
//! requests (`plasmoid status` …) from the release's client key and writes
//! where it listens to `<node dir>/control`. In a release with `[nodes]`,
//! `--node NAME` picks which node this process is; it listens where the
//! manifest says, admits only the release's other nodes (plus `--allow`)
//! and dials them. The first node runs the root supervisor; the others
//! host the children placed on them.

use anyhow::{Context, Result, anyhow, bail};
use plasmoid_mesh::{ControlAddr, Mesh, MeshConfig};
use plasmoid_release::{Booted, Control, Lock, Manifest};
use plasmoid_runtime::NodeId;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who else a node admits, besides the release's own nodes and client key.
#[derive(Clone, Debug, Default)]
pub struct Admit {
    /// Peer nodes (`--allow NODE_ID`).
    pub peers: Vec<NodeId>,
    /// Control clients (`--allow-client ID`).
    pub clients: Vec<NodeId>,
    /// Where a node of a release without `[nodes]` listens.
    pub listen: Option<SocketAddr>,
    /// `--discovery mdns`: find the other nodes on the local network
    /// instead of dialling the addresses in the manifest.
    pub mdns: bool,
}

pub struct Joined {
    pub booted: Booted,
    pub mesh: Mesh,
    pub control: Control,
    /// Whether this node runs the release's root supervisor.
    pub root: bool,
    pub name: String,
    /// The other nodes, by name.
    pub peers: Vec<(String, NodeId)>,
}

pub async fn join(
    dir: &Path,
    m: &Manifest,
    lock: &Lock,
    name: Option<&str>,
    admit: Admit,
) -> Result<Joined> {
    let (name, listen) = match m.nodes.first() {
        None => {
            if name.is_some() {
                bail!(
                    "--node names a node of a release with [nodes]; this one runs on one embedded node"
                );
            }
            let listen = admit.listen.unwrap_or(([127, 0, 0, 1], 0).into());
            (None, listen)
        }
        Some(first) => {
            let name = name.unwrap_or(&first.name).to_string();
            let Some(me) = m.nodes.iter().find(|n| n.name == name) else {
                let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
                bail!(
                    "the release has no node `{name}`; its nodes are: {}",
                    names.join(", ")
                );
            };
            let listen = me
                .listen
                .parse()
                .with_context(|| format!("node `{name}` listens on `{}`", me.listen))?;
            (Some(name), listen)
        }
    };
    let node_dir = plasmoid_release::node_dir(dir, name.as_deref());
    let key = plasmoid_mesh::load_or_create_key(&node_dir)?;
    let ids = plasmoid_release::node_ids(dir, m)?;
    let booted = plasmoid_release::boot_as(dir, m, lock, Some(plasmoid_mesh::node_id(&key)))?;
    let name = name.unwrap_or_default();
    let mut allow: Vec<NodeId> = ids
        .iter()
        .filter(|(n, _)| **n != name)
        .map(|(_, id)| *id)
        .collect();
    allow.extend(admit.peers.iter().copied());
    let mut cfg = MeshConfig::new(listen, allow);
    cfg.mdns = admit.mdns;
    let mesh = Mesh::start(booted.node.clone(), key, cfg).await?;
    booted
        .node
        .set_peers(ids.iter().map(|(n, id)| (n.clone(), *id)));
    let client = plasmoid_mesh::node_id(&plasmoid_release::client_key(dir)?);
    let control = Control::new(booted.node.clone(), &name, &m.release_id());
    let clients = std::iter::once(client).chain(admit.clients.iter().copied());
    mesh.serve_control(clients, Arc::new(control.clone()));
    let addr = mesh
        .local_addr()
        .ok_or_else(|| anyhow!("the node's endpoint has no address"))?;
    plasmoid_release::write_control_addr(
        &node_dir,
        ControlAddr {
            id: booted.node.id(),
            addr,
        },
    )?;
    tracing::info!(node = %name, id = %booted.node.id().to_hex(), %addr, "node listening");
    for other in m.nodes.iter().filter(|n| n.name != name) {
        match (ids.get(&other.name), other.listen.parse()) {
            (Some(id), _) if admit.mdns => mesh.add_peer_by_id(*id),
            (Some(id), Ok(addr)) => mesh.add_peer(*id, addr),
            _ => {}
        }
    }
    if admit.mdns {
        for id in &admit.peers {
            mesh.add_peer_by_id(*id);
        }
    }
    let root = m.nodes.first().is_none_or(|first| first.name == name);
    let peers = ids.into_iter().filter(|(n, _)| *n != name).collect();
    Ok(Joined {
        booted,
        mesh,
        control,
        root,
        name,
        peers,
    })
}

/// Wait (up to `within`) until every other node is connected; the root's
/// children may be placed on any of them.
pub async fn await_peers(j: &Joined, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let missing: Vec<&str> = j
            .peers
            .iter()
            .filter(|(_, id)| !j.mesh.connected(*id))
            .map(|(n, _)| n.as_str())
            .collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            tracing::warn!(
                "starting without nodes {}: children placed there go to their other candidates",
                missing.join(", ")
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
