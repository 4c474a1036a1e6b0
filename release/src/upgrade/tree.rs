//! Paths of the supervision tree (`cart`, `shop/orders`, `supervisor` for
//! the root) resolved in a manifest and in the running tree, for applying
//! an upgrade plan (apply.rs). It owns no state.

use super::Step;
use super::apply::Version;
use crate::model::{ChildDef, ChildKind, Manifest, SupervisorDef};
use plasmoid_runtime::Node;
use plasmoid_supervisor::{ChildInfo, ChildSpec, Flags, SupervisorRef};
use std::time::Duration;

/// The running tree of this node.
pub struct Live<'a> {
    pub node: &'a Node,
    pub root: &'a SupervisorRef,
}

impl Live<'_> {
    /// The running supervisor at `path` (`""` or `supervisor`: the root).
    pub fn supervisor(&self, path: &str) -> Result<SupervisorRef, String> {
        let mut sup = self.root.clone();
        if path.is_empty() || path == "supervisor" {
            return Ok(sup);
        }
        let mut walked = String::new();
        for id in path.split('/') {
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(id);
            let children = sup
                .children_now()
                .map_err(|e| format!("supervisor above `{walked}`: {e}"))?;
            let Some(c) = children.into_iter().find(|c| c.id == id) else {
                return Err(format!("no child `{walked}` runs"));
            };
            let Some(pid) = c.pid.filter(|_| c.supervisor) else {
                return Err(format!("`{walked}` is not a running supervisor"));
            };
            sup = plasmoid_supervisor::supervisor_at(self.node, pid).ok_or_else(|| {
                format!("supervisor `{walked}` runs on another node; live upgrades of subtrees placed on other nodes are not built yet")
            })?;
        }
        Ok(sup)
    }

    /// The running child at `path`, as its supervisor lists it.
    pub fn child(&self, path: &str) -> Option<ChildInfo> {
        let (parent, id) = split(path);
        let sup = self.supervisor(parent).ok()?;
        sup.children_now().ok()?.into_iter().find(|c| c.id == id)
    }

    /// The id of the child listed just before `id` in `sup`.
    pub fn before(&self, sup: &SupervisorRef, id: &str) -> Option<String> {
        let children = sup.children_now().ok()?;
        let i = children.iter().position(|c| c.id == id)?;
        i.checked_sub(1).map(|j| children[j].id.clone())
    }
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
pub fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn child_def<'a>(root: &'a SupervisorDef, path: &str) -> Option<&'a ChildDef> {
    let mut sup = root;
    let mut found = None;
    for id in path.split('/') {
        let c = sup.children.iter().find(|c| c.id == id)?;
        found = Some(c);
        sup = match &c.kind {
            ChildKind::Supervisor(s) => s,
            ChildKind::Worker { .. } => root, // only valid as the last id
        };
    }
    found
}

/// The supervisor at `path` in `m` (`supervisor` or `""`: the root).
pub fn sup_def<'a>(m: &'a Manifest, path: &str) -> Option<&'a SupervisorDef> {
    if path.is_empty() || path == "supervisor" {
        return Some(&m.root);
    }
    match &child_def(&m.root, path)?.kind {
        ChildKind::Supervisor(s) => Some(s),
        ChildKind::Worker { .. } => None,
    }
}

/// A supervisor's flags as the manifest gives them.
pub fn flags(def: &SupervisorDef) -> Flags {
    Flags {
        strategy: def.strategy,
        max_restarts: def.max_restarts,
        max_seconds: Duration::from_secs(def.max_seconds),
        instances: def.instances,
    }
}

/// The spec the child at `path` starts from in version `v`.
pub fn spec_at(v: &Version, path: &str) -> Result<ChildSpec, String> {
    let def = child_def(&v.manifest.root, path)
        .ok_or_else(|| format!("`{path}` is not a child in {}", v.manifest.release_id()))?;
    let ids = crate::nodes::node_ids(&v.dir, &v.manifest).map_err(|e| e.to_string())?;
    Ok(crate::boot::child_spec(def, &ids))
}

/// Where a new child at `path` goes among the running children of `sup`:
/// after the nearest sibling before it in `m` that runs (first if none).
pub fn place(m: &Manifest, path: &str, sup: &SupervisorRef) -> Option<String> {
    let (parent, id) = split(path);
    let siblings = &sup_def(m, parent)?.children;
    let running = sup.children_now().ok()?;
    let at = siblings.iter().position(|c| c.id == id)?;
    siblings[..at]
        .iter()
        .rev()
        .find(|c| running.iter().any(|r| r.id == c.id))
        .map(|c| c.id.clone())
}

/// The paths of the workers of `m` that run `component`.
pub fn workers_of(m: &Manifest, component: &str) -> Vec<String> {
    m.root
        .workers()
        .into_iter()
        .filter(
            |(_, c)| matches!(&c.kind, ChildKind::Worker { component: x, .. } if x == component),
        )
        .map(|(path, _)| path.join("/"))
        .collect()
}

/// The paths of every nested supervisor, parents first.
pub fn supervisor_paths(root: &SupervisorDef) -> Vec<String> {
    fn walk(sup: &SupervisorDef, prefix: &str, out: &mut Vec<String>) {
        for c in &sup.children {
            if let ChildKind::Supervisor(s) = &c.kind {
                let path = if prefix.is_empty() {
                    c.id.clone()
                } else {
                    format!("{prefix}/{}", c.id)
                };
                out.push(path.clone());
                walk(s, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

/// The node of the supervisor that carries a tree step out: the step's
/// supervisor for an update, else the child's parent.
pub fn owner(step: &Step, old: &Manifest, new: &Manifest) -> String {
    let sup = match step {
        Step::UpdateSupervisor { path, .. } => path.as_str(),
        Step::StopChild { path } | Step::RestartChild { path, .. } | Step::StartChild { path } => {
            split(path).0
        }
        _ => "",
    };
    let m = if sup_def(new, sup).is_some() {
        new
    } else {
        old
    };
    node_of(m, sup)
}

/// The node a supervisor runs on: the first of its own `node = [...]`,
/// else its parent's; the root's is the first node (`embedded` without
/// `[nodes]`).
fn node_of(m: &Manifest, path: &str) -> String {
    let mut node = m
        .nodes
        .first()
        .map_or_else(|| "embedded".to_string(), |n| n.name.clone());
    if path.is_empty() || path == "supervisor" {
        return node;
    }
    let mut sup = &m.root;
    for id in path.split('/') {
        let Some(ChildKind::Supervisor(s)) =
            sup.children.iter().find(|c| c.id == id).map(|c| &c.kind)
        else {
            return node;
        };
        if let Some(n) = s.nodes.first() {
            node = n.clone();
        }
        sup = s;
    }
    node
}
