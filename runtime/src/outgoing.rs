//! Outgoing HTTP from guests (`wasi:http/outgoing-handler`), each
//! destination authorized by Cedar.
//!
//! It owns the hooks wasmtime-wasi-http calls when a guest sends a request:
//! the `connect` decision on `Host::"<authority>"`, the timeouts that bound a
//! request the guest did not bound itself, and the warning on a denial. It
//! does not own the HTTP client (wasmtime-wasi-http's `default_send_request`
//! on hyper and rustls) nor incoming HTTP (plasmoid-http, and `handler.rs`
//! for stock handler components).
//!
//! The authority is what Cedar sees, with its port made explicit:
//! `Host::"api.example.com:443"`, `Host::"127.0.0.1:8080"`. A host name in an
//! allowed authority is resolved by the host for that request only; this is
//! narrower than `resolve`, which opens all name lookups to `wasi:sockets`.
//!
//! The guest's request body reaches hyper through a task of its own
//! ([`forward`]) that lives until the guest finishes the body: hyper drops
//! a body it will not send (a GET's, which it frames as empty) and the body
//! of a request that failed, and a guest still writing would find its
//! stream closed. wstd reports that as "connection reset", in place of the
//! request's real outcome (a denial, a refused connection, or a 200 whose
//! exchange simply finished first: the race depended on scheduling). What
//! a guest writes after hyper let go is discarded, up to [`DISCARD_LIMIT`].

use crate::node::NodeInner;
use crate::policy::Action;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// How long a connection may take when the guest set no timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the first byte, and each gap between bytes, may take when the
/// guest set no timeout.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The hooks of one store: who is asking, and the node whose policy decides.
pub struct OutgoingHttp {
    node: Weak<NodeInner>,
    principal: Arc<str>,
}

impl OutgoingHttp {
    pub(crate) fn new(node: &Arc<NodeInner>, principal: Arc<str>) -> Self {
        OutgoingHttp {
            node: Arc::downgrade(node),
            principal,
        }
    }

    /// Whether this component may reach `uri`'s authority.
    fn allowed(&self, uri: &http::Uri) -> Result<(), Error> {
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let host = match authority.port() {
            Some(_) => authority.to_string(),
            None => {
                let port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
                    443
                } else {
                    80
                };
                format!("{}:{port}", authority.host())
            }
        };
        let ok = self
            .node
            .upgrade()
            .is_some_and(|n| n.policy.allowed(&self.principal, Action::Connect, &host));
        if ok {
            Ok(())
        } else {
            tracing::warn!(component = %self.principal, %host, "outgoing HTTP to {host} denied by policy");
            Err(Error::HttpRequestDenied)
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        request: http::Request<HyperOutgoingBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        _ = fut;
        let verdict = self.allowed(request.uri());
        let o = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: Some(o.connect_timeout.unwrap_or(CONNECT_TIMEOUT)),
            first_byte_timeout: Some(o.first_byte_timeout.unwrap_or(READ_TIMEOUT)),
            between_bytes_timeout: Some(o.between_bytes_timeout.unwrap_or(READ_TIMEOUT)),
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            // A body already at its end (the guest never asked for one)
            // goes as it is, so hyper still sends no framing header.
            let request = request.map(|b| {
                if b.is_end_stream() {
                    b
                } else {
                    forward(b).boxed_unsync()
                }
            });
            verdict?;
            let (res, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// A request body as hyper sees it: the frames [`forward`]'s task hands on.
struct Forwarded {
    frames: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Error>>,
    hint: SizeHint,
}

impl Body for Forwarded {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.frames.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Bytes a guest may still write to a body hyper has let go of (64 KiB):
/// enough for the empty or small body a late writer sends; past it the
/// body is dropped and the guest's writes fail (its outcome is known by
/// then).
pub const DISCARD_LIMIT: usize = 64 << 10;

/// Hand the guest's body on to hyper one frame at a time (a frame is read
/// only once hyper has room for it, so the guest still waits while hyper
/// is slow), and once hyper has let go of it, keep taking and discarding
/// what the guest writes, up to [`DISCARD_LIMIT`], until it finishes or
/// drops the body: its writes succeed and it learns the request's outcome
/// from the response. The task ends with the body, at the latest when the
/// guest's store is dropped.
fn forward(body: HyperOutgoingBody) -> Forwarded {
    use http_body_util::BodyExt;
    let hint = body.size_hint();
    let (tx, frames) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut body = body;
        // Hand on while hyper wants it.
        loop {
            let Ok(room) = tx.reserve().await else { break };
            match body.frame().await {
                Some(frame) => room.send(frame),
                None => return,
            }
        }
        // Then discard, within bounds.
        let mut discarded = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(Some(data)) = frame.as_ref().map(|f| f.data_ref()) {
                discarded += data.len();
            }
            if discarded > DISCARD_LIMIT {
                return;
            }
        }
    });
    Forwarded { frames, hint }
}
