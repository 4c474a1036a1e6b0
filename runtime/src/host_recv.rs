//! Receiving, host side: a particle's wait in `recv`/`recv-ref` (with the
//! start acknowledgement its first wait sends) and turning node messages
//! into the guest's `message` values.

use crate::host::plasmoid::runtime::process::{
    DownMessage, ExitMessage, Message, NodeInfo, TaggedMessage,
};
use crate::particle::ParticleState;
use crate::reason::Msg;
use std::time::Duration;

impl ParticleState {
    fn node_info(&self, id: crate::pid::NodeId) -> NodeInfo {
        NodeInfo {
            id: id.to_hex(),
            name: self.node.node_name(id).unwrap_or_default(),
        }
    }

    pub(crate) fn lower(&mut self, msg: Msg) -> wasmtime::Result<Message> {
        Ok(match msg {
            Msg::Data(d) => Message::Data(d),
            Msg::Upgrade => Message::Upgrade,
            Msg::NodeUp(id) => Message::NodeUp(self.node_info(id)),
            Msg::NodeDown(id) => Message::NodeDown(self.node_info(id)),
            Msg::Http(r) => {
                let r = *r;
                Message::Http(crate::host::plasmoid::runtime::http::HttpRequest {
                    method: r.method,
                    path: r.path,
                    query: r.query,
                    headers: r.headers,
                    body: r.body,
                    ref_: r.reference,
                })
            }
            Msg::Tagged {
                sender,
                reference,
                payload,
            } => Message::Tagged(TaggedMessage {
                sender: self.pid_handle(sender)?,
                ref_: reference,
                payload,
            }),
            Msg::Exit { sender, reason } => Message::Exit(ExitMessage {
                sender: self.pid_handle(sender)?,
                reason: reason.into(),
            }),
            Msg::Down {
                sender,
                reference,
                reason,
            } => Message::Down(DownMessage {
                sender: self.pid_handle(sender)?,
                ref_: reference,
                reason: reason.into(),
            }),
        })
    }

    pub(crate) async fn wait(
        &mut self,
        reference: Option<u64>,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Option<Message>> {
        let mut msg = self.proc.mailbox.try_take(reference);
        if msg.is_none() && timeout_ms != Some(0) {
            // A timeout too large to represent is a wait without deadline.
            let deadline = timeout_ms
                .and_then(|ms| tokio::time::Instant::now().checked_add(Duration::from_millis(ms)));
            if !self.settled {
                // Counted once per particle, not per wait: a shared counter
                // touched on every hop would bounce between cores.
                self.settled = true;
                if let Some((to, reference)) = self.ack.take() {
                    let started = Msg::Tagged {
                        sender: self.proc.pid,
                        reference,
                        payload: Vec::new(),
                    };
                    match self.node.lookup(to) {
                        // A start given up on already: this particle is
                        // being killed; nobody waits for the word.
                        Some(_) if self.node.late_ack(reference) => {}
                        Some(t) => {
                            let _ = t.mailbox.push(started, true);
                        }
                        // A supervisor on another node started us.
                        // (Kept cancellable until that supervisor has
                        // the word: it may not arrive, see start.rs.)
                        None => {
                            let _ = self.node.send(to, started);
                        }
                    }
                }
                self.node
                    .started
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            msg = self.proc.mailbox.take(reference, deadline).await;
        }
        // Back at a receive point with work (or after a real wait): the CPU
        // budget starts over. An empty poll does not count, or a busy loop
        // polling with timeout 0 would never hit its budget.
        if msg.is_some() || timeout_ms != Some(0) {
            self.cpu.fresh = true;
        }
        msg.map(|m| self.lower(m)).transpose()
    }
}
