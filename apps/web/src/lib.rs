//! Web: a gen_server that answers HTTP, for the HTTP tests, the bench and
//! as the smallest example of `handle_http`.
//!
//! Init args (all optional): `{"name": "web", "global": "w1",
//! "crash_every": 100}`. It registers under `name` (on its node) and
//! `global` (cluster-wide), and with `crash_every = n` panics on every n-th
//! request to `/flaky` (so supervision is visible from a load test).
//!
//! Routes it answers (the release's `[http]` routes decide which reach it):
//! - `GET /hello` → 200 `hello from <pid>`
//! - `POST /echo` → 200 with the request body
//! - `GET /count` → 200 with how many requests this instance answered
//! - `GET /flaky` → 200 `ok`, or a crash on every `crash_every`-th
//! - `GET /slow?ms=N` → 200 after N ms (the server is busy meanwhile)
//! - `GET /trap` → a wasm trap; `GET /spin` → an endless loop (ended by the
//!   CPU budget); `GET /alloc` → allocates until the memory limit
//! - `GET /version` → `1` (`2` when built as `web-v2`, for swap tests)
//! - `GET /env?name=X` → the WASI environment variable X; `GET /args` →
//!   the WASI arguments as a JSON list
//!
//! Only the last path segment counts, so a route `/api/*` can hand it
//! `/api/hello`.
//! - `PUT /kv?key=K` (body) → 204 and `GET /kv?key=K` → the value: the
//!   node's store, bucket `web` (503 with the reason when it fails)
//! - `POST /add?key=K&by=N` → 200 with the new total: a u64 in bucket
//!   `web`, read and swapped in (`store::update`), so instances adding at
//!   once lose nothing
//! - `POST /claim?key=K` (body) → 200 `claimed`, or 409 `taken by <owner>`:
//!   the first writer wins (`store::compare_and_swap` on an absent key)
//! - `PUT /file?path=P` (body) → 204 and `GET /file?path=P` → the file:
//!   the folders the manifest's `files` preopens
//! - anything else → 404

use plasmoid_sdk::prelude::*;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
struct Init {
    name: Option<String>,
    global: Option<String>,
    crash_every: Option<u64>,
}

#[derive(Default, serde::Serialize, Deserialize)]
struct Web {
    answered: u64,
    flaky: u64,
    crash_every: u64,
}

/// What `/version` answers; `web-v2` is this source with feature `v2`.
const VERSION: &str = if cfg!(feature = "v2") { "2" } else { "1" };

#[plasmoid_sdk::gen_server(handoff)]
impl Web {
    fn init(args: Option<Init>) -> Self {
        let args = args.unwrap_or_default();
        if let Some(name) = &args.name
            && let Err(e) = register(name)
        {
            exit(ExitReason::Exception(format!(
                "cannot register `{name}`: {}",
                String::from(e)
            )));
        }
        if let Some(name) = &args.global
            && let Err(e) = plasmoid_sdk::register_global(name)
        {
            exit(ExitReason::Exception(format!(
                "cannot register `{name}` cluster-wide: {}",
                String::from(e)
            )));
        }
        Web {
            crash_every: args.crash_every.unwrap_or(0),
            ..Web::default()
        }
    }

    fn handle_call(&mut self, request: Vec<u8>) -> Vec<u8> {
        request
    }

    fn handle_http(&mut self, req: HttpRequest) -> HttpResponse {
        self.answered += 1;
        // The last segment: a route `/api/*` hands over `/api/hello`.
        let leaf = format!("/{}", req.path.rsplit('/').next().unwrap_or(""));
        match (req.method.as_str(), leaf.as_str()) {
            ("GET", "/env") => {
                let name = req.query_param("name").unwrap_or("");
                match std::env::var(name) {
                    Ok(v) => HttpResponse::text(200, v),
                    Err(_) => HttpResponse::text(404, format!("{name} is not set")),
                }
            }
            ("GET", "/args") => {
                let args: Vec<String> = std::env::args().collect();
                HttpResponse::json(200, &args)
            }
            ("GET", "/hello") => HttpResponse::text(200, format!("hello from {}", self_pid())),
            ("POST", "/echo") => HttpResponse::status(200).body(req.body),
            ("GET", "/count") => HttpResponse::text(200, self.answered.to_string()),
            ("GET", "/version") => HttpResponse::text(200, VERSION),
            ("GET", "/flaky") => {
                self.flaky += 1;
                if self.crash_every > 0 && self.flaky.is_multiple_of(self.crash_every) {
                    panic!("crashing on request {} as asked", self.flaky);
                }
                HttpResponse::text(200, "ok")
            }
            ("GET", "/slow") => {
                let ms = req
                    .query_param("ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(100);
                // Waiting in a receive that nothing answers: the server is
                // busy, its mailbox fills.
                let _ = recv_ref(make_ref(), Some(Duration::from_millis(ms)));
                HttpResponse::text(200, format!("slept {ms} ms"))
            }
            // Durable state in the bucket named after the component.
            ("PUT", "/kv") => {
                let key = req.query_param("key").unwrap_or("k").to_string();
                match plasmoid_sdk::store::put("web", &key, &req.body) {
                    Ok(()) => HttpResponse::status(204),
                    Err(e) => HttpResponse::text(503, e.to_string()),
                }
            }
            ("GET", "/kv") => {
                let key = req.query_param("key").unwrap_or("k");
                match plasmoid_sdk::store::get::<Vec<u8>>("web", key) {
                    Ok(Some(v)) => HttpResponse::status(200).body(v),
                    Ok(None) => HttpResponse::text(404, format!("no key {key}")),
                    Err(e) => HttpResponse::text(503, e.to_string()),
                }
            }
            ("POST", "/add") => {
                let key = req.query_param("key").unwrap_or("total").to_string();
                let by: u64 = req
                    .query_param("by")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                match plasmoid_sdk::store::update("web", &key, |t: Option<u64>| {
                    t.unwrap_or(0).saturating_add(by)
                }) {
                    Ok(total) => HttpResponse::text(200, total.to_string()),
                    Err(e) => HttpResponse::text(503, e.to_string()),
                }
            }
            ("POST", "/claim") => {
                let key = req.query_param("key").unwrap_or("owner").to_string();
                let me = req.body.clone();
                match plasmoid_sdk::store::compare_and_swap("web", &key, None, &me) {
                    Ok(true) => HttpResponse::text(200, "claimed"),
                    Ok(false) => {
                        let owner = plasmoid_sdk::store::get::<Vec<u8>>("web", &key)
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        HttpResponse::text(
                            409,
                            format!("taken by {}", String::from_utf8_lossy(&owner)),
                        )
                    }
                    Err(e) => HttpResponse::text(503, e.to_string()),
                }
            }
            // Files in the folders the manifest preopens (`files`).
            ("PUT", "/file") => {
                let path = req.query_param("path").unwrap_or("");
                match std::fs::write(path, &req.body) {
                    Ok(()) => HttpResponse::status(204),
                    Err(e) => HttpResponse::text(500, format!("{path}: {e}")),
                }
            }
            ("GET", "/file") => {
                let path = req.query_param("path").unwrap_or("");
                match std::fs::read(path) {
                    Ok(v) => HttpResponse::status(200).body(v),
                    Err(e) => HttpResponse::text(404, format!("{path}: {e}")),
                }
            }
            ("GET", "/trap") => core::arch::wasm32::unreachable(),
            ("GET", "/spin") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            ("GET", "/alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            _ => HttpResponse::text(404, format!("no route for {} {}", req.method, req.path)),
        }
    }
}
