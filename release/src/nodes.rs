//! The nodes of a multi-node release: each has a key (its identity) in the
//! release folder, `nodes/<name>/node.key`, made once by `release build` and
//! kept across rebuilds. The folder is the trust root: every node admits
//! the others' ids and no one else.

use crate::error::ReleaseError;
use crate::model::Manifest;
use plasmoid_runtime::NodeId;
use std::collections::HashMap;
use std::path::Path;

/// Make the key of every node the manifest lists (if missing) and write
/// each node's public id next to it.
pub fn ensure_keys(dir: &Path, m: &Manifest) -> Result<(), ReleaseError> {
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
