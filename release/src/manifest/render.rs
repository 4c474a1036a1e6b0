//! Writing a manifest back out: the tree and start order for `release
//! check`, and the resolved `release.toml` of a built release.

use crate::model::{ChildDef, ChildKind, Manifest, Source, SupervisorDef};
use plasmoid_supervisor::Shutdown;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

/// The resolved tree, one child per line, numbered in start order.
pub fn render_tree(m: &Manifest) -> String {
    let mut out = String::new();
    let nodes = if m.nodes.is_empty() {
        "one embedded node".to_string()
    } else {
        let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
        format!("nodes {}", names.join(", "))
    };
    let _ = writeln!(
        out,
        "release {} {} ({} components, {nodes})",
        m.name,
        m.version,
        m.components.len()
    );
    let _ = writeln!(out, "components, dependencies first:");
    for c in &m.components {
        let source = match &c.source {
            Source::Crate(p) => format!("crate {}", p.display()),
            Source::Wasm(p) => format!("file {}", p.display()),
            Source::Python(p) => format!("python {}", p.display()),
            Source::Js(p, _) => format!("js {}", p.display()),
        };
        let deps = if c.depends.is_empty() {
            String::new()
        } else {
            format!(", depends on {}", c.depends.join(", "))
        };
        let _ = writeln!(
            out,
            "  {:<14} {source}{deps}, upgrade {}",
            c.name,
            c.upgrade.as_str()
        );
    }
    let _ = writeln!(out, "start order:");
    let _ = writeln!(out, "  {}", sup_label(&m.root));
    let mut n = 0;
    tree_lines(&m.root, "  ", &mut n, &mut out);
    out
}

fn sup_label(s: &SupervisorDef) -> String {
    format!(
        "{} ({}, at most {} restart(s) in {} s)",
        s.name,
        s.strategy.as_str(),
        s.max_restarts,
        s.max_seconds
    )
}

fn tree_lines(s: &SupervisorDef, indent: &str, n: &mut usize, out: &mut String) {
    for (i, c) in s.children.iter().enumerate() {
        let last = i + 1 == s.children.len();
        let branch = if last { "└─ " } else { "├─ " };
        match &c.kind {
            ChildKind::Worker {
                component, nodes, ..
            } => {
                *n += 1;
                let place = if nodes.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", nodes.join(" | "))
                };
                let restart = serde_json::to_value(c.restart)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{indent}{branch}{}. {} ({component}, {restart}){place}",
                    n, c.id
                );
            }
            ChildKind::Supervisor(sub) => {
                let place = if sub.nodes.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", sub.nodes.join(" | "))
                };
                let _ = writeln!(out, "{indent}{branch}{}{place}", sup_label(sub));
                let next = format!("{indent}{}", if last { "   " } else { "│  " });
                tree_lines(sub, &next, n, out);
            }
        }
    }
}

/// The release's own manifest: sources replaced by the files in the release
/// folder, children in their resolved start order, every default spelled out.
pub fn resolved_toml(
    m: &Manifest,
    wasm: &HashMap<String, String>,
    policies: Option<&Path>,
) -> String {
    let mut t = toml::Table::new();
    let mut release = toml::Table::new();
    release.insert("name".into(), m.name.clone().into());
    release.insert("version".into(), m.version.clone().into());
    if let Some(p) = policies {
        release.insert("policies".into(), p.display().to_string().into());
    }
    t.insert("release".into(), release.into());
    let mut node = toml::Table::new();
    if let Some(v) = m.max_particles {
        node.insert("max_particles".into(), i64::from(v).into());
    }
    if let Some(v) = m.threads {
        node.insert("threads".into(), (v as i64).into());
    }
    if !node.is_empty() {
        t.insert("node".into(), node.into());
    }
    if !m.nodes.is_empty() {
        let mut nodes = toml::Table::new();
        for n in &m.nodes {
            let mut d = toml::Table::new();
            d.insert("listen".into(), n.listen.clone().into());
            if let Some(h) = n.http {
                d.insert("http".into(), h.to_string().into());
            }
            nodes.insert(n.name.clone(), d.into());
        }
        t.insert("nodes".into(), nodes.into());
    }
    let mut comps = toml::Table::new();
    for c in &m.components {
        let mut d = toml::Table::new();
        let file = wasm.get(&c.name).cloned().unwrap_or_default();
        d.insert("wasm".into(), file.into());
        let deps: Vec<toml::Value> = c.depends.iter().map(|s| s.clone().into()).collect();
        d.insert("depends".into(), deps.into());
        d.insert("upgrade".into(), c.upgrade.as_str().into());
        let mut l = toml::Table::new();
        let num = |v: u64| toml::Value::Integer(v.min(i64::MAX as u64) as i64);
        if let Some(v) = c.limits.memory_mb {
            l.insert("memory_mb".into(), num(v));
        }
        if let Some(v) = c.limits.cpu_ms {
            l.insert("cpu_ms".into(), num(v));
        }
        if let Some(v) = c.limits.mailbox {
            l.insert("mailbox".into(), num(v));
        }
        if !l.is_empty() {
            d.insert("limits".into(), l.into());
        }
        guest_config(&c.config, &mut d);
        comps.insert(c.name.clone(), d.into());
    }
    t.insert("components".into(), comps.into());
    let mut named = toml::Table::new();
    t.insert("supervisor".into(), sup_table(&m.root, &mut named).into());
    if !named.is_empty() {
        t.insert("supervisors".into(), named.into());
    }
    if let Some(h) = &m.http {
        t.insert("http".into(), http_table(h).into());
    }
    if let Some(c) = &m.cluster {
        let mut ct = toml::Table::new();
        ct.insert("partition".into(), c.policy.to_string().into());
        ct.insert(
            "stable_after_ms".into(),
            (c.stable_after.as_millis().min(i64::MAX as u128) as i64).into(),
        );
        t.insert("cluster".into(), ct.into());
    }
    if let Some(o) = m.observer {
        let mut ob = toml::Table::new();
        ob.insert("listen".into(), o.to_string().into());
        t.insert("observer".into(), ob.into());
    }
    let mut s = toml::Table::new();
    if let crate::model::StoreDef::Redis(url) = &m.store {
        s.insert("backend".into(), url.clone().into());
    }
    if !m.quotas.is_empty() {
        let q: toml::Table = m
            .quotas
            .iter()
            .map(|(b, n)| {
                (
                    b.clone(),
                    toml::Value::Integer((*n).min(i64::MAX as u64) as i64),
                )
            })
            .collect();
        s.insert("quotas".into(), q.into());
    }
    if !s.is_empty() {
        t.insert("store".into(), s.into());
    }
    let body = toml::to_string_pretty(&t).unwrap_or_default();
    format!(
        "# Resolved by `plasmoid release build` from {}; do not edit.\n{body}",
        m.file.display()
    )
}

fn sup_table(s: &SupervisorDef, named: &mut toml::Table) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("strategy".into(), s.strategy.as_str().into());
    t.insert("max_restarts".into(), i64::from(s.max_restarts).into());
    t.insert(
        "max_seconds".into(),
        (s.max_seconds.min(i64::MAX as u64) as i64).into(),
    );
    let children: Vec<toml::Value> = s.children.iter().map(|c| child_value(c, named)).collect();
    t.insert("children".into(), children.into());
    if s.instances > 0 {
        t.insert("instances".into(), i64::from(s.instances).into());
    }
    if !s.nodes.is_empty() {
        let list: Vec<toml::Value> = s.nodes.iter().map(|n| n.clone().into()).collect();
        t.insert("node".into(), list.into());
    }
    t
}

fn child_value(c: &ChildDef, named: &mut toml::Table) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("id".into(), c.id.clone().into());
    let restart = serde_json::to_value(c.restart)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    t.insert("restart".into(), restart.into());
    let shutdown: toml::Value = match c.shutdown {
        Shutdown::BrutalKill => "brutal-kill".into(),
        Shutdown::Infinity => "infinity".into(),
        Shutdown::Timeout(d) => (d.as_millis().min(i64::MAX as u128) as i64).into(),
    };
    t.insert("shutdown".into(), shutdown);
    match &c.kind {
        ChildKind::Worker {
            component,
            init,
            nodes,
        } => {
            t.insert("component".into(), component.clone().into());
            if !init.is_null()
                && let Ok(v) = toml::Value::try_from(init)
            {
                t.insert("init".into(), v);
            }
            if !nodes.is_empty() {
                let list: Vec<toml::Value> = nodes.iter().map(|n| n.clone().into()).collect();
                t.insert("node".into(), list.into());
            }
        }
        ChildKind::Supervisor(sub) => {
            t.insert("supervisor".into(), sub.name.clone().into());
            let table = sup_table(sub, named);
            named.insert(sub.name.clone(), table.into());
        }
    }
    t.into()
}

/// `env` and `args` as written; `env_from` by name only (its values are
/// read when the node boots and never written down).
fn guest_config(c: &crate::model::GuestConfig, d: &mut toml::Table) {
    if !c.env.is_empty() {
        let env: toml::Table = c
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        d.insert("env".into(), env.into());
    }
    let list = |v: &[String]| -> toml::Value {
        v.iter()
            .map(|s| toml::Value::from(s.clone()))
            .collect::<Vec<_>>()
            .into()
    };
    if !c.args.is_empty() {
        d.insert("args".into(), list(&c.args));
    }
    if !c.env_from.is_empty() {
        d.insert("env_from".into(), list(&c.env_from));
    }
    if !c.files.is_empty() {
        let files: toml::Table = c
            .files
            .iter()
            .map(|f| {
                let mut e = toml::Table::new();
                e.insert("path".into(), f.host.clone().into());
                e.insert("read_only".into(), f.read_only.into());
                (f.guest.clone(), e.into())
            })
            .collect();
        d.insert("files".into(), files.into());
    }
}

fn http_table(h: &crate::model::HttpDef) -> toml::Table {
    use crate::model::RouteTo;
    let mut t = toml::Table::new();
    if let Some(l) = h.listen {
        t.insert("listen".into(), l.to_string().into());
    }
    if let Some(n) = h.max_connections {
        t.insert(
            "max_connections".into(),
            (n.min(i64::MAX as u64) as i64).into(),
        );
    }
    let routes: Vec<toml::Value> = h
        .routes
        .iter()
        .map(|r| {
            let mut rt = toml::Table::new();
            rt.insert("path".into(), r.path.clone().into());
            if !r.methods.is_empty() {
                let m: Vec<toml::Value> = r.methods.iter().map(|m| m.clone().into()).collect();
                rt.insert("methods".into(), m.into());
            }
            match &r.to {
                RouteTo::Name(n) => {
                    rt.insert("to".into(), n.clone().into());
                }
                RouteTo::Component(c) => {
                    rt.insert("component".into(), c.clone().into());
                }
                RouteTo::Pool {
                    supervisor,
                    least_loaded,
                } => {
                    rt.insert("pool".into(), supervisor.clone().into());
                    let b = if *least_loaded {
                        "least-loaded"
                    } else {
                        "round-robin"
                    };
                    rt.insert("balance".into(), b.into());
                }
            }
            let num = |v: u64| toml::Value::Integer(v.min(i64::MAX as u64) as i64);
            if let Some(v) = r.timeout_ms {
                rt.insert("timeout_ms".into(), num(v));
            }
            if let Some(v) = r.max_body {
                rt.insert("max_body".into(), num(v));
            }
            rt.into()
        })
        .collect();
    if !routes.is_empty() {
        t.insert("routes".into(), routes.into());
    }
    t
}
