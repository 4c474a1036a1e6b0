//! Gateway: the shop's front door. It takes an order every `interval_ms`
//! (generated here, standing in for HTTP requests) and has the ledger settle
//! it with a call; when the ledger is restarting it drops the order and
//! says so instead of blocking.

use plasmoid_sdk::call;
use plasmoid_sdk::prelude::*;
use serde::Deserialize;
use shop_proto::{LEDGER, LedgerCall, LedgerReply, Order};

#[derive(Deserialize)]
#[serde(default)]
struct Init {
    region: String,
    interval_ms: u64,
    accounts: Vec<String>,
}

impl Default for Init {
    fn default() -> Self {
        Init {
            region: "eu".into(),
            interval_ms: 200,
            accounts: ["alice", "bob", "carol", "dave"].map(String::from).to_vec(),
        }
    }
}

#[plasmoid_sdk::main]
fn start(init: Option<Init>) -> Result<(), String> {
    let init = init.unwrap_or_default();
    if init.accounts.len() < 2 {
        return Err("a gateway needs at least two accounts".into());
    }
    let name = format!("gateway-{}", init.region);
    info!("{name} taking orders every {} ms", init.interval_ms);
    let (mut taken, mut settled) = (0u64, 0u64);
    // A small xorshift generator: deterministic per region, no WASI random needed.
    let mut seed: u64 = init.region.bytes().fold(0x9E37_79B9_7F4A_7C15, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    });
    loop {
        // The timer is a receive timeout; `stop` ends the gateway normally.
        if let Some(Message::Data(d)) = recv(Some(Duration::from_millis(init.interval_ms)))
            && d == b"stop"
        {
            return Ok(());
        }
        taken += 1;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let n = init.accounts.len() as u64;
        let from = (next() % n) as usize;
        let to = (from + 1 + (next() % (n - 1)) as usize) % n as usize;
        let order = Order {
            // Ids are unique per gateway: region in the high bits keeps them apart.
            id: taken,
            gateway: name.clone(),
            from: init.accounts[from].clone(),
            to: init.accounts[to].clone(),
            amount: 1 + next() % 50,
        };
        let Ok(ledger) = lookup(LEDGER) else {
            warn!("{name}: ledger unavailable, order #{taken} dropped");
            continue;
        };
        match call::<_, LedgerReply>(
            &ledger,
            &LedgerCall::Transfer(order),
            Some(Duration::from_secs(1)),
        ) {
            Ok(LedgerReply::Settled { .. }) => settled += 1,
            Ok(LedgerReply::Rejected(why)) => debug!("{name}: {why}"),
            Ok(other) => warn!("{name}: unexpected reply {other:?}"),
            Err(e) => warn!("{name}: order #{taken} failed: {e}"),
        }
        if taken.is_multiple_of(50) {
            info!("{name}: {taken} orders taken, {settled} settled");
        }
    }
}
