//! The HTTP side: the embedded page, its JSON and server-sent events,
//! the actions, and `/metrics`, all behind the gate of auth.rs.

use crate::Backend;
use crate::auth::{self, Authed, Gate};
use crate::model::{Event, Sample};
use crate::sampler::{Shared, now_ms};
use crate::view::{self, TableQuery, View};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use plasmoid_runtime::Node;
use serde::Deserialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// Pages that may follow the live stream at once; more get a 503.
pub const MAX_STREAMS: usize = 32;
/// The largest `.wasm` an upload may carry (64 MiB).
pub const MAX_UPLOAD: usize = 64 << 20;
/// Events a sample carries to the page (the newest).
const EVENTS_PER_SAMPLE: usize = 100;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

pub(crate) struct App {
    pub node: Node,
    pub backend: Arc<dyn Backend>,
    pub shared: Arc<Shared>,
    pub registry: prometheus_client::registry::Registry,
    pub streams: Arc<tokio::sync::Semaphore>,
}

pub(crate) fn router(app: Arc<App>, gate: Arc<Gate>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/events", get(events))
        .route("/api/history", get(history))
        .route("/api/whoami", get(whoami))
        .route("/api/particle/{pid}", get(particle))
        .route("/api/action/kill", post(kill))
        .route("/api/action/restart", post(restart))
        .route(
            "/api/action/swap",
            post(swap).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(gate, auth::admit))
        .with_state(app)
}

fn page(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

fn events_of(app: &App) -> Vec<Event> {
    let mut all = app.shared.history.lock().clone();
    all.extend(app.shared.events.lock().iter().cloned());
    all.sort_by_key(|e| e.at_ms);
    all
}

fn render(app: &App, s: &Sample, q: &TableQuery) -> String {
    let (particles, matched, sort, asc) = view::select(s, q);
    let mut events = events_of(app);
    let skip = events.len().saturating_sub(EVENTS_PER_SAMPLE);
    events.drain(..skip);
    let v = View {
        at_ms: s.at_ms,
        release: &s.release,
        node: &s.node,
        node_id: &s.node_id,
        uptime_ms: s.uptime_ms,
        alive: s.alive,
        tree: &s.tree,
        particles,
        matched,
        total: s.particles.len(),
        sort,
        dir: if asc { "asc" } else { "desc" },
        peers: &s.peers,
        point: &s.point,
        events,
    };
    serde_json::to_string(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The live stream: the latest sample at once, then one per interval.
async fn events(State(app): State<Arc<App>>, Query(q): Query<TableQuery>) -> Response {
    let Ok(permit) = app.streams.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} dashboards already follow this node; close one"),
        )
            .into_response();
    };
    let rx = app.shared.latest.clone();
    let state = (rx, true, permit, app, q);
    let stream =
        futures_util::stream::unfold(state, |(mut rx, first, permit, app, q)| async move {
            // Ends when the sampler stops (the observer is stopping).
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let sample = rx.borrow_and_update().clone();
            let json = render(&app, &sample, &q);
            let event = SseEvent::default().event("sample").data(json);
            Some((Ok::<_, Infallible>(event), (rx, false, permit, app, q)))
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn history(State(app): State<Arc<App>>) -> Response {
    let points: Vec<_> = app.shared.points.lock().iter().cloned().collect();
    Json(serde_json::json!({ "points": points, "events": events_of(&app) })).into_response()
}

async fn whoami(State(app): State<Arc<App>>, Extension(a): Extension<Authed>) -> Response {
    let s = app.shared.latest.borrow().clone();
    Json(serde_json::json!({
        "can_act": a.0,
        "release": s.release,
        "node": s.node,
        "components": app.backend.components(),
    }))
    .into_response()
}

async fn particle(State(app): State<Arc<App>>, Path(pid): Path<String>) -> Response {
    let Some(p) = app.node.resolve(&pid) else {
        return (StatusCode::BAD_REQUEST, format!("`{pid}` is not a pid")).into_response();
    };
    if p.node != app.node.id() {
        return (
            StatusCode::NOT_FOUND,
            format!("{pid} lives on another node; open that node's observer"),
        )
            .into_response();
    }
    let Some(s) = app.node.process_stats_of(p) else {
        return (StatusCode::NOT_FOUND, format!("{pid} is not alive")).into_response();
    };
    let sample = app.shared.latest.borrow().clone();
    let mut place = serde_json::Value::Null;
    if let Some(t) = &sample.tree {
        t.walk(None, &mut |n, parent| {
            if n.pid.as_deref() == Some(pid.as_str())
                && let Some(sup) = parent
                && n.strategy.is_none()
            {
                place = serde_json::json!({
                    "child": n.id, "restart": n.restart, "restarts": n.restarts,
                    "supervisor": sup.id, "supervisor_pid": sup.pid, "strategy": sup.strategy,
                });
            }
        });
    }
    let exits: Vec<_> = app
        .node
        .recent_exits()
        .into_iter()
        .rev()
        .filter(|e| e.component == s.component && (s.name.is_none() || e.name == s.name))
        .take(10)
        .map(
            |e| serde_json::json!({"at_ms": e.at_ms, "pid": e.pid.to_string(), "reason": e.reason}),
        )
        .collect();
    let denials: Vec<_> = app
        .node
        .recent_denials()
        .into_iter()
        .rev()
        .filter(|d| d.component == s.component)
        .take(10)
        .map(|d| {
            serde_json::json!({"at_ms": d.at_ms, "pid": d.pid.to_string(), "action": d.action,
                "resource": d.resource, "count": d.count})
        })
        .collect();
    let pids = |v: &[plasmoid_runtime::Pid]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    Json(serde_json::json!({
        "pid": pid, "component": s.component, "version": s.version, "name": s.name,
        "mailbox": s.mailbox, "memory": s.memory, "ticks": s.ticks,
        "received": s.received, "sent": s.sent, "trap_exit": s.trap_exit,
        "links": pids(&s.links), "monitors": pids(&s.monitors),
        "monitored_by": pids(&s.monitored_by), "place": place,
        "exits": exits, "denials": denials,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct Target {
    target: String,
}

#[derive(Deserialize)]
struct SwapQuery {
    component: String,
}

/// Log and record an action and its outcome; answer the page.
fn acted(app: &App, from: SocketAddr, what: String, outcome: Result<String, String>) -> Response {
    match &outcome {
        Ok(m) => tracing::warn!(%from, action = %what, "observer action: {m}"),
        Err(e) => tracing::warn!(%from, action = %what, "observer action failed: {e}"),
    }
    let text = match &outcome {
        Ok(m) => format!("{what}: {m}"),
        Err(e) => format!("{what} failed: {e}"),
    };
    app.shared.event("action", text);
    let (status, message) = match outcome {
        Ok(m) => (StatusCode::OK, m),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    (status, Json(serde_json::json!({ "ok": status == StatusCode::OK, "message": message, "at_ms": now_ms() })))
        .into_response()
}

async fn kill(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Json(t): Json<Target>,
) -> Response {
    let outcome = app.backend.kill(&t.target).await;
    acted(&app, from, format!("kill {}", t.target), outcome)
}

async fn restart(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Json(t): Json<Target>,
) -> Response {
    let outcome = app.backend.restart(&t.target).await;
    acted(&app, from, format!("restart {}", t.target), outcome)
}

async fn swap(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Query(q): Query<SwapQuery>,
    body: Bytes,
) -> Response {
    let what = format!("hot-swap {} ({} bytes)", q.component, body.len());
    let outcome = app.backend.swap(&q.component, body.into()).await;
    acted(&app, from, what, outcome)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match crate::metrics::encode(&app.registry) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding failed: {e}"),
        )
            .into_response(),
    }
}
