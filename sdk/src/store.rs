//! Durable state for particles: typed helpers over `wasi:keyvalue`
//! (`@0.2.0-draft`, the interfaces wasmCloud's components import).
//!
//! Values are postcard-encoded, as messages are. A write has reached the
//! node's store (on disk, for the embedded backend) when the call returns,
//! so state saved before answering a request survives a crash, a restart
//! and a `kill -9` of the node. Cedar decides each access: by default a
//! component may use the bucket named after it, and no other.
//!
//! ```ignore
//! store::put("ledger", "balances", &self.balances)?;
//! let balances: Option<BTreeMap<String, u64>> = store::get("ledger", "balances")?;
//! let n = store::increment("ledger", "orders", 1)?;
//! let swapped = store::compare_and_swap("ledger", "owner", None, &me)?;
//! let total = store::update("ledger", "total", |t: Option<u64>| t.unwrap_or(0) + 5)?;
//! ```
//!
//! Compare-and-swap is `plasmoid:keyvalue/cas`, a Plasmoid interface beside
//! the standard ones (the draft's `atomics` has only `increment`). The raw
//! interfaces are in [`raw`] for what the helpers do not cover.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::collections::HashMap;

/// wit-bindgen's bindings of `wasi:keyvalue` (store, atomics, batch) and
/// `plasmoid:keyvalue/cas`.
pub mod raw {
    wit_bindgen::generate!({
        path: ["../wit/deps/keyvalue", "../wit/deps/plasmoid-keyvalue"],
        world: "plasmoid:keyvalue/imports",
        generate_all,
    });
    pub use plasmoid::keyvalue::cas;
    pub use wasi::keyvalue::{atomics, batch, store};
}

use raw::store::{Bucket, Error};

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The policy does not let this component use the bucket.
    Denied,
    /// The node has no store.
    NoStore,
    /// The value is not a `T` (written by another type or version).
    Decode(String),
    /// Anything else, in the store's words (a size cap, a timeout, I/O).
    Other(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Denied => f.write_str("access to the bucket denied by policy"),
            StoreError::NoStore => f.write_str("this node has no store"),
            StoreError::Decode(why) | StoreError::Other(why) => f.write_str(why),
        }
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::AccessDenied => StoreError::Denied,
            Error::NoSuchStore => StoreError::NoStore,
            Error::Other(why) => StoreError::Other(why),
        }
    }
}

impl From<StoreError> for String {
    fn from(e: StoreError) -> String {
        e.to_string()
    }
}

thread_local! {
    /// Buckets opened so far: one `open` (and one policy decision) each.
    static OPEN: RefCell<HashMap<String, std::rc::Rc<Bucket>>> = RefCell::new(HashMap::new());
}

fn bucket(name: &str) -> Result<std::rc::Rc<Bucket>, StoreError> {
    if let Some(b) = OPEN.with(|o| o.borrow().get(name).cloned()) {
        return Ok(b);
    }
    let b = std::rc::Rc::new(raw::store::open(name)?);
    OPEN.with(|o| o.borrow_mut().insert(name.to_string(), b.clone()));
    Ok(b)
}

/// The value under `key`, if any.
pub fn get<T: DeserializeOwned>(bucket_name: &str, key: &str) -> Result<Option<T>, StoreError> {
    match bucket(bucket_name)?.get(key)? {
        None => Ok(None),
        Some(bytes) => crate::decode(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Decode(format!("`{key}` in `{bucket_name}`: {e}"))),
    }
}

/// Store `value` under `key`, durably.
pub fn put<T: Serialize + ?Sized>(
    bucket_name: &str,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    Ok(bucket(bucket_name)?.set(key, &crate::encode(value))?)
}

/// Remove `key` (no error when it is absent).
pub fn delete(bucket_name: &str, key: &str) -> Result<(), StoreError> {
    Ok(bucket(bucket_name)?.delete(key)?)
}

/// Add `delta` to the counter under `key` (0 when absent) and return the
/// new count. Counters are decimal text, not postcard: read them with
/// `increment(bucket, key, 0)`.
pub fn increment(bucket_name: &str, key: &str, delta: u64) -> Result<u64, StoreError> {
    Ok(raw::atomics::increment(&*bucket(bucket_name)?, key, delta)?)
}

/// Set `key` to `new` if it now holds `expected` (`None`: absent), in one
/// indivisible step; whether it swapped. Values compare as their postcard
/// bytes, so `expected` is what [`get`] gave back.
pub fn compare_and_swap<T: Serialize + ?Sized>(
    bucket_name: &str,
    key: &str,
    expected: Option<&T>,
    new: &T,
) -> Result<bool, StoreError> {
    let expected = expected.map(|e| crate::encode(e));
    Ok(raw::cas::compare_and_swap(
        &*bucket(bucket_name)?,
        key,
        expected.as_deref(),
        &crate::encode(new),
    )?)
}

/// Swaps [`update`] tries before it gives up (100).
pub const UPDATE_TRIES: usize = 100;

/// Replace `key`'s value with `f(old)`, retrying on a lost race (another
/// writer in between) up to [`UPDATE_TRIES`] times; the value stored.
/// `f` may run more than once.
pub fn update<T, F>(bucket_name: &str, key: &str, mut f: F) -> Result<T, StoreError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> T,
{
    let b = bucket(bucket_name)?;
    for _ in 0..UPDATE_TRIES {
        let old = b.get(key)?;
        let decoded = match &old {
            None => None,
            Some(bytes) => Some(
                crate::decode(bytes)
                    .map_err(|e| StoreError::Decode(format!("`{key}` in `{bucket_name}`: {e}")))?,
            ),
        };
        let new = f(decoded);
        if raw::cas::compare_and_swap(&b, key, old.as_deref(), &crate::encode(&new))? {
            return Ok(new);
        }
    }
    Err(StoreError::Other(format!(
        "`{key}` in `{bucket_name}` changed under every one of {UPDATE_TRIES} tries"
    )))
}

/// The values of `keys`, in order (`None` for an absent key).
pub fn get_many<T: DeserializeOwned>(
    bucket_name: &str,
    keys: &[String],
) -> Result<Vec<Option<T>>, StoreError> {
    let got = raw::batch::get_many(&*bucket(bucket_name)?, keys)?;
    got.into_iter()
        .map(|kv| match kv {
            None => Ok(None),
            Some((k, bytes)) => crate::decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Decode(format!("`{k}` in `{bucket_name}`: {e}"))),
        })
        .collect()
}

/// Store every `(key, value)` in one durable write.
pub fn set_many<T: Serialize>(
    bucket_name: &str,
    entries: &[(String, T)],
) -> Result<(), StoreError> {
    let encoded: Vec<(String, Vec<u8>)> = entries
        .iter()
        .map(|(k, v)| (k.clone(), crate::encode(v)))
        .collect();
    Ok(raw::batch::set_many(&*bucket(bucket_name)?, &encoded)?)
}

/// Every key of the bucket, sorted, each once (a backend may page through
/// them in any order, Redis even twice).
pub fn keys(bucket_name: &str) -> Result<Vec<String>, StoreError> {
    let b = bucket(bucket_name)?;
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = b.list_keys(cursor)?;
        all.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => {
                all.sort();
                all.dedup();
                return Ok(all);
            }
        }
    }
}
