//! The gen_server behaviour: a receive loop that turns messages into calls to
//! the user's handlers, and the client half (`call`, `cast`).
//!
//! `#[gen_server]` only maps the user's `impl` block onto [`GenServer`] and
//! exports `start` as [`run_gen_server`]; the loop itself lives here, in one
//! place, because later features (hot-swap state handoff) must hook into it.
//!
//! Wire protocol, so that other languages and host tests can speak it:
//! - a call is a `Tagged` message whose payload is the postcard-encoded
//!   request; the reply is a `Tagged` message back to the sender with the
//!   same reference and the postcard-encoded response;
//! - a cast is a `Data` message whose bytes are the postcard-encoded cast
//!   type; data that does not decode as that type goes to `handle_info`.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    ExitReason, HttpRequest, HttpResponse, LinkError, LogLevel, Message, Pid, SendError, decode,
    demonitor, encode, log, monitor, recv, recv_ref, send, send_tagged,
};

/// What a handler wants the loop to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastResult {
    /// Keep receiving.
    Continue,
    /// Return from `start` with `Ok`: a normal exit.
    Stop,
}

/// Why a [`call`] did not produce a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No reply within the timeout (the server may still answer later; the
    /// late reply then sits in the caller's mailbox as a `Tagged` message).
    Timeout,
    /// The server ended (or did not exist: `Noproc`) before replying.
    Exit(ExitReason),
    /// The request could not be queued.
    Send(SendError),
    /// The reply was not a valid response.
    Decode(String),
    /// The server could not be monitored (for example, Cedar denied it).
    Link(LinkError),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => f.write_str("call timed out"),
            CallError::Exit(reason) => write!(f, "server exited: {reason}"),
            CallError::Send(e) => write!(f, "send failed: {}", String::from(e.clone())),
            CallError::Decode(e) => write!(f, "bad reply: {e}"),
            CallError::Link(e) => write!(f, "monitor failed: {}", String::from(e.clone())),
        }
    }
}

impl std::error::Error for CallError {}

impl From<CallError> for String {
    fn from(e: CallError) -> String {
        e.to_string()
    }
}

/// The message type of a handler the user did not write: it has no values,
/// so nothing ever decodes as it and the loop routes such messages elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoMessage {}

/// A server's state and handlers; `#[gen_server]` implements it from the
/// user's inherent methods.
pub trait GenServer: Sized {
    /// Requests accepted by [`GenServer::handle_call`].
    type Call: DeserializeOwned;
    /// Replies produced by [`GenServer::handle_call`].
    type Reply: Serialize;
    /// Messages accepted by [`GenServer::handle_cast`].
    type Cast: DeserializeOwned;

    /// Builds the initial state from the init args of `start`.
    fn init(args: &str) -> Result<Self, String>;

    /// Answers a request.
    fn handle_call(&mut self, request: Self::Call) -> Self::Reply;

    /// Handles a data message that decodes as [`GenServer::Cast`].
    fn handle_cast(&mut self, _message: Self::Cast) -> CastResult {
        CastResult::Continue
    }

    /// Handles a data message that is not a cast.
    fn handle_info(&mut self, data: Vec<u8>) -> CastResult {
        log(
            LogLevel::Debug,
            &format!(
                "gen_server: ignored {} bytes of unexpected data",
                data.len()
            ),
        );
        CastResult::Continue
    }

    /// Answers an HTTP request routed to this server by the node's listener
    /// (`[http]` routes). Without one, the client gets 501.
    fn handle_http(&mut self, request: HttpRequest) -> HttpResponse {
        HttpResponse::text(
            501,
            format!(
                "this gen_server has no handle_http for {} {}",
                request.method, request.path
            ),
        )
    }

    /// Handles `Exit` (when trapping exits) and `Down` messages.
    fn handle_exit(&mut self, message: Message) -> CastResult {
        log(LogLevel::Debug, &format!("gen_server: ignored {message:?}"));
        CastResult::Continue
    }

    /// Handles `NodeUp` and `NodeDown` (after [`monitor_nodes`](crate::monitor_nodes)):
    /// `up` tells which.
    fn handle_node(&mut self, up: bool, node: crate::NodeInfo) -> CastResult {
        let _ = (up, node);
        CastResult::Continue
    }

    /// Whether the state survives a hot swap (`#[gen_server(handoff)]`):
    /// then [`GenServer::handoff`] serializes it and the new version's
    /// [`GenServer::code_change`] takes it over.
    const HANDOFF: bool = false;

    /// The state, serialized for the next version; `None`: restart instead.
    fn handoff(&self) -> Option<Vec<u8>> {
        None
    }

    /// Builds the state from what the previous version handed over, like
    /// OTP's `code_change`: a new version can convert an older state shape.
    fn code_change(_old: Vec<u8>) -> Result<Self, String> {
        Err("this gen_server does not take over state".into())
    }
}

/// The body of a gen_server's `start`: init, then receive and dispatch until
/// a handler returns [`CastResult::Stop`].
///
/// A malformed request is logged and dropped rather than crashing the
/// server: it comes from another particle, and the caller's own timeout or
/// monitor tells it that no answer is coming.
pub fn run_gen_server<S: GenServer>(init: &str) -> Result<(), String> {
    let mut state = match crate::process::take_handoff() {
        Some(old) => S::code_change(old)?,
        None => S::init(init)?,
    };
    if S::HANDOFF {
        crate::process::set_upgradable(true);
    }
    loop {
        let Some(message) = recv(None) else {
            continue;
        };
        let next = match message {
            Message::Tagged(call) => {
                match decode::<S::Call>(&call.payload) {
                    Ok(request) => {
                        let reply = encode(&state.handle_call(request));
                        if let Err(e) = send_tagged(&call.sender, call.ref_, &reply) {
                            log(
                                LogLevel::Debug,
                                &format!(
                                    "gen_server: reply to {} lost: {}",
                                    call.sender,
                                    String::from(e)
                                ),
                            );
                        }
                    }
                    Err(e) => log(
                        LogLevel::Warn,
                        &format!("gen_server: dropped a call from {}: {e}", call.sender),
                    ),
                }
                CastResult::Continue
            }
            Message::Data(data) => match decode::<S::Cast>(&data) {
                Ok(cast) => state.handle_cast(cast),
                Err(_) => state.handle_info(data),
            },
            other @ (Message::Exit(_) | Message::Down(_)) => state.handle_exit(other),
            Message::NodeUp(node) => state.handle_node(true, node),
            Message::NodeDown(node) => state.handle_node(false, node),
            Message::Http(request) => {
                let reference = request.ref_;
                let response = state.handle_http(request);
                if let Err(e) =
                    crate::bindings::plasmoid::runtime::http::respond(reference, &response)
                {
                    log(
                        LogLevel::Warn,
                        &format!(
                            "gen_server: an HTTP answer was refused: {}",
                            String::from(e)
                        ),
                    );
                }
                CastResult::Continue
            }
            Message::Upgrade => match state.handoff() {
                Some(bytes) => {
                    crate::process::handoff(&bytes);
                    return Ok(());
                }
                None => CastResult::Continue,
            },
        };
        if next == CastResult::Stop {
            return Ok(());
        }
    }
}

/// Sends `request` to the gen_server `server` and waits for its reply, like
/// Erlang's `gen_server:call`.
///
/// The server is monitored for the duration of the call, so a server that
/// dies (or never existed) fails the call at once with [`CallError::Exit`]
/// instead of running into the timeout.
pub fn call<Req, Resp>(
    server: &Pid,
    request: &Req,
    timeout: Option<Duration>,
) -> Result<Resp, CallError>
where
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
{
    let reference = monitor(server).map_err(CallError::Link)?;
    if let Err(e) = send_tagged(server, reference, &encode(request)) {
        demonitor(reference);
        // As gen_server:call: a server that is not there is an exit, noproc.
        if e == SendError::Noproc {
            return Err(CallError::Exit(ExitReason::Noproc));
        }
        return Err(CallError::Send(e));
    }
    match recv_ref(reference, timeout) {
        Some(Message::Tagged(reply)) => {
            demonitor(reference);
            decode(&reply.payload).map_err(|e| CallError::Decode(e.to_string()))
        }
        // The monitor fired, so it is already gone: nothing to demonitor.
        Some(Message::Down(down)) => Err(CallError::Exit(down.reason)),
        Some(other) => {
            demonitor(reference);
            Err(CallError::Decode(format!(
                "unexpected message for a call reply: {other:?}"
            )))
        }
        None => {
            demonitor(reference);
            Err(CallError::Timeout)
        }
    }
}

/// Sends `message` to the gen_server `server` without waiting (a cast).
pub fn cast<M: Serialize + ?Sized>(server: &Pid, message: &M) -> Result<(), SendError> {
    send(server, &encode(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_message_never_decodes() {
        assert!(decode::<NoMessage>(&[0]).is_err());
        assert!(decode::<NoMessage>(&[]).is_err());
    }

    #[test]
    fn call_errors_read_well() {
        assert_eq!(
            CallError::Exit(ExitReason::Noproc).to_string(),
            "server exited: noproc"
        );
        assert_eq!(
            CallError::Send(SendError::MailboxFull).to_string(),
            "send failed: mailbox-full"
        );
    }
}
