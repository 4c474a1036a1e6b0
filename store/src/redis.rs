//! The Redis backend: one server shared by every node of a release, so a
//! child restarted on another node sees what it wrote.
//!
//! Keys are `plasmoid:<release>:<bucket length>:<bucket>:<key>` (the length
//! keeps a `:` in a bucket name from running into the key). Every call has
//! a bounded wait: connecting and each answer time out after
//! [`TIMEOUT`], and a server that is down is an error value, never a hang;
//! the connection is made again on the next call once it is back. A write
//! is as durable as the server makes it: run it with `appendonly yes` and
//! `appendfsync always` for a write to be on disk before its call returns.
//! Buckets with a quota are written through one script each
//! (`redis_quota`); the rest with plain commands.

use crate::redis_quota::{self, glob_escape};
use plasmoid_runtime::kv::{KvError, KvFuture, KvOp, KvReply, KvStore, LIST_PAGE};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long connecting, or one answer, may take (2 s).
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis server, reached through a reconnecting connection.
pub struct Redis {
    client: redis::Client,
    prefix: String,
    quotas: Arc<HashMap<String, u64>>,
    conn: Arc<Mutex<Option<ConnectionManager>>>,
}

fn failed(e: impl std::fmt::Display) -> KvError {
    KvError::Other(format!("the Redis store failed: {e}"))
}

impl Redis {
    /// A backend for `url` (`redis://127.0.0.1:6379`), keys under
    /// `release`. Nothing connects until the first call.
    pub fn new(url: &str, release: &str) -> Result<Redis, crate::StoreError> {
        Self::with_quotas(url, release, HashMap::new())
    }

    /// [`Redis::new`], with the most bytes (keys and values) each named
    /// bucket may hold, counted on the server for every node at once.
    pub fn with_quotas(
        url: &str,
        release: &str,
        quotas: HashMap<String, u64>,
    ) -> Result<Redis, crate::StoreError> {
        let client = redis::Client::open(url).map_err(|e| crate::StoreError::Open {
            path: url.to_string(),
            why: e.to_string(),
        })?;
        Ok(Redis {
            client,
            prefix: format!("plasmoid:{release}:"),
            quotas: Arc::new(quotas),
            conn: Arc::new(Mutex::new(None)),
        })
    }

    fn key(prefix: &str, bucket: &str, key: &str) -> String {
        format!("{prefix}{}:{bucket}:{key}", bucket.len())
    }
}

/// The connection, made now if there is none (bounded by [`TIMEOUT`]).
async fn connection(
    client: &redis::Client,
    slot: &Mutex<Option<ConnectionManager>>,
    prefix: &str,
    quotas: &HashMap<String, u64>,
) -> Result<ConnectionManager, KvError> {
    let mut slot = slot.lock().await;
    if let Some(c) = slot.as_ref() {
        return Ok(c.clone());
    }
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(TIMEOUT);
    let connect = client.get_connection_manager_with_config(config);
    let c = tokio::time::timeout(TIMEOUT * 2, connect)
        .await
        .map_err(|_| failed("the server did not answer"))?
        .map_err(failed)?;
    // Best effort: a count left stale costs accuracy, not service.
    let mut first = c.clone();
    let forget = redis_quota::forget_unquoted(&mut first, prefix, quotas);
    match tokio::time::timeout(TIMEOUT, forget).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot drop stale quota counts: {e}"),
        Err(_) => tracing::warn!("cannot drop stale quota counts: the server did not answer"),
    }
    *slot = Some(c.clone());
    Ok(c)
}

impl KvStore for Redis {
    fn call(&self, bucket: &str, op: KvOp) -> KvFuture {
        let (client, slot) = (self.client.clone(), self.conn.clone());
        let (prefix, quotas) = (self.prefix.clone(), self.quotas.clone());
        let bucket_name = bucket.to_string();
        let base = format!("{}{}:{bucket}:", self.prefix, bucket.len());
        let key = {
            let prefix = self.prefix.clone();
            let bucket = bucket.to_string();
            move |k: &str| Redis::key(&prefix, &bucket, k)
        };
        Box::pin(async move {
            let mut c = connection(&client, &slot, &prefix, &quotas).await?;
            let limit = quotas.get(&bucket_name).copied();
            let write = !matches!(
                op,
                KvOp::Get(_) | KvOp::Exists(_) | KvOp::ListKeys(_) | KvOp::GetMany(_)
            );
            let answer = match limit {
                Some(limit) if write => {
                    let w =
                        redis_quota::write(&mut c, &prefix, &bucket_name, &base, limit, &key, op);
                    tokio::time::timeout(TIMEOUT, w).await
                }
                _ => tokio::time::timeout(TIMEOUT, run(&mut c, &base, &key, op)).await,
            };
            match answer {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(failed("the server did not answer in time")),
            }
        })
    }
}

async fn run(
    c: &mut ConnectionManager,
    base: &str,
    key: &(impl Fn(&str) -> String + Send + Sync),
    op: KvOp,
) -> Result<KvReply, KvError> {
    Ok(match op {
        KvOp::Get(k) => KvReply::Value(c.get(key(&k)).await.map_err(failed)?),
        KvOp::Set(k, v) => {
            let () = c.set(key(&k), v).await.map_err(failed)?;
            KvReply::Done
        }
        KvOp::Delete(k) => {
            let _: u64 = c.del(key(&k)).await.map_err(failed)?;
            KvReply::Done
        }
        KvOp::Exists(k) => KvReply::Exists(c.exists(key(&k)).await.map_err(failed)?),
        KvOp::Increment(k, delta) => {
            let delta = i64::try_from(delta)
                .map_err(|_| KvError::Other(format!("an increment of {delta} is over i64::MAX")))?;
            // Checked and incremented in one step, so a value that is not a
            // counter is refused without being changed.
            // The new value comes back as text: a Lua number would round
            // counters past 2^53.
            let script = redis::Script::new(
                r"local v = redis.call('GET', KEYS[1])
                  if v and not string.match(v, '^%d+$') then return -1 end
                  redis.call('INCRBY', KEYS[1], ARGV[1])
                  return redis.call('GET', KEYS[1])",
            );
            let op = KvOp::Increment(k.clone(), delta as u64);
            let v: redis::Value = script
                .key(key(&k))
                .arg(delta)
                .invoke_async(c)
                .await
                .map_err(failed)?;
            if v == redis::Value::Int(-1) {
                return Err(not_a_counter(&op));
            }
            KvReply::Count(count(&op, v)?)
        }
        KvOp::CompareAndSwap {
            key: k,
            expected,
            new,
        } => {
            let script = redis::Script::new(
                r"local want = false
                  if ARGV[1] == '1' then want = ARGV[2] end
                  if redis.call('GET', KEYS[1]) ~= want then return 0 end
                  redis.call('SET', KEYS[1], ARGV[3])
                  return 1",
            );
            let mut call = script.key(key(&k));
            match &expected {
                Some(e) => call.arg("1").arg(e.as_slice()),
                None => call.arg("0").arg(""),
            };
            let swapped: i64 = call
                .arg(new.as_slice())
                .invoke_async(c)
                .await
                .map_err(failed)?;
            KvReply::Swapped(swapped == 1)
        }
        KvOp::GetMany(ks) if ks.is_empty() => KvReply::Values(Vec::new()),
        KvOp::GetMany(ks) => {
            let keys: Vec<String> = ks.iter().map(|k| key(k)).collect();
            let vs: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(c)
                .await
                .map_err(failed)?;
            KvReply::Values(vs)
        }
        KvOp::SetMany(kvs) if kvs.is_empty() => KvReply::Done,
        KvOp::SetMany(kvs) => {
            let pairs: Vec<(String, Vec<u8>)> =
                kvs.into_iter().map(|(k, v)| (key(&k), v)).collect();
            let () = c.mset(&pairs).await.map_err(failed)?;
            KvReply::Done
        }
        KvOp::DeleteMany(ks) if ks.is_empty() => KvReply::Done,
        KvOp::DeleteMany(ks) => {
            let keys: Vec<String> = ks.iter().map(|k| key(k)).collect();
            let _: u64 = c.del(keys).await.map_err(failed)?;
            KvReply::Done
        }
        KvOp::ListKeys(cursor) => {
            let pattern = format!("{}*", glob_escape(base));
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor.unwrap_or(0))
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(LIST_PAGE)
                .query_async(c)
                .await
                .map_err(failed)?;
            let keys = found
                .into_iter()
                .filter_map(|k| k.strip_prefix(base).map(str::to_string))
                .collect();
            KvReply::Keys(keys, (next != 0).then_some(next))
        }
    })
}

/// The error for incrementing a key that holds something else.
pub(crate) fn not_a_counter(op: &KvOp) -> KvError {
    let k = match op {
        KvOp::Increment(k, _) => k.as_str(),
        _ => "",
    };
    KvError::Other(format!(
        "`{k}` does not hold a counter (a decimal u64), so it cannot be incremented"
    ))
}

/// A counter's new value, as the server's text.
pub(crate) fn count(op: &KvOp, v: redis::Value) -> Result<u64, KvError> {
    let text: String = redis::from_redis_value(v).map_err(failed)?;
    text.parse().map_err(|_| not_a_counter(op))
}
