//! Counter: a gen_server holding one `u64`.
//!
//! Calls are `counter_proto::CounterRequest`, answered with the value after
//! the request; casts are `counter_proto::CounterCast`; the data message
//! `b"stop"` ends it normally. The byte layouts are documented in
//! `counter-proto`.

use counter_proto::{CounterCast, CounterRequest};
use plasmoid_sdk::CastResult;
use serde::{Deserialize, Serialize};

/// What `CounterRequest::Version` answers. The same source builds three
/// components: `counter` (1), `counter-v2` (2) and `counter-trap`, which
/// traps on every call (a bad release, for rollback tests).
const VERSION: u64 = if cfg!(feature = "v2") { 2 } else { 1 };

/// The state: starts at zero, or at the init args' number if given. It
/// survives hot swaps (`handoff`): the next version gets the value.
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    value: u64,
}

#[plasmoid_sdk::gen_server(handoff)]
impl Counter {
    /// Init args: an optional start value (`5`, or `null`/empty for 0).
    fn init(start: Option<u64>) -> Self {
        Self {
            value: start.unwrap_or_default(),
        }
    }

    fn handle_call(&mut self, request: CounterRequest) -> u64 {
        if cfg!(feature = "trap") {
            panic!("counter-trap: a broken build");
        }
        match request {
            CounterRequest::Version => return VERSION,
            CounterRequest::Get => {}
            CounterRequest::Increment => self.add(1),
            CounterRequest::Add(n) => self.add(n),
        }
        self.value
    }

    fn handle_cast(&mut self, message: CounterCast) -> CastResult {
        match message {
            CounterCast::Increment => self.add(1),
            CounterCast::Add(n) => self.add(n),
        }
        CastResult::Continue
    }

    fn handle_info(&mut self, data: Vec<u8>) -> CastResult {
        if data == b"stop" {
            CastResult::Stop
        } else {
            CastResult::Continue
        }
    }

    /// Saturating, because `n` comes from other particles and a wrapped
    /// counter would be a silent lie.
    fn add(&mut self, n: u64) {
        self.value = self.value.saturating_add(n);
    }
}
