//! Conveniences on the generated WIT types.
//!
//! wit-bindgen gives the error variants a `Display` that is just their
//! `Debug` form; particles usually bubble errors up as the `String` of
//! `start`'s `Err`, so the `From<…> for String` impls here produce short,
//! stable texts instead (`"noproc"`, `"denied: <why>"`, …) that read well in
//! an exit reason and that tests can match on.

use std::fmt;

use crate::{ExitReason, LinkError, Pid, RegistryError, SendError, SpawnError};

impl fmt::Display for Pid {
    /// The printable form `<node>.<seq>` that [`resolve`](crate::resolve) parses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Pid::to_string(self))
    }
}

impl PartialEq for Pid {
    /// Two handles are equal when they name the same process (a host call:
    /// handles are per-instance numbers, so comparing them locally is wrong).
    fn eq(&self, other: &Self) -> bool {
        self.equals(other)
    }
}

impl Eq for Pid {}

impl ExitReason {
    /// Whether this reason leaves non-trapping linked processes alive.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }
}

/// The one text form of an exit reason, the same the host uses in its logs,
/// `plasmoid status` and errors: `normal`, `shutdown`, `shutdown(why)`,
/// `exception(why)`, `killed` ….
impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Shutdown(why) if why.is_empty() => f.write_str("shutdown"),
            ExitReason::Shutdown(why) => write!(f, "shutdown({why})"),
            ExitReason::Exception(why) => write!(f, "exception({why})"),
            ExitReason::Noproc => f.write_str("noproc"),
            ExitReason::Noconnection => f.write_str("noconnection"),
        }
    }
}

impl From<SendError> for String {
    fn from(e: SendError) -> String {
        match e {
            SendError::Noproc => "noproc".into(),
            SendError::MailboxFull => "mailbox-full".into(),
            SendError::Denied(why) => format!("denied: {why}"),
            SendError::Noconnection => "noconnection".into(),
        }
    }
}

impl From<SpawnError> for String {
    fn from(e: SpawnError) -> String {
        match e {
            SpawnError::UnknownComponent(c) => format!("unknown-component: {c}"),
            SpawnError::NameTaken(n) => format!("name-taken: {n}"),
            SpawnError::Denied(why) => format!("denied: {why}"),
            SpawnError::Failed(why) => format!("failed: {why}"),
        }
    }
}

impl From<LinkError> for String {
    fn from(e: LinkError) -> String {
        match e {
            LinkError::Noproc => "noproc".into(),
            LinkError::Denied(why) => format!("denied: {why}"),
        }
    }
}

impl From<RegistryError> for String {
    fn from(e: RegistryError) -> String {
        match e {
            RegistryError::Taken => "taken".into(),
            RegistryError::NotFound => "not-found".into(),
            RegistryError::Denied(why) => format!("denied: {why}"),
        }
    }
}

impl From<crate::TimerError> for String {
    fn from(e: crate::TimerError) -> String {
        match e {
            crate::TimerError::Limit(why) => format!("timer limit: {why}"),
            crate::TimerError::Denied(why) => format!("denied: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_are_short_and_stable() {
        assert_eq!(String::from(SendError::MailboxFull), "mailbox-full");
        assert_eq!(
            String::from(SendError::Denied("policy".into())),
            "denied: policy"
        );
        assert_eq!(
            String::from(SpawnError::UnknownComponent("x".into())),
            "unknown-component: x"
        );
        assert_eq!(
            String::from(SpawnError::NameTaken("n".into())),
            "name-taken: n"
        );
        assert_eq!(String::from(LinkError::Noproc), "noproc");
        assert_eq!(String::from(RegistryError::NotFound), "not-found");
    }

    /// The same words as the host's `ExitReason` Display (runtime/src/reason.rs).
    #[test]
    fn exit_reasons_read_as_the_host_writes_them() {
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

    #[test]
    fn exit_reasons_use_the_documented_json_shapes() {
        let cases = [
            (ExitReason::Normal, r#""normal""#),
            (ExitReason::Killed, r#""killed""#),
            (ExitReason::Shutdown("bye".into()), r#"{"shutdown":"bye"}"#),
            (
                ExitReason::Exception("boom".into()),
                r#"{"exception":"boom"}"#,
            ),
            (ExitReason::Noconnection, r#""noconnection""#),
        ];
        for (reason, json) in cases {
            assert_eq!(serde_json::to_string(&reason).unwrap(), json);
            assert_eq!(serde_json::from_str::<ExitReason>(json).unwrap(), reason);
        }
    }
}
