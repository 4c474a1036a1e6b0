//! Hot swap of a running release: a new `components/<name>.wasm` is
//! validated, installed and rolled out per the component's upgrade mode,
//! watched through a probation window, and recorded in `release.lock`.
//!
//! The runtime moves a particle to the new code under its pid (handoff) and
//! puts the old version back when a new one crashes in probation; this
//! module decides, keeps the files and the lock in step, and restarts what
//! cannot hand over through its supervisor.

mod rollout;

pub(crate) use rollout::roll_out;
mod watch;

use crate::error::ReleaseError;
use crate::lock::{Lock, SwapOutcome, SwapRecord, hash, short_hash, write_file};
use crate::model::Manifest;
use plasmoid_runtime::{Node, NodeConfig, SwapEvent};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SwapOptions {
    /// How long a new version is on probation: a crash within it rolls back.
    pub probation: Duration,
    /// How long a dropped file must be quiet (then size-stable as long again).
    pub settle: Duration,
}

impl Default for SwapOptions {
    fn default() -> Self {
        SwapOptions {
            probation: Duration::from_secs(10),
            settle: Duration::from_millis(50),
        }
    }
}

/// Keeps the watcher alive; dropping it stops hot swapping.
pub struct Swapper {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watch `dir` (a booted release folder) and swap components as new files land.
pub fn watch(
    node: Node,
    dir: &Path,
    manifest: Manifest,
    opts: SwapOptions,
) -> Result<Swapper, ReleaseError> {
    let comp_dir = dir.join("components");
    let known = manifest.components.iter().map(|c| c.name.clone()).collect();
    let (watcher, files) = watch::watch(&comp_dir, known, opts.settle)
        .map_err(|e| ReleaseError::Boot(format!("cannot watch {}: {e}", comp_dir.display())))?;
    let mut manager = Manager::new(node, dir.to_path_buf(), manifest, opts)?;
    let task = tokio::spawn(async move { manager.run(files).await });
    Ok(Swapper {
        _watcher: watcher,
        task,
    })
}

pub(crate) struct Manager {
    pub node: Node,
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub opts: SwapOptions,
    pub cfg: NodeConfig,
    pub lock: Lock,
    /// Full blake3 of the version each component runs.
    pub running: HashMap<String, String>,
    /// Versions on probation: when it ends, component, full blake3.
    pub probation: Vec<(tokio::time::Instant, String, String)>,
    /// Keyed hashes of `.cwasm` files by (component, full blake3 of its
    /// `.wasm`): of what this manager compiled, and of what the lock
    /// trusted when it started. Only these ever go into the lock.
    pub macs: HashMap<(String, String), String>,
}

impl Manager {
    fn new(
        node: Node,
        dir: PathBuf,
        manifest: Manifest,
        opts: SwapOptions,
    ) -> Result<Self, ReleaseError> {
        let lock = Lock::read(&dir)?;
        let cfg = crate::boot::node_config(&manifest, None);
        let mut running = HashMap::new();
        let mut macs = HashMap::new();
        for c in &lock.components {
            running.insert(c.name.clone(), c.blake3.clone());
            if crate::native_code::check(&dir, &c.cwasm, &c.cwasm_mac).is_ok() {
                macs.insert((c.name.clone(), c.blake3.clone()), c.cwasm_mac.clone());
            }
            // Keep the running version where a rollback can find it.
            let h = short_hash(&c.blake3);
            for (file, ext) in [(&c.wasm, "wasm"), (&c.cwasm, "cwasm")] {
                let kept = dir.join("versions").join(format!("{}-{h}.{ext}", c.name));
                if !kept.exists() {
                    let bytes = read(&dir.join(file))?;
                    make_dir(kept.parent())?;
                    write_file(&kept, &bytes)?;
                }
            }
        }
        Ok(Manager {
            node,
            dir,
            manifest,
            opts,
            cfg,
            lock,
            running,
            probation: Vec::new(),
            macs,
        })
    }

    async fn run(&mut self, mut files: tokio::sync::mpsc::Receiver<PathBuf>) {
        let mut events = self.node.swap_events();
        loop {
            let next = self.probation.iter().map(|p| p.0).min();
            tokio::select! {
                _ = tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)), if next.is_some() => {
                    self.probation_over();
                }
                f = files.recv() => match f {
                    Some(path) => self.landed(&path).await,
                    None => return,
                },
                e = events.recv() => match e {
                    Ok(SwapEvent::RolledBack { component, bad, good, reason, .. }) => {
                        self.rolled_back(&component, &bad, &good, &reason.to_string()).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
            }
        }
    }

    /// A settled `components/<name>.wasm`.
    async fn landed(&mut self, path: &Path) {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(String::from) else {
            return;
        };
        let file = path.to_path_buf();
        let Ok(Ok(bytes)) = tokio::task::spawn_blocking(move || std::fs::read(file)).await else {
            return;
        };
        let digest = hash(&bytes);
        if self.running.get(&name) == Some(&digest) {
            return; // our own restore, or the same file again
        }
        match self.install(&name, &bytes, &digest).await {
            Ok(detail) => {
                // Recorded even when it crashed as it started: the
                // runtime's rollback event follows and is recorded after.
                self.record(&name, &digest, SwapOutcome::Upgraded, &detail);
                let until = tokio::time::Instant::now() + self.opts.probation;
                self.probation.push((until, name, digest));
            }
            Err(reason) => {
                tracing::error!(
                    component = %name,
                    version = %short_hash(&digest),
                    "rejected components/{name}.wasm: {reason}; version {} keeps running",
                    self.running.get(&name).map_or("?", |h| short_hash(h))
                );
                self.set_aside(&name, &bytes, &digest);
                self.restore_files(&name);
                self.record(&name, &digest, SwapOutcome::Rejected, &reason);
            }
        }
    }

    /// Append to the lock's history (and write the lock).
    /// Whether the node's current version of `name` is `digest`.
    fn runs(&self, name: &str, digest: &str) -> bool {
        self.node
            .component_version(name)
            .is_some_and(|v| &*v == short_hash(digest))
    }

    /// Versions whose probation has passed without a rollback are confirmed.
    fn probation_over(&mut self) {
        let now = tokio::time::Instant::now();
        let (over, on): (Vec<_>, Vec<_>) = std::mem::take(&mut self.probation)
            .into_iter()
            .partition(|p| p.0 <= now);
        self.probation = on;
        for (_, name, digest) in over {
            if self.runs(&name, &digest) {
                let detail = format!(
                    "ran through {} s of probation without a crash",
                    self.opts.probation.as_secs_f64()
                );
                tracing::info!(component = %name, version = %short_hash(&digest), "confirmed {name}: {detail}");
                self.record(&name, &digest, SwapOutcome::Confirmed, &detail);
            }
        }
    }

    fn record(&mut self, name: &str, new: &str, outcome: SwapOutcome, detail: &str) {
        let from = self
            .lock
            .component(name)
            .map(|c| short_hash(&c.blake3).to_string())
            .unwrap_or_default();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // The lock names what runs: the new version once upgraded, the
        // good one again after a rollback (`new` is then the good one).
        if matches!(outcome, SwapOutcome::Upgraded | SwapOutcome::RolledBack) {
            let size = std::fs::metadata(self.dir.join("components").join(format!("{name}.wasm")))
                .map_or(0, |m| m.len());
            let mac = self
                .macs
                .get(&(name.to_string(), new.to_string()))
                .cloned()
                .unwrap_or_default();
            if let Err(e) = self.lock.set_component(&self.dir, name, new, size, mac) {
                tracing::warn!("cannot update release.lock: {e}");
            }
        }
        self.lock.history.push(SwapRecord {
            component: name.to_string(),
            from,
            to: short_hash(new).to_string(),
            at,
            outcome,
            detail: detail.to_string(),
        });
        if let Err(e) = self.lock.write(&self.dir) {
            tracing::warn!("cannot write release.lock: {e}");
        }
    }

    /// Move a refused file out of the way, into `rejected/`.
    fn set_aside(&self, name: &str, bytes: &[u8], digest: &str) {
        let bad = self
            .dir
            .join("rejected")
            .join(format!("{name}-{}.wasm", short_hash(digest)));
        if let Err(e) = make_dir(bad.parent()).and_then(|_| write_file(&bad, bytes)) {
            tracing::warn!("cannot keep the rejected file: {e}");
        }
    }

    /// Put the running version's files back in `components/`.
    fn restore_files(&self, name: &str) {
        let Some(h) = self.running.get(name).map(|h| short_hash(h).to_string()) else {
            return;
        };
        for ext in ["wasm", "cwasm"] {
            let kept = self.dir.join("versions").join(format!("{name}-{h}.{ext}"));
            let live = self.dir.join("components").join(format!("{name}.{ext}"));
            if let Err(e) = read(&kept).and_then(|b| write_file(&live, &b)) {
                tracing::warn!("cannot restore {}: {e}", live.display());
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ReleaseError> {
    std::fs::read(path).map_err(|source| ReleaseError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })
}

fn make_dir(dir: Option<&Path>) -> Result<(), ReleaseError> {
    let Some(dir) = dir else { return Ok(()) };
    std::fs::create_dir_all(dir).map_err(|source| ReleaseError::Io {
        what: "create",
        path: dir.to_path_buf(),
        source,
    })
}
