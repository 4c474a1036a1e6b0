//! The probe's commands and how each one is carried out.

use std::hint::black_box;
use std::time::Duration;

use plasmoid_sdk::prelude::*;
use plasmoid_sdk::supervisor;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::message_json;

/// One command, as JSON: externally tagged, snake_case (`"self_pid"`,
/// `{"link": "<pid>"}`, `{"send": {"to": "<pid>", "data": "…"}}`, …).
/// Pid arguments are pid strings; one that does not resolve fails the
/// command with `"bad pid"`.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Cmd {
    /// → `"<pid>"` of the new particle (linked when `link`).
    Spawn {
        component: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        init: String,
        #[serde(default)]
        link: bool,
    },
    /// → `"<pid>"` of the new particle on `node`, linked to the probe.
    SpawnOn {
        node: String,
        component: String,
        #[serde(default)]
        init: String,
    },
    /// → `null`
    Link(String),
    /// → `null`
    Unlink(String),
    /// → the monitor reference
    Monitor(String),
    /// → whether the monitor was active
    Demonitor(u64),
    /// → the previous setting
    TrapExit(bool),
    /// → whether node events were on before
    MonitorNodes(bool),
    /// → `[{"id", "name"}]` of the connected nodes
    Nodes,
    /// → whether the probe was not in the group yet (`pg`)
    Join(String),
    /// → whether it was in the group
    Leave(String),
    /// → `["<pid>", …]`, sorted
    Members(String),
    /// → `["<pid>", …]` on this node, sorted
    LocalMembers(String),
    /// → how many members the data was sent to
    Broadcast {
        group: String,
        data: String,
    },
    /// → `null`
    RegisterGlobal(String),
    /// → `null`
    UnregisterGlobal(String),
    /// → `"<pid>"`
    LookupGlobal(String),
    /// → `null`
    Send {
        to: String,
        data: String,
    },
    /// → the timer's reference (`send-after`, or `send-interval` with
    /// `every`)
    SendAfter {
        to: String,
        ms: u64,
        data: String,
        #[serde(default)]
        every: bool,
    },
    /// → the milliseconds that were left, or `null`
    CancelTimer(u64),
    /// Opens a TCP connection (std's, over `wasi:sockets`), writes `send`,
    /// shuts down writing and reads to the end; → what it read, as text.
    Tcp {
        addr: String,
        send: String,
    },
    /// → `null`
    SendTagged {
        to: String,
        #[serde(rename = "ref")]
        reference: u64,
        data: String,
    },
    /// → `null`
    SendExit {
        to: String,
        reason: ExitReason,
    },
    /// → `null` on timeout, else the message (see `message_json`)
    Recv {
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// → `null` on timeout, else the message (see `message_json`)
    RecvRef {
        #[serde(rename = "ref")]
        reference: u64,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Exits with the reason; no reply.
    Exit(ExitReason),
    /// → `null`
    Register(String),
    /// → `null`
    Unregister(String),
    /// → `"<pid>"`
    Lookup(String),
    /// → `"<pid>"` or `null`
    Resolve(String),
    /// → `"<pid>"`
    SelfPid,
    /// → the registered name or `null`
    SelfName,
    /// → a fresh reference
    MakeRef,
    /// → `null`
    Log {
        level: LogLevel,
        msg: String,
    },
    /// → whether both pids name the same process (the host's `equals`)
    PidEquals(String, String),
    /// A gen_server call through the SDK: the request is a postcard
    /// `Vec<u8>` (what echo answers), the reply is reported as a string.
    Call {
        to: String,
        data: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    WhichChildren(String),
    CountChildren(String),
    StartChild {
        sup: String,
        id: String,
        component: String,
        #[serde(default)]
        init: String,
    },
    TerminateChild(String, String),
    RestartChild(String, String),
    DeleteChild(String, String),
    /// Loops forever without calling the runtime; no reply.
    Spin,
    /// Allocates and touches this many MiB, kept until the probe ends (so
    /// repeated commands add up); → the number of MiB.
    AllocMb(u64),
    /// Executes a wasm `unreachable`; no reply.
    Trap,
    /// Panics (which also traps); no reply.
    Panic,
    /// Returns `Err(s)` from `start`; no reply.
    ReturnErr(String),
    /// Returns `Ok(())` from `start`; no reply.
    ReturnOk,
    /// Sends `count` data messages `"0"`, `"1"`, … to `to`, stopping at the
    /// first error; → `{"sent": k, "error": null | "<error>"}`.
    Flood {
        to: String,
        count: u64,
    },
}

/// What the main loop does after a command.
pub(crate) enum Step {
    /// Send `{"ok": v}` / `{"err": e}` to the controller and go on.
    Reply(Result<Value, String>),
    /// Return this from `start`.
    Return(Result<(), String>),
}

/// The probe's own state.
pub(crate) struct Probe {
    /// Memory held for `alloc_mb`, so that it counts until the probe ends.
    hoard: Vec<Vec<u8>>,
}

const MIB: usize = 1 << 20;

impl Probe {
    pub(crate) fn new() -> Self {
        Self { hoard: Vec::new() }
    }

    /// Carries out one command.
    pub(crate) fn run(&mut self, command: Cmd) -> Step {
        match command {
            Cmd::ReturnErr(error) => Step::Return(Err(error)),
            Cmd::ReturnOk => Step::Return(Ok(())),
            command => Step::Reply(self.reply(command)),
        }
    }

    fn reply(&mut self, command: Cmd) -> Result<Value, String> {
        match command {
            Cmd::Spawn {
                component,
                name,
                init,
                link,
            } => {
                let spawn_fn = if link { spawn_link } else { spawn };
                let child = spawn_fn(&component, name.as_deref(), &init)?;
                Ok(json!(child.to_string()))
            }
            Cmd::SpawnOn {
                node,
                component,
                init,
            } => Ok(json!(spawn_on(&node, &component, &init)?.to_string())),
            Cmd::Link(target) => {
                link(&pid(&target)?)?;
                Ok(Value::Null)
            }
            Cmd::Unlink(target) => {
                unlink(&pid(&target)?);
                Ok(Value::Null)
            }
            Cmd::Monitor(target) => Ok(json!(monitor(&pid(&target)?)?)),
            Cmd::Demonitor(reference) => Ok(json!(demonitor(reference))),
            Cmd::TrapExit(enabled) => Ok(json!(trap_exit(enabled))),
            Cmd::MonitorNodes(enabled) => {
                plasmoid_sdk::monitor_nodes(enabled).map(|was| json!(was))
            }
            Cmd::Join(group) => plasmoid_sdk::pg::join(&group).map(|new| json!(new)),
            Cmd::Leave(group) => Ok(json!(plasmoid_sdk::pg::leave(&group))),
            Cmd::Members(group) => Ok(pids_json(plasmoid_sdk::pg::members(&group))),
            Cmd::LocalMembers(group) => Ok(pids_json(plasmoid_sdk::pg::local_members(&group))),
            Cmd::Broadcast { group, data } => {
                Ok(json!(plasmoid_sdk::pg::broadcast(&group, data.as_bytes())))
            }
            Cmd::RegisterGlobal(name) => {
                plasmoid_sdk::register_global(&name)?;
                Ok(Value::Null)
            }
            Cmd::UnregisterGlobal(name) => {
                plasmoid_sdk::unregister_global(&name)?;
                Ok(Value::Null)
            }
            Cmd::LookupGlobal(name) => Ok(json!(plasmoid_sdk::lookup_global(&name)?.to_string())),
            Cmd::Nodes => plasmoid_sdk::nodes().map(|ns| {
                json!(
                    ns.into_iter()
                        .map(|n| json!({"id": n.id, "name": n.name}))
                        .collect::<Vec<_>>()
                )
            }),
            Cmd::Send { to, data } => {
                send(&pid(&to)?, data.as_bytes())?;
                Ok(Value::Null)
            }
            Cmd::SendAfter {
                to,
                ms,
                data,
                every,
            } => {
                let (target, after) = (pid(&to)?, Duration::from_millis(ms));
                let reference = if every {
                    send_interval(&target, after, data.as_bytes())?
                } else {
                    send_after(&target, after, data.as_bytes())?
                };
                Ok(json!(reference))
            }
            Cmd::Tcp { addr, send } => {
                use std::io::{Read, Write};
                let mut stream = std::net::TcpStream::connect(addr.as_str())
                    .map_err(|e| format!("connect {addr}: {e} ({:?})", e.kind()))?;
                stream
                    .write_all(send.as_bytes())
                    .map_err(|e| format!("write: {e}"))?;
                stream
                    .shutdown(std::net::Shutdown::Write)
                    .map_err(|e| format!("shutdown: {e}"))?;
                let mut got = String::new();
                stream
                    .read_to_string(&mut got)
                    .map_err(|e| format!("read: {e}"))?;
                Ok(json!(got))
            }
            Cmd::CancelTimer(reference) => {
                Ok(json!(cancel_timer(reference).map(|d| d.as_millis() as u64)))
            }
            Cmd::SendTagged {
                to,
                reference,
                data,
            } => {
                send_tagged(&pid(&to)?, reference, data.as_bytes())?;
                Ok(Value::Null)
            }
            Cmd::SendExit { to, reason } => {
                send_exit(&pid(&to)?, reason)?;
                Ok(Value::Null)
            }
            Cmd::Recv { timeout_ms } => Ok(received(recv(timeout_ms.map(Duration::from_millis)))),
            Cmd::RecvRef {
                reference,
                timeout_ms,
            } => Ok(received(recv_ref(
                reference,
                timeout_ms.map(Duration::from_millis),
            ))),
            Cmd::Exit(reason) => exit(reason),
            Cmd::Register(name) => {
                register(&name)?;
                Ok(Value::Null)
            }
            Cmd::Unregister(name) => {
                unregister(&name)?;
                Ok(Value::Null)
            }
            Cmd::Lookup(name) => Ok(json!(lookup(&name)?.to_string())),
            Cmd::Resolve(text) => Ok(json!(resolve(&text).map(|p| p.to_string()))),
            Cmd::SelfPid => Ok(json!(self_pid().to_string())),
            Cmd::SelfName => Ok(json!(self_name())),
            Cmd::MakeRef => Ok(json!(make_ref())),
            Cmd::Log { level, msg } => {
                log(level, &msg);
                Ok(Value::Null)
            }
            Cmd::PidEquals(a, b) => Ok(json!(pid(&a)?.equals(&pid(&b)?))),
            Cmd::Call {
                to,
                data,
                timeout_ms,
            } => {
                let timeout = timeout_ms.map(Duration::from_millis);
                let request = data.into_bytes();
                match plasmoid_sdk::call::<Vec<u8>, Vec<u8>>(&pid(&to)?, &request, timeout) {
                    Ok(reply) => Ok(json!(String::from_utf8_lossy(&reply))),
                    Err(e) => Err(format!("{e}")),
                }
            }
            Cmd::WhichChildren(s) => {
                let rows = supervisor::which_children(&pid(&s)?)?;
                let rows: Vec<Value> = rows
                    .into_iter()
                    .map(|c| {
                        json!({"id": c.id, "pid": c.pid.map(|p| p.to_string()),
                               "supervisor": c.supervisor, "restarts": c.restarts})
                    })
                    .collect();
                Ok(json!(rows))
            }
            Cmd::CountChildren(s) => {
                let c = supervisor::count_children(&pid(&s)?)?;
                Ok(json!({"specs": c.specs, "active": c.active,
                          "supervisors": c.supervisors, "workers": c.workers}))
            }
            Cmd::StartChild {
                sup,
                id,
                component,
                init,
            } => {
                let spec = supervisor::ChildSpec {
                    id,
                    component,
                    init,
                    restart: supervisor::Restart::Permanent,
                    shutdown_ms: Some(5000),
                };
                Ok(json!(
                    supervisor::start_child(&pid(&sup)?, &spec)?.to_string()
                ))
            }
            Cmd::TerminateChild(s, id) => {
                supervisor::terminate_child(&pid(&s)?, &id)?;
                Ok(Value::Null)
            }
            Cmd::RestartChild(s, id) => Ok(json!(
                supervisor::restart_child(&pid(&s)?, &id)?.to_string()
            )),
            Cmd::DeleteChild(s, id) => {
                supervisor::delete_child(&pid(&s)?, &id)?;
                Ok(Value::Null)
            }
            Cmd::Spin => spin(),
            Cmd::AllocMb(mib) => {
                self.alloc_mb(mib);
                Ok(json!(mib))
            }
            Cmd::Trap => trap(),
            Cmd::Panic => panic!("probe panic"),
            Cmd::Flood { to, count } => Ok(flood(&pid(&to)?, count)),
            Cmd::ReturnErr(_) | Cmd::ReturnOk => unreachable!("handled in run"),
        }
    }

    /// Grows the heap one MiB at a time, writing every byte (so every page is
    /// really committed), until `mib` MiB are held or the memory limit ends
    /// the particle: one MiB at a time so that the limit is hit wherever it
    /// lies, never by a single impossible request.
    fn alloc_mb(&mut self, mib: u64) {
        for _ in 0..mib {
            self.hoard.push(black_box(vec![1u8; MIB]));
        }
    }
}

/// Resolves a pid argument, failing with the documented `"bad pid"`.
fn pid(text: &str) -> Result<Pid, String> {
    resolve(text).ok_or_else(|| "bad pid".to_string())
}

fn received(message: Option<Message>) -> Value {
    message.map_or(Value::Null, message_json)
}

fn flood(to: &Pid, count: u64) -> Value {
    let mut error = None;
    let mut sent = 0u64;
    for i in 0..count {
        if let Err(e) = send(to, i.to_string().as_bytes()) {
            error = Some(String::from(e));
            break;
        }
        sent += 1;
    }
    json!({"sent": sent, "error": error})
}

/// Burns CPU forever without touching the runtime: only preemption (epoch
/// interruption) or a kill can end it. `black_box` keeps the loop from
/// being optimised into nothing.
fn spin() -> ! {
    let mut i = 0u64;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

/// A wasm trap, the way a guest bug ends a particle.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn pids_json(pids: Vec<Pid>) -> Value {
    let mut all: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    all.sort();
    json!(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Cmd {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn command_shapes() {
        assert_eq!(parse(r#""self_pid""#), Cmd::SelfPid);
        assert_eq!(parse(r#"{"make_ref": null}"#), Cmd::MakeRef);
        assert_eq!(
            parse(r#"{"spawn": {"component": "c", "name": null, "init": "", "link": true}}"#),
            Cmd::Spawn {
                component: "c".into(),
                name: None,
                init: String::new(),
                link: true
            }
        );
        assert_eq!(
            parse(r#"{"send_tagged": {"to": "a.1", "ref": 9, "data": "x"}}"#),
            Cmd::SendTagged {
                to: "a.1".into(),
                reference: 9,
                data: "x".into()
            }
        );
        assert_eq!(
            parse(r#"{"send_exit": {"to": "a.1", "reason": {"shutdown": "s"}}}"#),
            Cmd::SendExit {
                to: "a.1".into(),
                reason: ExitReason::Shutdown("s".into())
            }
        );
        assert_eq!(parse(r#"{"exit": "kill"}"#), Cmd::Exit(ExitReason::Kill));
        assert_eq!(
            parse(r#"{"recv_ref": {"ref": 3, "timeout_ms": null}}"#),
            Cmd::RecvRef {
                reference: 3,
                timeout_ms: None
            }
        );
        assert_eq!(
            parse(r#"{"log": {"level": "info", "msg": "m"}}"#),
            Cmd::Log {
                level: LogLevel::Info,
                msg: "m".into()
            }
        );
        assert_eq!(
            parse(r#"{"pid_equals": ["a.1", "a.2"]}"#),
            Cmd::PidEquals("a.1".into(), "a.2".into())
        );
        assert_eq!(parse(r#"{"alloc_mb": 4}"#), Cmd::AllocMb(4));
        assert_eq!(parse(r#"{"return_err": "e"}"#), Cmd::ReturnErr("e".into()));
        assert!(serde_json::from_str::<Cmd>("hello").is_err());
        assert!(serde_json::from_str::<Cmd>(r#"{"nope": 1}"#).is_err());
    }
}
