//! The manifest's `files`: each component's preopened folders, resolved
//! when a node runs, because relative ones live in the release's data
//! folder (which `release run --data` may move).
//!
//! A relative folder is created under `<data>/files/` and must still be
//! there once symlinks are resolved; an absolute one must exist. Neither
//! may be, contain or lie inside the rest of the data folder (the nodes'
//! stores, which only the store may touch). Any failure stops the node
//! before a particle starts.

use crate::error::ReleaseError;
use crate::model::Manifest;
use plasmoid_runtime::{Node, Preopen};
use std::path::Path;

pub(crate) fn preopen(node: &Node, m: &Manifest, data: &Path) -> Result<(), ReleaseError> {
    for c in &m.components {
        if c.config.files.is_empty() {
            continue;
        }
        let refuse = |why: String| ReleaseError::Node(format!("component `{}`: {why}", c.name));
        let mut files = Vec::new();
        for f in &c.config.files {
            let given = Path::new(&f.host);
            let host = if given.is_absolute() {
                given.to_path_buf()
            } else {
                let host = data.join("files").join(given);
                std::fs::create_dir_all(&host)
                    .map_err(|e| refuse(format!("cannot create {}: {e}", host.display())))?;
                host
            };
            let real = host
                .canonicalize()
                .map_err(|e| refuse(format!("files `{}`: {}: {e}", f.guest, host.display())))?;
            let data_real = data
                .canonicalize()
                .map_err(|e| refuse(format!("the data folder {}: {e}", data.display())))?;
            let files_real = data_real.join("files");
            let in_files = real.starts_with(&files_real) && real != files_real;
            let near_stores = real.starts_with(&data_real) || data_real.starts_with(&real);
            if !in_files && (!given.is_absolute() || near_stores) {
                return Err(refuse(format!(
                    "files `{}` = `{}` resolves to {}, which is not inside {} (through a symlink, or onto the nodes' stores?); refused",
                    f.guest,
                    f.host,
                    real.display(),
                    files_real.display()
                )));
            }
            files.push(Preopen {
                host: real,
                guest: f.guest.clone(),
                read_only: f.read_only,
            });
        }
        let mut env = node.guest_env(&c.name).unwrap_or_default();
        env.files = files;
        node.set_guest_env(&c.name, env);
    }
    Ok(())
}
