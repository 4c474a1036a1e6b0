//! Per-bucket quotas on the Redis backend, kept by the server itself so
//! every node of a release sees one count.
//!
//! The release keeps one hash of byte counts, `plasmoid:<release>:quotas`
//! (field: bucket; data keys have a digit after the release, so the two
//! never meet). Every write to a bucket with a quota is one Lua script: it
//! counts the bucket once if its count is missing, applies the write,
//! measures the keys it touched (key and value bytes, as the embedded
//! backend counts them), and if the bucket is now over its quota puts every
//! touched key back and refuses. A script runs alone on the server, so
//! nobody sees the write that was undone.
//!
//! Writes to a bucket without a quota do not keep its count, so a count
//! left from a run with a quota would go stale: [`forget_unquoted`] drops
//! the counts of buckets without a quota when a backend first connects,
//! and a quota added later counts afresh. During a rolling change that
//! adds a quota, nodes still without it write uncounted until they restart
//! with the new manifest.

use plasmoid_runtime::kv::{KvError, KvOp, KvReply};
use redis::aio::ConnectionManager;
use std::collections::HashMap;

fn failed(e: impl std::fmt::Display) -> KvError {
    KvError::Other(format!("the Redis store failed: {e}"))
}

/// `*`, `?`, `[`, `]` and `\` match literally in a SCAN or KEYS pattern.
pub(crate) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The hash of byte counts of the release under `prefix`
/// (`plasmoid:<release>:`).
pub(crate) fn counts_key(prefix: &str) -> String {
    format!("{prefix}quotas")
}

/// KEYS[1] the counts hash, KEYS[2..] the keys the write touches. ARGV:
/// limit, the bucket's KEYS pattern, the length of its key prefix, the op
/// (`set`, `del`, `cas`, `incr`), the bucket, then the op's arguments.
/// Answers `{1, result}`, `{0, 0}` for a compare-and-swap that did not
/// swap, `{-1, used, needed}` over quota, `{-2, 0}` for a non-counter.
/// A count made afresh is kept even when the write is refused.
const SCRIPT: &str = r"
local limit, base, op, bucket = tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local function size(k)
  if redis.call('EXISTS', k) == 0 then return 0 end
  return (#k - base) + redis.call('STRLEN', k)
end
local used = redis.call('HGET', KEYS[1], bucket)
if used then
  used = tonumber(used)
else
  used = 0
  for _, k in ipairs(redis.call('KEYS', ARGV[2])) do used = used + size(k) end
  redis.call('HSET', KEYS[1], bucket, used)
end
local old, before = {}, 0
for i = 2, #KEYS do
  local k = KEYS[i]
  if old[k] == nil then
    old[k] = redis.call('GET', k)
    before = before + size(k)
  end
end
local result = 1
if op == 'set' then
  for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[4 + i]) end
elseif op == 'del' then
  for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
elseif op == 'cas' then
  local want = false
  if ARGV[6] == '1' then want = ARGV[7] end
  if old[KEYS[2]] ~= want then return {0, 0} end
  redis.call('SET', KEYS[2], ARGV[8])
elseif op == 'incr' then
  local v = old[KEYS[2]]
  if v and not string.match(v, '^%d+$') then return {-2, 0} end
  redis.call('INCRBY', KEYS[2], ARGV[6])
  result = redis.call('GET', KEYS[2])
end
local after = 0
for k, _ in pairs(old) do after = after + size(k) end
local delta = after - before
if delta > 0 and used + delta > limit then
  for k, v in pairs(old) do
    if v then redis.call('SET', k, v) else redis.call('DEL', k) end
  end
  return {-1, used, delta}
end
redis.call('HSET', KEYS[1], bucket, math.max(used + delta, 0))
return {1, result}
";

/// Carry out a write `op` on a bucket with quota `limit`; `base` is the
/// bucket's key prefix, `key` makes a data key.
pub(crate) async fn write(
    c: &mut ConnectionManager,
    prefix: &str,
    bucket: &str,
    base: &str,
    limit: u64,
    key: &(impl Fn(&str) -> String + Send + Sync),
    op: KvOp,
) -> Result<KvReply, KvError> {
    let script = redis::Script::new(SCRIPT);
    let mut call = script.key(counts_key(prefix));
    call.arg(limit)
        .arg(format!("{}*", glob_escape(base)))
        .arg(base.len());
    let what = match &op {
        KvOp::Set(k, v) => {
            call.arg("set").arg(bucket).key(key(k)).arg(v.as_slice());
            "set"
        }
        KvOp::SetMany(kvs) => {
            call.arg("set").arg(bucket);
            for (k, v) in kvs {
                call.key(key(k)).arg(v.as_slice());
            }
            "set"
        }
        KvOp::Delete(k) => {
            call.arg("del").arg(bucket).key(key(k));
            "del"
        }
        KvOp::DeleteMany(ks) => {
            call.arg("del").arg(bucket);
            ks.iter().for_each(|k| {
                call.key(key(k));
            });
            "del"
        }
        KvOp::CompareAndSwap {
            key: k,
            expected,
            new,
        } => {
            call.arg("cas").arg(bucket).key(key(k));
            match expected {
                Some(e) => call.arg("1").arg(e.as_slice()),
                None => call.arg("0").arg(""),
            };
            call.arg(new.as_slice());
            "cas"
        }
        KvOp::Increment(k, d) => {
            let d = i64::try_from(*d)
                .map_err(|_| KvError::Other(format!("an increment of {d} is over i64::MAX")))?;
            call.arg("incr").arg(bucket).key(key(k)).arg(d);
            "incr"
        }
        other => return Err(failed(format!("{other:?} is not a write"))),
    };
    let answer: Vec<redis::Value> = call.invoke_async(c).await.map_err(failed)?;
    let mut answer = answer.into_iter();
    let mut next = || answer.next().unwrap_or(redis::Value::Nil);
    let code: i64 = redis::from_redis_value(next()).map_err(failed)?;
    let (value, needed) = (next(), next());
    match (code, what) {
        (0, "cas") => Ok(KvReply::Swapped(false)),
        (1, "cas") => Ok(KvReply::Swapped(true)),
        (1, "incr") => Ok(KvReply::Count(crate::redis::count(&op, value)?)),
        (1, _) => Ok(KvReply::Done),
        (-1, _) => {
            let used: u64 = redis::from_redis_value(value).map_err(failed)?;
            Err(KvError::Other(format!(
                "bucket `{bucket}` is over its quota of {limit} bytes ({used} used; this write needs {} more)",
                redis::from_redis_value::<u64>(needed).unwrap_or(0)
            )))
        }
        (-2, _) => Err(crate::redis::not_a_counter(&op)),
        (code, _) => Err(failed(format!("the quota script answered {code}"))),
    }
}

/// Drop the counts of buckets that have no quota now (they were not kept
/// up to date while they had none).
pub(crate) async fn forget_unquoted(
    c: &mut ConnectionManager,
    prefix: &str,
    quotas: &HashMap<String, u64>,
) -> Result<(), KvError> {
    let counts = counts_key(prefix);
    let buckets: Vec<String> = redis::cmd("HKEYS")
        .arg(&counts)
        .query_async(c)
        .await
        .map_err(failed)?;
    let stale: Vec<&String> = buckets
        .iter()
        .filter(|b| !quotas.contains_key(*b))
        .collect();
    if !stale.is_empty() {
        let _: u64 = redis::cmd("HDEL")
            .arg(&counts)
            .arg(stale)
            .query_async(c)
            .await
            .map_err(failed)?;
    }
    Ok(())
}
