//! Reading `prod.toml`: TOML with positions, then validation into a
//! [`Manifest`]. Every error names `file:line:col` and says what to write.

mod cluster;
mod http;
mod raw;
mod render;
mod tree;

pub use render::{render_tree, resolved_toml};

use crate::error::ReleaseError;
use crate::model::{ComponentDef, LimitsDef, Manifest, NodeDef, Source, SupervisorDef, Upgrade};
use crate::order;
use raw::{RawComponent, RawManifest};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Read and validate a manifest file.
pub fn load(path: &Path) -> Result<Manifest, ReleaseError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReleaseError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validate manifest text; relative paths are resolved against the folder
/// of `path`.
pub fn parse(path: &Path, text: &str) -> Result<Manifest, ReleaseError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let cx = Cx {
        file: path.display().to_string(),
        text,
        dir,
    };
    let raw: RawManifest = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim_end();
        let hint = match message {
            "missing field `release`" => {
                "; start the manifest with [release] name = \"app\" version = \"0.1.0\""
            }
            "missing field `supervisor`" => {
                "; add the root: [supervisor] strategy = \"one-for-one\" children = [\"component\"]"
            }
            _ => "",
        };
        cx.err(span, format!("{message}{hint}"))
    })?;
    cx.manifest(raw)
}

/// Read a supervision tree file for `plasmoid start --tree`: the
/// `[supervisor]` and `[supervisors.NAME]` tables of a manifest, in the same
/// grammar and with the same checks, over the components already loaded.
pub fn load_tree(path: &Path, loaded: &[String]) -> Result<SupervisorDef, ReleaseError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReleaseError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse_tree(path, &text, loaded)
}

/// [`load_tree`] on text.
pub fn parse_tree(
    path: &Path,
    text: &str,
    loaded: &[String],
) -> Result<SupervisorDef, ReleaseError> {
    let cx = Cx {
        file: path.display().to_string(),
        text,
        dir: PathBuf::from("."),
    };
    let raw: raw::RawTree = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim_end();
        let hint = if message == "missing field `supervisor`"
            || message.ends_with("expected `supervisor` or `supervisors`")
        {
            "; a tree file holds the [supervisor] table (and [supervisors.NAME]) of a prod.toml: [supervisor] strategy = \"one-for-one\" children = [\"component\"]"
        } else {
            ""
        };
        cx.err(span, format!("{message}{hint}"))
    })?;
    let components: Vec<ComponentDef> = loaded
        .iter()
        .map(|name| ComponentDef {
            name: name.clone(),
            source: Source::Wasm(PathBuf::new()),
            depends: Vec::new(),
            limits: LimitsDef::default(),
            upgrade: Upgrade::default(),
            policies: Vec::new(),
            config: Default::default(),
        })
        .collect();
    let deps = HashMap::new();
    tree::Tree::new(
        &cx,
        &raw.supervisor,
        &raw.supervisors,
        &components,
        &[],
        &deps,
    )?
    .build()
}

/// What every check needs to report a positioned error.
pub(crate) struct Cx<'a> {
    file: String,
    text: &'a str,
    dir: PathBuf,
}

impl Cx<'_> {
    pub(crate) fn err(&self, span: Range<usize>, message: impl Into<String>) -> ReleaseError {
        let (line, column) = line_col(self.text, span.start);
        // Show the line itself, like a compiler: the message alone may not
        // name the key (serde's "expected u64" does not).
        let source = self.text.lines().nth(line - 1).unwrap_or_default();
        let gutter = " ".repeat(line.to_string().len());
        let caret = " ".repeat(column.saturating_sub(1));
        ReleaseError::Manifest {
            file: self.file.clone(),
            line,
            column,
            message: format!(
                "{}\n{gutter} |\n{line} | {source}\n{gutter} | {caret}^",
                message.into()
            ),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn manifest(&self, raw: RawManifest) -> Result<Manifest, ReleaseError> {
        let release = raw.release.get_ref();
        let name = release.name.get_ref();
        check_name(self, &release.name, "release name")?;
        let version = release.version.get_ref();
        if version.is_empty()
            || !version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-+_".contains(c))
        {
            return Err(self.err(
                release.version.span(),
                format!(
                    "version `{version}` is not usable in a folder name; write one like \"1.0.0\""
                ),
            ));
        }
        let policies = match &release.policies {
            None => None,
            Some(p) => {
                let dir = self.path(p.get_ref());
                if !dir.is_dir() {
                    return Err(self.err(
                        p.span(),
                        format!("policies folder {} does not exist; `policies` names a folder of .cedar files", dir.display()),
                    ));
                }
                Some(dir)
            }
        };
        let nodes = self.nodes(&raw)?;
        let components = self.components(&raw)?;
        let node_names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let deps: HashMap<String, Vec<String>> = components
            .iter()
            .map(|c| (c.name.clone(), c.depends.clone()))
            .collect();
        let root = tree::Tree::new(
            self,
            &raw.supervisor,
            &raw.supervisors,
            &components,
            &node_names,
            &deps,
        )?
        .build()?;
        let node = raw.node.as_ref();
        let http = self.http(&raw)?;
        let store = self.store(&raw)?;
        let quotas = self.quotas(&raw)?;
        let cluster = self.cluster(&raw)?;
        let observer = match &raw.observer {
            Some(o) => Some(self.address(&o.get_ref().listen)?),
            None => None,
        };
        Ok(Manifest {
            file: PathBuf::from(&self.file),
            name: name.clone(),
            version: version.clone(),
            policies,
            max_particles: node.and_then(|n| n.max_particles.as_ref().map(|v| *v.get_ref())),
            threads: node.and_then(|n| n.threads.as_ref().map(|v| *v.get_ref())),
            nodes,
            components,
            root,
            http,
            store,
            quotas,
            observer,
            cluster,
        })
    }

    fn quotas(&self, raw: &RawManifest) -> Result<Vec<(String, u64)>, ReleaseError> {
        let Some(s) = &raw.store else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (bucket, bytes) in &s.get_ref().quotas {
            if *bytes.get_ref() == 0 {
                return Err(self.err(
                    bytes.span(),
                    "a quota of 0 bytes lets nothing in; give the most bytes the bucket may hold, e.g. 10485760",
                ));
            }
            out.push((bucket.get_ref().clone(), *bytes.get_ref()));
        }
        Ok(out)
    }

    fn store(&self, raw: &RawManifest) -> Result<crate::model::StoreDef, ReleaseError> {
        use crate::model::StoreDef;
        let Some(backend) = raw
            .store
            .as_ref()
            .and_then(|s| s.get_ref().backend.as_ref())
        else {
            return Ok(StoreDef::Embedded);
        };
        let b = backend.get_ref();
        if b == "embedded" {
            Ok(StoreDef::Embedded)
        } else if b.starts_with("redis://") && b.len() > "redis://".len() {
            Ok(StoreDef::Redis(b.clone()))
        } else {
            Err(self.err(
                backend.span(),
                format!("store backend `{b}` is not known; write \"embedded\" (the default) or \"redis://127.0.0.1:6379\""),
            ))
        }
    }

    fn nodes(&self, raw: &RawManifest) -> Result<Vec<NodeDef>, ReleaseError> {
        let mut out = Vec::new();
        for (name, def) in &raw.nodes {
            check_name(self, name, "node name")?;
            let listen = def.get_ref().listen.get_ref();
            if listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(self.err(
                    def.get_ref().listen.span(),
                    format!("`{listen}` is not an address; write `listen = \"127.0.0.1:7401\"`"),
                ));
            }
            let http = match &def.get_ref().http {
                Some(h) => Some(self.address(h)?),
                None => None,
            };
            out.push(NodeDef {
                name: name.get_ref().clone(),
                listen: listen.clone(),
                http,
            });
        }
        Ok(out)
    }

    fn components(&self, raw: &RawManifest) -> Result<Vec<ComponentDef>, ReleaseError> {
        if raw.components.is_empty() {
            return Err(self.err(
                raw.release.span(),
                "the release has no components; add one like [components.hello] with path = \"components/hello\"",
            ));
        }
        let known: Vec<&str> = raw
            .components
            .keys()
            .map(|k| k.get_ref().as_str())
            .collect();
        let mut defs = Vec::new();
        for (name, c) in &raw.components {
            check_name(self, name, "component name")?;
            defs.push(self.component(name, c, &known)?);
        }
        // The dependency graph must be acyclic; the order itself is kept for
        // `release check` and for building dependencies first.
        let index: HashMap<&str, usize> = known.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let edges: Vec<(usize, usize)> = defs
            .iter()
            .enumerate()
            .flat_map(|(i, d)| d.depends.iter().map(move |dep| (dep.as_str(), i)))
            .filter_map(|(dep, i)| index.get(dep).map(|&j| (j, i)))
            .collect();
        match order::stable_order(defs.len(), &edges) {
            Ok(order) => Ok(order.into_iter().map(|i| defs[i].clone()).collect()),
            Err(cycle) => {
                // Edges point from dependency to dependent; print it as
                // "a depends on b": reversed.
                let names: Vec<&str> = cycle.iter().rev().map(|&i| known[i]).collect();
                let first = raw.components.get_index(cycle[cycle.len() - 1]);
                let span = first
                    .and_then(|(_, c)| c.get_ref().depends.iter().find(|d| d.get_ref() == names[1]))
                    .map_or(0..0, |d| d.span());
                Err(self.err(
                    span,
                    format!(
                        "components depend on each other in a cycle: {}; remove one of these `depends`",
                        names.join(" → ")
                    ),
                ))
            }
        }
    }

    fn component(
        &self,
        name: &Spanned<String>,
        c: &Spanned<RawComponent>,
        known: &[&str],
    ) -> Result<ComponentDef, ReleaseError> {
        let n = name.get_ref();
        let raw = c.get_ref();
        let given: Vec<_> = [
            ("path", &raw.path),
            ("wasm", &raw.wasm),
            ("python", &raw.python),
            ("js", &raw.js),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        if let [_, (second, v), ..] = given.as_slice() {
            return Err(self.err(
                v.span(),
                format!(
                    "component `{n}` has both `{}` and `{second}`; keep one",
                    given[0].0
                ),
            ));
        }
        if let (None, Some(e)) = (&raw.js, &raw.js_engine) {
            return Err(self.err(
                e.span(),
                format!("component `{n}`: js_engine is for JavaScript components; add `js = \"{n}/app.js\"` or remove it"),
            ));
        }
        if let Some(py) = &raw.python {
            let file = self.path(py.get_ref());
            if !file.is_file() || file.extension().is_none_or(|e| e != "py") {
                return Err(self.err(
                    py.span(),
                    format!(
                        "component `{n}`: {} is not a Python file; point `python` at the component's entry module, \
                         such as `python = \"{n}/app.py\"` (`plasmoid component new {n} --lang python` makes one)",
                        file.display()
                    ),
                ));
            }
            return self.component_with(
                name,
                c,
                known,
                Source::Python(file.canonicalize().unwrap_or(file)),
            );
        }
        if let Some(js) = &raw.js {
            let file = self.path(js.get_ref());
            if !file.is_file() || file.extension().is_none_or(|e| e != "js" && e != "mjs") {
                return Err(self.err(
                    js.span(),
                    format!(
                        "component `{n}`: {} is not a JavaScript file; point `js` at the component's entry module, \
                         such as `js = \"{n}/app.js\"` (`plasmoid component new {n} --lang js` makes one)",
                        file.display()
                    ),
                ));
            }
            let engine = match &raw.js_engine {
                None => crate::toolchain::JsEngine::StarlingMonkey,
                Some(e) => crate::toolchain::JsEngine::parse(e.get_ref()).ok_or_else(|| {
                    self.err(
                        e.span(),
                        format!("component `{n}`: write js_engine = \"starlingmonkey\" (the default) or \"quickjs\""),
                    )
                })?,
            };
            let file = file.canonicalize().unwrap_or(file);
            return self.component_with(name, c, known, Source::Js(file, engine));
        }
        let source = match (&raw.path, &raw.wasm) {
            (Some(p), None) => {
                let dir = self.path(p.get_ref());
                if !dir.join("Cargo.toml").is_file() {
                    return Err(self.err(
                        p.span(),
                        format!(
                            "component `{n}`: {} is not a guest crate (no Cargo.toml there); point `path` at a crate folder, \
                             or use `wasm = \"file.wasm\"` for a prebuilt component",
                            dir.display()
                        ),
                    ));
                }
                Source::Crate(dir.canonicalize().unwrap_or(dir))
            }
            (None, Some(w)) => {
                let file = self.path(w.get_ref());
                let ext_ok = file.extension().is_some_and(|e| e == "wasm" || e == "wat");
                if !file.is_file() || !ext_ok {
                    return Err(self.err(
                        w.span(),
                        format!(
                            "component `{n}`: {} is not a .wasm (or .wat) file; build it first, or use `path = \"crate folder\"`",
                            file.display()
                        ),
                    ));
                }
                Source::Wasm(file.canonicalize().unwrap_or(file))
            }
            (None, None) => {
                return Err(self.err(
                    name.span(),
                    format!("component `{n}` has no source; add `path = \"components/{n}\"` (a guest crate), `wasm = \"{n}.wasm\"`, `python = \"{n}/app.py\"` or `js = \"{n}/app.js\"`"),
                ));
            }
            (Some(_), Some(w)) => {
                return Err(self.err(
                    w.span(),
                    format!("component `{n}` has both `path` and `wasm`; keep one"),
                ));
            }
        };
        self.component_with(name, c, known, source)
    }

    /// The rest of a component's definition, once its source is known.
    fn component_with(
        &self,
        name: &Spanned<String>,
        c: &Spanned<RawComponent>,
        known: &[&str],
        source: Source,
    ) -> Result<ComponentDef, ReleaseError> {
        let n = name.get_ref();
        let raw = c.get_ref();
        let mut depends = Vec::new();
        for d in &raw.depends {
            let dep = d.get_ref();
            if dep == n {
                return Err(self.err(
                    d.span(),
                    format!("component `{n}` depends on itself; remove `{n}` from its `depends`"),
                ));
            }
            if !known.contains(&dep.as_str()) {
                return Err(self.err(d.span(), unknown("component", dep, known)));
            }
            depends.push(dep.clone());
        }
        let limits = match &raw.limits {
            None => LimitsDef::default(),
            Some(l) => self.limits(n, l.get_ref())?,
        };
        let upgrade = match raw
            .upgrade
            .as_ref()
            .map(|u| (u.get_ref().as_str(), u.span()))
        {
            None => Upgrade::default(),
            Some(("handoff", _)) => Upgrade::Handoff,
            Some(("restart", _)) => Upgrade::Restart,
            Some((other, span)) => {
                return Err(self.err(span, format!("unknown upgrade mode `{other}`; write `upgrade = \"handoff\"` or `upgrade = \"restart\"`")));
            }
        };
        let mut policies = Vec::new();
        for p in &raw.policies {
            let file = self.path(p.get_ref());
            if !file.is_file() || file.extension().is_none_or(|e| e != "cedar") {
                return Err(self.err(
                    p.span(),
                    format!(
                        "component `{n}`: {} is not a .cedar policy file",
                        file.display()
                    ),
                ));
            }
            policies.push(file);
        }
        let config = self.guest_config(n, raw)?;
        Ok(ComponentDef {
            name: n.clone(),
            source,
            depends,
            limits,
            upgrade,
            policies,
            config,
        })
    }

    fn limits(&self, n: &str, l: &raw::RawLimits) -> Result<LimitsDef, ReleaseError> {
        let bad = |span, what: String| Err(self.err(span, format!("component `{n}`: {what}")));
        if let Some(m) = &l.memory_mb
            && !(1..=4096).contains(m.get_ref())
        {
            return bad(
                m.span(),
                format!(
                    "memory_mb = {} is out of range; write a number of MiB from 1 to 4096",
                    m.get_ref()
                ),
            );
        }
        if let Some(m) = &l.mailbox
            && !(1..=10_000_000).contains(m.get_ref())
        {
            return bad(
                m.span(),
                format!(
                    "mailbox = {} is out of range; write a bound from 1 to 10000000 messages",
                    m.get_ref()
                ),
            );
        }
        Ok(LimitsDef {
            memory_mb: l.memory_mb.as_ref().map(|v| *v.get_ref()),
            cpu_ms: l.cpu_ms.as_ref().map(|v| *v.get_ref()),
            mailbox: l.mailbox.as_ref().map(|v| *v.get_ref()),
        })
    }
}

/// Names end up in logs, folder names and Cedar entity ids.
fn check_name(cx: &Cx, name: &Spanned<String>, what: &str) -> Result<(), ReleaseError> {
    let n = name.get_ref();
    let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(cx.err(name.span(), format!("{what} `{n}` is not valid; use letters, digits, `-` and `_`, starting with a letter")))
    }
}

/// "unknown component `ledgr`; did you mean `ledger`? (known: …)"
pub(crate) fn unknown(what: &str, name: &str, known: &[&str]) -> String {
    let close = known
        .iter()
        .filter(|k| edit_distance(k, name) <= 2)
        .min_by_key(|k| edit_distance(k, name));
    let hint = match close {
        Some(k) => format!("did you mean `{k}`? "),
        None => String::new(),
    };
    format!("unknown {what} `{name}`; {hint}known: {}", known.join(", "))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
