//! Exit reasons and messages as the host sees them.

use crate::pid::{NodeId, Pid};
use std::fmt;

/// Why a process ended, with Erlang's meaning for each variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExitReason {
    Normal,
    /// Only ever a signal: `send-exit(pid, kill)`; the target dies as `Killed`.
    Kill,
    Killed,
    Shutdown(String),
    Exception(String),
    Noproc,
    Noconnection,
}

impl ExitReason {
    /// Whether linked processes that do not trap exits die with this reason.
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Shutdown(s) if s.is_empty() => f.write_str("shutdown"),
            ExitReason::Shutdown(s) => write!(f, "shutdown({s})"),
            ExitReason::Exception(s) => write!(f, "exception({s})"),
            ExitReason::Noproc => f.write_str("noproc"),
            ExitReason::Noconnection => f.write_str("noconnection"),
        }
    }
}

/// One entry of a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    Data(Vec<u8>),
    Tagged {
        sender: Pid,
        reference: u64,
        payload: Vec<u8>,
    },
    /// An exit signal delivered as a message to a process trapping exits.
    Exit {
        sender: Pid,
        reason: ExitReason,
    },
    /// A monitor fired.
    Down {
        sender: Pid,
        reference: u64,
        reason: ExitReason,
    },
    /// Hot swap: hand your state over (to particles that said they can).
    Upgrade,
    /// An HTTP request routed to this process (see http.rs); it never
    /// crosses nodes.
    Http(Box<crate::http::HttpRequest>),
    /// A node of the cluster is connected (to particles that monitor nodes).
    NodeUp(NodeId),
    /// The connection to a node is lost (to particles that monitor nodes).
    NodeDown(NodeId),
}

impl Msg {
    /// Whether a selective receive on `reference` takes this message.
    pub fn matches_ref(&self, reference: u64) -> bool {
        match self {
            Msg::Tagged { reference: r, .. } | Msg::Down { reference: r, .. } => *r == reference,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExitReason;

    /// The one text form; the SDK's Display says the same (sdk/src/types.rs).
    #[test]
    fn exit_reasons_have_one_text_form() {
        let cases = [
            (ExitReason::Normal, "normal"),
            (ExitReason::Kill, "kill"),
            (ExitReason::Killed, "killed"),
            (ExitReason::Shutdown(String::new()), "shutdown"),
            (ExitReason::Shutdown("bye".into()), "shutdown(bye)"),
            (ExitReason::Exception("boom".into()), "exception(boom)"),
            (ExitReason::Noproc, "noproc"),
            (ExitReason::Noconnection, "noconnection"),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}
