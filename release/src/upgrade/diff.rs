//! The comparison of two builds, step by step (see the module above).

use super::{Plan, Planned, Step};
use crate::error::ReleaseError;
use crate::lock::{Lock, short_hash};
use crate::model::{ChildDef, ChildKind, ComponentDef, Manifest, SupervisorDef};
use plasmoid_supervisor::Strategy;
use std::collections::BTreeMap;

/// The plan from `old` (running) to `new`; `release.version` must differ.
pub fn plan(
    old: &Manifest,
    old_lock: &Lock,
    new: &Manifest,
    new_lock: &Lock,
) -> Result<Plan, ReleaseError> {
    if old.name != new.name {
        return Err(ReleaseError::Upgrade(format!(
            "the running release is `{}` and the manifest names `{}`: an upgrade keeps the release's name",
            old.name, new.name
        )));
    }
    if old.version == new.version {
        return Err(ReleaseError::Upgrade(format!(
            "release.version is still \"{}\" in {}: give the new build a new version",
            new.version,
            new.file.display()
        )));
    }
    let mut steps = Vec::new();
    policies(old_lock, new_lock, &mut steps);
    components(old, old_lock, new, new_lock, &mut steps);
    tree(old, new, &mut steps);
    for c in &old.components {
        if new.component(&c.name).is_none() {
            steps.push(all(Step::RemoveComponent {
                name: c.name.clone(),
            }));
        }
    }
    settings(old, new, &mut steps);
    Ok(Plan {
        from: old.release_id(),
        to: new.release_id(),
        steps,
    })
}

fn all(step: Step) -> Planned {
    Planned {
        node: "all".into(),
        step,
    }
}

fn policies(old: &Lock, new: &Lock, steps: &mut Vec<Planned>) {
    let of = |l: &Lock| -> BTreeMap<String, String> {
        l.files
            .iter()
            .filter(|f| f.path.starts_with("policies/"))
            .map(|f| (f.path.clone(), f.blake3.clone()))
            .collect()
    };
    let (a, b) = (of(old), of(new));
    let mut files = Vec::new();
    for (path, hash) in &b {
        match a.get(path) {
            None => files.push(format!("{path} added")),
            Some(h) if h != hash => files.push(format!("{path} changed")),
            _ => {}
        }
    }
    files.extend(
        a.keys()
            .filter(|p| !b.contains_key(*p))
            .map(|p| format!("{p} removed")),
    );
    if !files.is_empty() {
        steps.push(all(Step::SwapPolicies { files }));
    }
}

fn version(lock: &Lock, name: &str) -> String {
    lock.component(name)
        .map(|c| short_hash(&c.blake3).to_string())
        .unwrap_or_default()
}

fn components(
    old: &Manifest,
    old_lock: &Lock,
    new: &Manifest,
    new_lock: &Lock,
    steps: &mut Vec<Planned>,
) {
    let mut swaps = Vec::new();
    for c in &new.components {
        let Some(was) = old.component(&c.name) else {
            steps.push(all(Step::InstallComponent {
                name: c.name.clone(),
                version: version(new_lock, &c.name),
            }));
            continue;
        };
        let (from, to) = (version(old_lock, &c.name), version(new_lock, &c.name));
        let mut changes = component_changes(was, c);
        let mode = (was.upgrade != c.upgrade).then(|| {
            format!(
                "upgrade mode {} → {}",
                was.upgrade.as_str(),
                c.upgrade.as_str()
            )
        });
        if !changes.is_empty() {
            // New settings restart every particle anyway: new code with
            // them is one restart, not a swap and then a restart.
            if from != to {
                changes.insert(0, format!("code {from} → {to}"));
            }
            changes.extend(mode);
            swaps.push(all(Step::ChangeComponent {
                name: c.name.clone(),
                changes,
                restart: true,
            }));
        } else if from != to {
            swaps.push(all(Step::SwapComponent {
                name: c.name.clone(),
                from,
                to,
                mode: c.upgrade.as_str(),
            }));
        } else if let Some(mode) = mode {
            // Only how later swaps roll out changed: nothing restarts.
            swaps.push(all(Step::ChangeComponent {
                name: c.name.clone(),
                changes: vec![mode],
                restart: false,
            }));
        }
    }
    steps.extend(swaps);
}

fn component_changes(a: &ComponentDef, b: &ComponentDef) -> Vec<String> {
    let mut out = Vec::new();
    if a.limits != b.limits {
        out.push(format!("limits {:?} → {:?}", a.limits, b.limits));
    }
    if a.config != b.config {
        out.push("new configuration (env, args, files)".into());
    }
    out
}

/// A child of the tree with its path of ids and the node it runs on.
struct Flat<'a> {
    path: String,
    child: &'a ChildDef,
    node: String,
}

fn root_node(m: &Manifest) -> String {
    m.nodes
        .first()
        .map_or_else(|| "embedded".to_string(), |n| n.name.clone())
}

fn flatten<'a>(sup: &'a SupervisorDef, prefix: &str, node: &str, out: &mut Vec<Flat<'a>>) {
    for c in &sup.children {
        let path = if prefix.is_empty() {
            c.id.clone()
        } else {
            format!("{prefix}/{}", c.id)
        };
        let here = match &c.kind {
            ChildKind::Worker { nodes, .. }
            | ChildKind::Supervisor(SupervisorDef { nodes, .. }) => {
                nodes.first().cloned().unwrap_or_else(|| node.to_string())
            }
        };
        out.push(Flat {
            path: path.clone(),
            child: c,
            node: here.clone(),
        });
        if let ChildKind::Supervisor(s) = &c.kind {
            flatten(s, &path, &here, out);
        }
    }
}

fn flags(a: &SupervisorDef, b: &SupervisorDef) -> Vec<String> {
    let mut out = Vec::new();
    if format!("{:?}", a.strategy) != format!("{:?}", b.strategy) {
        out.push(format!("strategy {:?} → {:?}", a.strategy, b.strategy));
    }
    if (a.max_restarts, a.max_seconds) != (b.max_restarts, b.max_seconds) {
        out.push(format!(
            "intensity {}/{} s → {}/{} s",
            a.max_restarts, a.max_seconds, b.max_restarts, b.max_seconds
        ));
    }
    if a.instances != b.instances {
        out.push(format!("instances {} → {}", a.instances, b.instances));
    }
    out
}

/// What makes a child's running copy obsolete (flags of a supervisor
/// child are updated in place instead).
fn spec_changes(a: &ChildDef, b: &ChildDef) -> Vec<String> {
    let mut out = Vec::new();
    if format!("{:?}", a.restart) != format!("{:?}", b.restart) {
        out.push(format!("restart {:?} → {:?}", a.restart, b.restart));
    }
    if format!("{:?}", a.shutdown) != format!("{:?}", b.shutdown) {
        out.push(format!("shutdown {:?} → {:?}", a.shutdown, b.shutdown));
    }
    match (&a.kind, &b.kind) {
        (
            ChildKind::Worker {
                component: ca,
                init: ia,
                nodes: na,
            },
            ChildKind::Worker {
                component: cb,
                init: ib,
                nodes: nb,
            },
        ) => {
            if ca != cb {
                out.push(format!("component {ca} → {cb}"));
            }
            if ia != ib {
                out.push(format!("init {ia} → {ib}"));
            }
            if na != nb {
                out.push(format!("moved from {na:?} to {nb:?}"));
            }
        }
        (ChildKind::Supervisor(sa), ChildKind::Supervisor(sb)) => {
            if sa.nodes != sb.nodes {
                out.push(format!(
                    "subtree moved from {:?} to {:?}",
                    sa.nodes, sb.nodes
                ));
            }
            let (ia, ib): (Vec<&str>, Vec<&str>) = (
                sa.children.iter().map(|c| c.id.as_str()).collect(),
                sb.children.iter().map(|c| c.id.as_str()).collect(),
            );
            let kept: Vec<&str> = ib.iter().copied().filter(|id| ia.contains(id)).collect();
            let was: Vec<&str> = ia.iter().copied().filter(|id| ib.contains(id)).collect();
            if kept != was {
                out.push(format!("children reordered {was:?} → {kept:?}"));
            }
        }
        _ => out.push("worker ↔ supervisor".into()),
    }
    out
}

fn under(path: &str, parents: &[String]) -> bool {
    parents.iter().any(|p| {
        path.len() > p.len() && path.starts_with(p.as_str()) && path[p.len()..].starts_with('/')
    })
}

fn tree(old: &Manifest, new: &Manifest, steps: &mut Vec<Planned>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten(&old.root, "", &root_node(old), &mut a);
    flatten(&new.root, "", &root_node(new), &mut b);
    let find = |list: &[Flat<'_>], path: &str| list.iter().position(|f| f.path == path);

    // Supervisor flags, in place: the root first.
    let mut updates = Vec::new();
    let root_flags = flags(&old.root, &new.root);
    if !root_flags.is_empty() {
        updates.push(Planned {
            node: root_node(new),
            step: Step::UpdateSupervisor {
                path: "supervisor".into(),
                changes: root_flags,
            },
        });
    }
    let (mut stops, mut restarts) = (Vec::new(), Vec::new());
    let mut gone: Vec<String> = Vec::new();
    for (j, f) in b.iter().enumerate() {
        let Some(i) = find(&a, &f.path) else { continue };
        if under(&f.path, &gone) {
            continue;
        }
        let was = &a[i];
        let mut changes = spec_changes(was.child, f.child);
        if was.node != f.node && !changes.iter().any(|c| c.contains("moved")) {
            // Its parent moved, or the root's node changed.
            changes.push(format!("moved from node {} to {}", was.node, f.node));
        }
        if let (ChildKind::Supervisor(sa), ChildKind::Supervisor(sb)) =
            (&was.child.kind, &f.child.kind)
        {
            let simple = |s: &SupervisorDef| s.strategy == Strategy::SimpleOneForOne;
            if simple(sa) != simple(sb) {
                // Its children are of another kind: not an in-place change.
                changes.push(format!("strategy {:?} → {:?}", sa.strategy, sb.strategy));
            }
        }
        if !changes.is_empty() {
            // Its running copy (and subtree) goes; the new one starts whole.
            gone.push(f.path.clone());
            restarts.push((
                j,
                Planned {
                    node: f.node.clone(),
                    step: Step::RestartChild {
                        path: f.path.clone(),
                        changes,
                    },
                },
            ));
            continue;
        }
        if let (ChildKind::Supervisor(sa), ChildKind::Supervisor(sb)) =
            (&was.child.kind, &f.child.kind)
        {
            let changes = flags(sa, sb);
            if !changes.is_empty() {
                updates.push(Planned {
                    node: f.node.clone(),
                    step: Step::UpdateSupervisor {
                        path: f.path.clone(),
                        changes,
                    },
                });
            }
        }
    }
    // Removed: the deepest and last first; a subtree stops with its root.
    let mut removed: Vec<String> = Vec::new();
    for f in a.iter() {
        if find(&b, &f.path).is_none() && !under(&f.path, &removed) && !under(&f.path, &gone) {
            removed.push(f.path.clone());
            stops.push(Planned {
                node: f.node.clone(),
                step: Step::StopChild {
                    path: f.path.clone(),
                },
            });
        }
    }
    stops.reverse();
    // Added: in start order; a new subtree starts with its root.
    let mut added: Vec<String> = Vec::new();
    for (j, f) in b.iter().enumerate() {
        if find(&a, &f.path).is_none() && !under(&f.path, &added) && !under(&f.path, &gone) {
            added.push(f.path.clone());
            restarts.push((
                j,
                Planned {
                    node: f.node.clone(),
                    step: Step::StartChild {
                        path: f.path.clone(),
                    },
                },
            ));
        }
    }
    // Restarted and added children come up together in the new tree's
    // start order: a new child an existing one depends on starts first.
    restarts.sort_by_key(|(j, _)| *j);
    steps.extend(updates);
    steps.extend(stops);
    steps.extend(restarts.into_iter().map(|(_, p)| p));
}

fn settings(old: &Manifest, new: &Manifest, steps: &mut Vec<Planned>) {
    let mut setting = |what: &str, from: String, to: String| {
        if from != to {
            steps.push(all(Step::ChangeSetting {
                what: what.into(),
                from,
                to,
            }));
        }
    };
    let nodes = |m: &Manifest| {
        let list: Vec<String> = m
            .nodes
            .iter()
            .map(|n| format!("{}@{}", n.name, n.listen))
            .collect();
        format!("[{}]", list.join(", "))
    };
    setting("nodes", nodes(old), nodes(new));
    // The root cannot restart under a running release: a new order of its
    // children (stop order, rest-for-one) holds from the next start.
    let kept = |m: &Manifest, other: &Manifest| -> String {
        let ids: Vec<&str> = m
            .root
            .children
            .iter()
            .map(|c| c.id.as_str())
            .filter(|id| other.root.children.iter().any(|c| c.id == *id))
            .collect();
        format!("[{}]", ids.join(", "))
    };
    setting(
        "order of the root's children (from the next start)",
        kept(old, new),
        kept(new, old),
    );
    setting(
        "max_particles",
        format!("{:?}", old.max_particles),
        format!("{:?}", new.max_particles),
    );
    setting(
        "threads",
        format!("{:?}", old.threads),
        format!("{:?}", new.threads),
    );
    setting("http", format!("{:?}", old.http), format!("{:?}", new.http));
    setting(
        "store",
        format!("{:?}", old.store),
        format!("{:?}", new.store),
    );
    setting(
        "store quotas",
        format!("{:?}", old.quotas),
        format!("{:?}", new.quotas),
    );
    setting(
        "observer",
        format!("{:?}", old.observer),
        format!("{:?}", new.observer),
    );
    setting(
        "cluster",
        format!("{:?}", old.cluster),
        format!("{:?}", new.cluster),
    );
}
