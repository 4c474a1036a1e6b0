//! The manifest's `files`: each component's preopened folders, resolved
//! when a node runs, because relative ones live in the release's data
//! folder (which `release run --data` may move).
//!
//! A relative folder is created inside the data folder and must still be
//! inside it once symlinks are resolved; an absolute one must exist. Either
//! failure stops the node before any particle starts.

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
                let host = data.join(given);
                std::fs::create_dir_all(&host)
                    .map_err(|e| refuse(format!("cannot create {}: {e}", host.display())))?;
                host
            };
            let real = host
                .canonicalize()
                .map_err(|e| refuse(format!("files `{}`: {}: {e}", f.guest, host.display())))?;
            if !given.is_absolute() {
                let inside = data
                    .canonicalize()
                    .map(|d| real.starts_with(d))
                    .unwrap_or(false);
                if !inside {
                    return Err(refuse(format!(
                        "files `{}` = `{}` resolves to {}, outside the data folder {} (through a symlink?); refused",
                        f.guest,
                        f.host,
                        real.display(),
                        data.display()
                    )));
                }
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
