//! HTTP requests to a process on another node: a listener's `name@node`
//! route.
//!
//! It owns both halves of a crossing: the listener's node sends the
//! request as a [`RemoteOp::HttpRequest`] and waits for its
//! [`RemoteOp::HttpAnswer`]; the named node looks the name up, asks Cedar
//! whether the sending node may `send` to that particle, queues the request
//! as it would a local one (the particle cannot tell) and sends back the
//! answer, or why there is none. It does not own the wire (plasmoid-mesh)
//! nor statuses (plasmoid-http maps each [`RemoteAnswer`] to one).
//!
//! Every wait is bounded: the listener's by its route's timeout (and by the
//! loss of the node, which fails its requests at once), the named node's by
//! the timeout the request carries. A request or response too big for one
//! mesh frame ([`MAX_CROSSING`]) is refused, not split.

use crate::http::{HttpRequest, HttpResponse, MAX_WAITING, Unanswered};
use crate::node::{Node, NodeInner};
use crate::pid::NodeId;
use crate::policy::Action;
use crate::remote::RemoteOp;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::oneshot;

/// The most bytes of body and headers one request or response may carry
/// across nodes (960 KiB: a mesh frame is at most 1 MiB).
pub const MAX_CROSSING: usize = 960 << 10;

/// What came back for a request sent to another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteAnswer {
    Response(HttpResponse),
    /// Nothing answers now (no such name there, a restart, a full mailbox,
    /// the node unreachable or lost): worth retrying.
    Unavailable(String),
    /// The handler ended before it answered, or did not answer in time.
    Failed(String),
    /// The other node's policy does not let this node send to it.
    Denied(String),
    /// The request is over [`MAX_CROSSING`] (a response over it is
    /// `Failed`).
    TooLarge(String),
}

pub(crate) struct PendingHttp {
    node: NodeId,
    answer: oneshot::Sender<RemoteAnswer>,
}

/// The bytes a request or response adds to a mesh frame (as the mesh
/// counts them).
fn size(headers: &[(String, String)], body: &[u8]) -> usize {
    body.len()
        + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum::<usize>()
}

/// Releases one of [`MAX_WAITING`] slots for requests served for others.
struct Serving(Arc<NodeInner>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.http_serving.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Removes a request's entry when its wait ends (answered, timed out or
/// dropped by the listener).
struct Forget<'a>(&'a Node, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.inner.http_pending.remove(&self.1);
    }
}

impl Node {
    /// Send `request` to the process registered as `name` on `node`, and
    /// wait for its answer; the other node stops waiting after `within`.
    /// Never fails: every outcome is a [`RemoteAnswer`].
    pub async fn http_request_on(
        &self,
        node: NodeId,
        name: &str,
        request: HttpRequest,
        within: Duration,
    ) -> RemoteAnswer {
        let inner = &self.inner;
        let n = size(&request.headers, &request.body)
            + name.len()
            + request.method.len()
            + request.path.len()
            + request.query.len();
        if n > MAX_CROSSING {
            return RemoteAnswer::TooLarge(format!(
                "a request to another node carries at most {} KiB of body and headers; this one has {} KiB",
                MAX_CROSSING >> 10,
                n >> 10
            ));
        }
        if inner.http_pending.len() >= MAX_WAITING {
            return RemoteAnswer::Unavailable(format!(
                "{MAX_WAITING} requests already wait for other nodes"
            ));
        }
        let reference = inner.next_ref();
        let (tx, rx) = oneshot::channel();
        inner
            .http_pending
            .insert(reference, PendingHttp { node, answer: tx });
        let _forget = Forget(self, reference);
        let op = RemoteOp::HttpRequest {
            node,
            from: inner.id,
            name: name.to_string(),
            request: Box::new(request),
            reference,
            timeout_ms: within.as_millis().min(u128::from(u64::MAX)) as u64,
        };
        if let Err(e) = inner.route(op) {
            return RemoteAnswer::Unavailable(format!(
                "node {} is not reachable: {e}",
                node.short()
            ));
        }
        match rx.await {
            Ok(a) => a,
            Err(_) => RemoteAnswer::Unavailable(format!("node {} was lost", node.short())),
        }
    }

    /// A request from node `from` for the process registered as `name`:
    /// serve it on this node and send the answer back.
    pub(crate) fn serve_remote_http(
        &self,
        from: NodeId,
        name: String,
        request: Box<HttpRequest>,
        reference: u64,
        timeout_ms: u64,
    ) {
        // Requests served for other nodes are bounded like the ones sent.
        if self.inner.http_serving.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.inner.http_serving.fetch_sub(1, Ordering::AcqRel);
            let answer = RemoteAnswer::Unavailable(format!(
                "node {} is serving {MAX_WAITING} requests for other nodes",
                self.inner.id.short()
            ));
            let _ = self.inner.route(RemoteOp::HttpAnswer {
                node: from,
                reference,
                answer: Box::new(answer),
            });
            return;
        }
        let slot = Serving(self.inner.clone());
        let node = self.clone();
        self.inner.rt.spawn(async move {
            let _slot = slot;
            let within = Duration::from_millis(timeout_ms.min(3_600_000));
            let answer = tokio::time::timeout(within, node.answer_here(from, &name, *request))
                .await
                .unwrap_or_else(|_| {
                    RemoteAnswer::Failed(format!(
                        "`{name}` did not answer within {} ms",
                        within.as_millis()
                    ))
                });
            let _ = node.inner.route(RemoteOp::HttpAnswer {
                node: from,
                reference,
                answer: Box::new(answer),
            });
        });
    }

    async fn answer_here(
        &self,
        from: NodeId,
        name: &str,
        mut request: HttpRequest,
    ) -> RemoteAnswer {
        let here = self.inner.id.short();
        // A request handed back by a handler that ended before it took it
        // goes to its restarted successor (at most 10 times, 1 s each), as
        // the listener does for a local route.
        for _ in 0..10 {
            let Some(pid) = self.whereis_within(name, Duration::from_secs(1)).await else {
                return RemoteAnswer::Unavailable(format!(
                    "nothing is registered as `{name}` on node {here} (it may be restarting)"
                ));
            };
            let Some(component) = self.inner.lookup(pid).map(|p| p.component.clone()) else {
                continue;
            };
            if !self
                .inner
                .policy
                .allowed_node_id(&from, Action::Send, &component)
            {
                let why = format!(
                    "send to `{component}` denied by policy for node {}",
                    from.to_hex()
                );
                tracing::warn!(node = %from.short(), "{why}");
                return RemoteAnswer::Denied(why);
            }
            let mut pending = match self.http_request(pid, request) {
                Ok(p) => p,
                Err(e) => {
                    return RemoteAnswer::Unavailable(format!(
                        "`{name}` on node {here} cannot take it: {e}"
                    ));
                }
            };
            match pending.answer().await {
                Ok(r) => {
                    let n = size(&r.headers, &r.body);
                    if n > MAX_CROSSING {
                        return RemoteAnswer::Failed(format!(
                            "`{name}` answered with {} KiB; a response crosses nodes with at most {} KiB",
                            n >> 10,
                            MAX_CROSSING >> 10
                        ));
                    }
                    return RemoteAnswer::Response(r);
                }
                Err(Unanswered::Returned(r)) => request = *r,
                Err(Unanswered::Ended) => {
                    return RemoteAnswer::Failed(format!(
                        "`{name}` on node {here} ended before it answered"
                    ));
                }
            }
        }
        RemoteAnswer::Unavailable(format!(
            "`{name}` on node {here} ended 10 times before it took this request"
        ))
    }

    /// The pid registered as `name`, waiting up to `within` for one.
    async fn whereis_within(&self, name: &str, within: Duration) -> Option<crate::Pid> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(p) = self.whereis(name) {
                return Some(p);
            }
            if tokio::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The answer to one of this node's requests, from `from`.
    pub(crate) fn http_answered(&self, from: NodeId, reference: u64, answer: RemoteAnswer) {
        if let Some((_, p)) = self
            .inner
            .http_pending
            .remove_if(&reference, |_, p| p.node == from)
        {
            let _ = p.answer.send(answer);
        }
    }

    /// `node` is lost: requests waiting for it fail now.
    pub(crate) fn http_lost(&self, node: NodeId) {
        self.inner.http_pending.retain(|_, p| p.node != node);
    }
}
