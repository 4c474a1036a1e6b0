//! `wasi:keyvalue` (store, atomics, batch; `@0.2.0-draft`, what wasmCloud's
//! components import) for particles and wasi:http handlers, and
//! `plasmoid:keyvalue/cas`, the compare-and-swap that draft lacks.
//!
//! It owns the guest-facing half of durable state: the bindings, the bucket
//! handles in a guest's resource table, Cedar's word on each access (`read`
//! or `write` on `Bucket::"<name>"`, principal `Particle::"<component>"`,
//! with `context.owned` true when the bucket is named after the component),
//! the size caps on keys, values and batches, and the bound on how long a
//! call may wait for its backend. It does not own storage: a backend (the
//! plasmoid-store crate: redb, Redis) implements [`KvStore`] and the release
//! installs it with [`Node::set_store`]. Without one, `open` fails with
//! "no store is configured".

use crate::node::{Node, NodeInner};
use crate::policy::Action;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod generated {
    wasmtime::component::bindgen!({
        path: ["../wit/deps/keyvalue", "../wit/deps/plasmoid-keyvalue"],
        world: "plasmoid:keyvalue/imports",
        imports: { default: async | trappable },
        with: { "wasi:keyvalue/store.bucket": crate::kv::BucketRep },
        trappable_error_type: { "wasi:keyvalue/store.error" => crate::kv::KvError },
    });
}

use generated::plasmoid::keyvalue::cas;
use generated::wasi::keyvalue::{atomics, batch, store};

/// The longest key (1 KiB).
pub const MAX_KEY: usize = 1024;
/// The largest value (1 MiB).
pub const MAX_VALUE: usize = 1 << 20;
/// The most keys in one batch call (1,000).
pub const MAX_BATCH: usize = 1000;
/// Keys one `list-keys` call returns at most (1,000); the cursor goes on.
pub const LIST_PAGE: usize = 1000;
/// The longest bucket name (255).
pub const MAX_BUCKET: usize = 255;
/// How long one call waits for its backend (5 s); then an error value.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a store call failed: what the guest sees as `store.error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvError {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::NoSuchStore => f.write_str("no such store"),
            KvError::AccessDenied => f.write_str("access denied"),
            KvError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for KvError {}

/// One operation on one bucket, as a backend carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    Get(String),
    Set(String, Vec<u8>),
    Delete(String),
    Exists(String),
    /// Keys in order after the cursor (`None`: from the start), at most
    /// [`LIST_PAGE`].
    ListKeys(Option<u64>),
    Increment(String, u64),
    /// Set the key to `new` if its value is `expected` (`None`: absent).
    CompareAndSwap {
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    },
    GetMany(Vec<String>),
    SetMany(Vec<(String, Vec<u8>)>),
    DeleteMany(Vec<String>),
}

/// What an operation gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvReply {
    Done,
    Value(Option<Vec<u8>>),
    Exists(bool),
    Keys(Vec<String>, Option<u64>),
    Count(u64),
    /// Whether a compare-and-swap swapped.
    Swapped(bool),
    Values(Vec<Option<Vec<u8>>>),
}

pub type KvFuture = Pin<Box<dyn Future<Output = Result<KvReply, KvError>> + Send>>;

/// A backend: durable (a write is on disk, or acknowledged by the server,
/// before the future resolves) and safe to call from many particles at once.
pub trait KvStore: Send + Sync {
    fn call(&self, bucket: &str, op: KvOp) -> KvFuture;
}

/// A guest's open bucket.
pub struct BucketRep {
    name: Arc<str>,
}

/// What the bindings need from a store's state.
pub struct KvView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) node: &'a Arc<NodeInner>,
    pub(crate) principal: &'a Arc<str>,
}

pub(crate) struct Kv;

impl HasData for Kv {
    type Data<'a> = KvView<'a>;
}

pub(crate) fn add_to_linker<T: Send + 'static>(
    l: &mut Linker<T>,
    get: fn(&mut T) -> KvView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, Kv>(l, get)?;
    atomics::add_to_linker::<_, Kv>(l, get)?;
    batch::add_to_linker::<_, Kv>(l, get)?;
    cas::add_to_linker::<_, Kv>(l, get)?;
    Ok(())
}

impl Node {
    /// Install the backend `wasi:keyvalue` calls go to (see plasmoid-store).
    pub fn set_store(&self, store: Arc<dyn KvStore>) {
        *self.inner.store.write() = Some(store);
    }

    /// One operation on `bucket`, from the host (the operator's CLI): no
    /// policy, the same caps and timeout as a guest's call.
    pub async fn store_call(&self, bucket: &str, op: KvOp) -> Result<KvReply, KvError> {
        check_op(&op)?;
        run(&self.inner, bucket, op).await
    }
}

fn too_long(what: &str, len: usize, max: usize) -> KvError {
    KvError::Other(format!(
        "{what} of {len} bytes is over the {max}-byte limit"
    ))
}

fn check_key(k: &str) -> Result<(), KvError> {
    if k.len() > MAX_KEY {
        return Err(too_long("a key", k.len(), MAX_KEY));
    }
    Ok(())
}

fn check_value(v: &[u8]) -> Result<(), KvError> {
    if v.len() > MAX_VALUE {
        return Err(too_long("a value", v.len(), MAX_VALUE));
    }
    Ok(())
}

fn check_batch(n: usize) -> Result<(), KvError> {
    if n > MAX_BATCH {
        return Err(KvError::Other(format!(
            "a batch of {n} keys is over the limit of {MAX_BATCH}"
        )));
    }
    Ok(())
}

fn check_op(op: &KvOp) -> Result<(), KvError> {
    match op {
        KvOp::Get(k) | KvOp::Delete(k) | KvOp::Exists(k) | KvOp::Increment(k, _) => check_key(k),
        KvOp::Set(k, v) => {
            check_key(k)?;
            check_value(v)
        }
        KvOp::CompareAndSwap { key, expected, new } => {
            check_key(key)?;
            expected.as_deref().map_or(Ok(()), check_value)?;
            check_value(new)
        }
        KvOp::ListKeys(_) => Ok(()),
        KvOp::GetMany(ks) | KvOp::DeleteMany(ks) => {
            check_batch(ks.len())?;
            ks.iter().try_for_each(|k| check_key(k))
        }
        KvOp::SetMany(kvs) => {
            check_batch(kvs.len())?;
            kvs.iter().try_for_each(|(k, v)| {
                check_key(k)?;
                check_value(v)
            })
        }
    }
}

async fn run(node: &Arc<NodeInner>, bucket: &str, op: KvOp) -> Result<KvReply, KvError> {
    let store = node
        .store
        .read()
        .clone()
        .ok_or_else(|| KvError::Other("no store is configured on this node".into()))?;
    let write = !matches!(
        op,
        KvOp::Get(_) | KvOp::Exists(_) | KvOp::ListKeys(_) | KvOp::GetMany(_)
    );
    match tokio::time::timeout(CALL_TIMEOUT, store.call(bucket, op)).await {
        Ok(r) => r,
        // A write that timed out may still land: say so, so the caller
        // reads back instead of assuming it did not happen.
        Err(_) if write => Err(KvError::Other(format!(
            "the store did not answer within {} s; the write may still happen (read it back)",
            CALL_TIMEOUT.as_secs()
        ))),
        Err(_) => Err(KvError::Other(format!(
            "the store did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

impl KvView<'_> {
    /// Cedar's word on `action` (read or write) on `bucket`.
    fn authorize(&self, action: Action, bucket: &str) -> Result<(), KvError> {
        if self.node.policy.allowed(self.principal, action, bucket) {
            Ok(())
        } else {
            tracing::warn!(component = %self.principal, bucket, action = action.as_str(), "bucket access denied by policy");
            Err(KvError::AccessDenied)
        }
    }

    /// Authorize and run `op` on the bucket behind `b`.
    async fn op(&mut self, b: &Resource<BucketRep>, op: KvOp) -> Result<KvReply, KvError> {
        let name = self
            .table
            .get(b)
            .map_err(|e| KvError::Other(e.to_string()))?
            .name
            .clone();
        let action = match op {
            KvOp::Get(_) | KvOp::Exists(_) | KvOp::ListKeys(_) | KvOp::GetMany(_) => Action::Read,
            _ => Action::Write,
        };
        self.authorize(action, &name)?;
        check_op(&op)?;
        run(self.node, &name, op).await
    }
}

fn unexpected(r: KvReply) -> KvError {
    KvError::Other(format!("the store answered out of turn: {r:?}"))
}

impl store::Host for KvView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<BucketRep>, KvError> {
        if identifier.is_empty() || identifier.len() > MAX_BUCKET {
            return Err(KvError::Other(format!(
                "a bucket name has 1 to {MAX_BUCKET} bytes"
            )));
        }
        // Opening needs one of the two; each call checks its own.
        if !self
            .node
            .policy
            .allowed(self.principal, Action::Read, &identifier)
        {
            self.authorize(Action::Write, &identifier)?;
        }
        if self.node.store.read().is_none() {
            return Err(KvError::NoSuchStore);
        }
        self.table
            .push(BucketRep {
                name: identifier.into(),
            })
            .map_err(|e| KvError::Other(e.to_string()))
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        Ok(match err {
            KvError::NoSuchStore => store::Error::NoSuchStore,
            KvError::AccessDenied => store::Error::AccessDenied,
            KvError::Other(s) => store::Error::Other(s),
        })
    }
}

impl store::HostBucket for KvView<'_> {
    async fn get(
        &mut self,
        b: Resource<BucketRep>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KvError> {
        match self.op(&b, KvOp::Get(key)).await? {
            KvReply::Value(v) => Ok(v),
            r => Err(unexpected(r)),
        }
    }

    async fn set(
        &mut self,
        b: Resource<BucketRep>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        self.op(&b, KvOp::Set(key, value)).await.map(drop)
    }

    async fn delete(&mut self, b: Resource<BucketRep>, key: String) -> Result<(), KvError> {
        self.op(&b, KvOp::Delete(key)).await.map(drop)
    }

    async fn exists(&mut self, b: Resource<BucketRep>, key: String) -> Result<bool, KvError> {
        match self.op(&b, KvOp::Exists(key)).await? {
            KvReply::Exists(e) => Ok(e),
            r => Err(unexpected(r)),
        }
    }

    async fn list_keys(
        &mut self,
        b: Resource<BucketRep>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvError> {
        match self.op(&b, KvOp::ListKeys(cursor)).await? {
            KvReply::Keys(keys, cursor) => Ok(store::KeyResponse { keys, cursor }),
            r => Err(unexpected(r)),
        }
    }

    async fn drop(&mut self, b: Resource<BucketRep>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        b: Resource<BucketRep>,
        key: String,
        delta: u64,
    ) -> Result<u64, KvError> {
        match self.op(&b, KvOp::Increment(key, delta)).await? {
            KvReply::Count(n) => Ok(n),
            r => Err(unexpected(r)),
        }
    }
}

impl cas::Host for KvView<'_> {
    async fn compare_and_swap(
        &mut self,
        b: Resource<BucketRep>,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, KvError> {
        match self
            .op(&b, KvOp::CompareAndSwap { key, expected, new })
            .await?
        {
            KvReply::Swapped(s) => Ok(s),
            r => Err(unexpected(r)),
        }
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        b: Resource<BucketRep>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        match self.op(&b, KvOp::GetMany(keys.clone())).await? {
            KvReply::Values(vs) => Ok(keys
                .into_iter()
                .zip(vs)
                .map(|(k, v)| v.map(|v| (k, v)))
                .collect()),
            r => Err(unexpected(r)),
        }
    }

    async fn set_many(
        &mut self,
        b: Resource<BucketRep>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        self.op(&b, KvOp::SetMany(key_values)).await.map(drop)
    }

    async fn delete_many(
        &mut self,
        b: Resource<BucketRep>,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        self.op(&b, KvOp::DeleteMany(keys)).await.map(drop)
    }
}
