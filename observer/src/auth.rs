//! Who may see the dashboard and who may act through it.
//!
//! - On a loopback address, anyone on the machine may watch (as with
//!   `plasmoid status`), but only through a loopback `Host`, so a web page
//!   elsewhere cannot rebind a name to 127.0.0.1 and read it.
//! - On any other address, every request needs a token: the one printed
//!   at start, or the one derived from the release's client key (which
//!   `plasmoid observe` computes).
//! - Actions (kill, restart, swap) always need a token, as the control CLI
//!   always needs the client key, plus an `x-plasmoid-action` header that a
//!   cross-site form cannot send.
//!
//! A token arrives as `Authorization: Bearer …` (scrapers, scripts) or as
//! `?token=…`. On the page's first load, `GET /?token=…`, it is swapped
//! for a session: a random id in a same-site, HTTP-only cookie named after
//! the port (cookies ignore ports: another service on this host must not
//! receive the release's token, and two observers must not overwrite each
//! other's), and the address bar loses the token.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// The header an action must carry.
pub(crate) const ACTION_HEADER: &str = "x-plasmoid-action";
/// Sessions kept (the newest); an older page must load the URL again.
const MAX_SESSIONS: usize = 64;

pub(crate) struct Gate {
    tokens: Vec<String>,
    /// Whether reads need no token (a loopback listener).
    open_reads: bool,
    /// The cookie's name: `plasmoid_observer_<port>`.
    cookie: String,
    sessions: Mutex<VecDeque<String>>,
}

impl Gate {
    pub fn new(tokens: Vec<String>, open_reads: bool, port: u16) -> Gate {
        Gate {
            tokens,
            open_reads,
            cookie: format!("plasmoid_observer_{port}"),
            sessions: Mutex::new(VecDeque::new()),
        }
    }

    fn valid(&self, presented: &str) -> bool {
        self.tokens
            .iter()
            .any(|t| same(t.as_bytes(), presented.as_bytes()))
    }

    fn session_valid(&self, presented: &str) -> bool {
        self.sessions
            .lock()
            .iter()
            .any(|s| same(s.as_bytes(), presented.as_bytes()))
    }

    /// A new session id, or `None` without randomness.
    fn new_session(&self) -> Option<String> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).ok()?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut s = self.sessions.lock();
        if s.len() >= MAX_SESSIONS {
            s.pop_front();
        }
        s.push_back(id.clone());
        Some(id)
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn from_query(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string)
}

fn bearer(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    // The scheme is case-insensitive (RFC 7235).
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn cookie(h: &HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&prefix).map(str::to_string))
}

/// Whether `Host` names this machine's loopback (or there is none).
fn loopback_host(h: &HeaderMap) -> bool {
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        why.to_string(),
    )
        .into_response()
}

/// The middleware in front of every route.
pub(crate) async fn admit(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let query_token = from_query(req.uri().query());
    let token = bearer(req.headers()).or(query_token.clone());
    let authed = token.as_deref().is_some_and(|t| gate.valid(t))
        || cookie(req.headers(), &gate.cookie).is_some_and(|s| gate.session_valid(&s));
    let path = req.uri().path().to_string();
    // The page's first load with a valid token: a session cookie instead,
    // and the token gone from the address bar (always to `/`: no redirect
    // elsewhere). Other requests with `?token=` are simply admitted.
    if path == "/"
        && req.method() == axum::http::Method::GET
        && query_token.is_some_and(|t| gate.valid(&t))
        && let Some(session) = gate.new_session()
    {
        let set = format!(
            "{}={session}; HttpOnly; SameSite=Strict; Path=/",
            gate.cookie
        );
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        if let Ok(v) = HeaderValue::from_str(&set) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    let may_read = authed || (gate.open_reads && loopback_host(req.headers()));
    if !may_read {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this observer needs a token: open the URL `plasmoid observe --release DIR` prints, \
             or send `Authorization: Bearer <token>` with the token the node printed at start",
        );
    }
    if path.starts_with("/api/action/") {
        if !authed {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "actions need the release's token, as the control CLI needs its client key: \
                 open the dashboard with `plasmoid observe --release DIR`",
            );
        }
        if !req.headers().contains_key(ACTION_HEADER) {
            return refuse(
                StatusCode::FORBIDDEN,
                "an action needs the `x-plasmoid-action` header (the dashboard sends it)",
            );
        }
    }
    let mut req = req;
    req.extensions_mut().insert(Authed(authed));
    next.run(req).await
}

/// Whether the request carried a valid token (for `/api/whoami`).
#[derive(Clone, Copy)]
pub(crate) struct Authed(pub bool);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_bearer_cookie_or_query() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; plasmoid_observer_9090=xyz"),
        );
        assert_eq!(cookie(&h, "plasmoid_observer_9090").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "plasmoid_observer_9091"), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        assert_eq!(from_query(Some("x=1&token=t0")).as_deref(), Some("t0"));
        assert_eq!(from_query(Some("x=1")), None);
    }

    #[test]
    fn only_loopback_hosts_read_without_a_token() {
        let host = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static(v));
            loopback_host(&h)
        };
        assert!(host("127.0.0.1:9090"));
        assert!(host("localhost:9090"));
        assert!(host("[::1]:9090"));
        assert!(!host("evil.example:9090"));
        assert!(!host("10.0.0.5:9090"));
    }

    #[test]
    fn comparison_needs_the_whole_token() {
        let g = Gate::new(vec!["secret".into()], false, 1);
        assert!(g.valid("secret"));
        assert!(!g.valid("secre"));
        assert!(!g.valid("secrets"));
        assert!(!g.valid(""));
    }

    #[test]
    fn sessions_are_random_and_bounded() {
        let g = Gate::new(vec!["secret".into()], false, 1);
        let first = g.new_session().unwrap();
        assert!(g.session_valid(&first));
        assert!(!g.session_valid("secret"), "a session is not the token");
        for _ in 0..MAX_SESSIONS {
            g.new_session().unwrap();
        }
        assert!(!g.session_valid(&first), "the oldest session is gone");
        assert_eq!(g.sessions.lock().len(), MAX_SESSIONS);
    }
}
