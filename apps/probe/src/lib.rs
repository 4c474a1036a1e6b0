//! Probe: a particle that host tests script over messages, so that every
//! runtime behaviour (links, monitors, trapping, registry, limits, crashes)
//! can be exercised from inside a real guest.
//!
//! Init args: `{"controller": "<pid>"}`. The probe announces itself to the
//! controller with `{"ready": "<own pid>"}` (JSON bytes in a `Data` message)
//! and then runs one command per `Data` message that parses as a [`Cmd`],
//! answering `{"ok": <value>}` or `{"err": "<error>"}`. Everything else it
//! receives is reported as `{"event": <message>}`; message shapes are in
//! [`message_json`].

mod cmd;

use plasmoid_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use cmd::{Cmd, Step};

/// The probe's init args.
#[derive(Debug, Deserialize)]
struct ProbeInit {
    /// Who gets the replies and events (a pid string).
    controller: String,
}

#[plasmoid_sdk::main]
fn start(init: ProbeInit) -> Result<(), String> {
    let controller = resolve(&init.controller)
        .ok_or_else(|| format!("bad controller pid: {}", init.controller))?;
    let mut probe = cmd::Probe::new();
    // Without a controller the probe is useless: failing to announce itself
    // ends it (with the send error as its exit reason).
    send(
        &controller,
        json!({"ready": self_pid().to_string()})
            .to_string()
            .as_bytes(),
    )?;
    loop {
        let Some(message) = recv(None) else {
            continue;
        };
        let report = match message {
            Message::Data(bytes) => match serde_json::from_slice::<Cmd>(&bytes) {
                Ok(command) => match probe.run(command) {
                    Step::Reply(Ok(value)) => json!({"ok": value}),
                    Step::Reply(Err(error)) => json!({"err": error}),
                    Step::Return(result) => return result,
                },
                Err(_) => json!({"event": {"data": String::from_utf8_lossy(&bytes)}}),
            },
            other => json!({"event": message_json(other)}),
        };
        if let Err(e) = send(&controller, report.to_string().as_bytes()) {
            warn!("probe: report lost: {}", String::from(e));
        }
    }
}

/// A message as JSON: `{"data": s}`, `{"tagged": {"sender", "ref",
/// "payload"}}`, `{"exit": {"sender", "reason"}}` or `{"down": {"sender",
/// "ref", "reason"}}`. Byte payloads are shown as lossy UTF-8 and reasons in
/// their serde form (`"normal"`, `{"shutdown": "…"}`, …).
pub(crate) fn message_json(message: Message) -> Value {
    match message {
        Message::Data(data) => json!({"data": String::from_utf8_lossy(&data)}),
        Message::Tagged(t) => json!({"tagged": {
            "sender": t.sender.to_string(),
            "ref": t.ref_,
            "payload": String::from_utf8_lossy(&t.payload),
        }}),
        Message::Exit(e) => json!({"exit": {
            "sender": e.sender.to_string(),
            "reason": e.reason,
        }}),
        Message::Down(d) => json!({"down": {
            "sender": d.sender.to_string(),
            "ref": d.ref_,
            "reason": d.reason,
        }}),
        Message::Upgrade => json!("upgrade"),
        Message::NodeUp(n) => json!({"node_up": {"id": n.id, "name": n.name}}),
        Message::NodeDown(n) => json!({"node_down": {"id": n.id, "name": n.name}}),
        // A function particle answers HTTP with `respond`: the probe
        // answers with the request it saw, and reports it too.
        Message::Http(req) => {
            let seen = json!({"http": {
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "body": String::from_utf8_lossy(&req.body),
            }});
            let answer = HttpResponse::json(200, &seen);
            if let Err(e) = respond(&req, answer) {
                warn!("probe: HTTP answer refused: {}", String::from(e));
            }
            seen
        }
    }
}
