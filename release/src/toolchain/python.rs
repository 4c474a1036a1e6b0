//! Python components: componentize-py in a virtual environment, and the
//! Python SDK (sdk-py/) it builds against.

use super::{build_key, build_slot, cache_root, files_hash, materialize, provision, run_quiet};
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
        include_str!("../../../sdk-py/plasmoid/__init__.py"),
    ),
    (
        "plasmoid/codec.py",
        include_str!("../../../sdk-py/plasmoid/codec.py"),
    ),
    (
        "plasmoid/process.py",
        include_str!("../../../sdk-py/plasmoid/process.py"),
    ),
    (
        "plasmoid/server.py",
        include_str!("../../../sdk-py/plasmoid/server.py"),
    ),
    (
        "plasmoid/supervisor.py",
        include_str!("../../../sdk-py/plasmoid/supervisor.py"),
    ),
    (
        "plasmoid/pg.py",
        include_str!("../../../sdk-py/plasmoid/pg.py"),
    ),
    (
        "plasmoid/store.py",
        include_str!("../../../sdk-py/plasmoid/store.py"),
    ),
    (
        "plasmoid/http.py",
        include_str!("../../../sdk-py/plasmoid/http.py"),
    ),
    (
        "plasmoid/wit/process.wit",
        include_str!("../../../sdk-py/plasmoid/wit/process.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/atomic.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/keyvalue/atomic.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/batch.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/keyvalue/batch.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/store.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/keyvalue/store.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/watch.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/keyvalue/watch.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/world.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/keyvalue/world.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-cli.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/wasi-cli.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-clocks.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/wasi-clocks.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-filesystem.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/wasi-filesystem.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-http.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/wasi-http.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-io.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/wasi-io.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-random.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/wasi-random.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-sockets.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/wasi-sockets.wit"),
    ),
    (
        "plasmoid/wit/deps/plasmoid-keyvalue/cas.wit",
        include_str!("../../../sdk-py/plasmoid/wit/deps/plasmoid-keyvalue/cas.wit"),
    ),
];

/// componentize-py: `PLASMOID_COMPONENTIZE_PY`, or the pinned one in the
/// cache, installed on first use.
fn componentize_py(root: &Path) -> Result<PathBuf, ReleaseError> {
    if let Some(given) = std::env::var_os("PLASMOID_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(given));
    }
    let venv = root
        .join("toolchains")
        .join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let what = format!("the Python toolchain (componentize-py {COMPONENTIZE_PY})");
    provision(root, &venv, &what, |venv| {
        let python = std::env::var_os("PLASMOID_PYTHON").unwrap_or_else(|| "python3".into());
        run_quiet(
            Command::new(&python).arg("-m").arg("venv").arg(venv),
            &format!(
                "Python components need python3 (3.10 or later) with venv to provision componentize-py; \
                 install them (Debian: `apt-get install python3 python3-venv`), or install componentize-py {COMPONENTIZE_PY} \
                 by hand and set PLASMOID_COMPONENTIZE_PY to it"
            ),
        )?;
        run_quiet(
            Command::new(venv.join("bin").join("pip"))
                .args(["install", "--disable-pip-version-check", "--quiet"])
                .arg(format!("componentize-py=={COMPONENTIZE_PY}")),
            &format!(
                "cannot install componentize-py {COMPONENTIZE_PY} with pip (is the package index reachable?); \
                 install it by hand (`pip install componentize-py=={COMPONENTIZE_PY}`) and set PLASMOID_COMPONENTIZE_PY to it"
            ),
        )
    })?;
    Ok(venv.join("bin").join("componentize-py"))
}

/// Build the Python component whose entry module is `app` (`audit/app.py`):
/// its folder is on the module path, with the SDK. Returns the built
/// `.wasm` in the build cache.
pub fn build_python(component: &str, app: &Path) -> Result<PathBuf, ReleaseError> {
    let root = cache_root()?;
    let sdk = materialize(&root, "sdk-py", PYTHON_SDK)?;
    let folder = app.parent().unwrap_or(Path::new("."));
    let module =
        app.file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| ReleaseError::Component {
                component: component.into(),
                reason: format!("{} is not a Python module name", app.display()),
            })?;
    let sdk_id = files_hash(PYTHON_SDK);
    let tool = std::env::var("PLASMOID_COMPONENTIZE_PY").unwrap_or_default();
    let key = build_key(folder, &[COMPONENTIZE_PY, &tool, &sdk_id, module])?;
    let (built, out) = build_slot(&root, &key)?;
    if built.is_file() {
        tracing::debug!(component, "Python component from the build cache");
        return Ok(built);
    }
    let exe = componentize_py(&root)?;
    tracing::info!(component, "building {} with componentize-py", app.display());
    let status = Command::new(&exe)
        .arg("-d")
        .arg(sdk.join("plasmoid").join("wit"))
        .args(["-w", "particle-kv-http", "componentize", module, "-p"])
        .arg(folder)
        .arg("-p")
        .arg(&sdk)
        .arg("-o")
        .arg(&out)
        // No __pycache__ left in the app's folder.
        .env("PYTHONDONTWRITEBYTECODE", "1")
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
    std::fs::rename(&out, &built).map_err(io("move into place", &built))?;
    Ok(built)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_build_key_follows_the_sources() {
        let dir = std::env::temp_dir().join(format!("plasmoid-pykey-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("__pycache__")).unwrap();
        std::fs::write(dir.join("app.py"), "x = 1\n").unwrap();
        let a = super::build_key(&dir, &["app"]).unwrap();
        std::fs::write(dir.join("__pycache__").join("app.pyc"), "junk").unwrap();
        assert_eq!(
            a,
            super::build_key(&dir, &["app"]).unwrap(),
            "caches are not sources"
        );
        std::fs::write(dir.join("app.py"), "x = 2\n").unwrap();
        assert_ne!(a, super::build_key(&dir, &["app"]).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
