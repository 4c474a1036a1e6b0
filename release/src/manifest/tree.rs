//! The supervision tree of a manifest: `[supervisor]` (the root) and the
//! named `[supervisors.NAME]` it nests, children resolved and ordered.

use super::Cx;
use super::raw::{RawChild, RawPlacement, RawShutdown, RawSupervisor, RawWorker};
use crate::error::ReleaseError;
use crate::model::{ChildDef, ChildKind, ComponentDef, SupervisorDef};
use crate::order;
use indexmap::IndexMap;
use plasmoid_supervisor::{Restart, Shutdown, Strategy};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// A worker's default time to stop after `shutdown`, as in OTP.
const WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

pub(super) struct Tree<'a> {
    cx: &'a Cx<'a>,
    /// `[supervisor]`, the root.
    root: &'a Spanned<RawSupervisor>,
    /// `[supervisors.NAME]`.
    named: &'a IndexMap<Spanned<String>, Spanned<RawSupervisor>>,
    components: Vec<&'a str>,
    supervisors: Vec<&'a str>,
    nodes: &'a [String],
    deps: &'a HashMap<String, Vec<String>>,
    used: HashSet<String>,
    /// Where each worker was written, by its path of ids, for errors found
    /// after the tree is built.
    spans: HashMap<Vec<String>, Range<usize>>,
}

impl<'a> Tree<'a> {
    pub(super) fn new(
        cx: &'a Cx<'a>,
        root: &'a Spanned<RawSupervisor>,
        named: &'a IndexMap<Spanned<String>, Spanned<RawSupervisor>>,
        components: &'a [ComponentDef],
        nodes: &'a [String],
        deps: &'a HashMap<String, Vec<String>>,
    ) -> Result<Self, ReleaseError> {
        let supervisors: Vec<&str> = named.keys().map(|k| k.get_ref().as_str()).collect();
        for k in named.keys() {
            super::check_name(cx, k, "supervisor name")?;
            if components.iter().any(|c| &c.name == k.get_ref()) {
                return Err(cx.err(k.span(), format!(
                    "`{}` is both a component and a supervisor; rename one so children can name it unambiguously",
                    k.get_ref()
                )));
            }
        }
        Ok(Tree {
            cx,
            root,
            named,
            components: components.iter().map(|c| c.name.as_str()).collect(),
            supervisors,
            nodes,
            deps,
            used: HashSet::new(),
            spans: HashMap::new(),
        })
    }

    pub(super) fn build(mut self) -> Result<SupervisorDef, ReleaseError> {
        let (top, named) = (self.root, self.named);
        let mut root = self.supervisor("supervisor", top, &mut Vec::new())?;
        for k in named.keys() {
            if !self.used.contains(k.get_ref()) {
                return Err(self.cx.err(k.span(), format!(
                    "supervisor `{}` is defined but not in the tree; list it in the `children` of [supervisor] or of another supervisor",
                    k.get_ref()
                )));
            }
        }
        if let Err(cycle) = order::order_tree(&mut root, self.deps, &mut Default::default()) {
            let span = named
                .keys()
                .find(|k| k.get_ref() == &cycle.supervisor)
                .map_or(top.span(), |k| k.span());
            return Err(self.cx.err(
                span,
                format!(
                    "the children of supervisor `{}` need each other's components in a cycle: {}; \
                 move one component into another supervisor",
                    cycle.supervisor,
                    cycle.ids.join(" → ")
                ),
            ));
        }
        if let Err(unmet) = order::check_started_before(&root, self.deps) {
            let span = self.spans.get(&unmet.path).cloned().unwrap_or(0..0);
            return Err(self.cx.err(span, format!(
                "child `{}` runs `{}`, which depends on `{}`, but no child started before it runs `{}`; \
                 add a `{}` child earlier in the tree",
                unmet.path.join("/"), unmet.component, unmet.missing, unmet.missing, unmet.missing
            )));
        }
        Ok(root)
    }

    fn supervisor(
        &mut self,
        name: &str,
        raw: &Spanned<RawSupervisor>,
        path: &mut Vec<String>,
    ) -> Result<SupervisorDef, ReleaseError> {
        let s = raw.get_ref();
        let max_seconds = s.max_seconds.as_ref().map_or(5, |v| *v.get_ref());
        if max_seconds == 0
            && let Some(v) = &s.max_seconds
        {
            return Err(self.cx.err(v.span(), "max_seconds must be at least 1"));
        }
        let mut children: Vec<(ChildDef, Range<usize>)> = Vec::new();
        for child in &s.children {
            let def = self.child(child, path)?;
            if let Some((_, first)) = children.iter().find(|(c, _)| c.id == def.id) {
                let (line, _) = super::line_col(self.cx.text, first.start);
                return Err(self.cx.err(child.span(), format!(
                    "supervisor `{name}` already has a child `{}` (line {line}); child ids must be unique: \
                     write it as a table with its own id, like {{ id = \"{}-2\", component = \"…\" }}",
                    def.id, def.id
                )));
            }
            children.push((def, child.span()));
        }
        if s.strategy.get_ref() == &Strategy::SimpleOneForOne
            && !(children.len() == 1 && matches!(children[0].0.kind, ChildKind::Worker { .. }))
        {
            return Err(self.cx.err(s.strategy.span(),
                "a simple-one-for-one supervisor has exactly one child: the worker template its instances are started from"));
        }
        let instances = match &s.instances {
            None => 0,
            Some(n) if s.strategy.get_ref() != &Strategy::SimpleOneForOne => {
                return Err(self.cx.err(n.span(), format!(
                    "`instances` starts copies of a simple-one-for-one supervisor's template; supervisor `{name}` is {}, so list its children instead",
                    s.strategy.get_ref().as_str()
                )));
            }
            Some(n) if *n.get_ref() > 100_000 => {
                return Err(self
                    .cx
                    .err(n.span(), "instances is out of range; write at most 100000"));
            }
            Some(n) => *n.get_ref(),
        };
        let nodes = match &s.node {
            None => Vec::new(),
            Some(p) if std::ptr::eq(raw, self.root) => {
                return Err(self.cx.err(p.span(),
                    "the root [supervisor] runs on the first node of [nodes]; `node` places a nested [supervisors.NAME] table, so move it there"));
            }
            Some(p) => self.placement(p)?,
        };
        Ok(SupervisorDef {
            name: name.to_string(),
            strategy: *s.strategy.get_ref(),
            max_restarts: s.max_restarts.as_ref().map_or(1, |v| *v.get_ref()),
            max_seconds,
            children: children.into_iter().map(|(c, _)| c).collect(),
            instances,
            nodes,
        })
    }

    fn child(
        &mut self,
        child: &Spanned<RawChild>,
        path: &mut Vec<String>,
    ) -> Result<ChildDef, ReleaseError> {
        match child.get_ref() {
            RawChild::Name(n) => {
                if self.supervisors.contains(&n.as_str()) {
                    return self.nested(n, None, Restart::Permanent, child.span(), path);
                }
                if !self.components.contains(&n.as_str()) {
                    let mut known = self.components.clone();
                    known.extend(&self.supervisors);
                    return Err(self.cx.err(
                        child.span(),
                        super::unknown("component or supervisor", n, &known),
                    ));
                }
                let def = ChildDef {
                    id: n.clone(),
                    restart: Restart::Permanent,
                    shutdown: Shutdown::Timeout(WORKER_SHUTDOWN),
                    kind: ChildKind::Worker {
                        component: n.clone(),
                        init: serde_json::Value::Null,
                        nodes: Vec::new(),
                    },
                };
                self.record(path, &def.id, child.span());
                Ok(def)
            }
            RawChild::Table(w) => self.table(w, child.span(), path),
        }
    }

    fn table(
        &mut self,
        w: &RawWorker,
        span: Range<usize>,
        path: &mut Vec<String>,
    ) -> Result<ChildDef, ReleaseError> {
        let restart = w
            .restart
            .as_ref()
            .map_or(Restart::Permanent, |r| *r.get_ref());
        let shutdown = w.shutdown.as_ref().map(|s| self.shutdown(s)).transpose()?;
        if let Some(sup) = &w.supervisor {
            if w.component.is_some() || w.init.is_some() || w.node.is_some() {
                return Err(self.cx.err(
                    sup.span(),
                    "a supervisor child takes only `supervisor`, `id`, `restart` and `shutdown`; \
                     `component`, `init` and `node` belong to workers",
                ));
            }
            if !self.supervisors.contains(&sup.get_ref().as_str()) {
                return Err(self.cx.err(
                    sup.span(),
                    super::unknown("supervisor", sup.get_ref(), &self.supervisors),
                ));
            }
            let mut def = self.nested(sup.get_ref(), w.id.as_ref(), restart, sup.span(), path)?;
            if let Some(s) = shutdown {
                def.shutdown = s;
            }
            return Ok(def);
        }
        let Some(component) = &w.component else {
            return Err(self.cx.err(span,
                "this child names no component; write { component = \"name\" } for a worker or { supervisor = \"name\" } for a nested supervisor"));
        };
        let c = component.get_ref();
        if !self.components.contains(&c.as_str()) {
            return Err(self.cx.err(
                component.span(),
                super::unknown("component", c, &self.components),
            ));
        }
        let id = match &w.id {
            Some(id) => {
                super::check_name(self.cx, id, "child id")?;
                id.get_ref().clone()
            }
            None => c.clone(),
        };
        let nodes = match &w.node {
            None => Vec::new(),
            Some(p) => self.placement(p)?,
        };
        let init = match &w.init {
            None => serde_json::Value::Null,
            Some(v) => serde_json::to_value(v).map_err(|e| {
                self.cx.err(
                    span.clone(),
                    format!("`init` cannot be handed over as JSON: {e}"),
                )
            })?,
        };
        let def = ChildDef {
            id,
            restart,
            shutdown: shutdown.unwrap_or(Shutdown::Timeout(WORKER_SHUTDOWN)),
            kind: ChildKind::Worker {
                component: c.clone(),
                init,
                nodes,
            },
        };
        self.record(path, &def.id, span);
        Ok(def)
    }

    fn nested(
        &mut self,
        name: &str,
        id: Option<&Spanned<String>>,
        restart: Restart,
        span: Range<usize>,
        path: &mut Vec<String>,
    ) -> Result<ChildDef, ReleaseError> {
        if !self.used.insert(name.to_string()) {
            return Err(self.cx.err(span, format!(
                "supervisor `{name}` appears twice in the tree (or inside itself); a supervisor has exactly one parent"
            )));
        }
        let Some(def) = self
            .named
            .iter()
            .find(|(k, _)| k.get_ref() == name)
            .map(|(_, v)| v)
        else {
            return Err(self
                .cx
                .err(span, super::unknown("supervisor", name, &self.supervisors)));
        };
        let id = id.map_or_else(|| name.to_string(), |i| i.get_ref().clone());
        path.push(id.clone());
        let sup = self.supervisor(name, def, path);
        path.pop();
        Ok(ChildDef {
            id,
            restart,
            shutdown: Shutdown::Infinity,
            kind: ChildKind::Supervisor(sup?),
        })
    }

    fn record(&mut self, path: &[String], id: &str, span: Range<usize>) {
        let mut p = path.to_vec();
        p.push(id.to_string());
        self.spans.insert(p, span);
    }

    fn shutdown(&self, s: &Spanned<RawShutdown>) -> Result<Shutdown, ReleaseError> {
        match s.get_ref() {
            RawShutdown::Ms(ms) => Ok(Shutdown::Timeout(Duration::from_millis(*ms))),
            RawShutdown::Word(w) if w == "brutal-kill" => Ok(Shutdown::BrutalKill),
            RawShutdown::Word(w) if w == "infinity" => Ok(Shutdown::Infinity),
            RawShutdown::Word(w) => Err(self.cx.err(s.span(), format!(
                "shutdown `{w}` is not valid; write a number of milliseconds, \"brutal-kill\" or \"infinity\""
            ))),
        }
    }

    fn placement(&self, p: &Spanned<RawPlacement>) -> Result<Vec<String>, ReleaseError> {
        let names = match p.get_ref() {
            RawPlacement::One(n) => vec![n.clone()],
            RawPlacement::Candidates(v) => v.clone(),
        };
        let known: Vec<&str> = self.nodes.iter().map(String::as_str).collect();
        if known.is_empty() {
            return Err(self.cx.err(p.span(), "`node` places a child on a mesh node, but the manifest has no [nodes] table; add one or remove `node`"));
        }
        for n in &names {
            if !known.contains(&n.as_str()) {
                return Err(self.cx.err(p.span(), super::unknown("node", n, &known)));
            }
        }
        Ok(names)
    }
}
