//! Routes: which particle answers which request. Pure logic (matching, the
//! choice of a pool member), tested without sockets or wasm.

use crate::HttpError;
use plasmoid_runtime::Pid;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// One route: requests for `path` (and `methods`, empty = any) go to `to`.
#[derive(Clone)]
pub struct Route {
    /// `/orders` matches that path exactly; `/api/*` matches `/api` and
    /// everything under it. The longest match wins.
    pub path: String,
    /// Upper-case method names; empty: every method.
    pub methods: Vec<String>,
    pub to: Target,
    /// How long to wait for the particle's answer (then 504).
    pub timeout: Duration,
    /// The largest body taken (then 413).
    pub max_body: usize,
    /// Whether a handler was ever found: from then on a missing one is
    /// restarting, and a request waits a moment for it (see request.rs).
    pub(crate) seen: Arc<std::sync::atomic::AtomicBool>,
}

/// Who answers a route.
#[derive(Clone)]
pub enum Target {
    /// The process registered under this name on this node.
    Name(String),
    /// One of several instances.
    Pool(Arc<Pool>),
    /// A stock `wasi:http` handler component, one instance per request.
    Component(String),
    /// The process registered as `name` on the mesh node `node` (a node
    /// name the release gave, or a node id); the request crosses the mesh.
    Remote { name: String, node: String },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Name(n) => write!(f, "{n}"),
            Target::Pool(p) => write!(f, "pool {}", p.name),
            Target::Component(c) => write!(f, "component {c}"),
            Target::Remote { name, node } => write!(f, "{name}@{node}"),
        }
    }
}

/// How a pool picks the member for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    /// The member with the fewest messages waiting.
    LeastLoaded,
}

/// The instances of a simple-one-for-one supervisor (or any set of pids
/// the release can list), asked afresh for each request, so restarted and
/// added instances are used at once.
pub struct Pool {
    pub name: String,
    pub balance: Balance,
    members: Box<dyn Fn() -> Vec<Pid> + Send + Sync>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(
        name: &str,
        balance: Balance,
        members: impl Fn() -> Vec<Pid> + Send + Sync + 'static,
    ) -> Self {
        Pool {
            name: name.to_string(),
            balance,
            members: Box::new(members),
            next: AtomicUsize::new(0),
        }
    }

    /// The member to send a request to; `load` tells a member's queue
    /// length (`None`: it is gone). `None` when no member is running.
    pub fn choose(&self, load: impl Fn(Pid) -> Option<usize>) -> Option<Pid> {
        let members = (self.members)();
        if members.is_empty() {
            return None;
        }
        match self.balance {
            // A member that just ended (its supervisor has not restarted
            // it yet) is skipped.
            Balance::RoundRobin => {
                let at = self.next.fetch_add(1, Ordering::Relaxed) % members.len();
                (0..members.len())
                    .map(|i| members[(at + i) % members.len()])
                    .find(|p| load(*p).is_some())
            }
            Balance::LeastLoaded => {
                // Ties go round-robin, so an idle pool still spreads work.
                let start = self.next.fetch_add(1, Ordering::Relaxed) % members.len();
                (0..members.len())
                    .map(|i| members[(start + i) % members.len()])
                    .filter_map(|p| load(p).map(|l| (l, p)))
                    .min_by_key(|(l, _)| *l)
                    .map(|(_, p)| p)
            }
        }
    }
}

impl Route {
    /// A route with the defaults (any method, 30 s, 1 MiB). The path must
    /// start with `/`; `*` is allowed only as a final `/*`.
    pub fn new(path: &str, to: Target) -> Result<Route, HttpError> {
        let bad = |why: &str| HttpError::Route {
            path: path.to_string(),
            why: why.to_string(),
        };
        if !path.starts_with('/') {
            return Err(bad("a route's path starts with `/`, like \"/orders\""));
        }
        let stem = path.strip_suffix("/*").unwrap_or(path);
        if stem.contains('*') {
            return Err(bad(
                "`*` may only end a path, as in \"/api/*\" (everything under /api)",
            ));
        }
        if let Target::Name(n) = &to
            && (n.is_empty() || n.contains('@'))
        {
            return Err(bad(
                "`to` names a process registered on this node; for one on another node use Target::Remote (`name@node`)",
            ));
        }
        if let Target::Remote { name, node } = &to
            && (name.is_empty() || node.is_empty())
        {
            return Err(bad("a remote target is `name@node`, both non-empty"));
        }
        Ok(Route {
            path: path.to_string(),
            methods: Vec::new(),
            to,
            timeout: crate::DEFAULT_TIMEOUT,
            max_body: crate::DEFAULT_MAX_BODY,
            seen: Arc::default(),
        })
    }

    pub fn methods(mut self, methods: &[&str]) -> Self {
        self.methods = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How well this route's path matches `path`: `None` when it does not,
    /// else the length matched (longer is more specific; exact beats all).
    fn score(&self, path: &str) -> Option<usize> {
        match self.path.strip_suffix("/*") {
            Some(stem) => {
                let under = path == stem
                    || stem.is_empty()
                    || path.strip_prefix(stem).is_some_and(|r| r.starts_with('/'));
                under.then_some(stem.len())
            }
            None => (self.path == path).then_some(usize::MAX),
        }
    }

    fn allows(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
    }
}

/// What a request's path and method found.
pub(crate) enum Matched<'a> {
    Route(&'a Route),
    /// The path has routes, none for this method: 405 with these.
    WrongMethod(Vec<String>),
    NotFound,
}

/// The best route for `method` and `path`.
pub(crate) fn find<'a>(routes: &'a [Route], method: &str, path: &str) -> Matched<'a> {
    let best = routes.iter().filter_map(|r| r.score(path)).max();
    let Some(best) = best else {
        return Matched::NotFound;
    };
    let candidates: Vec<&Route> = routes
        .iter()
        .filter(|r| r.score(path) == Some(best))
        .collect();
    match candidates.iter().find(|r| r.allows(method)) {
        Some(r) => Matched::Route(r),
        None => {
            let mut allowed: Vec<String> = candidates
                .iter()
                .flat_map(|r| r.methods.iter().cloned())
                .collect();
            allowed.sort();
            allowed.dedup();
            Matched::WrongMethod(allowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, to: &str) -> Route {
        Route::new(path, Target::Name(to.into())).unwrap()
    }

    fn target(m: Matched<'_>) -> String {
        match m {
            Matched::Route(r) => format!("{:?}", r.to),
            Matched::WrongMethod(allowed) => format!("405 {}", allowed.join(",")),
            Matched::NotFound => "404".into(),
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = vec![
            route("/*", "root"),
            route("/api/*", "api"),
            route("/api/orders", "orders").methods(&["POST"]),
        ];
        assert_eq!(target(find(&routes, "GET", "/x")), "root");
        assert_eq!(target(find(&routes, "GET", "/api")), "api");
        assert_eq!(target(find(&routes, "GET", "/api/x/y")), "api");
        assert_eq!(target(find(&routes, "GET", "/apix")), "root");
        assert_eq!(target(find(&routes, "POST", "/api/orders")), "orders");
        assert_eq!(target(find(&routes, "GET", "/api/orders")), "405 POST");
    }

    #[test]
    fn no_route_is_404() {
        let routes = vec![route("/orders", "o")];
        assert_eq!(target(find(&routes, "GET", "/order")), "404");
        assert_eq!(target(find(&routes, "GET", "/orders/1")), "404");
    }

    #[test]
    fn bad_routes_say_what_to_write() {
        let err = |p: &str, to: &str| match Route::new(p, Target::Name(to.into())) {
            Err(e) => e.to_string(),
            Ok(_) => "accepted".into(),
        };
        assert!(err("orders", "o").contains("starts with `/`"));
        assert!(err("/a/*/b", "o").contains("`*` may only end"));
        assert!(err("/a", "o@b").contains("Target::Remote"));
    }

    fn pid(seq: u64) -> Pid {
        Pid {
            node: plasmoid_runtime::NodeId([1; 32]),
            seq,
        }
    }

    #[test]
    fn pools_spread_round_robin_or_to_the_least_loaded() {
        let rr = Pool::new("p", Balance::RoundRobin, || vec![pid(1), pid(2), pid(3)]);
        let picks: Vec<u64> = (0..6)
            .map(|_| rr.choose(|_| Some(0)).unwrap().seq)
            .collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
        let ll = Pool::new("p", Balance::LeastLoaded, || vec![pid(1), pid(2), pid(3)]);
        let load = |p: Pid| match p.seq {
            1 => Some(5),
            2 => Some(1),
            _ => None, // gone
        };
        for _ in 0..4 {
            assert_eq!(ll.choose(load).unwrap().seq, 2);
        }
        let empty = Pool::new("p", Balance::RoundRobin, Vec::new);
        assert_eq!(empty.choose(|_| Some(0)), None);
    }
}
