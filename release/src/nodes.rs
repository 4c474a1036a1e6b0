//! The nodes of a multi-node release: each has a key (its identity) in the
//! release folder, `nodes/<name>/node.key`, made once by `release build` and
//! kept across rebuilds. The folder is the trust root: every node admits
//! the others' ids and no one else.

use crate::error::ReleaseError;
use crate::model::Manifest;
use plasmoid_runtime::NodeId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Make the key of every node the manifest lists (if missing) and write
/// each node's public id next to it.
pub fn ensure_keys(dir: &Path, m: &Manifest) -> Result<(), ReleaseError> {
    client_key(dir)?;
    cluster_key(dir)?;
    for n in &m.nodes {
        let ndir = dir.join("nodes").join(&n.name);
        let key = plasmoid_mesh::load_or_create_key(&ndir)
            .map_err(|e| ReleaseError::Boot(e.to_string()))?;
        let id = plasmoid_mesh::node_id(&key).to_hex();
        crate::lock::write_file(&ndir.join("id"), id.as_bytes())?;
    }
    Ok(())
}

/// Node name → id, for every node of the release.
pub fn node_ids(dir: &Path, m: &Manifest) -> Result<HashMap<String, NodeId>, ReleaseError> {
    let mut ids = HashMap::new();
    for n in &m.nodes {
        let file = dir.join("nodes").join(&n.name).join("id");
        let text = std::fs::read_to_string(&file).map_err(|source| ReleaseError::Io {
            what: "read",
            path: file.clone(),
            source,
        })?;
        let id = plasmoid_mesh::parse_node_id(text.trim()).ok_or_else(|| {
            ReleaseError::NotARelease(
                dir.to_path_buf(),
                format!("{} is not a node id", file.display()),
            )
        })?;
        ids.insert(n.name.clone(), id);
    }
    Ok(ids)
}

/// Where a node of the release keeps its key (`node.key`), its id and its
/// `control` file: `nodes/<name>/` for a node of a release with `[nodes]`,
/// `node/` for a release on one embedded node.
pub fn node_dir(dir: &Path, node: Option<&str>) -> PathBuf {
    match node {
        Some(name) => dir.join("nodes").join(name),
        None => dir.join("node"),
    }
}

/// The key that `plasmoid status | spawn | send | call | stop` use for this
/// release (`client/node.key`, made on first use); every node of the
/// release admits it.
pub fn client_key(dir: &Path) -> Result<plasmoid_mesh::SecretKey, ReleaseError> {
    plasmoid_mesh::load_or_create_key(&dir.join("client"))
        .map_err(|e| ReleaseError::Boot(e.to_string()))
}

/// The secret that admits a node the manifest does not list
/// (`cluster/node.key`, made once by `release build` and copied with the
/// release folder): a node that holds it can `--join`.
pub fn cluster_key(dir: &Path) -> Result<plasmoid_mesh::ClusterKey, ReleaseError> {
    plasmoid_mesh::ClusterKey::load_or_create(&dir.join("cluster"))
        .map_err(|e| ReleaseError::Boot(e.to_string()))
}

/// Tell control clients where this node listens: `<node dir>/control`
/// holds `NODE_ID@IP:PORT`.
pub fn write_control_addr(
    node_dir: &Path,
    addr: plasmoid_mesh::ControlAddr,
) -> Result<(), ReleaseError> {
    crate::lock::write_file(&node_dir.join("control"), addr.to_string().as_bytes())
}

/// Where the node whose folder is `node_dir` last said it listens.
pub fn read_control_addr(node_dir: &Path) -> Result<plasmoid_mesh::ControlAddr, ReleaseError> {
    let file = node_dir.join("control");
    let text = std::fs::read_to_string(&file).map_err(|source| ReleaseError::Io {
        what: "read",
        path: file.clone(),
        source,
    })?;
    text.parse().map_err(|e: String| {
        ReleaseError::NotARelease(node_dir.to_path_buf(), format!("{}: {e}", file.display()))
    })
}

/// The next incarnation of the node whose folder is `node_dir`: one more
/// than the last boot's (kept in `<node dir>/creation`), never 0.
pub fn next_creation(node_dir: &Path) -> Result<u32, ReleaseError> {
    let file = node_dir.join("creation");
    let last: u32 = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let next = last.checked_add(1).unwrap_or(1);
    std::fs::create_dir_all(node_dir).map_err(|source| ReleaseError::Io {
        what: "create",
        path: node_dir.to_path_buf(),
        source,
    })?;
    crate::lock::write_file(&file, next.to_string().as_bytes())?;
    Ok(next)
}

#[cfg(test)]
mod creation_tests {
    #[test]
    fn each_boot_is_a_new_creation() {
        let dir = tempfile::tempdir().expect("dir");
        let node = dir.path().join("node");
        assert_eq!(super::next_creation(&node).expect("first"), 1);
        assert_eq!(super::next_creation(&node).expect("second"), 2);
        std::fs::write(node.join("creation"), u32::MAX.to_string()).expect("write");
        assert_eq!(super::next_creation(&node).expect("wraps"), 1, "never 0");
    }
}
