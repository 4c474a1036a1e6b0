//! Building guest crates with the stock toolchain: `cargo build --release
//! --target wasm32-wasip2`, no cargo-component.
//!
//! rustup may be set not to install targets on its own, so the target is
//! checked and added explicitly before the first build.

use crate::ReleaseError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const TARGET: &str = "wasm32-wasip2";

/// The components a build produced, by crate name.
#[derive(Debug, Clone)]
pub struct GuestBuild {
    pub components: Vec<(String, PathBuf)>,
}

impl GuestBuild {
    pub fn get(&self, name: &str) -> Option<&Path> {
        self.components
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
    }
}

/// Make sure `wasm32-wasip2` is installed for the toolchain that builds in `dir`.
pub fn ensure_wasm_target(dir: &Path) -> Result<(), ReleaseError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| check_or_add_target(dir))
        .clone()
        .map_err(ReleaseError::MissingTarget)
}

fn check_or_add_target(dir: &Path) -> Result<(), String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        return Ok(());
    }
    tracing::info!("installing the {TARGET} target: rustup target add {TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("rustup exited with {status}"))
    }
}

/// Build the guest crate or guest workspace at `dir` (release profile) and
/// return the `.wasm` components it produced.
pub fn build_guest(dir: &Path) -> Result<GuestBuild, ReleaseError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(ReleaseError::NotACrate(dir.display().to_string()));
    }
    // cargo runs inside `dir` (so its rust-toolchain.toml applies): make the
    // manifest path independent of our own working directory.
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    ensure_wasm_target(dir)?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--release",
        "--target",
        TARGET,
        "--quiet",
        "--message-format=json-render-diagnostics",
    ])
    .arg("--manifest-path")
    .arg(&manifest)
    .current_dir(dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    // A host build's settings (RUSTFLAGS for the host, a target dir shared
    // with the host workspace) must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    // Lets several apps share one guest target dir (tests, CI caches), so
    // the SDK and its dependencies are compiled once.
    if let Some(dir) = std::env::var_os("PLASMOID_GUEST_TARGET_DIR") {
        cmd.arg("--target-dir").arg(dir);
    }
    let out = cmd.output().map_err(|source| ReleaseError::Spawn {
        command: "cargo build --target wasm32-wasip2".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(ReleaseError::BuildFailed {
            dir: dir.display().to_string(),
            status: out
                .status
                .code()
                .map_or("a signal".into(), |c| c.to_string()),
        });
    }
    let mut components = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        let name = v["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .replace('-', "_");
        for f in v["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                components.push((name.clone(), PathBuf::from(f)));
            }
        }
    }
    if components.is_empty() {
        return Err(ReleaseError::NoArtifact(dir.display().to_string()));
    }
    Ok(GuestBuild { components })
}
