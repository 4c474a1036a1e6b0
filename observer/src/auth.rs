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
//! A token arrives as `Authorization: Bearer …` (scrapers, scripts), as
//! `?token=…` on the first page load, which is then swapped for a
//! same-site, HTTP-only cookie and dropped from the address bar.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(crate) const COOKIE: &str = "plasmoid_observer";
/// The header an action must carry.
pub(crate) const ACTION_HEADER: &str = "x-plasmoid-action";

pub(crate) struct Gate {
    tokens: Vec<String>,
    /// Whether reads need no token (a loopback listener).
    open_reads: bool,
}

impl Gate {
    pub fn new(tokens: Vec<String>, open_reads: bool) -> Gate {
        Gate { tokens, open_reads }
    }

    fn valid(&self, presented: &str) -> bool {
        self.tokens
            .iter()
            .any(|t| same(t.as_bytes(), presented.as_bytes()))
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

fn from_headers(h: &HeaderMap) -> Option<String> {
    if let Some(b) = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(b.trim().to_string());
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
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
    let presented = from_headers(req.headers()).or(query_token.clone());
    let authed = presented.as_deref().is_some_and(|t| gate.valid(t));
    let path = req.uri().path().to_string();
    // A valid token in the address: keep it in a cookie, drop it from the URL.
    if let Some(t) = query_token.filter(|t| gate.valid(t))
        && req.method() == axum::http::Method::GET
    {
        let cookie = format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/");
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, path.as_str())]).into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
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
    fn tokens_come_from_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; plasmoid_observer=xyz"),
        );
        assert_eq!(from_headers(&h).as_deref(), Some("xyz"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(from_headers(&h).as_deref(), Some("abc"));
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
        let g = Gate::new(vec!["secret".into()], false);
        assert!(g.valid("secret"));
        assert!(!g.valid("secre"));
        assert!(!g.valid("secrets"));
        assert!(!g.valid(""));
    }
}
