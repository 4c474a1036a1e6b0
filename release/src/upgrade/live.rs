//! A running root node's releases: the version it runs, the one before it
//! (while the way back is kept), and an upgrade on probation. It answers
//! `plasmoid release upgrade | confirm | rollback` (control requests),
//! records each upgrade in `release.lock` and the log, and keeps the hot
//! swap watcher on the folder of the version that runs. Applying and
//! undoing steps is apply.rs's.

use super::apply::{self, Applied, Version};
use crate::lock::{Lock, StepRecord, UpgradeRecord};
use crate::swap::{SwapOptions, Swapper};
use plasmoid_runtime::Node;
use plasmoid_supervisor::SupervisorRef;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a version on probation is checked for crashed children.
const PROBATION_POLL: Duration = Duration::from_millis(50);

/// The longest probation a request may ask for (1 hour).
pub const MAX_PROBATION: Duration = Duration::from_secs(3600);

/// The releases of one root node; cheap to clone.
#[derive(Clone)]
pub struct Releases {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    /// This node's name in the plan (`embedded` without `[nodes]`).
    here: String,
    swap: Option<SwapOptions>,
    state: tokio::sync::Mutex<State>,
    /// `name-version` of what runs, for `status`.
    label: Arc<parking_lot::Mutex<String>>,
    swapper: parking_lot::Mutex<Option<Swapper>>,
    /// Numbers upgrades: the probation watcher of an earlier one stops.
    serial: std::sync::atomic::AtomicU64,
}

struct State {
    current: Version,
    previous: Option<Version>,
    probation: Option<Probation>,
}

struct Probation {
    applied: Applied,
    /// Bumped per upgrade: a watcher of an earlier one stops.
    serial: u64,
}

impl Releases {
    /// `current` is the version the node booted; `label` the text `status`
    /// shows as the release, kept up to date here.
    pub fn new(
        node: Node,
        here: &str,
        current: Version,
        swap: Option<SwapOptions>,
        label: Arc<parking_lot::Mutex<String>>,
    ) -> Releases {
        let here = if here.is_empty() { "embedded" } else { here };
        Releases {
            inner: Arc::new(Inner {
                node,
                here: here.to_string(),
                swap,
                label,
                swapper: parking_lot::Mutex::new(None),
                serial: std::sync::atomic::AtomicU64::new(0),
                state: tokio::sync::Mutex::new(State {
                    current,
                    previous: None,
                    probation: None,
                }),
            }),
        }
    }

    /// Watch the running version's `components/` for hot swaps (if on).
    pub async fn watch_swaps(&self) -> Result<(), crate::ReleaseError> {
        let state = self.inner.state.lock().await;
        self.inner.rewatch(&state.current)
    }

    /// Converge to the built release in `dir`, then keep it on probation
    /// for `probation`; returns the report.
    pub async fn upgrade(
        &self,
        root: &SupervisorRef,
        dir: &Path,
        probation: Duration,
    ) -> Result<String, String> {
        self.converge(root, dir, Some(probation)).await
    }

    /// [`Self::upgrade`]; without a probation the new version is final at
    /// once (the way back to a confirmed version's predecessor).
    async fn converge(
        &self,
        root: &SupervisorRef,
        dir: &Path,
        probation: Option<Duration>,
    ) -> Result<String, String> {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        if state.probation.is_some() {
            return Err(format!(
                "{} is still on probation: `plasmoid release confirm` or `plasmoid release rollback` first",
                state.current.manifest.release_id()
            ));
        }
        let new = open(dir)?;
        let old = state.current.clone();
        let plan = super::plan(&old.manifest, &old.lock, &new.manifest, &new.lock)
            .map_err(|e| e.to_string())?;
        apply::check_local(&plan, &old.manifest, &new.manifest, &inner.here)
            .map_err(|e| format!("{e}; nothing was applied"))?;
        tracing::info!(from = %plan.from, to = %plan.to, steps = plan.steps.len(), "upgrading:\n{}", plan.render());
        let started = Instant::now();
        match apply::apply(&inner.node, root, &plan, &old, &new).await {
            Err((records, why)) => {
                let ms = started.elapsed().as_millis() as u64;
                let report = report(&records);
                let rec = record(&plan.from, &plan.to, "failed", &why, ms, records);
                inner.log_to(&old.dir, rec);
                // The watcher keeps its own copy of the lock: read it again.
                let _ = inner.rewatch(&old);
                Err(format!(
                    "{report}upgrade {} → {} failed: {why}; everything was put back as it was",
                    plan.from, plan.to
                ))
            }
            Ok(applied) => {
                let ms = started.elapsed().as_millis() as u64;
                let report = report(&applied.records);
                let detail = format!("{} steps in {ms} ms", applied.records.len());
                let outcome = if probation.is_some() {
                    "on probation"
                } else {
                    "confirmed"
                };
                let rec = record(
                    &plan.from,
                    &plan.to,
                    outcome,
                    &detail,
                    ms,
                    applied.records.clone(),
                );
                inner.mark_previous(&new.dir, &old.dir);
                inner.log_to(&new.dir, rec);
                copy_control_addr(&old.dir, &new.dir, &old.manifest);
                *inner.label.lock() = new.manifest.release_id();
                // Peers hear of it (the mesh's `Release` frame).
                inner
                    .node
                    .set_release(crate::lock::tag(&new.manifest, &new.lock));
                if let Err(e) = inner.rewatch(&new) {
                    tracing::warn!("hot swap is off until the node restarts: {e}");
                }
                state.previous = Some(old);
                state.current = new;
                let Some(probation) = probation else {
                    tracing::info!(to = %plan.to, ms, "upgraded");
                    return Ok(format!(
                        "{report}upgraded {} → {} in {ms} ms",
                        plan.from, plan.to
                    ));
                };
                tracing::info!(to = %plan.to, ms, "upgraded; on probation for {} ms", probation.as_millis());
                let serial = inner
                    .serial
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                state.probation = Some(Probation { applied, serial });
                drop(state);
                self.watch_probation(root.clone(), probation, serial);
                Ok(format!(
                    "{report}upgraded {} → {} in {ms} ms; on probation for {} s: a crash of a child it started or changed rolls it back. `plasmoid release confirm` makes it final now, `plasmoid release rollback` goes back",
                    plan.from,
                    plan.to,
                    probation.as_secs_f64()
                ))
            }
        }
    }

    /// Make the version on probation final.
    pub async fn confirm(&self) -> Result<String, String> {
        let mut state = self.inner.state.lock().await;
        let Some(p) = state.probation.take() else {
            return Err(format!(
                "{} is not on probation: nothing to confirm",
                state.current.manifest.release_id()
            ));
        };
        drop(p);
        let id = state.current.manifest.release_id();
        self.inner
            .set_outcome(&state.current.dir, "confirmed", "confirmed");
        tracing::info!(release = %id, "upgrade confirmed");
        Ok(format!("{id} confirmed"))
    }

    /// Go back: undo the upgrade on probation, or upgrade back to the
    /// version before a confirmed one.
    pub async fn rollback(&self, root: &SupervisorRef, why: &str) -> Result<String, String> {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        if let Some(p) = state.probation.take() {
            let Some(previous) = state.previous.take() else {
                return Err("no previous version is known".into());
            };
            let started = Instant::now();
            let records = apply::undo_all(&inner.node, root, &previous, p.applied.undo).await;
            let ms = started.elapsed().as_millis() as u64;
            let (from, to) = (
                state.current.manifest.release_id(),
                previous.manifest.release_id(),
            );
            let report = report(&records);
            inner.set_outcome(&state.current.dir, "rolled back", why);
            let rec = record(&from, &to, "rolled back", why, ms, records);
            inner.log_to(&previous.dir, rec);
            *inner.label.lock() = to.clone();
            inner
                .node
                .set_release(crate::lock::tag(&previous.manifest, &previous.lock));
            let _ = inner.rewatch(&previous);
            tracing::warn!(from = %from, to = %to, ms, "rolled back: {why}");
            state.current = previous;
            return Ok(format!(
                "{report}rolled back {from} → {to} in {ms} ms ({why})"
            ));
        }
        // Confirmed: the way back is an upgrade to the previous folder.
        let back = match &state.previous {
            Some(v) => v.dir.clone(),
            None => {
                let lock = Lock::read(&state.current.dir).map_err(|e| e.to_string())?;
                let Some(prev) = lock.previous else {
                    return Err(format!(
                        "{} has no previous version to go back to",
                        state.current.manifest.release_id()
                    ));
                };
                sibling(&state.current.dir, &prev)
            }
        };
        drop(state);
        self.converge(root, &back, None).await
    }

    /// Confirm after `probation`, or roll back when a watched child
    /// crashes first.
    fn watch_probation(&self, root: SupervisorRef, probation: Duration, serial: u64) {
        let me = self.clone();
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + probation;
            loop {
                let crashed = {
                    let state = me.inner.state.lock().await;
                    match &state.probation {
                        Some(p) if p.serial == serial => crash(&me.inner.node, &root, &p.applied),
                        _ => return, // confirmed or rolled back meanwhile
                    }
                };
                if let Some(why) = crashed {
                    if let Err(e) = me.rollback(&root, &why).await {
                        tracing::error!("cannot roll back after a crash in probation: {e}");
                    }
                    return;
                }
                if tokio::time::Instant::now() >= until {
                    if let Err(e) = me.confirm().await {
                        tracing::debug!("probation over: {e}");
                    }
                    return;
                }
                tokio::time::sleep(PROBATION_POLL).await;
            }
        });
    }
}

/// Why the upgrade failed its probation, if it did: a watched child that
/// was restarted, has another pid, or is gone.
fn crash(node: &Node, root: &SupervisorRef, applied: &Applied) -> Option<String> {
    let live = super::tree::Live { node, root };
    for (path, pid, restarts) in &applied.watched {
        match live.child(path) {
            None => return Some(format!("child `{path}` is gone")),
            Some(c) if c.restarts > *restarts => {
                return Some(format!(
                    "child `{path}` crashed in probation and was restarted"
                ));
            }
            Some(c) if c.pid != *pid => {
                return Some(format!("child `{path}` crashed in probation"));
            }
            Some(_) => {}
        }
    }
    None
}

impl Inner {
    fn rewatch(&self, v: &Version) -> Result<(), crate::ReleaseError> {
        let Some(opts) = self.swap.clone() else {
            return Ok(());
        };
        // The old watcher goes first: two must not write one lock.
        drop(self.swapper.lock().take());
        let s = crate::swap::watch(self.node.clone(), &v.dir, v.manifest.clone(), opts)?;
        *self.swapper.lock() = Some(s);
        Ok(())
    }

    /// Append `rec` to the lock in `dir`, and say so in the log.
    fn log_to(&self, dir: &Path, rec: UpgradeRecord) {
        tracing::info!(from = %rec.from, to = %rec.to, outcome = %rec.outcome, ms = rec.ms, "upgrade recorded in {}", dir.display());
        edit_lock(dir, |l| l.upgrades.push(rec));
    }

    fn mark_previous(&self, dir: &Path, previous: &Path) {
        let name = previous
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        edit_lock(dir, |l| l.previous = name);
    }

    /// The outcome of the last upgrade to the version in `dir`.
    fn set_outcome(&self, dir: &Path, outcome: &str, detail: &str) {
        edit_lock(dir, |l| {
            if let Some(r) = l.upgrades.last_mut() {
                r.outcome = outcome.to_string();
                if !detail.is_empty() && detail != outcome {
                    r.detail = format!("{}; {detail}", r.detail);
                }
            }
        });
    }
}

fn edit_lock(dir: &Path, f: impl FnOnce(&mut Lock)) {
    match Lock::read(dir) {
        Ok(mut lock) => {
            f(&mut lock);
            if let Err(e) = lock.write(dir) {
                tracing::warn!("cannot write {}: {e}", dir.display());
            }
        }
        Err(e) => tracing::warn!("cannot record the upgrade: {e}"),
    }
}

fn open(dir: &Path) -> Result<Version, String> {
    let (manifest, lock) = crate::lock::open_release(dir).map_err(|e| e.to_string())?;
    Ok(Version {
        dir: dir.to_path_buf(),
        manifest,
        lock,
    })
}

fn sibling(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.parent().unwrap_or(Path::new(".")).join(name)
}

/// The node's control address, where clients of the new folder look.
fn copy_control_addr(old: &Path, new: &Path, m: &crate::model::Manifest) {
    let name = m.nodes.first().map(|n| n.name.as_str());
    let (from, to) = (
        crate::nodes::node_dir(old, name),
        crate::nodes::node_dir(new, name),
    );
    match crate::nodes::read_control_addr(&from) {
        Ok(addr) => {
            if let Err(e) = std::fs::create_dir_all(&to)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    crate::nodes::write_control_addr(&to, addr).map_err(|e| e.to_string())
                })
            {
                tracing::warn!(
                    "cannot tell clients of {} where the node listens: {e}",
                    new.display()
                );
            }
        }
        Err(e) => tracing::warn!("cannot read the control address: {e}"),
    }
}

fn record(
    from: &str,
    to: &str,
    outcome: &str,
    detail: &str,
    ms: u64,
    steps: Vec<StepRecord>,
) -> UpgradeRecord {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UpgradeRecord {
        from: from.to_string(),
        to: to.to_string(),
        at,
        outcome: outcome.to_string(),
        detail: detail.to_string(),
        ms,
        steps,
    }
}

/// One line per step record.
fn report(records: &[StepRecord]) -> String {
    let mut out = String::new();
    for (i, r) in records.iter().enumerate() {
        out.push_str(&format!(
            "{:>3}. [{}] {}: {} ({} ms)\n",
            i + 1,
            r.node,
            r.step,
            r.outcome,
            r.ms
        ));
    }
    out
}
