//! The manifest's `[http]` section and a component's WASI configuration
//! (`env`, `args`, `env_from`), validated with positions like the rest.

use super::Cx;
use super::raw::{RawComponent, RawHttp, RawManifest, RawSupervisor};
use crate::error::ReleaseError;
use crate::model::{GuestConfig, HttpDef, RouteDef, RouteTo};
use plasmoid_supervisor::Strategy;
use toml::Spanned;

/// The most routes one release may have (1,000).
const MAX_ROUTES: usize = 1_000;
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

impl Cx<'_> {
    pub(super) fn http(&self, raw: &RawManifest) -> Result<Option<HttpDef>, ReleaseError> {
        let Some(h) = &raw.http else {
            return Ok(None);
        };
        let http: &RawHttp = h.get_ref();
        let listen = match &http.listen {
            Some(l) => Some(self.address(l)?),
            None => None,
        };
        if http.routes.len() > MAX_ROUTES {
            return Err(self.err(
                h.span(),
                format!(
                    "[http] has {} routes; at most {MAX_ROUTES}",
                    http.routes.len()
                ),
            ));
        }
        let mut routes = Vec::new();
        for r in &http.routes {
            routes.push(self.route(r, raw)?);
        }
        // Pools are the instances of supervisors, which run on the root
        // node (the first of [nodes]); another node's listener has none.
        if routes.iter().any(|r| matches!(r.to, RouteTo::Pool { .. }))
            && let Some((name, def)) = raw
                .nodes
                .iter()
                .skip(1)
                .find(|(_, d)| d.get_ref().http.is_some())
            && let Some(h) = &def.get_ref().http
        {
            return Err(self.err(
                h.span(),
                format!(
                    "node `{}` would serve the [http] routes, but a pool route's instances run on the root node (the first of [nodes]); serve pool routes from the root node only",
                    name.get_ref()
                ),
            ));
        }
        Ok(Some(HttpDef {
            listen,
            routes,
            max_connections: http.max_connections.as_ref().map(|v| *v.get_ref()),
        }))
    }

    /// `"127.0.0.1:8080"`.
    pub(super) fn address(
        &self,
        l: &Spanned<String>,
    ) -> Result<std::net::SocketAddr, ReleaseError> {
        l.get_ref().parse().map_err(|_| {
            self.err(
                l.span(),
                format!(
                    "`{}` is not an address; write one like \"127.0.0.1:8080\"",
                    l.get_ref()
                ),
            )
        })
    }

    fn route(
        &self,
        r: &Spanned<super::raw::RawRoute>,
        raw: &RawManifest,
    ) -> Result<RouteDef, ReleaseError> {
        let route = r.get_ref();
        let path = route.path.get_ref();
        let stem = path.strip_suffix("/*").unwrap_or(path);
        if !path.starts_with('/') || stem.contains('*') {
            return Err(self.err(
                route.path.span(),
                format!("route path `{path}` is not valid; write \"/orders\" (that path) or \"/api/*\" (everything under /api)"),
            ));
        }
        let mut methods = Vec::new();
        for m in &route.methods {
            let upper = m.get_ref().to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                return Err(self.err(
                    m.span(),
                    format!(
                        "`{}` is not an HTTP method; write one of {}",
                        m.get_ref(),
                        METHODS.join(", ")
                    ),
                ));
            }
            methods.push(upper);
        }
        let given: Vec<&Spanned<String>> = [&route.to, &route.pool, &route.component]
            .into_iter()
            .flatten()
            .collect();
        if given.len() > 1 {
            return Err(self.err(
                given[1].span(),
                "a route has one of `to` (a registered name), `pool` (a supervisor's instances) or `component` (a wasi:http handler), not several",
            ));
        }
        if let (Some(b), None) = (&route.balance, &route.pool) {
            return Err(self.err(
                b.span(),
                "`balance` goes with `pool`; a route to one name or component has nothing to balance",
            ));
        }
        let to = if let Some(to) = &route.to {
            let full = to.get_ref();
            let (name, node) = match full.split_once('@') {
                Some((n, node)) => (n, Some(node)),
                None => (full.as_str(), None),
            };
            if name.is_empty() || name.len() > 255 || node.is_some_and(|n| n.contains('@')) {
                return Err(self.err(
                    to.span(),
                    format!("`to = \"{full}\"`: write a registered name (\"gateway\") or a name on another node (\"gateway@b\")"),
                ));
            }
            if let Some(node) = node
                && !raw.nodes.keys().any(|k| k.get_ref() == node)
            {
                let known: Vec<&str> = raw.nodes.keys().map(|k| k.get_ref().as_str()).collect();
                return Err(self.err(
                    to.span(),
                    format!(
                        "{}; `name@node` names one of the release's [nodes]",
                        super::unknown("node", node, &known)
                    ),
                ));
            }
            RouteTo::Name(full.clone())
        } else if let Some(pool) = &route.pool {
            self.pool(pool, route.balance.as_ref(), raw)?
        } else if let Some(c) = &route.component {
            let name = c.get_ref();
            if !raw.components.iter().any(|(k, _)| k.get_ref() == name) {
                let known: Vec<&str> = raw
                    .components
                    .keys()
                    .map(|k| k.get_ref().as_str())
                    .collect();
                return Err(self.err(
                    c.span(),
                    format!(
                        "{}; `component` names a [components.NAME] that exports wasi:http/incoming-handler",
                        super::unknown("component", name, &known)
                    ),
                ));
            }
            RouteTo::Component(name.clone())
        } else {
            return Err(self.err(
                r.span(),
                format!("route `{path}` says nobody answers it; add `to = \"name\"` (a registered name), `pool = \"supervisor\"` or `component = \"handler\"`"),
            ));
        };
        if let Some(t) = &route.timeout_ms
            && !(1..=3_600_000).contains(t.get_ref())
        {
            return Err(self.err(
                t.span(),
                "timeout_ms is out of range; write milliseconds from 1 to 3600000",
            ));
        }
        if let Some(b) = &route.max_body
            && *b.get_ref() > 1 << 30
        {
            return Err(self.err(
                b.span(),
                "max_body is out of range; write at most 1073741824 bytes (1 GiB)",
            ));
        }
        Ok(RouteDef {
            path: path.clone(),
            methods,
            to,
            timeout_ms: route.timeout_ms.as_ref().map(|v| *v.get_ref()),
            max_body: route.max_body.as_ref().map(|v| *v.get_ref()),
        })
    }

    fn pool(
        &self,
        pool: &Spanned<String>,
        balance: Option<&Spanned<String>>,
        raw: &RawManifest,
    ) -> Result<RouteTo, ReleaseError> {
        let name = pool.get_ref();
        let sup: Option<&RawSupervisor> = raw
            .supervisors
            .iter()
            .find(|(k, _)| k.get_ref() == name)
            .map(|(_, s)| s.get_ref());
        match sup {
            None => {
                let known: Vec<&str> = raw
                    .supervisors
                    .keys()
                    .map(|k| k.get_ref().as_str())
                    .collect();
                return Err(self.err(
                    pool.span(),
                    format!(
                        "{}; a pool names a [supervisors.NAME] with strategy = \"simple-one-for-one\"",
                        super::unknown("supervisor", name, &known)
                    ),
                ));
            }
            Some(s) if *s.strategy.get_ref() != Strategy::SimpleOneForOne => {
                return Err(self.err(
                    pool.span(),
                    format!("[supervisors.{name}] is {}; a pool is the instances of a \"simple-one-for-one\" supervisor", s.strategy.get_ref().as_str()),
                ));
            }
            Some(_) => {}
        }
        let least_loaded = match balance.map(|b| (b.get_ref().as_str(), b.span())) {
            None | Some(("round-robin", _)) => false,
            Some(("least-loaded", _)) => true,
            Some((other, span)) => {
                return Err(self.err(
                    span,
                    format!("unknown balance `{other}`; write \"round-robin\" or \"least-loaded\""),
                ));
            }
        };
        Ok(RouteTo::Pool {
            supervisor: name.clone(),
            least_loaded,
        })
    }

    /// One `files` entry of component `n`: an absolute guest path, and a
    /// host folder that is absolute or stays inside the data folder.
    fn file(
        &self,
        n: &str,
        guest: &Spanned<String>,
        host: &Spanned<super::raw::RawFile>,
    ) -> Result<crate::model::FileDef, ReleaseError> {
        use super::raw::RawFile;
        let g = guest.get_ref();
        if !g.starts_with('/') || g.split('/').any(|p| p == "..") {
            return Err(self.err(
                guest.span(),
                format!("component `{n}`: `{g}` is not where a guest can see a folder; write an absolute path such as \"/data\""),
            ));
        }
        let (path, read_only) = match host.get_ref() {
            RawFile::Path(p) => (p.clone(), false),
            RawFile::Dir { path, read_only } => (path.clone(), *read_only),
        };
        let p = std::path::Path::new(&path);
        let escapes = p
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
        let names_nothing = !p.is_absolute()
            && !p
                .components()
                .any(|c| matches!(c, std::path::Component::Normal(_)));
        if path.is_empty() || names_nothing || (!p.is_absolute() && escapes) {
            return Err(self.err(
                host.span(),
                format!("component `{n}`: `{path}` leaves the release's data folder; write a folder inside it, such as \"{}\"", n),
            ));
        }
        Ok(crate::model::FileDef {
            guest: g.clone(),
            host: path,
            read_only,
        })
    }

    /// `env`, `args` and `env_from` of component `n`.
    pub(super) fn guest_config(
        &self,
        n: &str,
        raw: &RawComponent,
    ) -> Result<GuestConfig, ReleaseError> {
        let var_name = |k: &Spanned<String>| -> Result<String, ReleaseError> {
            let key = k.get_ref();
            let ok = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok {
                Ok(key.clone())
            } else {
                Err(self.err(
                    k.span(),
                    format!("component `{n}`: `{key}` is not an environment variable name; use letters, digits and `_`, like DATABASE_URL"),
                ))
            }
        };
        let mut env = Vec::new();
        for (k, v) in &raw.env {
            env.push((var_name(k)?, v.get_ref().clone()));
        }
        let mut env_from = Vec::new();
        for k in &raw.env_from {
            let key = var_name(k)?;
            if raw.env.keys().any(|e| *e.get_ref() == key) {
                return Err(self.err(
                    k.span(),
                    format!(
                        "component `{n}`: `{key}` is both in `env` and in `env_from`; keep one"
                    ),
                ));
            }
            env_from.push(key);
        }
        let args = raw.args.iter().map(|a| a.get_ref().clone()).collect();
        let mut files = Vec::new();
        for (guest, host) in &raw.files {
            files.push(self.file(n, guest, host)?);
        }
        Ok(GuestConfig {
            env,
            args,
            env_from,
            files,
        })
    }
}
