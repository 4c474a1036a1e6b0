//! Ledger: account balances. Settles transfers for the gateways, records
//! each in the audit log and tells subscribers (the notifier).
//!
//! The balances live in the node's store (bucket `ledger`, key `state`):
//! each settled transfer is written there before the gateway gets its
//! answer, so a crash of the ledger, a restart or a `kill -9` of the node
//! loses no acknowledged order. Without a store (`plasmoid start`) it keeps
//! them in memory only, and says so. A hot swap hands the state to the new
//! version under the same pid (`#[gen_server(handoff)]`): the name, the
//! monitors of subscribers and the calls waiting in the mailbox stay.

use plasmoid_sdk::cast;
use plasmoid_sdk::prelude::*;
use plasmoid_sdk::store::{self, StoreError};
use serde::{Deserialize, Serialize};
use shop_proto::{AUDIT, AuditCast, LEDGER, LedgerCall, LedgerCast, LedgerReply, Notify, Order};
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(default)]
struct Init {
    accounts: Vec<String>,
    opening_balance: u64,
}

impl Default for Init {
    fn default() -> Self {
        Init {
            accounts: ["alice", "bob", "carol", "dave"].map(String::from).to_vec(),
            opening_balance: 1_000,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Ledger {
    balances: BTreeMap<String, u64>,
    settled: u64,
    /// Monitor reference and pid; handed over as the pid's text.
    #[serde(with = "pids")]
    subscribers: Vec<(u64, Pid)>,
    /// Whether the node has a store to keep the balances in.
    durable: bool,
}

/// What the ledger keeps in the store: one key, so a transfer is saved
/// whole or not at all.
#[derive(Serialize, Deserialize)]
struct Saved {
    balances: BTreeMap<String, u64>,
    settled: u64,
}

const STATE: &str = "state";

/// Pids travel as their printable form: a pid is a handle of this
/// instance, the text names the process to the next.
mod pids {
    use plasmoid_sdk::prelude::*;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[(u64, Pid)], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<(u64, String)> = v.iter().map(|(r, p)| (*r, p.to_string())).collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u64, Pid)>, D::Error> {
        let text = Vec::<(u64, String)>::deserialize(d)?;
        Ok(text
            .into_iter()
            .filter_map(|(r, p)| resolve(&p).map(|pid| (r, pid)))
            .collect())
    }
}

#[plasmoid_sdk::gen_server(handoff)]
impl Ledger {
    fn init(args: Option<Init>) -> Self {
        let args = args.unwrap_or_default();
        if let Err(e) = register(LEDGER) {
            exit(ExitReason::Exception(format!(
                "cannot register `{LEDGER}`: {e:?}"
            )));
        }
        if lookup(AUDIT).is_err() {
            // The manifest says ledger depends on audit; starting without it
            // would settle orders nobody records.
            exit(ExitReason::Exception("the audit log is not running".into()));
        }
        let (saved, durable) = match store::get::<Saved>(LEDGER, STATE) {
            Ok(saved) => (saved, true),
            Err(StoreError::NoStore) => {
                warn!("no store on this node: the balances live in memory only");
                (None, false)
            }
            Err(e) => exit(ExitReason::Exception(format!(
                "cannot read the balances from the store: {e}"
            ))),
        };
        let (balances, settled) = match saved {
            Some(s) => {
                info!(
                    "ledger reopened with {:?} ({} orders settled)",
                    s.balances, s.settled
                );
                (s.balances, s.settled)
            }
            None => {
                let balances = args
                    .accounts
                    .into_iter()
                    .map(|a| (a, args.opening_balance))
                    .collect();
                info!("ledger open with {:?}", balances);
                (balances, 0)
            }
        };
        Ledger {
            balances,
            settled,
            subscribers: Vec::new(),
            durable,
        }
    }

    fn handle_call(&mut self, request: LedgerCall) -> LedgerReply {
        match request {
            LedgerCall::Transfer(order) => self.transfer(order),
            LedgerCall::Balance(account) => {
                LedgerReply::Balance(self.balances.get(&account).copied())
            }
            LedgerCall::Totals => LedgerReply::Totals {
                settled: self.settled,
                sum: self.balances.values().sum(),
            },
            LedgerCall::Balances => LedgerReply::Balances(self.balances.clone()),
        }
    }

    fn handle_cast(&mut self, message: LedgerCast) -> CastResult {
        match message {
            LedgerCast::Subscribe(text) => match resolve(&text) {
                Some(pid) => match monitor(&pid) {
                    Ok(reference) => self.subscribers.push((reference, pid)),
                    Err(e) => warn!("cannot monitor subscriber {text}: {e:?}"),
                },
                None => warn!("subscriber {text} is not a pid"),
            },
        }
        CastResult::Continue
    }

    /// A subscriber went away: forget it (a restarted one subscribes again).
    fn handle_exit(&mut self, message: Message) -> CastResult {
        if let Message::Down(down) = message {
            self.subscribers
                .retain(|(reference, _)| *reference != down.ref_);
        }
        CastResult::Continue
    }
}

impl Ledger {
    fn save(&self) -> Result<(), StoreError> {
        if !self.durable {
            return Ok(());
        }
        store::put(
            LEDGER,
            STATE,
            &Saved {
                balances: self.balances.clone(),
                settled: self.settled,
            },
        )
    }

    fn transfer(&mut self, order: Order) -> LedgerReply {
        let (Some(&from), Some(&to)) =
            (self.balances.get(&order.from), self.balances.get(&order.to))
        else {
            return LedgerReply::Rejected(format!("unknown account in order #{}", order.id));
        };
        if order.from == order.to || from < order.amount {
            return LedgerReply::Rejected(format!(
                "order #{}: {} cannot pay {}",
                order.id, order.from, order.amount
            ));
        }
        let (from, to) = (from - order.amount, to + order.amount);
        self.balances.insert(order.from.clone(), from);
        self.balances.insert(order.to.clone(), to);
        self.settled += 1;
        // Saved before anyone hears of it. If the save fails its outcome is
        // unknown (a timed-out write may still land): the ledger restarts
        // and reloads what the store holds, and the gateway answers 503.
        if let Err(e) = self.save() {
            exit(ExitReason::Exception(format!(
                "order #{} not confirmed: saving the balances failed ({e}); restarting to reload them",
                order.id
            )));
        }
        let line = format!(
            "{} paid {} {} via {}",
            order.from, order.to, order.amount, order.gateway
        );
        match lookup(AUDIT) {
            Ok(audit) => {
                let _ = cast(
                    &audit,
                    &AuditCast::Record {
                        order: order.id,
                        line,
                    },
                );
            }
            Err(_) => warn!("audit log unavailable; order #{} not recorded", order.id),
        }
        for (_, pid) in &self.subscribers {
            let _ = cast(pid, &Notify(order.clone()));
        }
        if self.settled.is_multiple_of(25) {
            let sum: u64 = self.balances.values().sum();
            info!(
                "ledger: {} orders settled, money in the system {sum}",
                self.settled
            );
        }
        LedgerReply::Settled {
            from_balance: from,
            to_balance: to,
        }
    }
}
