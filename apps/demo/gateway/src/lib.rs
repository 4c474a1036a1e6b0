//! Gateway: the shop's front door. It takes orders over HTTP (the release
//! routes `POST /orders` and `GET /balances` to it) and has the ledger
//! settle them with a call; with `interval_ms` above 0 it also makes up an
//! order that often (demo traffic, so the supervisors have work to do even
//! when nobody sends requests). When the ledger is restarting, an order is
//! refused with 503 instead of blocking.
//!
//! `POST /orders` takes `{"from": "alice", "to": "bob", "amount": 5}` and
//! answers 200 `{"settled": {"from_balance": 95, "to_balance": 105}}`, 422
//! `{"rejected": "…"}`, 400 for a body that is not an order, or 503.
//! `GET /balances` answers `{"alice": 100, …}`.

use plasmoid_sdk::call;
use plasmoid_sdk::prelude::*;
use serde::Deserialize;
use shop_proto::{LEDGER, LedgerCall, LedgerReply, Order};

#[derive(Deserialize)]
#[serde(default)]
struct Init {
    region: String,
    /// How often to make up an order; 0: only HTTP orders.
    interval_ms: u64,
    accounts: Vec<String>,
}

impl Default for Init {
    fn default() -> Self {
        Init {
            region: "eu".into(),
            interval_ms: 0,
            accounts: ["alice", "bob", "carol", "dave"].map(String::from).to_vec(),
        }
    }
}

/// An order as a client posts it.
#[derive(Deserialize)]
struct Posted {
    from: String,
    to: String,
    amount: u64,
}

struct Gateway {
    name: String,
    taken: u64,
    settled: u64,
}

#[plasmoid_sdk::main]
fn start(init: Option<Init>) -> Result<(), String> {
    let init = init.unwrap_or_default();
    if init.accounts.len() < 2 {
        return Err("a gateway needs at least two accounts".into());
    }
    let name = format!("gateway-{}", init.region);
    // Found by the release's HTTP routes (and by name in the logs).
    register(&name).map_err(|e| format!("cannot register {name}: {}", String::from(e)))?;
    let mut gw = Gateway {
        name,
        taken: 0,
        settled: 0,
    };
    match init.interval_ms {
        0 => info!("{} taking orders over HTTP", gw.name),
        ms => info!(
            "{} taking orders over HTTP, and making one up every {ms} ms",
            gw.name
        ),
    }
    // A small xorshift generator: deterministic per region, no WASI random needed.
    let mut seed: u64 = init.region.bytes().fold(0x9E37_79B9_7F4A_7C15, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    });
    let tick = (init.interval_ms > 0).then(|| Duration::from_millis(init.interval_ms));
    let mut next_tick = tick.map(|t| std::time::Instant::now() + t);
    loop {
        let wait = next_tick.map(|t| t.saturating_duration_since(std::time::Instant::now()));
        match recv(wait) {
            Some(Message::Data(d)) if d == b"stop" => return Ok(()),
            Some(Message::Http(req)) => {
                let answer = gw.http(&req);
                if let Err(e) = respond(&req, answer) {
                    warn!("{}: answer refused: {}", gw.name, String::from(e));
                }
            }
            Some(_) => {}
            // The demo traffic's tick.
            None => {
                if let (Some(t), Some(at)) = (tick, next_tick.as_mut()) {
                    *at += t;
                }
                let mut next = || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let n = init.accounts.len() as u64;
                let from = (next() % n) as usize;
                let to = (from + 1 + (next() % (n - 1)) as usize) % n as usize;
                let (from, to) = (init.accounts[from].clone(), init.accounts[to].clone());
                let _ = gw.order(from, to, 1 + next() % 50);
            }
        }
    }
}

impl Gateway {
    fn http(&mut self, req: &HttpRequest) -> HttpResponse {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/orders") => {
                let posted: Posted = match req.json() {
                    Ok(p) => p,
                    Err(why) => {
                        return HttpResponse::json(
                            400,
                            &serde_json::json!({
                                "error": format!("{why}; post {{\"from\": \"alice\", \"to\": \"bob\", \"amount\": 5}}")
                            }),
                        );
                    }
                };
                match self.order(posted.from, posted.to, posted.amount) {
                    Ok(LedgerReply::Settled {
                        from_balance,
                        to_balance,
                    }) => HttpResponse::json(
                        200,
                        &serde_json::json!({"settled": {"from_balance": from_balance, "to_balance": to_balance}}),
                    ),
                    Ok(LedgerReply::Rejected(why)) => {
                        HttpResponse::json(422, &serde_json::json!({ "rejected": why }))
                    }
                    Ok(other) => HttpResponse::text(500, format!("unexpected reply {other:?}")),
                    Err(why) => unavailable(&why),
                }
            }
            ("GET", "/balances") => match ledger_call(&LedgerCall::Balances) {
                Ok(LedgerReply::Balances(b)) => HttpResponse::json(200, &b),
                Ok(other) => HttpResponse::text(500, format!("unexpected reply {other:?}")),
                Err(why) => unavailable(&why),
            },
            (m, p) => HttpResponse::text(
                404,
                format!("no {m} {p} here; try POST /orders or GET /balances"),
            ),
        }
    }

    /// One order through the ledger; `Err` when the ledger cannot be asked.
    fn order(&mut self, from: String, to: String, amount: u64) -> Result<LedgerReply, String> {
        self.taken += 1;
        let order = Order {
            id: self.taken,
            gateway: self.name.clone(),
            from,
            to,
            amount,
        };
        let reply = ledger_call(&LedgerCall::Transfer(order));
        match &reply {
            Ok(LedgerReply::Settled { .. }) => self.settled += 1,
            Ok(LedgerReply::Rejected(why)) => debug!("{}: {why}", self.name),
            Ok(_) => {}
            Err(e) => warn!("{}: order #{} failed: {e}", self.name, self.taken),
        }
        if self.taken.is_multiple_of(50) {
            info!(
                "{}: {} orders taken, {} settled",
                self.name, self.taken, self.settled
            );
        }
        reply
    }
}

fn ledger_call(request: &LedgerCall) -> Result<LedgerReply, String> {
    let ledger = lookup(LEDGER).map_err(|_| "the ledger is restarting".to_string())?;
    call::<_, LedgerReply>(&ledger, request, Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())
}

fn unavailable(why: &str) -> HttpResponse {
    HttpResponse::json(503, &serde_json::json!({ "error": why })).header("retry-after", "1")
}
