//! The counter particle's protocol, in its own crate so that host-side tests
//! (and other particles) can encode requests without the guest SDK.
//!
//! Messages are postcard. Postcard encodes an enum as the variant index (a
//! varint, i.e. one byte below 128) followed by the variant's payload; a
//! `u64` payload or reply is itself a varint (LEB128: 7 bits per byte, low
//! bits first, high bit = "more bytes follow"). So:
//!
//! | message                         | bytes          |
//! |---------------------------------|----------------|
//! | `CounterRequest::Get`           | `[0]`          |
//! | `CounterRequest::Increment`     | `[1]`          |
//! | `CounterRequest::Add(5)`        | `[2, 5]`       |
//! | `CounterRequest::Add(300)`      | `[2, 172, 2]`  |
//! | `CounterRequest::Version`       | `[3]`          |
//! | `CounterCast::Increment`        | `[0]`          |
//! | `CounterCast::Add(5)`           | `[1, 5]`       |
//! | reply `7u64`                    | `[7]`          |
//!
//! Variants are only ever appended, never reordered: the index is the wire
//! format.

use serde::{Deserialize, Serialize};

/// A call to the counter (a `Tagged` message); every request is answered
/// with the counter's value as a `u64`, after the request took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterRequest {
    /// The current value.
    Get,
    /// Adds one; replies with the new value.
    Increment,
    /// Adds `n` (saturating at `u64::MAX`); replies with the new value.
    Add(u64),
    /// Which build of the counter answers (1, or 2 for `counter-v2`): hot
    /// swap tests and benchmarks tell the versions apart by it. Does not
    /// change the value.
    Version,
}

/// A cast to the counter (a `Data` message): no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterCast {
    /// Adds one.
    Increment,
    /// Adds `n` (saturating at `u64::MAX`).
    Add(u64),
}
