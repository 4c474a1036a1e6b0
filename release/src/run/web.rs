//! A release node's HTTP listener: the manifest's `[http]` routes, served
//! on the address this node is given (`[http] listen`, its `[nodes.NAME]
//! http`, or `release run --http`), with pools resolved through the running
//! tree. The address it bound is written to `<node dir>/http`.

use crate::error::ReleaseError;
use crate::model::{ChildKind, HttpDef, Manifest, RouteTo, SupervisorDef};
use plasmoid_http::{Balance, HttpConfig, HttpServer, Pool, Route, Target};
use plasmoid_runtime::{Node, Pid};
use plasmoid_supervisor::SupervisorRef;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where this node listens for HTTP, if anywhere.
pub(super) fn address(
    m: &Manifest,
    node: &str,
    root: bool,
    asked: Option<SocketAddr>,
) -> Option<SocketAddr> {
    if asked.is_some() {
        return asked;
    }
    let own = m.nodes.iter().find(|n| n.name == node).and_then(|n| n.http);
    own.or_else(|| {
        root.then(|| m.http.as_ref().and_then(|h| h.listen))
            .flatten()
    })
}

/// Bind and serve; `up` gives the root supervisor once the tree runs (for
/// pools). `None` when this node has no listener.
pub(super) async fn start(
    node: &Node,
    m: &Manifest,
    listen: Option<SocketAddr>,
    node_dir: &Path,
    up: watch::Receiver<Option<SupervisorRef>>,
) -> Result<Option<HttpServer>, ReleaseError> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let empty = HttpDef {
        listen: None,
        routes: Vec::new(),
        max_connections: None,
    };
    let def = m.http.as_ref().unwrap_or(&empty);
    let routes = routes(node, def, &m.root, &up)?;
    let mut cfg = HttpConfig::new(listen, routes);
    if let Some(n) = def.max_connections {
        cfg.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let server = HttpServer::start(node.clone(), cfg)
        .await
        .map_err(|e| ReleaseError::Node(e.to_string()))?;
    crate::lock::write_file(
        &node_dir.join("http"),
        server.local_addr().to_string().as_bytes(),
    )?;
    Ok(Some(server))
}

fn routes(
    node: &Node,
    def: &HttpDef,
    root: &SupervisorDef,
    up: &watch::Receiver<Option<SupervisorRef>>,
) -> Result<Vec<Route>, ReleaseError> {
    let mut out = Vec::new();
    for r in &def.routes {
        let to = match &r.to {
            RouteTo::Name(n) => match n.split_once('@') {
                Some((name, at)) => Target::Remote {
                    name: name.to_string(),
                    node: at.to_string(),
                },
                None => Target::Name(n.clone()),
            },
            RouteTo::Component(c) if !node.is_http_handler(c) => {
                return Err(ReleaseError::Node(format!(
                    "route `{}`: component `{c}` is a particle, not a wasi:http handler (it does not export wasi:http/incoming-handler); route to the name it registers with `to`",
                    r.path
                )));
            }
            RouteTo::Component(c) => Target::Component(c.clone()),
            RouteTo::Pool {
                supervisor,
                least_loaded,
            } => {
                let path = path_to(root, supervisor).unwrap_or_default();
                let (node, up) = (node.clone(), up.clone());
                let balance = if *least_loaded {
                    Balance::LeastLoaded
                } else {
                    Balance::RoundRobin
                };
                Target::Pool(Arc::new(Pool::new(supervisor, balance, move || {
                    members(&node, &up, &path).unwrap_or_default()
                })))
            }
        };
        let mut route = Route::new(&r.path, to).map_err(|e| ReleaseError::Node(e.to_string()))?;
        let methods: Vec<&str> = r.methods.iter().map(String::as_str).collect();
        route = route.methods(&methods);
        if let Some(ms) = r.timeout_ms {
            route = route.timeout(Duration::from_millis(ms));
        }
        if let Some(b) = r.max_body {
            route = route.max_body(usize::try_from(b).unwrap_or(usize::MAX));
        }
        out.push(route);
    }
    Ok(out)
}

/// The child ids from the root to the supervisor named `name`.
fn path_to(s: &SupervisorDef, name: &str) -> Option<Vec<String>> {
    for c in &s.children {
        if let ChildKind::Supervisor(sub) = &c.kind {
            if sub.name == name {
                return Some(vec![c.id.clone()]);
            }
            if let Some(mut rest) = path_to(sub, name) {
                rest.insert(0, c.id.clone());
                return Some(rest);
            }
        }
    }
    None
}

/// The running instances of the pool's supervisor, read from the
/// supervisors' tables (never waiting on their loops).
fn members(
    node: &Node,
    up: &watch::Receiver<Option<SupervisorRef>>,
    path: &[String],
) -> Option<Vec<Pid>> {
    let mut sup = up.borrow().clone()?;
    for id in path {
        let pid = sup
            .children_now()
            .ok()?
            .into_iter()
            .find(|c| c.id == *id)?
            .pid?;
        sup = plasmoid_supervisor::supervisor_at(node, pid)?;
    }
    Some(
        sup.children_now()
            .ok()?
            .into_iter()
            .filter_map(|c| c.pid)
            .collect(),
    )
}
