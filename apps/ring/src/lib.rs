//! Ring: the classic Erlang process-ring benchmark, plus two more probes of
//! raw messaging cost (`self_call`) and of an idle particle's footprint.
//!
//! Init args (JSON, externally tagged, snake_case):
//! - `{"orchestrator": {"procs": N, "msgs": M, "report_to": "<pid>" | null}}`
//!   (or the short `{"orchestrator": [N, M]}`): builds a ring of N processes
//!   including itself, passes one token around it M times (N×M hops, timed
//!   inside the guest, spawning excluded), stops the workers, logs the figures
//!   and, with `report_to`, sends it `{"procs","msgs","hops","elapsed_ns"}` as
//!   JSON bytes. An optional `"component"` names the component to spawn the
//!   workers from (default `"ring"`).
//! - `{"worker": {"next": "<pid>"}}`: forwards tokens to `next`.
//! - `{"self_call": {"iters": K, "report_to": "<pid>"}}`: K round trips
//!   through its own mailbox; reports `{"iters","elapsed_ns"}`.
//! - `"idle"` / `{"idle": null}`: waits until it receives the data `stop`.
//!
//! Ring messages are single-byte `Data` messages: [`TOKEN`] and [`STOP`]
//! (the postcard encoding of a `enum { Token, Stop }`).

use std::time::{Duration, Instant};

use plasmoid_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The token passed around the ring.
const TOKEN: u8 = 0;
/// Sent around once after the rounds: each worker forwards it and exits.
const STOP: u8 = 1;

/// What this particle is asked to be.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Init {
    Orchestrator(Orchestrator),
    Worker { next: String },
    SelfCall { iters: u64, report_to: String },
    Idle,
}

/// The orchestrator's settings, in the named or the short (seed) form.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Orchestrator {
    Named {
        procs: u64,
        msgs: u64,
        #[serde(default)]
        report_to: Option<String>,
        #[serde(default = "default_component")]
        component: String,
    },
    Short(u64, u64),
}

fn default_component() -> String {
    "ring".to_string()
}

#[plasmoid_sdk::main]
fn start(init: Init) -> Result<(), String> {
    match init {
        Init::Orchestrator(Orchestrator::Named {
            procs,
            msgs,
            report_to,
            component,
        }) => orchestrate(procs, msgs, report_to.as_deref(), &component),
        Init::Orchestrator(Orchestrator::Short(procs, msgs)) => {
            orchestrate(procs, msgs, None, &default_component())
        }
        Init::Worker { next } => work(&next),
        Init::SelfCall { iters, report_to } => self_call(iters, &report_to),
        Init::Idle => idle(),
    }
}

/// Builds the ring, runs the rounds and reports.
fn orchestrate(
    procs: u64,
    msgs: u64,
    report_to: Option<&str>,
    component: &str,
) -> Result<(), String> {
    if procs == 0 {
        return Err("a ring needs at least one process (procs >= 1)".into());
    }
    let report_to = report_to.map(resolve_pid).transpose()?;

    // Built backwards: each worker is spawned knowing its successor, the
    // first one spawned closing the ring onto the orchestrator. Linked, so
    // that a crashing worker takes the benchmark down instead of hanging it.
    let mut next = self_pid();
    for _ in 1..procs {
        let init = to_init_args(&Init::Worker {
            next: next.to_string(),
        });
        next = spawn_link(component, None, &init)?;
    }

    let started = Instant::now();
    for _ in 0..msgs {
        send(&next, &[TOKEN])?;
        wait_for(TOKEN);
    }
    let elapsed = started.elapsed();

    // The stop token coming back means every worker has forwarded it.
    send(&next, &[STOP])?;
    wait_for(STOP);

    let hops = procs.saturating_mul(msgs);
    let elapsed_ns = nanos(elapsed);
    let (ns_per_hop, hops_per_s) = if hops == 0 || elapsed_ns == 0 {
        (0.0, 0.0)
    } else {
        let ns_per_hop = elapsed_ns as f64 / hops as f64;
        (ns_per_hop, 1e9 / ns_per_hop)
    };
    info!("ring: {procs} procs x {msgs} msgs: {ns_per_hop:.1} ns/hop, {hops_per_s:.0} hops/s");
    if let Some(to) = report_to {
        let report = json!({"procs": procs, "msgs": msgs, "hops": hops, "elapsed_ns": elapsed_ns});
        send(&to, report.to_string().as_bytes())?;
    }
    Ok(())
}

/// A ring member: forwards every token, and the stop token before exiting.
fn work(next: &str) -> Result<(), String> {
    let next = resolve_pid(next)?;
    loop {
        match recv(None) {
            Some(Message::Data(data)) if data == [TOKEN] => send(&next, &[TOKEN])?,
            Some(Message::Data(data)) if data == [STOP] => {
                if let Err(e) = send(&next, &[STOP]) {
                    debug!("ring worker: stop not forwarded: {}", String::from(e));
                }
                return Ok(());
            }
            other => debug!("ring worker: ignored {other:?}"),
        }
    }
}

/// Waits for the one-byte ring message `byte`, ignoring anything else.
fn wait_for(byte: u8) {
    loop {
        match recv(None) {
            Some(Message::Data(data)) if data == [byte] => return,
            other => debug!("ring orchestrator: ignored {other:?}"),
        }
    }
}

/// K sends to itself, each followed by a receive: the cost of one message
/// through the runtime without any scheduling between particles.
fn self_call(iters: u64, report_to: &str) -> Result<(), String> {
    let report_to = resolve_pid(report_to)?;
    let me = self_pid();
    let started = Instant::now();
    for i in 0..iters {
        send(&me, &i.to_le_bytes())?;
        // Mailboxes are FIFO, so this is normally the message just sent; any
        // other message would cost the same to receive, so it is not checked.
        let _ = recv(None);
    }
    let elapsed_ns = nanos(started.elapsed());
    let report = json!({"iters": iters, "elapsed_ns": elapsed_ns});
    send(&report_to, report.to_string().as_bytes())?;
    Ok(())
}

/// Does nothing until told to stop: used to measure what an idle particle
/// costs the node.
fn idle() -> Result<(), String> {
    loop {
        if let Some(Message::Data(data)) = recv(None)
            && data == b"stop"
        {
            return Ok(());
        }
    }
}

fn resolve_pid(pid: &str) -> Result<Pid, String> {
    resolve(pid).ok_or_else(|| format!("not a pid: {pid:?}"))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Init {
        plasmoid_sdk::from_init_args(json).unwrap()
    }

    #[test]
    fn init_shapes() {
        assert_eq!(
            parse(r#"{"orchestrator": {"procs": 3, "msgs": 2, "report_to": null}}"#),
            Init::Orchestrator(Orchestrator::Named {
                procs: 3,
                msgs: 2,
                report_to: None,
                component: "ring".into()
            })
        );
        assert_eq!(
            parse(r#"{"orchestrator": [100, 1000]}"#),
            Init::Orchestrator(Orchestrator::Short(100, 1000))
        );
        assert_eq!(
            parse(r#"{"worker": {"next": "n.1"}}"#),
            Init::Worker { next: "n.1".into() }
        );
        assert_eq!(
            parse(r#"{"self_call": {"iters": 5, "report_to": "n.1"}}"#),
            Init::SelfCall {
                iters: 5,
                report_to: "n.1".into()
            }
        );
        assert_eq!(parse(r#""idle""#), Init::Idle);
        assert_eq!(parse(r#"{"idle": null}"#), Init::Idle);
    }

    #[test]
    fn worker_init_round_trips() {
        let init = Init::Worker { next: "a.7".into() };
        assert_eq!(parse(&to_init_args(&init)), init);
    }
}
