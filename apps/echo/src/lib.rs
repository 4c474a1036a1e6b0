//! Echo: the smallest gen_server. A call returns its request unchanged; the
//! data message `b"stop"` ends it normally.
//!
//! Wire format (postcard, see `plasmoid_sdk::server` docs): a call payload is
//! a `Vec<u8>`, encoded as a varint length followed by the bytes; the reply
//! is the same bytes, encoded the same way.

use plasmoid_sdk::CastResult;

/// The server has no state; `Default` is all `#[gen_server]` needs.
#[derive(Default)]
struct Echo;

#[plasmoid_sdk::gen_server]
impl Echo {
    fn handle_call(&mut self, request: Vec<u8>) -> Vec<u8> {
        request
    }

    fn handle_info(&mut self, data: Vec<u8>) -> CastResult {
        if data == b"stop" {
            return CastResult::Stop;
        }
        CastResult::Continue
    }
}
