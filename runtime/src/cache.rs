//! The compile cache: components compiled once per machine, not at every
//! start.
//!
//! Compiling an 18 MB CPython component takes seconds; deserializing its
//! compiled form a tenth of that. Entries are keyed by the blake3 hash of
//! the component's bytes and of the engine's compatibility hash (wasmtime's
//! version, target and the settings that shape code, such as the memory
//! cap), so a changed `.wasm` or node configuration misses instead of
//! loading the wrong code. Each file carries the blake3 hash of its payload,
//! checked before wasmtime trusts it, and the component's pool footprint
//! (which a compiled component no longer tells). Writes go to a temporary
//! file and are renamed into place, so a crash leaves no torn entry. It does
//! not evict: entries are small next to what they save, and the folder can
//! be deleted at any time. Release `.cwasm` files are a separate matter
//! (release.lock pins them).

use crate::footprint::Footprint;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"PLMCACH1";
const HEADER: usize = MAGIC.len() + 12 + 32;

/// The cache folder: `$PLASMOID_CACHE_DIR/components` when set (empty or
/// `off` turns the cache off), else `$XDG_CACHE_HOME/plasmoid/components`,
/// else `~/.cache/plasmoid/components`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PLASMOID_CACHE_DIR") {
        if dir.is_empty() || dir == "off" {
            return None;
        }
        return Some(PathBuf::from(dir).join("components"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("plasmoid").join("components"))
}

/// Feeds std's `Hash` into blake3 (the engine's compatibility hash is only
/// offered as `impl Hash`).
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The entry's file name for `bytes` compiled by `engine`.
pub(crate) fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut h = Blake3Hasher(blake3::Hasher::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(blake3::hash(bytes).as_bytes());
    format!("{}.bin", h.0.finalize().to_hex())
}

/// The serialized component (what `Component::serialize` gave) and its
/// footprint, if a sound entry is there; a damaged one is removed.
pub(crate) fn load_serialized(dir: &Path, key: &str) -> Option<(Vec<u8>, Footprint)> {
    if !private(dir) {
        return None;
    }
    let path = dir.join(key);
    let file = std::fs::read(&path).ok()?;
    match parse(&file) {
        Some((footprint, payload)) => Some((payload.to_vec(), footprint)),
        None => {
            tracing::warn!(path = %path.display(), "removing a damaged compile cache entry");
            let _ = std::fs::remove_file(&path);
            None
        }
    }
}

/// The cached compiled component and its footprint, if a sound entry is
/// there. A damaged or incompatible entry is removed and reported as a miss.
pub(crate) fn load(dir: &Path, key: &str, engine: &Engine) -> Option<(Component, Footprint)> {
    let path = dir.join(key);
    let (payload, footprint) = load_serialized(dir, key)?;
    // SAFETY: wasmtime requires precompiled bytes to come from a compatible
    // engine's `serialize`. The entry was written by `store` below from such
    // a component, its key names this engine's compatibility hash, and its
    // payload hash was checked above, so the bytes are the ones written.
    match unsafe { Component::deserialize(engine, &payload) } {
        Ok(c) => Some((c, footprint)),
        Err(e) => {
            tracing::warn!(path = %path.display(), "removing a compile cache entry wasmtime refused: {e}");
            let _ = std::fs::remove_file(&path);
            None
        }
    }
}

/// Whether `dir` is this user's and no one else may write it: native code
/// from a folder others can write is not loaded (the entry's hash guards
/// against damage, not against a writer).
fn private(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let ok = meta.uid() == me && meta.mode() & 0o022 == 0;
    if !ok {
        tracing::warn!(dir = %dir.display(), "not using the compile cache: the folder is not yours alone (another user or group may write it)");
    }
    ok
}

fn parse(file: &[u8]) -> Option<(Footprint, &[u8])> {
    if file.len() < HEADER || &file[..MAGIC.len()] != MAGIC {
        return None;
    }
    let word = |i: usize| {
        let at = MAGIC.len() + 4 * i;
        u32::from_le_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]])
    };
    let footprint = Footprint {
        core_instances: word(0),
        memories: word(1),
        tables: word(2),
    };
    let (sum, payload) = file[MAGIC.len() + 12..].split_at(32);
    (blake3::hash(payload).as_bytes() == sum).then_some((footprint, payload))
}

/// Write an entry; a cache that cannot be written only costs time.
pub(crate) fn store(dir: &Path, key: &str, component: &Component, footprint: Footprint) {
    match component.serialize() {
        Ok(payload) => store_serialized(dir, key, &payload, footprint),
        Err(e) => tracing::warn!("cannot serialize a component for the compile cache: {e}"),
    }
}

/// Write an entry from serialized bytes.
pub(crate) fn store_serialized(dir: &Path, key: &str, payload: &[u8], footprint: Footprint) {
    let written = (|| -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut file = Vec::with_capacity(HEADER + payload.len());
        file.extend_from_slice(MAGIC);
        for w in [
            footprint.core_instances,
            footprint.memories,
            footprint.tables,
        ] {
            file.extend_from_slice(&w.to_le_bytes());
        }
        file.extend_from_slice(blake3::hash(payload).as_bytes());
        file.extend_from_slice(payload);
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("{key}.{}-{n}.tmp", std::process::id()));
        std::fs::write(&tmp, &file)?;
        std::fs::rename(&tmp, dir.join(key))
    })();
    if let Err(e) = written {
        tracing::warn!(dir = %dir.display(), "cannot write the compile cache (components will be compiled again next time): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_a_damaged_one_is_a_miss_and_removed() {
        let dir = std::env::temp_dir().join(format!("plasmoid-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::new(wasmtime::Config::new().wasm_component_model(true)).unwrap();
        let bytes = wat::parse_str("(component (core module))").unwrap();
        let component = Component::new(&engine, &bytes).unwrap();
        let fp = Footprint {
            core_instances: 3,
            memories: 1,
            tables: 2,
        };
        let k = key(&engine, &bytes);
        assert!(load(&dir, &k, &engine).is_none());
        store(&dir, &k, &component, fp);
        let (_, got) = load(&dir, &k, &engine).expect("a hit after a store");
        assert_eq!(got, fp);
        // Other bytes, other key.
        assert_ne!(k, key(&engine, b"(component)"));
        // One flipped byte in the payload: a miss, and the entry is gone.
        let path = dir.join(&k);
        let mut file = std::fs::read(&path).unwrap();
        let last = file.len() - 1;
        file[last] ^= 0xff;
        std::fs::write(&path, &file).unwrap();
        assert!(load(&dir, &k, &engine).is_none());
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
