//! A `.cwasm` is native code: proof that this build made it for this release.
//!
//! wasmtime loads a precompiled component without checking what it does,
//! so a release loads one only when its keyed hash matches: the key is
//! derived from a secret made once per release folder (`precompile.key`,
//! never copied by a build or listed in the lock) and from this plasmoid's
//! version. A `.cwasm` copied from another release, made by another build
//! or swapped in by hand fails the check, and the `.wasm` beside it (checked
//! by the lock) is compiled instead. It does not own the lock's plain
//! hashes (lock.rs), which detect any change to any file.

use crate::error::ReleaseError;
use std::io::Read;
use std::path::Path;

/// The secret's file in a release folder.
pub const KEY_FILE: &str = "precompile.key";

/// The release's secret, made on first use (readable by its owner only).
pub(crate) fn load_or_create(dir: &Path) -> Result<[u8; 32], ReleaseError> {
    if let Ok(k) = read(dir) {
        return Ok(k);
    }
    let path = dir.join(KEY_FILE);
    let io = |what: &'static str, source| ReleaseError::Io {
        what,
        path: path.clone(),
        source,
    };
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|e| io("make a secret for", e))?;
    let tmp = dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, hex(&secret)).map_err(|e| io("write", e))?;
    restrict(&tmp);
    // Linked into place: two builds at once share whichever came first.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret),
        Err(_) => read(dir),
    }
}

fn read(dir: &Path) -> Result<[u8; 32], ReleaseError> {
    let path = dir.join(KEY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| ReleaseError::Io {
        what: "read",
        path: path.clone(),
        source,
    })?;
    let bytes = blake3::Hash::from_hex(text.trim()).map_err(|_| {
        ReleaseError::NotARelease(
            dir.to_path_buf(),
            format!("{KEY_FILE} is not 64 hex digits; delete it and rebuild"),
        )
    })?;
    Ok(*bytes.as_bytes())
}

#[cfg(unix)]
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict(_: &Path) {}

fn hex(b: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*b).to_hex().to_string()
}

/// The keyed hash of precompiled `bytes` under the release's secret and
/// this build's version.
pub(crate) fn mac(secret: &[u8; 32], bytes: &[u8]) -> String {
    let key = blake3::derive_key(
        concat!("plasmoid ", env!("CARGO_PKG_VERSION"), " precompiled code"),
        secret,
    );
    blake3::keyed_hash(&key, bytes).to_hex().to_string()
}

/// Whether `rel` in the release folder is precompiled code this build made
/// for this release. `Err` says why not.
pub(crate) fn check(dir: &Path, rel: &str, expected: &str) -> Result<Vec<u8>, String> {
    if expected.is_empty() {
        return Err("the lock records no keyed hash for it (built by an older plasmoid)".into());
    }
    let secret = read(dir).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(dir.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))?;
    if mac(&secret, &bytes) != expected {
        return Err(format!(
            "{rel} was not made by this plasmoid ({}) for this release",
            env!("CARGO_PKG_VERSION")
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_code_made_for_this_release_passes() {
        let a = tempfile::tempdir().expect("dir");
        let b = tempfile::tempdir().expect("dir");
        let (ka, kb) = (
            load_or_create(a.path()).expect("key"),
            load_or_create(b.path()).expect("key"),
        );
        assert_ne!(ka, kb, "each release has its own secret");
        assert_eq!(load_or_create(a.path()).expect("key"), ka, "kept");
        std::fs::write(a.path().join("x.cwasm"), b"native").expect("write");
        let m = mac(&ka, b"native");
        assert!(check(a.path(), "x.cwasm", &m).is_ok());
        // The same bytes under another release's secret.
        assert!(check(a.path(), "x.cwasm", &mac(&kb, b"native")).is_err());
        // Other bytes.
        std::fs::write(a.path().join("x.cwasm"), b"other").expect("write");
        let why = check(a.path(), "x.cwasm", &m).expect_err("refused");
        assert!(why.contains("not made by this plasmoid"), "{why}");
        assert!(
            check(a.path(), "x.cwasm", "").is_err(),
            "no record, no trust"
        );
    }
}
