//! A release node's place on the network. Every node of a release gets an
//! iroh endpoint with its key from the release folder: it takes control
//! requests (`plasmoid status` …) from the release's client key and writes
//! where it listens to `<node dir>/control`. In a release with `[nodes]`,
//! the options' `node` picks which node this process is; it listens where
//! the manifest says, admits only the release's other nodes (plus
//! `--allow`) and dials them. The first node runs the root supervisor; the
//! others host the children placed on them.

use super::RunOptions;
use crate::boot::Booted;
use crate::control::Control;
use crate::error::ReleaseError;
use crate::lock::Lock;
use crate::model::Manifest;
use plasmoid_mesh::{ControlAddr, Mesh, MeshConfig};
use plasmoid_runtime::NodeId;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Joined {
    pub booted: Booted,
    pub mesh: Mesh,
    pub control: Control,
    /// Whether this node runs the release's root supervisor.
    pub root: bool,
    pub name: String,
    /// The other nodes, by name.
    pub peers: Vec<(String, NodeId)>,
    /// This node's HTTP listener, once bound (see web.rs).
    pub http: Option<plasmoid_http::HttpServer>,
    /// This node's dashboard, once started (see observe.rs).
    pub observer: Option<plasmoid_observer::Observer>,
}

pub(super) async fn join(
    dir: &Path,
    m: &Manifest,
    lock: &Lock,
    opts: &RunOptions,
) -> Result<Joined, ReleaseError> {
    let listed = |n: &str| m.nodes.iter().any(|x| x.name == n);
    // A node that joins under a name the manifest does not list is an
    // extra member: it hosts what is spawned on it, not the tree.
    let extra = match (&opts.node, opts.join.is_empty()) {
        (Some(n), false) if !listed(n) => Some(n.clone()),
        (None, false) => {
            return Err(ReleaseError::Node(
                "--join needs --node NAME: the name this node joins the cluster as (its key is kept in nodes/NAME/)".into(),
            ));
        }
        _ => None,
    };
    let (name, listen) = match (m.nodes.first(), extra.clone()) {
        (_, Some(name)) => {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(ReleaseError::Node(format!(
                    "node name `{name}` is not valid; use letters, digits, `-` and `_`, starting with a letter"
                )));
            }
            (
                Some(name),
                opts.listen.unwrap_or(([127, 0, 0, 1], 0).into()),
            )
        }
        (None, None) => {
            if opts.node.is_some() {
                return Err(ReleaseError::Node(
                    "--node names a node of a release with [nodes]; this one runs on one embedded node"
                        .into(),
                ));
            }
            (None, opts.listen.unwrap_or(([127, 0, 0, 1], 0).into()))
        }
        (Some(first), None) => {
            let name = opts.node.clone().unwrap_or_else(|| first.name.clone());
            let Some(me) = m.nodes.iter().find(|n| n.name == name) else {
                let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(ReleaseError::Node(format!(
                    "the release has no node `{name}`; its nodes are: {}",
                    names.join(", ")
                )));
            };
            let listen = me.listen.parse().map_err(|e| {
                ReleaseError::Node(format!(
                    "node `{name}` listens on `{}`, which is not IP:PORT ({e})",
                    me.listen
                ))
            })?;
            (Some(name), listen)
        }
    };
    let node_dir = crate::nodes::node_dir(dir, name.as_deref());
    let key = plasmoid_mesh::load_or_create_key(&node_dir)?;
    let ids = crate::nodes::node_ids(dir, m)?;
    let creation = crate::nodes::next_creation(&node_dir)?;
    let booted =
        crate::boot::boot_node(dir, m, lock, Some(plasmoid_mesh::node_id(&key)), creation)?;
    let name = name.unwrap_or_default();
    let mut allow: Vec<NodeId> = ids
        .iter()
        .filter(|(n, _)| **n != name)
        .map(|(_, id)| *id)
        .collect();
    allow.extend(opts.allow.iter().copied());
    let mut cfg = MeshConfig::new(listen, allow);
    cfg.mdns = opts.mdns;
    cfg.cluster = Some(plasmoid_mesh::ClusterConfig::new(
        crate::nodes::cluster_key(dir)?,
        name.clone(),
    ));
    // Named before the mesh starts, so names learned by gossip are added
    // to these, not replaced by them.
    booted
        .node
        .set_peers(ids.iter().map(|(n, id)| (n.clone(), *id)));
    if let Some(c) = &m.cluster {
        booted
            .node
            .set_partition(plasmoid_runtime::PartitionConfig {
                policy: c.policy.clone(),
                stable_after: c.stable_after,
                seniority: m
                    .nodes
                    .iter()
                    .filter_map(|n| ids.get(&n.name).copied())
                    .collect(),
            });
    }
    let mesh = Mesh::start(booted.node.clone(), key, cfg).await?;
    let client = plasmoid_mesh::node_id(&crate::nodes::client_key(dir)?);
    let control = Control::new(booted.node.clone(), &name, &m.release_id());
    let clients = std::iter::once(client).chain(opts.allow_clients.iter().copied());
    mesh.serve_control(clients, Arc::new(control.clone()));
    let addr = mesh
        .local_addr()
        .ok_or_else(|| ReleaseError::Node("the node's endpoint has no address".into()))?;
    crate::nodes::write_control_addr(
        &node_dir,
        ControlAddr {
            id: booted.node.id(),
            addr,
        },
    )?;
    tracing::info!(node = %name, id = %booted.node.id().to_hex(), %addr, "node listening");
    for seed in &opts.join {
        mesh.add_peer(seed.id, seed.addr);
    }
    // An extra member learns the release's nodes from its seeds' gossip.
    let listed_peers = if extra.is_some() {
        &[][..]
    } else {
        &m.nodes[..]
    };
    for other in listed_peers.iter().filter(|n| n.name != name) {
        match (ids.get(&other.name), other.listen.parse()) {
            (Some(id), _) if opts.mdns => mesh.add_peer_by_id(*id),
            (Some(id), Ok(addr)) => mesh.add_peer(*id, addr),
            _ => {}
        }
    }
    if opts.mdns {
        for id in &opts.allow {
            mesh.add_peer_by_id(*id);
        }
    }
    let root = extra.is_none() && m.nodes.first().is_none_or(|first| first.name == name);
    let peers = ids.into_iter().filter(|(n, _)| *n != name).collect();
    Ok(Joined {
        booted,
        mesh,
        control,
        root,
        name,
        peers,
        http: None,
        observer: None,
    })
}

/// Wait (up to `within`) until every other node is connected; the root's
/// children may be placed on any of them.
pub(super) async fn await_peers(j: &Joined, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
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
        if tokio::time::Instant::now() > deadline {
            tracing::warn!(
                "starting without nodes {} after waiting {} ms for them: children placed there go to their other candidates",
                missing.join(", "),
                within.as_millis()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
