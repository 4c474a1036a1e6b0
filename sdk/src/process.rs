//! Thin wrappers over the imported `process` interface.
//!
//! They exist so particle code speaks Rust (`Duration`, owned reasons, `!` for
//! `exit`) instead of the WIT calling conventions, and so the raw bindings can
//! change shape without touching user code. Each wrapper is one host call;
//! semantics (authorization, links, selective receive) belong to the host.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::TimerError;
use crate::bindings::plasmoid::runtime::process as wit;
use crate::{ExitReason, LinkError, LogLevel, Message, Pid, RegistryError, SendError, SpawnError};

/// This particle's pid.
pub fn self_pid() -> Pid {
    wit::self_pid()
}

/// The name this particle is registered under, if any.
pub fn self_name() -> Option<String> {
    wit::self_name()
}

/// A reference unique on this node, for matching a reply to its request.
pub fn make_ref() -> u64 {
    wit::make_ref()
}

/// Starts a particle of `component`, registered as `name` if given; `init` is
/// handed to its `start` (JSON by convention, see [`to_init_args`](crate::to_init_args)).
pub fn spawn(component: &str, name: Option<&str>, init: &str) -> Result<Pid, SpawnError> {
    wit::spawn(component, name, init)
}

/// Like [`spawn`], but links the child in the same step so that it cannot die
/// unobserved between the spawn and a separate `link`.
pub fn spawn_link(component: &str, name: Option<&str>, init: &str) -> Result<Pid, SpawnError> {
    wit::spawn_link(component, name, init)
}

/// Spawns and links on another node of the mesh, by node name (as the
/// release's `[nodes]` names them) or node id; returns once the particle has
/// started there.
pub fn spawn_on(node: &str, component: &str, init: &str) -> Result<Pid, SpawnError> {
    wit::spawn_on(node, component, init)
}

/// Ends this particle with `reason`; linked processes and monitors are told.
pub fn exit(reason: ExitReason) -> ! {
    wit::exit(&reason);
    // The host never resumes a particle that called `exit`; if it ever did,
    // trapping is the only honest way to stop.
    unreachable!("the runtime returned from exit")
}

/// Sends an exit signal to `target` (Erlang's `exit/2`).
pub fn send_exit(target: &Pid, reason: ExitReason) -> Result<(), SendError> {
    wit::send_exit(target, &reason)
}

/// Erlang's `send_after`: `data` reaches `target` as a `Message::Data`
/// after `after`. Returns the timer's reference for [`cancel_timer`]. The
/// timers a particle set end with it.
pub fn send_after(target: &Pid, after: Duration, data: &[u8]) -> Result<u64, TimerError> {
    wit::send_after(target, millis(after), data)
}

/// `data` to `target` every `every` (at least 1 ms) until cancelled.
pub fn send_interval(target: &Pid, every: Duration, data: &[u8]) -> Result<u64, TimerError> {
    wit::send_interval(target, millis(every), data)
}

/// Erlang's `cancel_timer`: the time that was left, or `None` if the timer
/// already fired or is unknown.
pub fn cancel_timer(reference: u64) -> Option<Duration> {
    wit::cancel_timer(reference).map(Duration::from_millis)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Queues `data` in `target`'s mailbox as a `Message::Data`.
pub fn send(target: &Pid, data: &[u8]) -> Result<(), SendError> {
    wit::send(target, data)
}

/// Queues a `Message::Tagged` carrying `reference`: the request half of
/// request/reply; the receiver answers with the same reference.
pub fn send_tagged(target: &Pid, reference: u64, data: &[u8]) -> Result<(), SendError> {
    wit::send_tagged(target, reference, data)
}

/// The oldest message in the mailbox, waiting at most `timeout` (`None`
/// waits forever). `None` means the timeout passed.
pub fn recv(timeout: Option<Duration>) -> Option<Message> {
    wit::recv(timeout_ms(timeout))
}

/// Selective receive: the oldest `Tagged` or `Down` message carrying
/// `reference`; everything else stays queued, in order.
pub fn recv_ref(reference: u64, timeout: Option<Duration>) -> Option<Message> {
    wit::recv_ref(reference, timeout_ms(timeout))
}

/// Waits for the next `Data` message that decodes (postcard) as `T`.
///
/// Other messages, including data that does not decode, are consumed and
/// dropped with a debug log: this is the typed convenience behind
/// [`recv!`](crate::recv!), for particles that expect one kind of message.
/// `timeout` bounds the whole wait, not each message.
pub fn recv_as<T: DeserializeOwned>(timeout: Option<Duration>) -> Option<T> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match recv(remaining)? {
            Message::Data(bytes) => match crate::decode::<T>(&bytes) {
                Ok(value) => return Some(value),
                Err(e) => log(
                    LogLevel::Debug,
                    &format!(
                        "recv!: skipped {} bytes that are not a {}: {e}",
                        bytes.len(),
                        std::any::type_name::<T>()
                    ),
                ),
            },
            other => log(
                LogLevel::Debug,
                &format!("recv!: skipped a non-data message: {other:?}"),
            ),
        }
    }
}

/// Parses the printable form of a pid (`<node>.<seq>`, from `Pid::to_string`).
pub fn resolve(pid: &str) -> Option<Pid> {
    wit::resolve(pid)
}

/// Registers this particle under `name`.
pub fn register(name: &str) -> Result<(), RegistryError> {
    wit::register(name)
}

/// Removes the registration `name`.
pub fn unregister(name: &str) -> Result<(), RegistryError> {
    wit::unregister(name)
}

/// The pid registered under `name`.
pub fn lookup(name: &str) -> Result<Pid, RegistryError> {
    wit::lookup(name)
}

/// Links both ways: an abnormal exit of either ends the other, unless it
/// traps exits.
pub fn link(target: &Pid) -> Result<(), LinkError> {
    wit::link(target)
}

/// Removes a link (a no-op if there was none).
pub fn unlink(target: &Pid) {
    wit::unlink(target)
}

/// Watches `target`: one `Down` message with the returned reference when it
/// ends (at once, with `noproc`, if it is already dead).
pub fn monitor(target: &Pid) -> Result<u64, LinkError> {
    wit::monitor(target)
}

/// Stops watching; a `Down` already queued for `reference` is removed.
/// Returns whether the monitor was still active.
pub fn demonitor(reference: u64) -> bool {
    wit::demonitor(reference)
}

/// Erlang's `global:register_name`: this particle holds `name` in the
/// whole cluster; `Err(Taken)` when another particle does. See the WIT for
/// how conflicts after a partition are settled.
pub fn register_global(name: &str) -> Result<(), RegistryError> {
    wit::register_global(name)
}

/// Gives up a cluster-wide name this particle holds.
pub fn unregister_global(name: &str) -> Result<(), RegistryError> {
    wit::unregister_global(name)
}

/// Who holds `name` cluster-wide.
pub fn lookup_global(name: &str) -> Result<Pid, RegistryError> {
    wit::lookup_global(name)
}

/// Erlang's `net_kernel:monitor_nodes`: with `true`, a `Message::NodeUp` or
/// `Message::NodeDown` arrives each time a node of the cluster connects or
/// is lost. Returns whether this particle was subscribed before; `Err` when
/// Cedar denies `monitor_nodes`.
pub fn monitor_nodes(enabled: bool) -> Result<bool, String> {
    wit::monitor_nodes(enabled)
}

/// The other nodes connected now (Erlang's `nodes()`).
pub fn nodes() -> Result<Vec<crate::NodeInfo>, String> {
    wit::nodes()
}

/// Receives exit signals as `Message::Exit` instead of dying of them.
/// Returns the previous setting.
pub fn trap_exit(enabled: bool) -> bool {
    wit::trap_exit(enabled)
}

/// Writes `message` to the node's log, attributed to this particle.
pub fn log(level: LogLevel, message: &str) {
    wit::log(level, message)
}

/// Milliseconds for the host, rounded up so that a short but non-zero
/// timeout never turns into a non-blocking poll; saturates at `u64::MAX`.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| {
        let ms = t.as_millis() + u128::from(t.subsec_nanos() % 1_000_000 != 0);
        u64::try_from(ms).unwrap_or(u64::MAX)
    })
}

/// Hot swap: declare that this particle can hand its state to a new version
/// (`recv` then returns [`Message::Upgrade`] when one is installed). Done
/// for you by `#[gen_server(handoff)]`.
pub fn set_upgradable(enabled: bool) {
    wit::set_upgradable(enabled)
}

/// Hot swap: hand `state` to the new version; return from `start` next.
pub fn handoff(state: &[u8]) {
    wit::handoff(state)
}

/// Hot swap: in a new version, the state the previous one handed over.
pub fn take_handoff() -> Option<Vec<u8>> {
    wit::take_handoff()
}

#[cfg(test)]
mod tests {
    use super::timeout_ms;
    use std::time::Duration;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(None), None);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), Some(0));
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), Some(1));
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), Some(5));
        assert_eq!(timeout_ms(Some(Duration::from_micros(5_001))), Some(6));
        assert_eq!(timeout_ms(Some(Duration::MAX)), Some(u64::MAX));
    }
}
