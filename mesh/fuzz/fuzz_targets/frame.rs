//! Whatever bytes a peer sends: the length prefix and the frame decoder
//! must return an error or a frame, never panic, and a frame that decodes
//! must encode back to bytes that decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasmoid_mesh::{Frame, Request, decode, encode_into, frame_len};

fuzz_target!(|data: &[u8]| {
    if let Some(prefix) = data.get(..4) {
        let _ = frame_len([prefix[0], prefix[1], prefix[2], prefix[3]]);
    }
    if let Ok(frame) = decode(data) {
        let mut out = Vec::new();
        encode_into(&frame, &mut out);
        let again = decode(&out[4..]).expect("a re-encoded frame decodes");
        assert_eq!(again, frame);
        if let Frame::Op(op) = frame {
            let _ = op.into_op();
        }
    }
    let _ = postcard::from_bytes::<Request>(data);
});
