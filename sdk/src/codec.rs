//! The two encodings particles use.
//!
//! Messages are postcard: compact and cheap to encode in the hot path of a
//! message exchange. Init args are JSON: they are written by people (release
//! manifests, the CLI) and read once per start, so readability wins there.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why bytes (a message or init args) did not decode as the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
}

impl DecodeError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for String {
    fn from(e: DecodeError) -> String {
        e.message
    }
}

/// Encodes `value` as a postcard message body.
///
/// # Panics
///
/// Only if `value`'s `Serialize` impl fails or serializes a sequence of
/// unknown length, which postcard cannot represent: a bug in the message
/// type, never something a peer can cause. Every derived serde type and std
/// collection encodes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match postcard::to_allocvec(value) {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "{} cannot be encoded with postcard: {e}",
            std::any::type_name::<T>()
        ),
    }
}

/// Decodes a postcard message body as `T`.
///
/// Trailing bytes are an error: postcard itself ignores them, but then
/// almost any message would "decode" as a short type, and the gen_server
/// loop and `recv!` rely on decoding to tell message types apart.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)
        .map_err(|e| DecodeError::new(format!("not a {}: {e}", std::any::type_name::<T>())))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::new(format!(
            "not a {}: {} trailing bytes",
            std::any::type_name::<T>(),
            rest.len()
        )))
    }
}

/// Encodes `value` as init args (JSON) for [`spawn`](crate::spawn).
///
/// # Panics
///
/// Only if `value` cannot be JSON (a map with non-string keys, a failing
/// `Serialize` impl): a bug in the caller's type. Use [`try_to_init_args`]
/// to handle that case instead.
pub fn to_init_args<T: Serialize + ?Sized>(value: &T) -> String {
    match try_to_init_args(value) {
        Ok(json) => json,
        Err(e) => panic!("{e}"),
    }
}

/// Encodes `value` as init args (JSON), reporting a type that cannot be JSON.
pub fn try_to_init_args<T: Serialize + ?Sized>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| {
        format!(
            "{} cannot be encoded as JSON init args: {e}",
            std::any::type_name::<T>()
        )
    })
}

/// Decodes init args (JSON) as `T`.
///
/// An empty or blank string reads as JSON `null`, so that a particle started
/// without init args gets `None`, `()` or a unit variant rather than a
/// parse error. The error names the expected type, since it usually ends up
/// as the particle's exit reason.
pub fn from_init_args<T: DeserializeOwned>(init: &str) -> Result<T, DecodeError> {
    let json = if init.trim().is_empty() { "null" } else { init };
    serde_json::from_str(json).map_err(|e| {
        DecodeError::new(format!(
            "invalid init args for {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Req {
        Get,
        Add(u64),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Init {
        Leader(u32),
        Worker,
    }

    #[test]
    fn postcard_round_trips_and_uses_the_documented_layout() {
        assert_eq!(encode(&Req::Get), [0]);
        assert_eq!(encode(&Req::Add(300)), [1, 0xac, 0x02]);
        assert_eq!(decode::<Req>(&[1, 0xac, 0x02]), Ok(Req::Add(300)));
        assert_eq!(
            decode::<Vec<u8>>(&encode(&b"hi".to_vec())),
            Ok(b"hi".to_vec())
        );
    }

    #[test]
    fn decode_rejects_garbage_and_trailing_bytes() {
        assert!(decode::<Req>(b"stop").is_err());
        assert!(decode::<Req>(&[]).is_err());
        let err = decode::<Req>(&[0, 0]).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn init_args_are_json_and_empty_means_null() {
        assert_eq!(to_init_args(&Init::Leader(3)), r#"{"leader":3}"#);
        assert_eq!(
            from_init_args::<Init>(r#"{"leader":3}"#),
            Ok(Init::Leader(3))
        );
        assert_eq!(from_init_args::<Init>(r#""worker""#), Ok(Init::Worker));
        assert_eq!(from_init_args::<Option<u32>>(""), Ok(None));
        assert_eq!(from_init_args::<()>("  "), Ok(()));
        let err = from_init_args::<Init>("{").unwrap_err();
        assert!(err.to_string().starts_with("invalid init args"), "{err}");
    }

    #[test]
    fn non_json_values_are_reported_not_panicked() {
        let map = std::collections::BTreeMap::from([((1, 2), 3)]);
        assert!(try_to_init_args(&map).is_err());
    }
}
