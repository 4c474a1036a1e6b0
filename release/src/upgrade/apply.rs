//! Carrying an upgrade plan out on the running node, step by step, and
//! undoing what was done when a step fails (or the new version fails its
//! probation, live.rs): policies swapped back, components reloaded at
//! their old version, supervisor flags and specs put back, stopped
//! children started again at their place, started ones stopped.
//!
//! Children are reached through the root supervisor and the nested
//! supervisors of this node's registry; a subtree placed on another node
//! is refused before anything changes (live upgrades across nodes are not
//! built yet). Particles no step touches are never stopped.

use super::tree::{self, Live};
use super::{Plan, Planned, Step};
use crate::boot;
use crate::lock::StepRecord;
use crate::model::{Manifest, Upgrade};
use crate::swap::roll_out;
use plasmoid_runtime::{Node, Pid};
use plasmoid_supervisor::{ChildSpec, Flags, SupervisorRef};
use std::path::PathBuf;
use std::time::Instant;

/// A built release folder, opened and verified.
#[derive(Clone)]
pub struct Version {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub lock: crate::lock::Lock,
}

/// What it takes to undo one applied step.
pub(crate) enum Undo {
    Policies(PathBuf),
    /// Reload the component as the old version has it (`old: false`: it
    /// was new, unload it), and move its particles back (`force`: all of
    /// them, its code did not change).
    Component {
        name: String,
        old: bool,
        mode: Upgrade,
        force: bool,
    },
    Flags {
        path: String,
        flags: Flags,
    },
    /// Start the stopped child again, after `after`.
    Stopped {
        parent: String,
        spec: ChildSpec,
        after: Option<String>,
    },
    /// Stop the child that was started.
    Started {
        parent: String,
        id: String,
    },
    /// Put back the specs nested supervisors restart from.
    Specs(Vec<(String, ChildSpec)>),
}

/// The result of applying a plan: the undo log, each step's record, and
/// the children the probation watches (path, pid and restarts after the
/// upgrade).
pub struct Applied {
    pub(crate) undo: Vec<Undo>,
    pub records: Vec<StepRecord>,
    pub watched: Vec<(String, Option<Pid>, u32)>,
}

/// Apply `plan` (from `old` to `new`) on `node`, whose tree is `root`.
/// On a failed step everything done is undone; `Err` has the records (the
/// failed step last, then the undone ones) and the reason.
pub async fn apply(
    node: &Node,
    root: &SupervisorRef,
    plan: &Plan,
    old: &Version,
    new: &Version,
) -> Result<Applied, (Vec<StepRecord>, String)> {
    let live = Live { node, root };
    let mut undo = Vec::new();
    let mut records = Vec::new();
    let mut watched_paths = Vec::new();
    for p in &plan.steps {
        let started = Instant::now();
        let text = super::describe(&p.step);
        let done = step(&live, p, old, new, &mut undo, &mut watched_paths).await;
        let ms = started.elapsed().as_millis() as u64;
        match done {
            Ok(outcome) => {
                tracing::info!(node = %p.node, step = %text, ms, "upgrade step: {outcome}");
                records.push(StepRecord {
                    node: p.node.clone(),
                    step: text,
                    outcome,
                    ms,
                });
            }
            Err(why) => {
                tracing::error!(node = %p.node, step = %text, "upgrade step failed: {why}; undoing the upgrade");
                records.push(StepRecord {
                    node: p.node.clone(),
                    step: text,
                    outcome: format!("failed: {why}"),
                    ms,
                });
                records.extend(undo_all(node, root, old, undo).await);
                return Err((records, why));
            }
        }
    }
    // Nested supervisors restart from the new specs from now on.
    match respec(&live, new, old).await {
        Ok(previous) => undo.push(Undo::Specs(previous)),
        Err(why) => {
            records.extend(undo_all(node, root, old, undo).await);
            return Err((records, why));
        }
    }
    let watched = watched_paths
        .iter()
        .map(|path: &String| {
            let info = live.child(path);
            (
                path.clone(),
                info.as_ref().and_then(|c| c.pid),
                info.map_or(0, |c| c.restarts),
            )
        })
        .collect();
    Ok(Applied {
        undo,
        records,
        watched,
    })
}

/// Carry one step out; `Ok` is what was done, for the record.
async fn step(
    live: &Live<'_>,
    p: &Planned,
    old: &Version,
    new: &Version,
    undo: &mut Vec<Undo>,
    watched: &mut Vec<String>,
) -> Result<String, String> {
    let node = live.node;
    match &p.step {
        Step::SwapPolicies { .. } => {
            node.replace_policies(&new.dir.join("policies"))
                .map_err(|e| format!("the new policies do not validate: {e}"))?;
            undo.push(Undo::Policies(old.dir.join("policies")));
            Ok("done".into())
        }
        Step::InstallComponent { name, .. } => {
            load(node, new, name)?;
            undo.push(Undo::Component {
                name: name.clone(),
                old: false,
                mode: Upgrade::Restart,
                force: false,
            });
            Ok("done".into())
        }
        Step::SwapComponent { name, .. } | Step::ChangeComponent { name, .. } => {
            let mode = new
                .manifest
                .component(name)
                .map_or(Upgrade::Restart, |c| c.upgrade);
            if let Step::ChangeComponent { restart: false, .. } = p.step {
                return Ok("done: nothing restarted".into());
            }
            let force = matches!(p.step, Step::ChangeComponent { .. });
            load(node, new, name)?;
            undo.push(Undo::Component {
                name: name.clone(),
                old: true,
                mode,
                force,
            });
            let (handoff, restarted, left) = roll_out(node, name, mode, force).await;
            watched.extend(tree::workers_of(&new.manifest, name));
            Ok(format!(
                "done: {handoff} handed over, {restarted} restarted, {left} left as they were"
            ))
        }
        Step::UpdateSupervisor { path, .. } => {
            let def = tree::sup_def(&new.manifest, path)
                .ok_or_else(|| format!("`{path}` is not a supervisor of the new tree"))?;
            let sup = live.supervisor(path)?;
            let was = sup
                .update(tree::flags(def))
                .await
                .map_err(|e| e.to_string())?;
            undo.push(Undo::Flags {
                path: path.clone(),
                flags: was,
            });
            Ok("done".into())
        }
        Step::StopChild { path } => {
            let (parent, id) = tree::split(path);
            let spec = tree::spec_at(old, path)?;
            let sup = live.supervisor(parent)?;
            let after = live.before(&sup, id);
            stop(&sup, id).await?;
            undo.push(Undo::Stopped {
                parent: parent.to_string(),
                spec,
                after,
            });
            Ok("done".into())
        }
        Step::RestartChild { path, .. } => {
            let (parent, id) = tree::split(path);
            let (was, now) = (tree::spec_at(old, path)?, tree::spec_at(new, path)?);
            let sup = live.supervisor(parent)?;
            let after = live.before(&sup, id);
            stop(&sup, id).await?;
            undo.push(Undo::Stopped {
                parent: parent.to_string(),
                spec: was,
                after: after.clone(),
            });
            sup.start_child_after(now, after.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            undo.push(Undo::Started {
                parent: parent.to_string(),
                id: id.to_string(),
            });
            watched.push(path.clone());
            Ok("done".into())
        }
        Step::StartChild { path } => {
            let (parent, id) = tree::split(path);
            let spec = tree::spec_at(new, path)?;
            let sup = live.supervisor(parent)?;
            let after = tree::place(&new.manifest, path, &sup);
            sup.start_child_after(spec, after.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            undo.push(Undo::Started {
                parent: parent.to_string(),
                id: id.to_string(),
            });
            watched.push(path.clone());
            Ok("done".into())
        }
        Step::RemoveComponent { name } => {
            if !node.particles_of(name).is_empty() {
                return Err(format!(
                    "particles still run `{name}` though no child of the new tree does (spawned by hand or by another particle); stop them first"
                ));
            }
            node.remove_component(name);
            undo.push(Undo::Component {
                name: name.clone(),
                old: true,
                mode: Upgrade::Restart,
                force: false,
            });
            Ok("done".into())
        }
        Step::ChangeSetting { .. } => Ok("recorded: takes effect when the node next starts".into()),
    }
}

/// Load component `name` as `v` builds it.
fn load(node: &Node, v: &Version, name: &str) -> Result<(), String> {
    let def = v
        .manifest
        .component(name)
        .ok_or_else(|| format!("`{name}` is not a component of {}", v.manifest.release_id()))?;
    let locked = v.lock.component(name).ok_or_else(|| {
        format!(
            "`{name}` is missing from {}'s release.lock",
            v.dir.display()
        )
    })?;
    let defaults = boot::node_config(&v.manifest, None).default_limits;
    boot::load_component(node, &v.dir, def, locked, &defaults, None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Terminate child `id` and forget its spec (a temporary child is
/// forgotten when terminated already).
async fn stop(sup: &SupervisorRef, id: &str) -> Result<(), String> {
    sup.terminate_child(id).await.map_err(|e| e.to_string())?;
    match sup.delete_child(id).await {
        Ok(()) | Err(plasmoid_supervisor::SupervisorError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Give every nested supervisor of `new` that ran in `old` too (and runs
/// here) the spec it restarts from in `new`; returns the specs of `old`.
async fn respec(
    live: &Live<'_>,
    new: &Version,
    old: &Version,
) -> Result<Vec<(String, ChildSpec)>, String> {
    let mut previous = Vec::new();
    for path in tree::supervisor_paths(&new.manifest.root) {
        let (parent, _) = tree::split(&path);
        let Ok(was) = tree::spec_at(old, &path) else {
            continue; // new: started from its new spec already
        };
        let Ok(sup) = live.supervisor(parent) else {
            continue; // on another node: refused by check_local
        };
        sup.set_child_spec(tree::spec_at(new, &path)?)
            .await
            .map_err(|e| e.to_string())?;
        previous.push((path, was));
    }
    Ok(previous)
}

/// Undo `undo`, last first; returns a record per undone step. An undo
/// that fails is logged and recorded, and the rest still run.
pub(crate) async fn undo_all(
    node: &Node,
    root: &SupervisorRef,
    old: &Version,
    undo: Vec<Undo>,
) -> Vec<StepRecord> {
    let live = Live { node, root };
    let mut records = Vec::new();
    for u in undo.into_iter().rev() {
        let started = Instant::now();
        let (what, res) = undo_one(&live, old, u).await;
        let outcome = match res {
            Ok(()) => "undone".to_string(),
            Err(e) => {
                tracing::error!("cannot undo `{what}`: {e}");
                format!("undo failed: {e}")
            }
        };
        records.push(StepRecord {
            node: "-".into(),
            step: format!("undo: {what}"),
            outcome,
            ms: started.elapsed().as_millis() as u64,
        });
    }
    records
}

async fn undo_one(live: &Live<'_>, old: &Version, u: Undo) -> (String, Result<(), String>) {
    let node = live.node;
    match u {
        Undo::Policies(dir) => (
            "policies".into(),
            node.replace_policies(&dir).map_err(|e| e.to_string()),
        ),
        Undo::Component {
            name, old: false, ..
        } => {
            node.remove_component(&name);
            (format!("install `{name}`"), Ok(()))
        }
        Undo::Component {
            name, mode, force, ..
        } => {
            let res = load(node, old, &name);
            if res.is_ok() {
                roll_out(node, &name, mode, force).await;
            }
            (format!("component `{name}`"), res)
        }
        Undo::Flags { path, flags } => {
            let res = match live.supervisor(&path) {
                Ok(sup) => sup
                    .update(flags)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            (format!("flags of `{path}`"), res)
        }
        Undo::Stopped {
            parent,
            spec,
            after,
        } => {
            let what = format!("stop `{}`", spec.id);
            let res = match live.supervisor(&parent) {
                Ok(sup) => sup
                    .start_child_after(spec, after.as_deref())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            (what, res)
        }
        Undo::Started { parent, id } => {
            let res = match live.supervisor(&parent) {
                Ok(sup) => stop(&sup, &id).await,
                Err(e) => Err(e),
            };
            (format!("start `{id}`"), res)
        }
        Undo::Specs(specs) => {
            let mut res = Ok(());
            for (path, spec) in specs {
                let (parent, _) = tree::split(&path);
                if let Ok(sup) = live.supervisor(parent)
                    && let Err(e) = sup.set_child_spec(spec).await
                {
                    res = Err(e.to_string());
                }
            }
            ("supervisor specs".into(), res)
        }
    }
}

/// Refuse, before anything changes, a plan this node cannot carry out
/// alone: one that changes a supervisor placed on another node, or
/// components of a release with more than one node.
pub fn check_local(plan: &Plan, old: &Manifest, new: &Manifest, here: &str) -> Result<(), String> {
    let m = new;
    let multi = old.nodes.len().max(new.nodes.len()) > 1;
    for p in &plan.steps {
        let component = matches!(
            p.step,
            Step::InstallComponent { .. }
                | Step::SwapComponent { .. }
                | Step::ChangeComponent { .. }
                | Step::RemoveComponent { .. }
        );
        if multi && component {
            return Err(format!(
                "the plan changes components on every node of a {}-node release; live upgrades across nodes are not built yet (stop the release and run the new version)",
                m.nodes.len()
            ));
        }
        let on_tree = matches!(
            p.step,
            Step::UpdateSupervisor { .. }
                | Step::StopChild { .. }
                | Step::RestartChild { .. }
                | Step::StartChild { .. }
        );
        if !on_tree {
            continue;
        }
        let owner = tree::owner(&p.step, old, new);
        if owner != here {
            return Err(format!(
                "step `{}` is for a supervisor on node {owner}; live upgrades of subtrees placed on other nodes are not built yet",
                super::describe(&p.step),
            ));
        }
    }
    Ok(())
}
