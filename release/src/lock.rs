//! `release.lock`: what a build produced, with each file's blake3 hash, so
//! that a release runs exactly what was built and refuses anything else.

use crate::error::ReleaseError;
use crate::model::Manifest;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "release.lock";
pub const RELEASE_FILE: &str = "release.toml";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// `name-version`.
    pub release: String,
    /// The plasmoid version that built it (precompiled code is tied to it).
    pub built_by: String,
    #[serde(default)]
    pub components: Vec<LockedComponent>,
    /// Every file of the release, relative to its folder.
    #[serde(default)]
    pub files: Vec<LockedFile>,
    /// Hot swaps: every new version tried, and what became of it.
    #[serde(default)]
    pub history: Vec<SwapRecord>,
    /// The folder of the version this one was upgraded from (beside it),
    /// while the way back is kept: set by `release upgrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Declarative upgrades to and from this version: plan, outcome of each
    /// step, timings.
    #[serde(default)]
    pub upgrades: Vec<UpgradeRecord>,
}

/// One `release upgrade` (or rollback) as the lock records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRecord {
    /// `name-version` before and after.
    pub from: String,
    pub to: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// `on probation`, `confirmed`, `rolled back`, `failed`.
    pub outcome: String,
    pub detail: String,
    /// Milliseconds from the request to the last step.
    pub ms: u64,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// One step of an upgrade and what became of it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    pub node: String,
    pub step: String,
    /// `done`, `failed: …`, `undone`, `skipped: …`.
    pub outcome: String,
    pub ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SwapRecord {
    pub component: String,
    /// Short blake3 of the version that ran before, and of the new one.
    pub from: String,
    pub to: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub outcome: SwapOutcome,
    pub detail: String,
}

/// What became of a new version, as the lock and the log name it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SwapOutcome {
    /// Installed and rolled out; on probation.
    #[serde(rename = "upgraded")]
    Upgraded,
    /// It ran through its probation without a crash: final.
    #[serde(rename = "confirmed")]
    Confirmed,
    /// Refused before anything changed (invalid, wrong world …): final.
    #[serde(rename = "rejected")]
    Rejected,
    /// It crashed on probation (or as it started); the previous version
    /// runs again: final.
    #[serde(rename = "rolled back")]
    RolledBack,
}

impl SwapOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SwapOutcome::Upgraded => "upgraded",
            SwapOutcome::Confirmed => "confirmed",
            SwapOutcome::Rejected => "rejected",
            SwapOutcome::RolledBack => "rolled back",
        }
    }

    /// Whether nothing more will be recorded for this version.
    pub fn is_final(self) -> bool {
        self != SwapOutcome::Upgraded
    }
}

impl std::fmt::Display for SwapOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedComponent {
    pub name: String,
    /// Where it was built from: a crate folder or a prebuilt file.
    pub source: String,
    pub wasm: String,
    pub cwasm: String,
    /// blake3 of the `.wasm`: the component's version identity.
    pub blake3: String,
    pub size: u64,
    /// Keyed hash of the `.cwasm` (see native_code.rs); empty = not trusted.
    #[serde(default)]
    pub cwasm_mac: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    pub path: String,
    pub blake3: String,
    pub size: u64,
}

impl Lock {
    pub fn read(dir: &Path) -> Result<Lock, ReleaseError> {
        let path = dir.join(LOCK_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ReleaseError::NotARelease(dir.to_path_buf(), format!("cannot read {LOCK_FILE}: {e}"))
        })?;
        toml::from_str(&text).map_err(|e| {
            ReleaseError::NotARelease(
                dir.to_path_buf(),
                format!("{LOCK_FILE} is malformed: {}", e.message()),
            )
        })
    }

    pub fn write(&self, dir: &Path) -> Result<(), ReleaseError> {
        let text = toml::to_string_pretty(self).map_err(|e| ReleaseError::Boot(e.to_string()))?;
        let body = format!(
            "# Written by `plasmoid release build`; checked by `plasmoid release run`.\n{text}"
        );
        write_file(&dir.join(LOCK_FILE), body.as_bytes())
    }

    pub fn component(&self, name: &str) -> Option<&LockedComponent> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Record that `name` now runs the files now in the release folder.
    pub fn set_component(
        &mut self,
        dir: &Path,
        name: &str,
        blake3: &str,
        size: u64,
        cwasm_mac: String,
    ) -> Result<(), ReleaseError> {
        let Some(c) = self.components.iter_mut().find(|c| c.name == name) else {
            return Ok(());
        };
        c.blake3 = blake3.to_string();
        c.size = size;
        // Computed by the caller from bytes it compiled or verified itself,
        // never from whatever is on disk now; empty = compile the .wasm.
        c.cwasm_mac = cwasm_mac;
        let paths = [c.wasm.clone(), c.cwasm.clone()];
        for rel in paths {
            let fresh = locked_file(dir, &rel)?;
            match self.files.iter_mut().find(|f| f.path == rel) {
                Some(f) => *f = fresh,
                None => self.files.push(fresh),
            }
        }
        Ok(())
    }

    /// Check every listed file against its size and hash.
    pub fn verify(&self, dir: &Path) -> Result<(), ReleaseError> {
        for f in &self.files {
            let path = dir.join(&f.path);
            let bytes = std::fs::read(&path).map_err(|source| ReleaseError::Io {
                what: "read",
                path: path.clone(),
                source,
            })?;
            let found = hash(&bytes);
            if found != f.blake3 || bytes.len() as u64 != f.size {
                return Err(ReleaseError::Tampered {
                    path,
                    expected: format!("blake3 {}, {} bytes", short(&f.blake3), f.size),
                    found: format!("blake3 {}, {} bytes", short(&found), bytes.len()),
                });
            }
        }
        Ok(())
    }
}

/// A built release folder, verified: its resolved manifest and its lock.
pub fn open_release(dir: &Path) -> Result<(Manifest, Lock), ReleaseError> {
    let lock = Lock::read(dir)?;
    if !lock.files.iter().any(|f| f.path == RELEASE_FILE) {
        return Err(ReleaseError::NotARelease(
            dir.to_path_buf(),
            format!("{LOCK_FILE} does not list {RELEASE_FILE}"),
        ));
    }
    lock.verify(dir)?;
    let manifest = crate::manifest::load(&dir.join(RELEASE_FILE))?;
    for c in &manifest.components {
        if lock.component(&c.name).is_none() {
            return Err(ReleaseError::NotARelease(
                dir.to_path_buf(),
                format!("component `{}` is missing from {LOCK_FILE}", c.name),
            ));
        }
    }
    Ok((manifest, lock))
}

/// What a node of this build runs, for the mesh handshake: the release's
/// `name-version` and a hash of its components' names and code hashes
/// (the same code under another version is the same code).
pub fn tag(m: &Manifest, lock: &Lock) -> plasmoid_runtime::versions::Tag {
    let mut parts: Vec<String> = lock
        .components
        .iter()
        .map(|c| format!("{}={}\n", c.name, c.blake3))
        .collect();
    parts.sort();
    let code = blake3::hash(parts.concat().as_bytes()).to_hex();
    plasmoid_runtime::versions::Tag {
        release: m.release_id(),
        code: short(&code).to_string(),
    }
}

/// The short form of a hash used as a version name (`3fa4c2d19b0e`).
pub fn short_hash(h: &str) -> &str {
    short(h)
}

pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

pub fn locked_file(dir: &Path, rel: &str) -> Result<LockedFile, ReleaseError> {
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).map_err(|source| ReleaseError::Io {
        what: "read",
        path,
        source,
    })?;
    Ok(LockedFile {
        path: rel.to_string(),
        blake3: hash(&bytes),
        size: bytes.len() as u64,
    })
}

/// Write through a temporary file and a rename, so a reader (or a crash)
/// never sees half a file.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReleaseError> {
    let tmp: PathBuf = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(|source| ReleaseError::Io {
        what: "write",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| ReleaseError::Io {
        what: "write",
        path: path.to_path_buf(),
        source,
    })
}
