//! One request: from hyper to the routed particle and back, with every
//! failure turned into its HTTP status.

use crate::route::{Matched, Route, Target, find};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use plasmoid_runtime::handler::HandlerFailure;
use plasmoid_runtime::http::{HttpRequest, HttpResponse, Unanswered};
use plasmoid_runtime::remote_http::RemoteAnswer;
use plasmoid_runtime::{Node, SendError};

pub(crate) type Answer = Response<Full<Bytes>>;

/// What every request needs: the node and the routes.
pub(crate) struct Shared {
    pub node: Node,
    pub routes: Vec<Route>,
    /// The listener's address, the authority of a request without `Host`.
    pub authority: String,
}

/// Answer one request. Never fails: every failure is a status. Each
/// answer is counted by route pattern (not path: paths are the client's,
/// patterns the manifest's) and status, for the observer's `/metrics`.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Answer {
    let label = match find(&shared.routes, req.method().as_str(), req.uri().path()) {
        Matched::Route(r) => r.path.clone(),
        Matched::NotFound | Matched::WrongMethod(_) => "unmatched".to_string(),
    };
    let answer = answer(shared, req).await;
    shared.node.count_http(&label, answer.status().as_u16());
    answer
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Answer {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let route = match find(&shared.routes, &method, &path) {
        Matched::Route(r) => r,
        Matched::NotFound => return text(StatusCode::NOT_FOUND, &format!("no route for {path}")),
        Matched::WrongMethod(allowed) => {
            let mut a = text(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not allowed on {path}"),
            );
            if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                a.headers_mut().insert(hyper::header::ALLOW, v);
            }
            return a;
        }
    };
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "a request body on {path} has at most {} bytes",
                route.max_body
            ),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > route.max_body as u64) {
        return too_large();
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    // HTTP/2 carries the host as the `:authority` pseudo-header, in the URI.
    if !headers.iter().any(|(n, _)| n == "host")
        && let Some(a) = req.uri().authority()
    {
        headers.push(("host".into(), a.to_string()));
    }
    // The route's timeout covers reading the body too: a client that
    // trickles it in does not hold its connection past it.
    let deadline = tokio::time::Instant::now() + route.timeout;
    let read = Limited::new(req.into_body(), route.max_body).collect();
    let body = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(b)) => b.to_bytes().to_vec(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => return text(StatusCode::BAD_REQUEST, &format!("the body broke off: {e}")),
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the body did not arrive within {} ms",
                    route.timeout.as_millis()
                ),
            );
        }
    };
    let mut request = HttpRequest {
        method,
        path: path.clone(),
        query,
        headers,
        body,
        reference: 0,
    };
    if let Target::Component(component) = &route.to {
        let serve = shared
            .node
            .serve_with_handler(component, &shared.authority, request);
        return match tokio::time::timeout_at(deadline, serve).await {
            Ok(Ok(r)) => answer_from(r),
            Ok(Err(f @ (HandlerFailure::Unknown(_) | HandlerFailure::Busy(_)))) => {
                unavailable(&format!("nothing answers {path} right now: {f}"))
            }
            Ok(Err(f)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the handler of {path} failed: {f}"),
            ),
            Err(_) => timed_out(&path, route),
        };
    }
    // A `name@node` naming this very node is a local name.
    let local;
    let to = match &route.to {
        Target::Remote { name, node } => match shared.node.node_named(node) {
            Some(id) if id == shared.node.id() => {
                local = Target::Name(name.clone());
                &local
            }
            _ => return remote(shared, route, &path, name, node, request, deadline).await,
        },
        other => other,
    };
    let mut returned = 0;
    let answer = loop {
        // A request handed back by a handler that ended before it took it
        // waits (within its deadline, at most 1 s) for the handler to be
        // back.
        // So does one for a handler that was running before (it is
        // restarting); a name never seen is 503 at once.
        let seen = route.seen.load(std::sync::atomic::Ordering::Relaxed);
        let pid = if returned == 0 && !seen {
            pick(shared, to)
        } else {
            pick_within(shared, to, deadline).await
        };
        if pid.is_some() && !seen {
            route.seen.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let Some(pid) = pid else {
            return unavailable(&format!(
                "nothing answers {path} right now ({:?} is not running; it may be restarting)",
                to
            ));
        };
        let mut pending = match shared.node.http_request(pid, request) {
            Ok(p) => p,
            Err(SendError::MailboxFull) => {
                return unavailable(&format!(
                    "the handler of {path} is overloaded (mailbox full)"
                ));
            }
            Err(e) => return unavailable(&format!("the handler of {path} is not running: {e}")),
        };
        match tokio::time::timeout_at(deadline, pending.answer()).await {
            Ok(Err(Unanswered::Returned(r))) if returned < MAX_RETURNS => {
                returned += 1;
                request = *r;
            }
            Ok(Err(Unanswered::Returned(_))) => {
                return unavailable(&format!(
                    "the handler of {path} ended {MAX_RETURNS} times before it took this request"
                ));
            }
            other => break other,
        }
    };
    match answer {
        Ok(Ok(r)) => answer_from(r),
        Ok(Err(Unanswered::Ended | Unanswered::Returned(_))) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the handler of {path} ended before it answered"),
        ),
        Err(_) => timed_out(&path, route),
    }
}

fn timed_out(path: &str, route: &Route) -> Answer {
    text(
        StatusCode::GATEWAY_TIMEOUT,
        &format!(
            "the handler of {path} did not answer within {} ms",
            route.timeout.as_millis()
        ),
    )
}

/// A handler's answer as hyper sends it.
fn answer_from(r: HttpResponse) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(r.body)));
    *answer.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in r.headers {
        // The runtime checked them; a header hyper still refuses is left
        // out rather than failing the answer.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            answer.headers_mut().append(n, v);
        }
    }
    answer
}

/// A `name@node` route: the request crosses the mesh, and each
/// [`RemoteAnswer`] is its status.
async fn remote(
    shared: &Shared,
    route: &Route,
    path: &str,
    name: &str,
    node: &str,
    request: HttpRequest,
    deadline: tokio::time::Instant,
) -> Answer {
    let Some(id) = shared.node.node_named(node) else {
        return unavailable(&format!(
            "the handler of {path} is on node `{node}`, which this node does not know"
        ));
    };
    let within = deadline.saturating_duration_since(tokio::time::Instant::now());
    let ask = shared.node.http_request_on(id, name, request, within);
    match tokio::time::timeout_at(deadline, ask).await {
        Ok(RemoteAnswer::Response(r)) => answer_from(r),
        Ok(RemoteAnswer::Unavailable(why)) => {
            unavailable(&format!("nothing answers {path} right now: {why}"))
        }
        Ok(RemoteAnswer::Failed(why)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the handler of {path} failed: {why}"),
        ),
        Ok(RemoteAnswer::Denied(why)) => text(StatusCode::FORBIDDEN, &why),
        Ok(RemoteAnswer::TooLarge(why)) => text(StatusCode::PAYLOAD_TOO_LARGE, &why),
        Err(_) => timed_out(path, route),
    }
}

/// How many times one request may come back from handlers that ended
/// before taking it (10); then 503. (The route's timeout bounds it too.)
const MAX_RETURNS: u32 = 10;

/// [`pick`], waiting up to `deadline` (at most 1 s) for a restart.
async fn pick_within(
    shared: &Shared,
    to: &Target,
    deadline: tokio::time::Instant,
) -> Option<plasmoid_runtime::Pid> {
    let until = deadline.min(tokio::time::Instant::now() + std::time::Duration::from_secs(1));
    loop {
        if let Some(p) = pick(shared, to) {
            return Some(p);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// The pid to send to, if one is running.
fn pick(shared: &Shared, to: &Target) -> Option<plasmoid_runtime::Pid> {
    match to {
        Target::Name(name) => shared.node.whereis(name),
        Target::Pool(pool) => pool.choose(|p| shared.node.mailbox_len(p)),
        Target::Component(_) | Target::Remote { .. } => None,
    }
}

pub(crate) fn text(status: StatusCode, body: &str) -> Answer {
    let mut a = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *a.status_mut() = status;
    a.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    a
}

/// 503 with `Retry-After: 1`: the condition passes (a restart, a backlog).
pub(crate) fn unavailable(body: &str) -> Answer {
    let mut a = text(StatusCode::SERVICE_UNAVAILABLE, body);
    a.headers_mut()
        .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    a
}
