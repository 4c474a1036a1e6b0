//! Conversions between the host's types and the WIT world's generated
//! types, all in one place: exit reasons, send and spawn errors, supervisor
//! errors, restart types and child counts. (Lowering a message needs the guest's resource table, so it
//! stays with receiving in host_recv.rs.) The host's types are the source of
//! truth; these only rename.

use crate::host::plasmoid::runtime::process::{ExitReason, SendError, SpawnError};
use crate::host::plasmoid::runtime::supervisor::{ChildCounts, Restart, SupervisorError};
use crate::node::{SendError as HostSendError, SpawnError as HostSpawnError};
use crate::reason::ExitReason as HostReason;
use crate::supervision::{ChildCounts as HostCounts, Restart as HostRestart, SupError};

impl From<HostReason> for ExitReason {
    fn from(r: HostReason) -> Self {
        match r {
            HostReason::Normal => ExitReason::Normal,
            HostReason::Kill => ExitReason::Kill,
            HostReason::Killed => ExitReason::Killed,
            HostReason::Shutdown(s) => ExitReason::Shutdown(s),
            HostReason::Exception(s) => ExitReason::Exception(s),
            HostReason::Noproc => ExitReason::Noproc,
            HostReason::Noconnection => ExitReason::Noconnection,
        }
    }
}

impl From<ExitReason> for HostReason {
    fn from(r: ExitReason) -> Self {
        match r {
            ExitReason::Normal => HostReason::Normal,
            ExitReason::Kill => HostReason::Kill,
            ExitReason::Killed => HostReason::Killed,
            ExitReason::Shutdown(s) => HostReason::Shutdown(s),
            ExitReason::Exception(s) => HostReason::Exception(s),
            ExitReason::Noproc => HostReason::Noproc,
            ExitReason::Noconnection => HostReason::Noconnection,
        }
    }
}

impl From<HostSendError> for SendError {
    fn from(e: HostSendError) -> Self {
        match e {
            HostSendError::Noproc => SendError::Noproc,
            HostSendError::MailboxFull => SendError::MailboxFull,
            HostSendError::Denied(s) => SendError::Denied(s),
            HostSendError::Noconnection => SendError::Noconnection,
        }
    }
}

impl From<HostSpawnError> for SpawnError {
    fn from(e: HostSpawnError) -> Self {
        match e {
            HostSpawnError::UnknownComponent(c) => SpawnError::UnknownComponent(c),
            HostSpawnError::NameTaken(n) => SpawnError::NameTaken(n),
            HostSpawnError::Denied(d) => SpawnError::Denied(d),
            HostSpawnError::Failed(f) => SpawnError::Failed(f),
        }
    }
}

impl From<SupError> for SupervisorError {
    fn from(e: SupError) -> Self {
        match e {
            SupError::NotASupervisor => SupervisorError::NotASupervisor,
            SupError::NotFound(s) => SupervisorError::NotFound(s),
            SupError::AlreadyPresent(s) => SupervisorError::AlreadyPresent(s),
            SupError::Running(s) => SupervisorError::Running(s),
            SupError::StartFailed(s) => SupervisorError::StartFailed(s),
            SupError::Invalid(s) => SupervisorError::Invalid(s),
            SupError::Denied(s) => SupervisorError::Denied(s),
            SupError::Unreachable(s) => SupervisorError::Invalid(s),
        }
    }
}

impl From<Restart> for HostRestart {
    fn from(r: Restart) -> Self {
        match r {
            Restart::Permanent => HostRestart::Permanent,
            Restart::Transient => HostRestart::Transient,
            Restart::Temporary => HostRestart::Temporary,
        }
    }
}

impl From<HostCounts> for ChildCounts {
    fn from(c: HostCounts) -> Self {
        // A supervisor with more than 4 billion children is not a case.
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        ChildCounts {
            specs: n(c.specs),
            active: n(c.active),
            supervisors: n(c.supervisors),
            workers: n(c.workers),
        }
    }
}
