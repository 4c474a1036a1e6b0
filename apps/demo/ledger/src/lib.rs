//! Ledger: account balances. Settles transfers for the gateways, records
//! each in the audit log and tells subscribers (the notifier).

use plasmoid_sdk::cast;
use plasmoid_sdk::prelude::*;
use serde::Deserialize;
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

struct Ledger {
    balances: BTreeMap<String, u64>,
    settled: u64,
    subscribers: Vec<(u64, Pid)>,
}

#[plasmoid_sdk::gen_server]
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
        let balances = args
            .accounts
            .into_iter()
            .map(|a| (a, args.opening_balance))
            .collect();
        info!("ledger open with {:?}", balances);
        Ledger {
            balances,
            settled: 0,
            subscribers: Vec::new(),
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
