//! `release run --node NAME` for a release with `[nodes]`: this process is
//! one node. It takes its key from the release folder, listens where the
//! manifest says, admits only the release's other nodes and dials them.
//! The first node runs the root supervisor; the others host the children
//! placed on them.

use anyhow::{Context, Result, anyhow, bail};
use plasmoid_mesh::{Mesh, MeshConfig};
use plasmoid_release::{Booted, Lock, Manifest};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Joined {
    pub booted: Booted,
    pub mesh: Mesh,
    /// Whether this node runs the release's root supervisor.
    pub root: bool,
    pub name: String,
    /// The other nodes, by name.
    pub peers: Vec<(String, plasmoid_runtime::NodeId)>,
}

pub async fn join(dir: &Path, m: &Manifest, lock: &Lock, name: Option<&str>) -> Result<Joined> {
    let first = m
        .nodes
        .first()
        .ok_or_else(|| anyhow!("the release has no [nodes]"))?;
    let name = name.unwrap_or(&first.name).to_string();
    let Some(me) = m.nodes.iter().find(|n| n.name == name) else {
        let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "the release has no node `{name}`; its nodes are: {}",
            names.join(", ")
        );
    };
    let key = plasmoid_mesh::load_or_create_key(&dir.join("nodes").join(&name))?;
    let ids = plasmoid_release::node_ids(dir, m)?;
    let booted = plasmoid_release::boot_as(dir, m, lock, Some(plasmoid_mesh::node_id(&key)))?;
    let listen = me
        .listen
        .parse()
        .with_context(|| format!("node `{name}` listens on `{}`", me.listen))?;
    let allow = ids
        .iter()
        .filter(|(n, _)| **n != name)
        .map(|(_, id)| *id)
        .collect();
    let mesh = Mesh::start(booted.node.clone(), key, MeshConfig::new(listen, allow)).await?;
    tracing::info!(node = %name, id = %booted.node.id().to_hex(), %listen, "node listening");
    for other in m.nodes.iter().filter(|n| n.name != name) {
        if let (Some(id), Ok(addr)) = (ids.get(&other.name), other.listen.parse()) {
            mesh.add_peer(*id, addr);
        }
    }
    let peers = ids.into_iter().filter(|(n, _)| *n != name).collect();
    Ok(Joined {
        booted,
        mesh,
        root: name == first.name,
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
