//! Stock `wasi:http` handler components: one instance per request, as Spin
//! runs them.
//!
//! It owns the store of one request (WASI, outgoing HTTP, the memory cap and
//! the CPU budget of its component), the call of the guest's
//! `wasi:http/incoming-handler.handle`, and reading its response within the
//! same bounds as a particle's answer. It does not own listening, routing or
//! the status of a failure (plasmoid-http), nor loading (components.rs,
//! which recognises a handler by its export).
//!
//! A handler is not a process: it has no pid, mailbox or supervisor. Each
//! request gets a fresh instance from the pooling allocator, so a trap,
//! a loop or a memory bomb ends that request only; the next request runs
//! clean. Handlers have slots of their own in the node's instance pool (a
//! quarter of `max_particles`, at most 256), so they never take the slot
//! a supervisor needs for a restart; further requests wait for one within
//! their route's timeout. Its component's current version is read per request, so a hot
//! swap takes effect at the next request.

use crate::http::{HttpRequest, HttpResponse, MAX_RESPONSE_BODY, MAX_RESPONSE_HEADERS};
use crate::node::{Node, NodeInner};
use crate::outgoing::OutgoingHttp;
use crate::particle::MemoryCap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The host side of one request's instance.
pub struct HandlerState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    outgoing: OutgoingHttp,
    memory: MemoryCap,
    /// For `wasi:keyvalue`: the node's store and policy, and who asks.
    node: Arc<NodeInner>,
    principal: Arc<str>,
    /// Epoch ticks left before the request's CPU budget is spent.
    ticks_left: u64,
}

impl WasiView for HandlerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HandlerState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outgoing,
        }
    }
}

/// The linker handler components are checked against: WASI p2,
/// `wasi:http` (the `wasi:http/proxy` world and the CLI imports that
/// toolchains add) and `wasi:keyvalue`.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
) -> wasmtime::Result<wasmtime::component::Linker<HandlerState>> {
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::kv::add_to_linker(&mut linker, |s: &mut HandlerState| crate::kv::KvView {
        table: &mut s.table,
        node: &s.node,
        principal: &s.principal,
    })?;
    Ok(linker)
}

/// Why a handler gave no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerFailure {
    /// No component of that name is loaded, or it is not a handler.
    Unknown(String),
    /// No instance could be made now (the node's instance pool is full).
    Busy(String),
    /// The guest trapped, ran out of CPU or memory, set an error, or never
    /// set a response.
    Failed(String),
    /// Its response was not one a listener can send (too big, too many
    /// headers).
    Invalid(String),
}

impl std::fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerFailure::Unknown(why)
            | HandlerFailure::Busy(why)
            | HandlerFailure::Failed(why)
            | HandlerFailure::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for HandlerFailure {}

impl Node {
    /// Whether `component` is a loaded `wasi:http` handler.
    pub fn is_http_handler(&self, component: &str) -> bool {
        self.inner
            .components
            .get(component)
            .is_some_and(|c| c.handler().is_some())
    }

    /// Run one request through a fresh instance of handler `component`.
    /// Dropping the future ends the instance (a listener's timeout does).
    pub async fn serve_with_handler(
        &self,
        component: &str,
        authority: &str,
        req: HttpRequest,
    ) -> Result<HttpResponse, HandlerFailure> {
        serve(&self.inner, component, authority, req).await
    }
}

async fn serve(
    node: &Arc<NodeInner>,
    component: &str,
    authority: &str,
    req: HttpRequest,
) -> Result<HttpResponse, HandlerFailure> {
    let comp = node
        .components
        .get(component)
        .ok_or_else(|| HandlerFailure::Unknown(format!("no component `{component}` is loaded")))?;
    let pre: ProxyPre<HandlerState> = comp.handler().cloned().ok_or_else(|| {
        HandlerFailure::Unknown(format!(
            "component `{component}` is a particle, not a wasi:http handler"
        ))
    })?;
    // Wait for a slot (the caller's timeout bounds the wait): requests past
    // the handlers' share of the pool queue here instead of failing.
    let _slot = node
        .handler_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| HandlerFailure::Busy("the node is shutting down".into()))?;
    let _lease = node.engine.budget.take(comp.footprint).map_err(|why| {
        HandlerFailure::Busy(format!("no instance is free for `{}`: {why}", comp.name))
    })?;
    let tick_ms = node.config.tick.as_millis().max(1) as u64;
    let budget = comp.limits.cpu_ms;
    let state = HandlerState {
        wasi: crate::particle::wasi_ctx(node, &comp.name, "handler".into()).0,
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        outgoing: OutgoingHttp::new(node, comp.name.clone()),
        memory: MemoryCap::new(comp.limits.memory_bytes as usize),
        node: node.clone(),
        principal: comp.name.clone(),
        ticks_left: if budget == 0 {
            u64::MAX
        } else {
            budget.div_ceil(tick_ms)
        },
    };
    let mut store = Store::new(&comp.engine, state);
    store.limiter(|s| &mut s.memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut cx: StoreContextMut<'_, HandlerState>| {
        let s = cx.data_mut();
        s.ticks_left = s.ticks_left.saturating_sub(1);
        if s.ticks_left == 0 {
            return Err(wasmtime::Error::msg(format!(
                "the handler used its CPU budget of {budget} ms"
            )));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    let request = to_hyper(authority, req)?;
    let failed = |e: wasmtime::Error| HandlerFailure::Failed(format!("{e:#}"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (incoming, out) = {
        let mut http = store.data_mut().http();
        let incoming = http
            .new_incoming_request(Scheme::Http, request)
            .map_err(failed)?;
        (incoming, http.new_response_outparam(tx).map_err(failed)?)
    };
    // The store moves into `work` and is dropped when the guest returns, so
    // a guest that never sets a response closes `rx` instead of hanging.
    let memory_cap = comp.limits.memory_bytes;
    let work = async move {
        let proxy = pre.instantiate_async(&mut store).await.map_err(|e| {
            let why = format!("{e:#}");
            if e.is::<wasmtime::PoolConcurrencyLimitError>() {
                HandlerFailure::Busy(format!("no instance is free for `{}`: {why}", comp.name))
            } else {
                HandlerFailure::Failed(why)
            }
        })?;
        let res = proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, out)
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(_) if store.data().memory.exceeded() => Err(HandlerFailure::Failed(format!(
                "the handler went past its memory cap of {} MiB",
                memory_cap >> 20
            ))),
            Err(e) => Err(failed(e)),
        }
    };
    let read = read_response(rx);
    tokio::pin!(work, read);
    let mut ended: Option<Result<(), HandlerFailure>> = None;
    loop {
        tokio::select! {
            r = &mut read => return match r {
                Ok(resp) => Ok(resp),
                Err(Some(f)) => Err(f),
                // The guest returned (or failed) without setting a response.
                Err(None) => match ended {
                    Some(Err(f)) => Err(f),
                    _ => Err(HandlerFailure::Failed(
                        "the handler returned without setting a response".into(),
                    )),
                },
            },
            w = &mut work, if ended.is_none() => ended = Some(w),
        }
    }
}

/// The guest's response, its body read within [`MAX_RESPONSE_BODY`];
/// `Err(None)` when the guest dropped the out-parameter without setting it.
async fn read_response(
    rx: tokio::sync::oneshot::Receiver<
        Result<
            http::Response<HyperOutgoingBody>,
            wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
        >,
    >,
) -> Result<HttpResponse, Option<HandlerFailure>> {
    let resp = match rx.await {
        Ok(Ok(r)) => r,
        Ok(Err(code)) => {
            return Err(Some(HandlerFailure::Failed(format!(
                "the handler answered with an error: {code:?}"
            ))));
        }
        Err(_) => return Err(None),
    };
    let (parts, body) = resp.into_parts();
    let body = Limited::new(body, MAX_RESPONSE_BODY)
        .collect()
        .await
        .map_err(|e| {
            Some(if e.is::<http_body_util::LengthLimitError>() {
                HandlerFailure::Invalid(format!(
                    "the handler's response body is over {} MiB",
                    MAX_RESPONSE_BODY >> 20
                ))
            } else {
                HandlerFailure::Failed(format!("the handler's response body broke off: {e}"))
            })
        })?
        .to_bytes();
    from_hyper(parts, body).map_err(Some)
}

/// The request as wasmtime-wasi-http takes it: an absolute URI, so the
/// guest sees its authority and path.
fn to_hyper(
    authority: &str,
    req: HttpRequest,
) -> Result<http::Request<Full<Bytes>>, HandlerFailure> {
    // The client's Host if it is a plain host[:port] (anything else could
    // change the path the guest sees); else the listener's address.
    let host = req
        .headers
        .iter()
        .find(|(n, _)| n == "host")
        .map(|(_, v)| v.as_str())
        .filter(|v| is_host(v))
        .and_then(|v| v.parse::<http::uri::Authority>().ok())
        .or_else(|| authority.parse().ok())
        .ok_or_else(|| HandlerFailure::Invalid(format!("`{authority}` is not an authority")))?;
    let path_and_query = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(host)
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| HandlerFailure::Invalid(format!("the request's URI is not valid: {e}")))?;
    let mut b = http::Request::builder()
        .method(req.method.as_str())
        .uri(uri);
    for (n, v) in &req.headers {
        b = b.header(n.as_str(), v.as_str());
    }
    b.body(Full::new(Bytes::from(req.body)))
        .map_err(|e| HandlerFailure::Invalid(format!("the request cannot be passed on: {e}")))
}

/// A host and optional port, nothing else (no path, query, userinfo).
fn is_host(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']' | '_'))
}

fn from_hyper(parts: http::response::Parts, body: Bytes) -> Result<HttpResponse, HandlerFailure> {
    if parts.headers.len() > MAX_RESPONSE_HEADERS {
        return Err(HandlerFailure::Invalid(format!(
            "the handler's response has {} headers; at most {MAX_RESPONSE_HEADERS}",
            parts.headers.len()
        )));
    }
    let headers = parts
        .headers
        .iter()
        .filter(|(n, _)| !crate::http::is_framing_header(n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Ok(HttpResponse {
        status: parts.status.as_u16(),
        headers,
        body: body.to_vec(),
    })
}
