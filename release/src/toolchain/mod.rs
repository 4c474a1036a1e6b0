//! Building Python and JavaScript components, with toolchains the build
//! provisions itself.
//!
//! A manifest may name `python = "audit/app.py"` or `js = "audit/app.js"`.
//! The first build that needs a language installs its pinned toolchain in
//! the cache folder (`$PLASMOID_CACHE_DIR`, else `$XDG_CACHE_HOME/plasmoid`,
//! else `~/.cache/plasmoid`), with a progress line: a virtual environment
//! with componentize-py, an npm prefix with componentize-js. Later builds
//! reuse it. The SDKs (`sdk-py/`, `sdk-js/`, each with the WIT) are compiled
//! into this binary and written next to the toolchains, so a build needs no
//! checkout of this repository. Builds are cached by the hash of their
//! inputs (the app's folder, the SDK, the toolchain's version), since a
//! componentize run takes ~15 s. It does not check what a component does;
//! loading it does.

use crate::ReleaseError;
use crate::build::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod js;
mod python;

pub use js::{COMPONENTIZE_JS, JS_SDK, JsEngine, build_js};
pub use python::{COMPONENTIZE_PY, PYTHON_SDK, build_python};

/// Most bytes of an app folder hashed for the build cache (64 MiB): past
/// that the folder is not an app but a mistake, and saying so is kinder
/// than hashing it.
const MAX_APP_BYTES: u64 = 64 << 20;

/// The cache folder for toolchains and builds.
/// (`PLASMOID_CACHE_DIR=off` turns off the compile cache only: toolchains
/// still need a home.)
pub fn cache_root() -> Result<PathBuf, ReleaseError> {
    let given = std::env::var_os("PLASMOID_CACHE_DIR").filter(|d| !d.is_empty() && d != "off");
    let base = given.map(PathBuf::from).or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("plasmoid"))
    });
    base.ok_or_else(|| {
        ReleaseError::Toolchain(
            "no folder for the Python and JavaScript toolchains: set PLASMOID_CACHE_DIR (or HOME) to a writable folder".into(),
        )
    })
}

/// `files` written under `root/<kind>/<hash of files>`, once per content.
fn materialize(root: &Path, kind: &str, files: &[(&str, &str)]) -> Result<PathBuf, ReleaseError> {
    let dir = root.join(kind).join(files_hash(files));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root
        .join(kind)
        .join(format!("tmp-{}-{n}", std::process::id()));
    for (rel, text) in files {
        let path = tmp.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::fs::write(&path, text).map_err(io("write", &path))?;
    }
    let done = tmp.join(".complete");
    std::fs::write(&done, "").map_err(io("write", &done))?;
    // Another build may have won the race: either copy is the same.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(dir)
}

fn files_hash(files: &[(&str, &str)]) -> String {
    let mut h = blake3::Hasher::new();
    for (rel, text) in files {
        h.update(rel.as_bytes());
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().to_hex()[..16].to_string()
}

/// Install a toolchain once into `dir` with `install`, which runs under a
/// lock (concurrent builds wait) and is marked done only when it returns.
fn provision(
    root: &Path,
    dir: &Path,
    what: &str,
    install: impl FnOnce(&Path) -> Result<(), ReleaseError>,
) -> Result<(), ReleaseError> {
    // Written last: a folder without it is a provisioning that did not finish.
    let ready = dir.join(".plasmoid-ready");
    if ready.is_file() {
        return Ok(());
    }
    let tools = root.join("toolchains");
    std::fs::create_dir_all(&tools).map_err(io("create", &tools))?;
    let lock_path = tools.join(format!(
        "{}.lock",
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("toolchain")
    ));
    let lock = std::fs::File::create(&lock_path).map_err(io("create", &lock_path))?;
    lock.lock().map_err(io("lock", &lock_path))?;
    if ready.is_file() {
        return Ok(());
    }
    tracing::info!(
        "provisioning {what} in {} (first build that needs it only)",
        dir.display()
    );
    // Installed in place (a venv's scripts name their path, so it cannot be
    // moved), after removing what an interrupted attempt left.
    let _ = std::fs::remove_dir_all(dir);
    install(dir)?;
    std::fs::write(&ready, what).map_err(io("write", &ready))?;
    tracing::info!("{what} is ready");
    Ok(())
}

/// Where a build of `key` lands, and whether it is there already.
fn build_slot(root: &Path, key: &str) -> Result<(PathBuf, PathBuf), ReleaseError> {
    let dir = root.join("builds");
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Unique per build, so concurrent builds of one app in one process
    // (tests) do not write the same file.
    Ok((
        dir.join(format!("{key}.wasm")),
        dir.join(format!("{key}.{}-{n}.tmp", std::process::id())),
    ))
}

/// Run `cmd`; on failure the error says `hint` and the command's last words.
pub(super) fn run_quiet(cmd: &mut Command, hint: &str) -> Result<(), ReleaseError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ReleaseError::Toolchain(format!("{hint} ({e})")))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = said.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(ReleaseError::Toolchain(format!(
        "{hint}\n{}",
        tail.join("\n")
    )))
}

/// The build's identity: the app folder's files (not hidden ones, nor
/// caches), the SDK and the toolchain's version.
fn build_key(folder: &Path, parts: &[&str]) -> Result<String, ReleaseError> {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    let mut files = Vec::new();
    collect(folder, folder, &mut files, 0)?;
    files.sort();
    let mut total = 0u64;
    for rel in files {
        let path = folder.join(&rel);
        let bytes = std::fs::read(&path).map_err(io("read", &path))?;
        total += bytes.len() as u64;
        if total > MAX_APP_BYTES {
            return Err(ReleaseError::Toolchain(format!(
                "{} holds more than {} MiB; keep a Python component's folder to its own sources",
                folder.display(),
                MAX_APP_BYTES >> 20
            )));
        }
        h.update(rel.to_string_lossy().as_bytes());
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize().to_hex()[..32].to_string())
}

fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<(), ReleaseError> {
    if depth > 8 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io("read", dir))? {
        let entry = entry.map_err(io("read", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            || ["__pycache__", "target", "node_modules"].contains(&&*name)
            || name.ends_with(".wasm")
        {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out, depth + 1)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each SDK's WIT is the runtime's, so a Python or JS particle is built
    /// against exactly what the node offers.
    #[test]
    fn the_sdks_ship_the_runtime_wit_unchanged() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (rel, text) in PYTHON_SDK.iter().chain(JS_SDK) {
            if let Some(wit) = rel.strip_prefix("plasmoid/wit/") {
                let original = std::fs::read_to_string(repo.join("wit").join(wit)).unwrap();
                assert_eq!(
                    &original, text,
                    "the SDK's {rel} differs from wit/{wit}: copy wit/ into sdk-py/plasmoid/wit and sdk-js/wit"
                );
            }
        }
    }
}
