//! Building Python components, with a toolchain the build provisions itself.
//!
//! A manifest may name `python = "audit/app.py"`. The first build that needs
//! it makes a virtual environment with the pinned componentize-py in the
//! cache folder (`$PLASMOID_CACHE_DIR`, else `$XDG_CACHE_HOME/plasmoid`,
//! else `~/.cache/plasmoid`), with a progress line; later builds reuse it.
//! `PLASMOID_COMPONENTIZE_PY` names a componentize-py to use instead. The
//! Python SDK (`sdk-py/plasmoid`, with the WIT) is compiled into this binary
//! and written next to the toolchain, so a build needs no checkout of this
//! repository. Builds are cached by the hash of their inputs (the app's
//! folder, the SDK, the toolchain's version): componentize-py takes ~15 s.
//! It does not check what the component does; loading it does.

use crate::ReleaseError;
use crate::build::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-py this release pins.
pub const COMPONENTIZE_PY: &str = "0.25.0";

/// The Python SDK and its WIT, as `(path under the SDK folder, text)`.
pub const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "plasmoid/__init__.py",
        include_str!("../../sdk-py/plasmoid/__init__.py"),
    ),
    (
        "plasmoid/codec.py",
        include_str!("../../sdk-py/plasmoid/codec.py"),
    ),
    (
        "plasmoid/process.py",
        include_str!("../../sdk-py/plasmoid/process.py"),
    ),
    (
        "plasmoid/server.py",
        include_str!("../../sdk-py/plasmoid/server.py"),
    ),
    (
        "plasmoid/supervisor.py",
        include_str!("../../sdk-py/plasmoid/supervisor.py"),
    ),
    (
        "plasmoid/wit/process.wit",
        include_str!("../../sdk-py/plasmoid/wit/process.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/atomic.wit",
        include_str!("../../sdk-py/plasmoid/wit/deps/keyvalue/atomic.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/batch.wit",
        include_str!("../../sdk-py/plasmoid/wit/deps/keyvalue/batch.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/store.wit",
        include_str!("../../sdk-py/plasmoid/wit/deps/keyvalue/store.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/watch.wit",
        include_str!("../../sdk-py/plasmoid/wit/deps/keyvalue/watch.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/world.wit",
        include_str!("../../sdk-py/plasmoid/wit/deps/keyvalue/world.wit"),
    ),
    (
        "plasmoid/wit/deps/plasmoid-keyvalue/cas.wit",
        include_str!("../../sdk-py/plasmoid/wit/deps/plasmoid-keyvalue/cas.wit"),
    ),
];

/// Most bytes of an app folder hashed for the build cache (64 MiB): past
/// that the folder is not an app but a mistake, and saying so is kinder
/// than hashing it.
const MAX_APP_BYTES: u64 = 64 << 20;

/// The cache folder for toolchains and builds.
pub fn cache_root() -> Result<PathBuf, ReleaseError> {
    plasmoid_runtime::cache::default_dir()
        .and_then(|d| d.parent().map(Path::to_path_buf))
        .ok_or_else(|| ReleaseError::Toolchain(
            "no cache folder: set PLASMOID_CACHE_DIR (or HOME) to a writable folder for the Python toolchain".into(),
        ))
}

/// The SDK folder (holding `plasmoid/`), written once per SDK version.
pub fn python_sdk_dir(root: &Path) -> Result<PathBuf, ReleaseError> {
    let dir = root.join("sdk-py").join(sdk_hash());
    if dir.join("plasmoid").join("__init__.py").is_file() {
        return Ok(dir);
    }
    let tmp = root
        .join("sdk-py")
        .join(format!("tmp-{}", std::process::id()));
    for (rel, text) in PYTHON_SDK {
        let path = tmp.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::fs::write(&path, text).map_err(io("write", &path))?;
    }
    // Another build may have won the race: either copy is the same.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(dir)
}

fn sdk_hash() -> String {
    let mut h = blake3::Hasher::new();
    for (rel, text) in PYTHON_SDK {
        h.update(rel.as_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().to_hex()[..16].to_string()
}

/// componentize-py: `PLASMOID_COMPONENTIZE_PY`, or the pinned one in the
/// cache, installed on first use.
pub fn componentize_py(root: &Path) -> Result<PathBuf, ReleaseError> {
    if let Some(given) = std::env::var_os("PLASMOID_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(given));
    }
    let venv = root
        .join("toolchains")
        .join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let exe = venv.join("bin").join("componentize-py");
    // Written last: a venv without it is a provisioning that did not finish.
    let ready = venv.join(".plasmoid-ready");
    if ready.is_file() {
        return Ok(exe);
    }
    std::fs::create_dir_all(root.join("toolchains")).map_err(io("create", root))?;
    // One build provisions; concurrent ones wait for it.
    let lock_path = root.join("toolchains").join("python.lock");
    let lock = std::fs::File::create(&lock_path).map_err(io("create", &lock_path))?;
    lock.lock().map_err(io("lock", &lock_path))?;
    if ready.is_file() {
        return Ok(exe);
    }
    tracing::info!(
        "provisioning the Python toolchain (componentize-py {COMPONENTIZE_PY}) in {} — first Python build only",
        venv.display()
    );
    // A venv's scripts name its path, so it is made in place, not moved.
    let staging = venv.clone();
    let _ = std::fs::remove_dir_all(&staging);
    let python = std::env::var_os("PLASMOID_PYTHON").unwrap_or_else(|| "python3".into());
    run_quiet(
        Command::new(&python).arg("-m").arg("venv").arg(&staging),
        &format!(
            "Python components need python3 (3.10 or later) with venv to provision componentize-py; \
             install them (Debian: `apt-get install python3 python3-venv`), or install componentize-py {COMPONENTIZE_PY} \
             by hand and set PLASMOID_COMPONENTIZE_PY to it"
        ),
    )?;
    run_quiet(
        Command::new(staging.join("bin").join("pip"))
            .args(["install", "--disable-pip-version-check", "--quiet"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY}")),
        &format!(
            "cannot install componentize-py {COMPONENTIZE_PY} with pip (is the package index reachable?); \
             install it by hand (`pip install componentize-py=={COMPONENTIZE_PY}`) and set PLASMOID_COMPONENTIZE_PY to it"
        ),
    )?;
    std::fs::write(&ready, COMPONENTIZE_PY).map_err(io("write", &ready))?;
    tracing::info!("the Python toolchain is ready");
    Ok(exe)
}

/// Run `cmd`; on failure the error says `hint` and the command's last words.
fn run_quiet(cmd: &mut Command, hint: &str) -> Result<(), ReleaseError> {
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

/// Build the Python component whose entry module is `app` (`audit/app.py`):
/// its folder is on the module path, with the SDK. Returns the built
/// `.wasm` in the build cache.
pub fn build_python(component: &str, app: &Path) -> Result<PathBuf, ReleaseError> {
    let root = cache_root()?;
    let sdk = python_sdk_dir(&root)?;
    let folder = app.parent().unwrap_or(Path::new("."));
    let module =
        app.file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| ReleaseError::Component {
                component: component.into(),
                reason: format!("{} is not a Python module name", app.display()),
            })?;
    let key = build_key(folder, module)?;
    let cached = root.join("builds").join(format!("{key}.wasm"));
    if cached.is_file() {
        tracing::debug!(component, "Python component from the build cache");
        return Ok(cached);
    }
    let exe = componentize_py(&root)?;
    tracing::info!(component, "building {} with componentize-py", app.display());
    let out_dir = root.join("builds");
    std::fs::create_dir_all(&out_dir).map_err(io("create", &out_dir))?;
    // Unique per build, so concurrent builds of one app in one process
    // (tests) do not write the same file.
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = out_dir.join(format!("{key}.{}-{n}.tmp", std::process::id()));
    let status = Command::new(&exe)
        .arg("-d")
        .arg(sdk.join("plasmoid").join("wit"))
        .args(["-w", "particle", "componentize", module, "-p"])
        .arg(folder)
        .arg("-p")
        .arg(&sdk)
        .arg("-o")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|source| ReleaseError::Spawn {
            command: exe.display().to_string(),
            source,
        })?;
    if !status.success() {
        let _ = std::fs::remove_file(&out);
        return Err(ReleaseError::Component {
            component: component.into(),
            reason: format!(
                "componentize-py failed ({status}) building {}; its output is above",
                app.display()
            ),
        });
    }
    std::fs::rename(&out, &cached).map_err(io("move into place", &cached))?;
    Ok(cached)
}

/// The build's identity: the app folder's files (not hidden ones, nor
/// caches), the SDK and the toolchain's version.
fn build_key(folder: &Path, module: &str) -> Result<String, ReleaseError> {
    let mut h = blake3::Hasher::new();
    h.update(COMPONENTIZE_PY.as_bytes());
    h.update(sdk_hash().as_bytes());
    h.update(module.as_bytes());
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

    /// The SDK's WIT is the runtime's, so a Python particle is built
    /// against exactly what the node offers.
    #[test]
    fn the_python_sdk_ships_the_runtime_wit_unchanged() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (rel, text) in PYTHON_SDK {
            if let Some(wit) = rel.strip_prefix("plasmoid/wit/") {
                let original = std::fs::read_to_string(repo.join("wit").join(wit)).unwrap();
                assert_eq!(
                    &original, text,
                    "sdk-py/{rel} differs from wit/{wit}: copy wit/ into sdk-py/plasmoid/wit"
                );
            }
        }
    }

    #[test]
    fn the_build_key_follows_the_sources() {
        let dir = std::env::temp_dir().join(format!("plasmoid-pykey-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("__pycache__")).unwrap();
        std::fs::write(dir.join("app.py"), "x = 1\n").unwrap();
        let a = build_key(&dir, "app").unwrap();
        std::fs::write(dir.join("__pycache__").join("app.pyc"), "junk").unwrap();
        assert_eq!(a, build_key(&dir, "app").unwrap(), "caches are not sources");
        std::fs::write(dir.join("app.py"), "x = 2\n").unwrap();
        assert_ne!(a, build_key(&dir, "app").unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
