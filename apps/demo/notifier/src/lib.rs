//! Notifier: tells the payee about each settled order. It subscribes to the
//! ledger when it starts (so it depends on the ledger, and its supervisor is
//! rest-for-one: a new ledger needs a new subscription), and it crashes now
//! and then on purpose (`crash_every`) so the supervisors visibly work.

use plasmoid_sdk::cast;
use plasmoid_sdk::prelude::*;
use serde::Deserialize;
use shop_proto::{LEDGER, LedgerCast, Notify};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Init {
    /// Crash on every this many notifications (0: never).
    crash_every: u64,
}

struct Notifier {
    crash_every: u64,
    sent: u64,
}

#[plasmoid_sdk::gen_server]
impl Notifier {
    fn init(args: Option<Init>) -> Self {
        let args = args.unwrap_or_default();
        let ledger = match lookup(LEDGER) {
            Ok(pid) => pid,
            Err(_) => exit(ExitReason::Exception("the ledger is not running".into())),
        };
        if let Err(e) = cast(&ledger, &LedgerCast::Subscribe(self_pid().to_string())) {
            exit(ExitReason::Exception(format!(
                "cannot subscribe to the ledger: {e:?}"
            )));
        }
        info!("notifier subscribed to the ledger");
        Notifier {
            crash_every: args.crash_every,
            sent: 0,
        }
    }

    fn handle_call(&mut self, _request: ()) -> u64 {
        self.sent
    }

    fn handle_cast(&mut self, Notify(order): Notify) -> CastResult {
        if self.crash_every > 0 && self.sent + 1 == self.crash_every {
            // A bug on purpose: the supervisor restarts us within a millisecond.
            exit(ExitReason::Exception(format!(
                "notifier tripped over order #{} of {} (simulated bug)",
                order.id, order.gateway
            )));
        }
        self.sent += 1;
        if self.sent.is_multiple_of(10) {
            info!(
                "notified {} of {} received (order #{}, {} sent)",
                order.to, order.amount, order.id, self.sent
            );
        }
        CastResult::Continue
    }
}
