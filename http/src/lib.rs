//! plasmoid-http: a node's HTTP listener. It accepts connections (HTTP/1.1
//! with keep-alive, and HTTP/2, through hyper), matches each request to a
//! route, hands it to the routed particle as a message and writes back the
//! particle's answer.
//!
//! Every failure is an HTTP answer, never a hung connection or a dead
//! listener: no route 404, a wrong method 405, a body over the route's
//! limit 413, malformed HTTP 400 (hyper), nobody registered under the name
//! (or a particle restarting) 503 with `Retry-After`, a full mailbox 503, a
//! particle that ends before it answers 500, no answer within the route's
//! timeout 504. Past `max_connections` a new connection gets 503 and is
//! closed.
//!
//! It owns sockets, HTTP parsing, routing and the statuses of failures. It
//! does not own the request as a message nor the reply table (the runtime's
//! `http` module), nor what a pool's members are: the release hands it a
//! function that lists them (a simple-one-for-one supervisor's instances).
//!
//! - `route`: the routes, matching and pool choice (pure, unit-tested);
//! - `request`: one request from hyper to the particle and back;
//! - `server`: the accept loop, connection bounds, graceful stop.

mod request;
mod route;
mod server;

pub use route::{Balance, Pool, Route, Target};
pub use server::{HttpConfig, HttpServer};

use std::time::Duration;

/// How long a route waits for its particle's answer by default (30 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request body a route takes by default (1 MiB).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Connections one listener serves at once by default (10,000).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long a stopping listener lets requests in flight finish (5 s).
pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source} (is another process using it?)")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("route `{path}`: {why}")]
    Route { path: String, why: String },
}
