//! A node's identity: an ed25519 secret key kept in its data directory. The
//! public half is the iroh endpoint id and the node's `NodeId`, so pids
//! name their node by a key that the transport authenticates.

use crate::MeshError;
use iroh::SecretKey;
use plasmoid_runtime::NodeId;
use std::path::Path;

const KEY_FILE: &str = "node.key";

/// The key in `dir/node.key`, created (mode 0600) on first use.
pub fn load_or_create(dir: &Path) -> Result<SecretKey, MeshError> {
    let path = dir.join(KEY_FILE);
    let io = |e: std::io::Error| MeshError::Key(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(text.trim()).ok_or_else(|| {
            MeshError::Key(format!(
                "{} is not a 64-digit hex key; delete it to make a new identity",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let key = SecretKey::generate();
            match write_private(&path, &hex(&key.to_bytes())) {
                Ok(()) => Ok(key),
                // Another process made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_file(&path),
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// A key file written by [`load_or_create`] (64 hex digits).
pub fn read_file(path: &Path) -> Result<SecretKey, MeshError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| MeshError::Key(format!("{}: {e}", path.display())))?;
    parse(text.trim())
        .ok_or_else(|| MeshError::Key(format!("{} is not a 64-digit hex key", path.display())))
}

/// The node id of a key.
pub fn node_id(key: &SecretKey) -> NodeId {
    NodeId(*key.public().as_bytes())
}

/// A node id from its 64-digit hex form (as `plasmoid` prints it).
pub fn parse_node_id(text: &str) -> Option<NodeId> {
    from_hex(text).map(NodeId)
}

fn parse(text: &str) -> Option<SecretKey> {
    from_hex(text).map(|b| SecretKey::from_bytes(&b))
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write the key whole, then link it into place: a process that races us
/// sees either no file (and links its own, failing with `AlreadyExists`)
/// or a complete one, never a half-written one.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()));
    let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("plasmoid-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = load_or_create(&dir).unwrap();
        let b = load_or_create(&dir).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let id = node_id(&a);
        assert_eq!(parse_node_id(&id.to_hex()), Some(id));
        std::fs::write(dir.join(KEY_FILE), "nonsense").unwrap();
        assert!(load_or_create(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
