//! The messages the shop's components exchange (postcard-encoded by the
//! SDK's `call`/`cast`). Pids travel as their printable form.

use serde::{Deserialize, Serialize};

/// Registered names: components find each other through the registry, so a
/// restarted particle (new pid) is found again without any wiring.
pub const LEDGER: &str = "ledger";
pub const AUDIT: &str = "audit";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    /// The gateway that took the order, e.g. `gateway-eu`.
    pub gateway: String,
    pub from: String,
    pub to: String,
    pub amount: u64,
}

/// Requests to the ledger (a gen_server call).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LedgerCall {
    Transfer(Order),
    Balance(String),
    /// Orders settled and the sum of all balances (constant if no money is lost).
    Totals,
    /// Every account's balance.
    Balances,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerReply {
    Settled { from_balance: u64, to_balance: u64 },
    Rejected(String),
    Balance(Option<u64>),
    Totals { settled: u64, sum: u64 },
    Balances(std::collections::BTreeMap<String, u64>),
}

/// Casts to the ledger.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LedgerCast {
    /// Send me a [`Notify`] for every settled order (pid as text).
    Subscribe(String),
}

/// Cast to subscribers for each settled order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notify(pub Order);

/// Casts to the audit log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AuditCast {
    Record { order: u64, line: String },
}

/// Calls to the audit log: how many entries it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AuditCall {
    Count,
}
