//! Audit (the Rust one, a fixture for the tests; the demo runs
//! apps/demo/audit/app.py): an append-only log of what the ledger settled. It starts first
//! (nothing depends on it being absent) and registers as `audit`.

use plasmoid_sdk::prelude::*;
use shop_proto::{AUDIT, AuditCall, AuditCast};

struct Audit {
    entries: u64,
    last: String,
}

#[plasmoid_sdk::gen_server]
impl Audit {
    fn init(_args: Option<()>) -> Self {
        if let Err(e) = register(AUDIT) {
            // Crashing here makes the supervisor retry, which is right: the
            // name frees up when the previous instance's exit is processed.
            exit(ExitReason::Exception(format!(
                "cannot register `{AUDIT}`: {e:?}"
            )));
        }
        info!("audit log open");
        Audit {
            entries: 0,
            last: String::new(),
        }
    }

    fn handle_call(&mut self, request: AuditCall) -> u64 {
        match request {
            AuditCall::Count => self.entries,
        }
    }

    fn handle_cast(&mut self, message: AuditCast) -> CastResult {
        match message {
            AuditCast::Record { order, line } => {
                self.entries += 1;
                self.last = line;
                if self.entries.is_multiple_of(25) {
                    info!(
                        "audit: {} entries; latest #{order}: {}",
                        self.entries, self.last
                    );
                }
            }
        }
        CastResult::Continue
    }
}
