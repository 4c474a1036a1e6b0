//! Per-bucket quotas of the embedded backend: the bytes of a bucket's keys
//! and values may not pass the manifest's limit.
//!
//! The writer thread keeps each quota'd bucket's usage in memory, counted
//! by one scan the first time the bucket is written and kept up to date by
//! every write after; a failed commit forgets the counts (the next write
//! counts again). A write past the quota fails alone and changes nothing,
//! and a write counts only once it applied. Counters are counted as the
//! decimal text they are stored as.

use plasmoid_runtime::kv::{KvError, KvOp};
use redb::ReadableTable;
use std::collections::HashMap;

type Table<'t> = redb::Table<'t, (&'static str, &'static str), &'static [u8]>;

#[derive(Default)]
pub(crate) struct Quotas {
    limits: HashMap<String, u64>,
    used: HashMap<String, u64>,
}

fn failed(e: impl std::fmt::Display) -> KvError {
    KvError::Other(format!("the store failed: {e}"))
}

impl Quotas {
    pub(crate) fn new(limits: HashMap<String, u64>) -> Quotas {
        Quotas {
            limits,
            used: HashMap::new(),
        }
    }

    /// Whether `op` fits `bucket`'s quota: `Some(bytes used after it)`
    /// for a bucket with a quota, to [`Quotas::settle`] once it applied.
    pub(crate) fn admit(
        &mut self,
        table: &Table<'_>,
        bucket: &str,
        op: &KvOp,
    ) -> Result<Option<u64>, KvError> {
        let Some(&limit) = self.limits.get(bucket) else {
            return Ok(None);
        };
        let used = match self.used.get(bucket) {
            Some(u) => *u,
            None => {
                let mut total = 0u64;
                for entry in table.range((bucket, "")..).map_err(failed)? {
                    let (k, v) = entry.map_err(failed)?;
                    if k.value().0 != bucket {
                        break;
                    }
                    total += (k.value().1.len() + v.value().len()) as u64;
                }
                total
            }
        };
        let old = |k: &str| -> Result<i64, KvError> {
            Ok(table
                .get((bucket, k))
                .map_err(failed)?
                .map_or(0, |v| (k.len() + v.value().len()) as i64))
        };
        // Each key once, as the write leaves it (the last of a batch wins).
        let mut after_op: Vec<(&str, Option<usize>)> = Vec::new();
        fn put<'k>(after_op: &mut Vec<(&'k str, Option<usize>)>, k: &'k str, len: Option<usize>) {
            after_op.retain(|(key, _)| *key != k);
            after_op.push((k, len));
        }
        match op {
            KvOp::Set(k, v) => put(&mut after_op, k, Some(v.len())),
            KvOp::SetMany(kvs) => kvs
                .iter()
                .for_each(|(k, v)| put(&mut after_op, k, Some(v.len()))),
            KvOp::Delete(k) => put(&mut after_op, k, None),
            KvOp::DeleteMany(ks) => ks.iter().for_each(|k| put(&mut after_op, k, None)),
            KvOp::CompareAndSwap { key, expected, new } => {
                let now = table.get((bucket, key.as_str())).map_err(failed)?;
                if now.as_ref().map(|v| v.value()) == expected.as_deref() {
                    put(&mut after_op, key, Some(new.len()));
                }
            }
            KvOp::Increment(k, d) => {
                let now = match table.get((bucket, k.as_str())).map_err(failed)? {
                    None => Some(0),
                    Some(v) => std::str::from_utf8(v.value())
                        .ok()
                        .and_then(|t| t.parse::<u64>().ok()),
                };
                // A failing increment (not a counter, an overflow) changes
                // nothing and needs no room: `apply` refuses it.
                if let Some(next) = now.and_then(|n| n.checked_add(*d)) {
                    put(&mut after_op, k, Some(next.to_string().len()));
                }
            }
            _ => {}
        }
        let mut delta: i64 = 0;
        for (k, len) in after_op {
            delta += len.map_or(0, |l| (k.len() + l) as i64) - old(k)?;
        }
        let after = (used as i64 + delta).max(0) as u64;
        if delta > 0 && after > limit {
            return Err(KvError::Other(format!(
                "bucket `{bucket}` is over its quota of {limit} bytes ({used} used; this write needs {delta} more)"
            )));
        }
        Ok(Some(after))
    }

    /// `bucket`'s write applied: it now holds `used` bytes.
    pub(crate) fn settle(&mut self, bucket: &str, used: u64) {
        self.used.insert(bucket.to_string(), used);
    }

    /// A commit failed: the counts may be off; count again next time.
    pub(crate) fn forget(&mut self) {
        self.used.clear();
    }
}
