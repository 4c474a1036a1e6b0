//! The wire: length-prefixed postcard frames.
//!
//! Each frame is a little-endian `u32` length and that many bytes of a
//! postcard-encoded [`Frame`]. A length over the limit, or bytes that do not
//! decode, are a protocol error: the connection is closed, the node goes on.

use plasmoid_runtime::http::{HttpRequest, HttpResponse};
use plasmoid_runtime::remote_http::RemoteAnswer;
use plasmoid_runtime::{ExitReason, Msg, NodeId, Pid, RemoteOp};
use serde::{Deserialize, Serialize};

/// Frames larger than this are refused (a message payload is at most this).
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame on a stream: the protocol version.
    Hello {
        version: u32,
    },
    /// Sent when idle, so that a peer that hangs is noticed.
    Heartbeat,
    Op(WireOp),
    /// After `Hello`, from a node holding the cluster key: its token
    /// (cluster.rs), which admits a node that the receiver does not list.
    Admit {
        token: [u8; 32],
    },
    /// After `Hello` (and `Admit`), and again whenever it changes: the
    /// release (`name-version`) the sender runs. A node of another release
    /// is disconnected; one of another version is refused work.
    Release {
        /// `name-version`.
        release: String,
        /// A hash of the components' names and code hashes.
        code: String,
    },
}

/// 2: `Lookup` and `Found` (name@node). 4: `HttpRequest`, `HttpAnswer`.
/// 5: `Admit` (cluster membership), `Group*` (process groups), `Global*`
/// (cluster-wide names). 6: `StartSupervisor`, `SupervisorAsk`,
/// `SupervisorAnswer` (supervisors on other nodes). 7: `Release` (nodes
/// agree on the release version).
pub const VERSION: u32 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePid(pub [u8; 32], pub u64);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireReason {
    Normal,
    Kill,
    Killed,
    Shutdown(String),
    Exception(String),
    Noproc,
    Noconnection,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireOp {
    Data {
        to: WirePid,
        data: Vec<u8>,
    },
    Tagged {
        to: WirePid,
        sender: WirePid,
        reference: u64,
        payload: Vec<u8>,
    },
    Link {
        from: WirePid,
        to: WirePid,
    },
    Unlink {
        from: WirePid,
        to: WirePid,
    },
    Monitor {
        watcher: WirePid,
        target: WirePid,
        reference: u64,
    },
    Demonitor {
        watcher: WirePid,
        target: WirePid,
        reference: u64,
    },
    Exit {
        from: WirePid,
        to: WirePid,
        reason: WireReason,
        link: bool,
    },
    Down {
        target: WirePid,
        watcher: WirePid,
        reference: u64,
        reason: WireReason,
    },
    Spawn {
        node: [u8; 32],
        component: String,
        init: String,
        parent: WirePid,
        reference: u64,
    },
    Lookup {
        node: [u8; 32],
        from: [u8; 32],
        name: String,
        reference: u64,
    },
    Found {
        node: [u8; 32],
        reference: u64,
        pid: Option<WirePid>,
    },
    CancelSpawn {
        node: [u8; 32],
        parent: WirePid,
        reference: u64,
    },
    /// Boxed: the largest op by far, and a rare one.
    HttpRequest(Box<WireHttpRequest>),
    HttpAnswer {
        node: [u8; 32],
        reference: u64,
        answer: Box<WireAnswer>,
    },
    GroupJoin {
        node: [u8; 32],
        group: String,
        pid: WirePid,
    },
    GroupLeave {
        node: [u8; 32],
        group: String,
        pid: WirePid,
    },
    GroupSync {
        node: [u8; 32],
        from: [u8; 32],
        replace: bool,
        groups: Vec<(String, Vec<WirePid>)>,
    },
    GlobalClaim {
        node: [u8; 32],
        from: [u8; 32],
        name: String,
        pid: WirePid,
        reference: u64,
    },
    GlobalClaimed {
        node: [u8; 32],
        reference: u64,
        won: bool,
    },
    GlobalSet {
        node: [u8; 32],
        name: String,
        pid: WirePid,
        stamp: u64,
    },
    GlobalUnset {
        node: [u8; 32],
        name: String,
        pid: WirePid,
    },
    GlobalSync {
        node: [u8; 32],
        entries: Vec<(String, WirePid, u64)>,
    },
    StartSupervisor {
        node: [u8; 32],
        spec: Vec<u8>,
        parent: WirePid,
        reference: u64,
    },
    SupervisorAsk {
        node: [u8; 32],
        from: [u8; 32],
        sup: WirePid,
        request: Vec<u8>,
        reference: u64,
    },
    SupervisorAnswer {
        node: [u8; 32],
        reference: u64,
        reply: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHttpRequest {
    pub node: [u8; 32],
    pub from: [u8; 32],
    pub name: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub reference: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireAnswer {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Unavailable(String),
    Failed(String),
    Denied(String),
    TooLarge(String),
}

fn wa(a: RemoteAnswer) -> WireAnswer {
    match a {
        RemoteAnswer::Response(r) => WireAnswer::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        },
        RemoteAnswer::Unavailable(s) => WireAnswer::Unavailable(cut(s)),
        RemoteAnswer::Failed(s) => WireAnswer::Failed(cut(s)),
        RemoteAnswer::Denied(s) => WireAnswer::Denied(cut(s)),
        RemoteAnswer::TooLarge(s) => WireAnswer::TooLarge(cut(s)),
    }
}

fn answer(a: WireAnswer) -> RemoteAnswer {
    match a {
        WireAnswer::Response {
            status,
            headers,
            body,
        } => RemoteAnswer::Response(HttpResponse {
            status,
            headers,
            body,
        }),
        WireAnswer::Unavailable(s) => RemoteAnswer::Unavailable(s),
        WireAnswer::Failed(s) => RemoteAnswer::Failed(s),
        WireAnswer::Denied(s) => RemoteAnswer::Denied(s),
        WireAnswer::TooLarge(s) => RemoteAnswer::TooLarge(s),
    }
}

fn fields_len(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum()
}

fn wp(p: Pid) -> WirePid {
    WirePid(p.node.0, p.seq)
}

fn pid(w: WirePid) -> Pid {
    Pid {
        node: NodeId(w.0),
        seq: w.1,
    }
}

/// Exit reasons come from guests: long ones are cut so that a signal always
/// fits in a frame (a refused frame would lose the signal).
fn cut(mut s: String) -> String {
    const MAX: usize = 64 << 10;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn wr(r: ExitReason) -> WireReason {
    match r {
        ExitReason::Normal => WireReason::Normal,
        ExitReason::Kill => WireReason::Kill,
        ExitReason::Killed => WireReason::Killed,
        ExitReason::Shutdown(s) => WireReason::Shutdown(cut(s)),
        ExitReason::Exception(s) => WireReason::Exception(cut(s)),
        ExitReason::Noproc => WireReason::Noproc,
        ExitReason::Noconnection => WireReason::Noconnection,
    }
}

fn reason(r: WireReason) -> ExitReason {
    match r {
        WireReason::Normal => ExitReason::Normal,
        WireReason::Kill => ExitReason::Kill,
        WireReason::Killed => ExitReason::Killed,
        WireReason::Shutdown(s) => ExitReason::Shutdown(s),
        WireReason::Exception(s) => ExitReason::Exception(s),
        WireReason::Noproc => ExitReason::Noproc,
        WireReason::Noconnection => ExitReason::Noconnection,
    }
}

impl WireOp {
    /// The bytes the op carries beyond its fixed fields.
    pub fn payload_len(&self) -> usize {
        match self {
            WireOp::Data { data, .. } => data.len(),
            WireOp::Tagged { payload, .. } => payload.len(),
            WireOp::Spawn {
                component, init, ..
            } => component.len() + init.len(),
            WireOp::Lookup { name, .. } => name.len(),
            WireOp::GroupJoin { group, .. } | WireOp::GroupLeave { group, .. } => group.len(),
            WireOp::GroupSync { groups, .. } => {
                groups.iter().map(|(g, p)| g.len() + 40 * p.len()).sum()
            }
            WireOp::GlobalClaim { name, .. }
            | WireOp::GlobalSet { name, .. }
            | WireOp::GlobalUnset { name, .. } => name.len(),
            WireOp::GlobalSync { entries, .. } => {
                entries.iter().map(|(n, _, _)| n.len() + 48).sum()
            }
            WireOp::StartSupervisor { spec, .. } => spec.len(),
            WireOp::SupervisorAsk { request, .. } => request.len(),
            WireOp::SupervisorAnswer { reply, .. } => reply.len(),
            WireOp::HttpRequest(r) => {
                r.name.len()
                    + r.method.len()
                    + r.path.len()
                    + r.query.len()
                    + fields_len(&r.headers)
                    + r.body.len()
            }
            WireOp::HttpAnswer { answer, .. } => match &**answer {
                WireAnswer::Response { headers, body, .. } => fields_len(headers) + body.len(),
                WireAnswer::Unavailable(s)
                | WireAnswer::Failed(s)
                | WireAnswer::Denied(s)
                | WireAnswer::TooLarge(s) => s.len(),
            },
            WireOp::Exit { reason, .. } | WireOp::Down { reason, .. } => match reason {
                WireReason::Shutdown(s) | WireReason::Exception(s) => s.len(),
                _ => 0,
            },
            _ => 0,
        }
    }

    /// `None` for ops that never cross nodes (a `Send` of a signal message).
    pub fn from_op(op: RemoteOp) -> Option<WireOp> {
        Some(match op {
            RemoteOp::Send {
                to,
                msg: Msg::Data(data),
            } => WireOp::Data { to: wp(to), data },
            RemoteOp::Send {
                to,
                msg:
                    Msg::Tagged {
                        sender,
                        reference,
                        payload,
                    },
            } => WireOp::Tagged {
                to: wp(to),
                sender: wp(sender),
                reference,
                payload,
            },
            RemoteOp::Send { .. } => return None,
            RemoteOp::Link { from, to } => WireOp::Link {
                from: wp(from),
                to: wp(to),
            },
            RemoteOp::Unlink { from, to } => WireOp::Unlink {
                from: wp(from),
                to: wp(to),
            },
            RemoteOp::Monitor {
                watcher,
                target,
                reference,
            } => WireOp::Monitor {
                watcher: wp(watcher),
                target: wp(target),
                reference,
            },
            RemoteOp::Demonitor {
                watcher,
                target,
                reference,
            } => WireOp::Demonitor {
                watcher: wp(watcher),
                target: wp(target),
                reference,
            },
            RemoteOp::Exit {
                from,
                to,
                reason,
                link,
            } => WireOp::Exit {
                from: wp(from),
                to: wp(to),
                reason: wr(reason),
                link,
            },
            RemoteOp::Down {
                target,
                watcher,
                reference,
                reason,
            } => WireOp::Down {
                target: wp(target),
                watcher: wp(watcher),
                reference,
                reason: wr(reason),
            },
            RemoteOp::Spawn {
                node,
                component,
                init,
                parent,
                reference,
            } => WireOp::Spawn {
                node: node.0,
                component,
                init,
                parent: wp(parent),
                reference,
            },
            RemoteOp::CancelSpawn {
                node,
                parent,
                reference,
            } => WireOp::CancelSpawn {
                node: node.0,
                parent: wp(parent),
                reference,
            },
            RemoteOp::Lookup {
                node,
                from,
                name,
                reference,
            } => WireOp::Lookup {
                node: node.0,
                from: from.0,
                name,
                reference,
            },
            RemoteOp::Found {
                node,
                reference,
                pid,
            } => WireOp::Found {
                node: node.0,
                reference,
                pid: pid.map(wp),
            },
            RemoteOp::HttpRequest {
                node,
                from,
                name,
                request,
                reference,
                timeout_ms,
            } => {
                let HttpRequest {
                    method,
                    path,
                    query,
                    headers,
                    body,
                    ..
                } = *request;
                WireOp::HttpRequest(Box::new(WireHttpRequest {
                    node: node.0,
                    from: from.0,
                    name,
                    method,
                    path,
                    query,
                    headers,
                    body,
                    reference,
                    timeout_ms,
                }))
            }
            RemoteOp::HttpAnswer {
                node,
                reference,
                answer,
            } => WireOp::HttpAnswer {
                node: node.0,
                reference,
                answer: Box::new(wa(*answer)),
            },
            RemoteOp::GroupJoin { node, group, pid } => WireOp::GroupJoin {
                node: node.0,
                group,
                pid: wp(pid),
            },
            RemoteOp::GroupLeave { node, group, pid } => WireOp::GroupLeave {
                node: node.0,
                group,
                pid: wp(pid),
            },
            RemoteOp::GroupSync {
                node,
                from,
                replace,
                groups,
            } => WireOp::GroupSync {
                node: node.0,
                from: from.0,
                replace,
                groups: groups
                    .into_iter()
                    .map(|(g, pids)| (g, pids.into_iter().map(wp).collect()))
                    .collect(),
            },
            RemoteOp::GlobalClaim {
                node,
                from,
                name,
                pid,
                reference,
            } => WireOp::GlobalClaim {
                node: node.0,
                from: from.0,
                name,
                pid: wp(pid),
                reference,
            },
            RemoteOp::GlobalClaimed {
                node,
                reference,
                won,
            } => WireOp::GlobalClaimed {
                node: node.0,
                reference,
                won,
            },
            RemoteOp::GlobalSet {
                node,
                name,
                pid,
                stamp,
            } => WireOp::GlobalSet {
                node: node.0,
                name,
                pid: wp(pid),
                stamp,
            },
            RemoteOp::GlobalUnset { node, name, pid } => WireOp::GlobalUnset {
                node: node.0,
                name,
                pid: wp(pid),
            },
            RemoteOp::GlobalSync { node, entries } => WireOp::GlobalSync {
                node: node.0,
                entries: entries.into_iter().map(|(n, p, s)| (n, wp(p), s)).collect(),
            },
            RemoteOp::StartSupervisor {
                node,
                spec,
                parent,
                reference,
            } => WireOp::StartSupervisor {
                node: node.0,
                spec,
                parent: wp(parent),
                reference,
            },
            RemoteOp::SupervisorAsk {
                node,
                from,
                sup,
                request,
                reference,
            } => WireOp::SupervisorAsk {
                node: node.0,
                from: from.0,
                sup: wp(sup),
                request,
                reference,
            },
            RemoteOp::SupervisorAnswer {
                node,
                reference,
                reply,
            } => WireOp::SupervisorAnswer {
                node: node.0,
                reference,
                reply,
            },
        })
    }

    pub fn into_op(self) -> RemoteOp {
        match self {
            WireOp::Data { to, data } => RemoteOp::Send {
                to: pid(to),
                msg: Msg::Data(data),
            },
            WireOp::Tagged {
                to,
                sender,
                reference,
                payload,
            } => RemoteOp::Send {
                to: pid(to),
                msg: Msg::Tagged {
                    sender: pid(sender),
                    reference,
                    payload,
                },
            },
            WireOp::Link { from, to } => RemoteOp::Link {
                from: pid(from),
                to: pid(to),
            },
            WireOp::Unlink { from, to } => RemoteOp::Unlink {
                from: pid(from),
                to: pid(to),
            },
            WireOp::Monitor {
                watcher,
                target,
                reference,
            } => RemoteOp::Monitor {
                watcher: pid(watcher),
                target: pid(target),
                reference,
            },
            WireOp::Demonitor {
                watcher,
                target,
                reference,
            } => RemoteOp::Demonitor {
                watcher: pid(watcher),
                target: pid(target),
                reference,
            },
            WireOp::Exit {
                from,
                to,
                reason: r,
                link,
            } => RemoteOp::Exit {
                from: pid(from),
                to: pid(to),
                reason: reason(r),
                link,
            },
            WireOp::Down {
                target,
                watcher,
                reference,
                reason: r,
            } => RemoteOp::Down {
                target: pid(target),
                watcher: pid(watcher),
                reference,
                reason: reason(r),
            },
            WireOp::Spawn {
                node,
                component,
                init,
                parent,
                reference,
            } => RemoteOp::Spawn {
                node: NodeId(node),
                component,
                init,
                parent: pid(parent),
                reference,
            },
            WireOp::Lookup {
                node,
                from,
                name,
                reference,
            } => RemoteOp::Lookup {
                node: NodeId(node),
                from: NodeId(from),
                name,
                reference,
            },
            WireOp::Found {
                node,
                reference,
                pid: found,
            } => RemoteOp::Found {
                node: NodeId(node),
                reference,
                pid: found.map(pid),
            },
            WireOp::CancelSpawn {
                node,
                parent,
                reference,
            } => RemoteOp::CancelSpawn {
                node: NodeId(node),
                parent: pid(parent),
                reference,
            },
            WireOp::HttpRequest(r) => {
                let WireHttpRequest {
                    node,
                    from,
                    name,
                    method,
                    path,
                    query,
                    headers,
                    body,
                    reference,
                    timeout_ms,
                } = *r;
                RemoteOp::HttpRequest {
                    node: NodeId(node),
                    from: NodeId(from),
                    name,
                    request: Box::new(HttpRequest {
                        method,
                        path,
                        query,
                        headers,
                        body,
                        reference: 0,
                    }),
                    reference,
                    timeout_ms,
                }
            }
            WireOp::HttpAnswer {
                node,
                reference,
                answer: a,
            } => RemoteOp::HttpAnswer {
                node: NodeId(node),
                reference,
                answer: Box::new(answer(*a)),
            },
            WireOp::GroupJoin {
                node,
                group,
                pid: p,
            } => RemoteOp::GroupJoin {
                node: NodeId(node),
                group,
                pid: pid(p),
            },
            WireOp::GroupLeave {
                node,
                group,
                pid: p,
            } => RemoteOp::GroupLeave {
                node: NodeId(node),
                group,
                pid: pid(p),
            },
            WireOp::GroupSync {
                node,
                from,
                replace,
                groups,
            } => RemoteOp::GroupSync {
                node: NodeId(node),
                from: NodeId(from),
                replace,
                groups: groups
                    .into_iter()
                    .map(|(g, pids)| (g, pids.into_iter().map(pid).collect()))
                    .collect(),
            },
            WireOp::GlobalClaim {
                node,
                from,
                name,
                pid: p,
                reference,
            } => RemoteOp::GlobalClaim {
                node: NodeId(node),
                from: NodeId(from),
                name,
                pid: pid(p),
                reference,
            },
            WireOp::GlobalClaimed {
                node,
                reference,
                won,
            } => RemoteOp::GlobalClaimed {
                node: NodeId(node),
                reference,
                won,
            },
            WireOp::GlobalSet {
                node,
                name,
                pid: p,
                stamp,
            } => RemoteOp::GlobalSet {
                node: NodeId(node),
                name,
                pid: pid(p),
                stamp,
            },
            WireOp::GlobalUnset { node, name, pid: p } => RemoteOp::GlobalUnset {
                node: NodeId(node),
                name,
                pid: pid(p),
            },
            WireOp::GlobalSync { node, entries } => RemoteOp::GlobalSync {
                node: NodeId(node),
                entries: entries
                    .into_iter()
                    .map(|(n, p, s)| (n, pid(p), s))
                    .collect(),
            },
            WireOp::StartSupervisor {
                node,
                spec,
                parent,
                reference,
            } => RemoteOp::StartSupervisor {
                node: NodeId(node),
                spec,
                parent: pid(parent),
                reference,
            },
            WireOp::SupervisorAsk {
                node,
                from,
                sup,
                request,
                reference,
            } => RemoteOp::SupervisorAsk {
                node: NodeId(node),
                from: NodeId(from),
                sup: pid(sup),
                request,
                reference,
            },
            WireOp::SupervisorAnswer {
                node,
                reference,
                reply,
            } => RemoteOp::SupervisorAnswer {
                node: NodeId(node),
                reference,
                reply,
            },
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("frame does not decode: {0}")]
    Malformed(String),
}

/// The 4-byte length prefix, checked against the limit.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Decode a frame body (without its length prefix). Total: every input is
/// either a frame or an error, never a panic (fuzzed).
pub fn decode(body: &[u8]) -> Result<Frame, FrameError> {
    postcard::from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Append the length-prefixed encoding of `frame` to `out`.
pub fn encode_into(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    // Encoding plain enums of owned data into a Vec cannot fail.
    if postcard::to_io(frame, &mut *out).is_err() {
        out.truncate(start);
        return;
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip() {
        let a = Pid {
            node: NodeId([1; 32]),
            seq: 7,
        };
        let b = Pid {
            node: NodeId([2; 32]),
            seq: 9,
        };
        let ops = [
            RemoteOp::Send {
                to: b,
                msg: Msg::Data(vec![1, 2, 3]),
            },
            RemoteOp::Send {
                to: b,
                msg: Msg::Tagged {
                    sender: a,
                    reference: 5,
                    payload: vec![4],
                },
            },
            RemoteOp::Link { from: a, to: b },
            RemoteOp::Exit {
                from: a,
                to: b,
                reason: ExitReason::Shutdown("x".into()),
                link: true,
            },
            RemoteOp::Down {
                target: b,
                watcher: a,
                reference: 3,
                reason: ExitReason::Noproc,
            },
            RemoteOp::HttpRequest {
                node: b.node,
                from: a.node,
                name: "web".into(),
                request: Box::new(HttpRequest {
                    method: "POST".into(),
                    path: "/orders".into(),
                    query: "x=1".into(),
                    headers: vec![("host".into(), "h".into())],
                    body: b"{}".to_vec(),
                    reference: 0,
                }),
                reference: 4,
                timeout_ms: 30_000,
            },
            RemoteOp::HttpAnswer {
                node: a.node,
                reference: 4,
                answer: Box::new(RemoteAnswer::Response(HttpResponse {
                    status: 201,
                    headers: vec![("x".into(), "y".into())],
                    body: b"ok".to_vec(),
                })),
            },
            RemoteOp::HttpAnswer {
                node: a.node,
                reference: 5,
                answer: Box::new(RemoteAnswer::Denied("no".into())),
            },
            RemoteOp::StartSupervisor {
                node: b.node,
                spec: b"{\"name\":\"edge\"}".to_vec(),
                parent: a,
                reference: 6,
            },
            RemoteOp::SupervisorAsk {
                node: b.node,
                from: a.node,
                sup: b,
                request: b"\"Which\"".to_vec(),
                reference: 7,
            },
            RemoteOp::SupervisorAnswer {
                node: a.node,
                reference: 7,
                reply: b"{\"Err\":\"NotASupervisor\"}".to_vec(),
            },
        ];
        for op in ops {
            let frame = Frame::Op(WireOp::from_op(op.clone()).unwrap());
            let mut buf = Vec::new();
            encode_into(&frame, &mut buf);
            let len = frame_len(buf[..4].try_into().unwrap()).unwrap();
            assert_eq!(len, buf.len() - 4);
            let Frame::Op(back) = decode(&buf[4..]).unwrap() else {
                panic!()
            };
            assert_eq!(back.into_op(), op);
        }
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors() {
        assert_eq!(
            frame_len((MAX_FRAME as u32 + 1).to_le_bytes()),
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff]),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(decode(&[]), Err(FrameError::Malformed(_))));
    }
}
