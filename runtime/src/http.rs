//! HTTP requests as messages: what a listener (plasmoid-http) hands to a
//! particle, and the one answer it waits for.
//!
//! This module owns the request and response values, the per-process table
//! of requests waiting for an answer, and the guest's `respond`. It does not
//! own sockets, parsing, routing or status codes for failures: those belong
//! to plasmoid-http, which sees only [`Node::http_request`] and the
//! [`PendingResponse`] it returns.
//!
//! A request waits in the process entry (not in the guest's store), so it
//! survives a hot swap by handoff: the new version answers it. When the
//! process ends, a request it had taken fails at once ([`Unanswered::Ended`])
//! and one still queued in its mailbox comes back ([`Unanswered::Returned`])
//! to be sent again; neither waits for a timeout.

use crate::node::{Node, SendError};
use crate::pid::Pid;
use crate::process::Process;
use crate::reason::Msg;
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

/// Requests one process may have waiting for its answer (10,000); past it a
/// new request is refused as if the mailbox were full.
pub const MAX_WAITING: usize = 10_000;
/// Largest response body a particle may answer with (16 MiB).
pub const MAX_RESPONSE_BODY: usize = 16 << 20;
/// Most headers in one response (100).
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// One request, as the particle receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// Percent-encoded, as it came.
    pub path: String,
    /// Without the `?`; empty when there is none.
    pub query: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the particle answers with; set by [`Node::http_request`].
    pub reference: u64,
}

/// The particle's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no answer from its particle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// The particle ended (crashed, was killed or returned) while it had
    /// the request: nobody knows how far it got.
    Ended,
    /// The particle ended before it received the request, which comes back
    /// untouched: it may be sent again (to a restarted handler).
    Returned(Box<HttpRequest>),
}

/// Where a waiting request's answer goes: the response, or the request
/// itself when its process ended before receiving it.
pub(crate) type ReplyTo = oneshot::Sender<Result<HttpResponse, Box<HttpRequest>>>;

/// A process ended: requests still in its mailbox go back to their
/// listeners; the others (received, not answered) fail as `Ended`.
#[allow(clippy::vec_box)] // each box goes back to its listener as it is
pub(crate) fn process_ended(
    mut replies: std::collections::HashMap<u64, ReplyTo>,
    queued: Vec<Box<HttpRequest>>,
) {
    for request in queued {
        if let Some(tx) = replies.remove(&request.reference) {
            let _ = tx.send(Err(request));
        }
    }
    // Dropping the rest tells their listeners `Ended`.
}

/// Why `respond` refused an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespondError {
    UnknownRef,
    Invalid(String),
}

/// The answer a listener waits for. Dropping it (a timeout, a client that
/// went away) withdraws the request: a later `respond` is `unknown-ref`.
pub struct PendingResponse {
    reply: oneshot::Receiver<Result<HttpResponse, Box<HttpRequest>>>,
    process: Weak<Process>,
    reference: u64,
}

impl PendingResponse {
    /// The particle's answer, or why none will come.
    pub async fn answer(&mut self) -> Result<HttpResponse, Unanswered> {
        match (&mut self.reply).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(request)) => Err(Unanswered::Returned(request)),
            Err(_) => Err(Unanswered::Ended),
        }
    }
}

impl Drop for PendingResponse {
    fn drop(&mut self) {
        if let Some(p) = self.process.upgrade() {
            p.state.lock().replies.remove(&self.reference);
        }
    }
}

impl Node {
    /// Queue `request` for process `to` of this node and return the answer
    /// to wait for. Refused with `noproc` for a process that is not here
    /// (requests do not cross nodes), `mailbox-full` for a full mailbox or
    /// [`MAX_WAITING`] requests already waiting.
    pub fn http_request(
        &self,
        to: Pid,
        mut request: HttpRequest,
    ) -> Result<PendingResponse, SendError> {
        let target = self.inner.lookup(to).ok_or(SendError::Noproc)?;
        let reference = self.inner.next_ref();
        request.reference = reference;
        let (tx, rx) = oneshot::channel();
        // Entry and message under the process's lock: its end (which takes
        // the same lock first) either sees both, and hands the request back,
        // or neither.
        let mut st = target.state.lock();
        if !st.alive {
            return Err(SendError::Noproc);
        }
        if st.replies.len() >= MAX_WAITING {
            return Err(SendError::MailboxFull);
        }
        self.inner.send_to(&target, Msg::Http(Box::new(request)))?;
        st.replies.insert(reference, tx);
        drop(st);
        Ok(PendingResponse {
            reply: rx,
            process: Arc::downgrade(&target),
            reference,
        })
    }

    /// The mailbox length of a local process (for least-loaded routing).
    pub fn mailbox_len(&self, pid: Pid) -> Option<usize> {
        self.inner.lookup(pid).map(|p| p.mailbox.len())
    }
}

/// Hand `response` to the request `reference` that waits for `process`.
/// An invalid response is refused, and the client gets a 500 saying why
/// (it does not wait for the route's timeout).
pub(crate) fn respond(
    process: &Process,
    reference: u64,
    response: HttpResponse,
) -> Result<(), RespondError> {
    let checked = check(&response);
    let waiting = process.state.lock().replies.remove(&reference);
    let Some(tx) = waiting else {
        return Err(checked.err().unwrap_or(RespondError::UnknownRef));
    };
    match checked {
        // The listener may have given up just now: the same as unknown.
        Ok(()) => tx.send(Ok(response)).map_err(|_| RespondError::UnknownRef),
        Err(RespondError::Invalid(why)) => {
            let _ = tx.send(Ok(HttpResponse {
                status: 500,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: format!("the handler's response was invalid: {why}\n").into_bytes(),
            }));
            Err(RespondError::Invalid(why))
        }
        Err(e) => Err(e),
    }
}

/// Headers that frame the message: hyper sets them from the body, and a
/// guest's own would break the connection (or the next response on it).
const FRAMING: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Whether `name` (lower case) frames the message, so only hyper may set it.
pub(crate) fn is_framing_header(name: &str) -> bool {
    FRAMING.contains(&name)
}

/// A response hyper can write: the limits, a real status, header names
/// and values HTTP allows.
fn check(r: &HttpResponse) -> Result<(), RespondError> {
    if !(200..=599).contains(&r.status) {
        return Err(RespondError::Invalid(format!(
            "status {} is not a final HTTP status (200 to 599)",
            r.status
        )));
    }
    if r.body.len() > MAX_RESPONSE_BODY {
        return Err(RespondError::Invalid(format!(
            "a response body has at most {MAX_RESPONSE_BODY} bytes; this one has {}",
            r.body.len()
        )));
    }
    if r.headers.len() > MAX_RESPONSE_HEADERS {
        return Err(RespondError::Invalid(format!(
            "a response has at most {MAX_RESPONSE_HEADERS} headers; this one has {}",
            r.headers.len()
        )));
    }
    for (name, value) in &r.headers {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(RespondError::Invalid(format!(
                "`{name}` is not a valid header name"
            )));
        }
        if FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            return Err(RespondError::Invalid(format!(
                "`{name}` frames the message; the node sets it (leave it out)"
            )));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(RespondError::Invalid(format!(
                "the value of header `{name}` has a control character"
            )));
        }
    }
    Ok(())
}

/// The guest's `plasmoid:runtime/http` interface.
impl crate::host::plasmoid::runtime::http::Host for crate::particle::ParticleState {
    fn respond(
        &mut self,
        reference: u64,
        response: crate::host::plasmoid::runtime::http::HttpResponse,
    ) -> wasmtime::Result<Result<(), crate::host::plasmoid::runtime::http::RespondError>> {
        use crate::host::plasmoid::runtime::http::RespondError as Wit;
        let answer = HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        };
        Ok(respond(&self.proc, reference, answer).map_err(|e| match e {
            RespondError::UnknownRef => Wit::UnknownRef,
            RespondError::Invalid(why) => Wit::Invalid(why),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"hi".to_vec(),
        }
    }

    /// An invalid answer still answers the client: 500 with the reason.
    #[test]
    fn an_invalid_response_reaches_the_client_as_500() {
        let pid = crate::pid::Pid {
            node: crate::pid::NodeId([0; 32]),
            seq: 1,
        };
        let p = Process::new(pid, "web".into(), 10);
        let (tx, mut rx) = oneshot::channel();
        p.state.lock().replies.insert(7, tx);
        let bad = HttpResponse {
            headers: vec![("transfer-encoding".into(), "chunked".into())],
            ..ok()
        };
        assert!(matches!(respond(&p, 7, bad), Err(RespondError::Invalid(_))));
        let Ok(Ok(answer)) = rx.try_recv() else {
            panic!("the client got no answer")
        };
        assert_eq!(answer.status, 500);
        assert!(String::from_utf8_lossy(&answer.body).contains("transfer-encoding"));
        // Answered once: a second respond is unknown.
        assert_eq!(respond(&p, 7, ok()), Err(RespondError::UnknownRef));
    }

    #[test]
    fn only_valid_responses_pass() {
        assert_eq!(check(&ok()), Ok(()));
        let bad = [
            HttpResponse { status: 42, ..ok() },
            HttpResponse {
                status: 101,
                ..ok()
            },
            HttpResponse {
                headers: vec![("Content-Length".into(), "99".into())],
                ..ok()
            },
            HttpResponse {
                headers: vec![("bad name".into(), "v".into())],
                ..ok()
            },
            HttpResponse {
                headers: vec![("x".into(), "a\r\nb".into())],
                ..ok()
            },
            HttpResponse {
                body: vec![0; MAX_RESPONSE_BODY + 1],
                ..ok()
            },
        ];
        for r in bad {
            assert!(matches!(check(&r), Err(RespondError::Invalid(_))), "{r:?}");
        }
    }
}
