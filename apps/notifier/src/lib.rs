//! Notifier (the Rust one, a fixture for the tests; the demo runs
//! apps/demo/notifier/app.js): tells the payee about each settled order. It subscribes to the
//! ledger when it starts (so it depends on the ledger, and its supervisor is
//! rest-for-one: a new ledger needs a new subscription), and it crashes now
//! and then on purpose (`crash_every`) so the supervisors visibly work.
//!
//! With `webhook = "http://…"` in its init it also POSTs each notification,
//! as JSON, to that URL through `wasi:http/outgoing-handler` (wstd's client).
//! It is off by default, and the release's policy must permit `connect` to
//! the webhook's host; a failed or denied post is a warning, and the
//! notification counts as sent all the same.

use plasmoid_sdk::cast;
use plasmoid_sdk::prelude::*;
use serde::Deserialize;
use shop_proto::{LEDGER, LedgerCast, Notify, Order};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Init {
    /// Crash on every this many notifications (0: never).
    crash_every: u64,
    /// POST each notification here (none: no webhook).
    webhook: Option<String>,
}

struct Notifier {
    crash_every: u64,
    sent: u64,
    webhook: Option<String>,
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
            webhook: args.webhook.filter(|w| !w.is_empty()),
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
        if let Some(url) = &self.webhook
            && let Err(e) = post(url, &order)
        {
            warn!("webhook {url}: {e}");
        }
        if self.sent.is_multiple_of(10) {
            info!(
                "notified {} of {} received (order #{}, {} sent)",
                order.to, order.amount, order.id, self.sent
            );
        }
        CastResult::Continue
    }
}

/// POST `order` as JSON to `url`, bounded (2 s to connect, 5 s to answer).
fn post(url: &str, order: &Order) -> Result<(), String> {
    use wstd::http::{Body, Client, Request};
    let body = format!(
        r#"{{"order":{},"gateway":"{}","from":"{}","to":"{}","amount":{}}}"#,
        order.id, order.gateway, order.from, order.to, order.amount
    );
    wstd::runtime::block_on(async {
        let req = Request::post(url)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .map_err(|e| e.to_string())?;
        let mut client = Client::new();
        client.set_connect_timeout(std::time::Duration::from_secs(2));
        client.set_first_byte_timeout(std::time::Duration::from_secs(5));
        let resp = client.send(req).await.map_err(|e| format!("{e:?}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", resp.status()))
        }
    })
}
