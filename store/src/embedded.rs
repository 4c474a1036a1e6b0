//! The embedded backend: redb, one file per node.
//!
//! Every bucket lives in one table keyed by `(bucket, key)`, so a bucket
//! needs no set-up and lists in key order. Reads run in the caller, each in
//! its own read transaction (redb's MVCC: they never wait for a writer). Writes go, through a bounded queue, to one writer thread that
//! applies whatever is waiting (up to [`GROUP`] operations) in one write
//! transaction and commits it with fsync (`Durability::Immediate`) before it
//! answers any of them: a write is on disk when its call returns, and
//! concurrent writers share the cost of one fsync.

use crate::StoreError;
use crate::quota::Quotas;
use plasmoid_runtime::kv::{KvError, KvFuture, KvOp, KvReply, KvStore, LIST_PAGE};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

const TABLE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
/// Writes waiting for the writer at most (10,000); past it a write fails.
pub const QUEUE: usize = 10_000;
/// Operations one commit takes at most (256).
pub const GROUP: usize = 256;

type Reply = oneshot::Sender<Result<KvReply, KvError>>;

struct Write {
    bucket: String,
    op: KvOp,
    reply: Reply,
}

/// A redb file and its writer.
pub struct Embedded {
    db: Arc<Database>,
    cursors: Cursors,
    /// `None` once dropped: the writer sees the queue close and ends.
    writes: Option<mpsc::SyncSender<Write>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Embedded {
    /// Let the writer finish what is queued, so the file is closed (and can
    /// be opened again) when this returns.
    fn drop(&mut self) {
        self.writes.take();
        if let Some(w) = self.writer.take() {
            let join = move || {
                let _ = w.join();
            };
            // The last handle may go inside a guest's call on a runtime
            // worker: hand the worker's other tasks on while waiting.
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(join),
                _ => join(),
            }
        }
    }
}

/// Cursors handed out by `list-keys` and not yet used (at most
/// [`MAX_CURSORS`]; the oldest go first): each one is the last key of a
/// page, for its bucket.
#[derive(Default)]
struct Cursors {
    next: std::sync::atomic::AtomicU64,
    open: parking_lot::Mutex<std::collections::VecDeque<(u64, String, String)>>,
}

/// Unused list-keys cursors kept at most (1,024).
const MAX_CURSORS: usize = 1024;

impl Cursors {
    fn give(&self, bucket: &str, last: &str) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut open = self.open.lock();
        if open.len() >= MAX_CURSORS {
            open.pop_front();
        }
        open.push_back((id, bucket.to_string(), last.to_string()));
        id
    }

    fn take(&self, id: u64, bucket: &str) -> Option<String> {
        let mut open = self.open.lock();
        let i = open.iter().position(|(c, b, _)| *c == id && b == bucket)?;
        open.remove(i).map(|(_, _, last)| last)
    }
}

fn failed(e: impl std::fmt::Display) -> KvError {
    KvError::Other(format!("the store failed: {e}"))
}

impl Embedded {
    /// Open (or create) the store at `path`, creating its folder.
    pub fn open(path: &Path) -> Result<Embedded, StoreError> {
        Self::open_with_quotas(path, HashMap::new())
    }

    /// [`Embedded::open`], with the most bytes (keys and values) each
    /// named bucket may hold.
    pub fn open_with_quotas(
        path: &Path,
        quotas: HashMap<String, u64>,
    ) -> Result<Embedded, StoreError> {
        let open_err = |why: String| StoreError::Open {
            path: path.display().to_string(),
            why,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| open_err(e.to_string()))?;
        // Create the table once, so reads of a fresh store find it.
        let txn = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        txn.open_table(TABLE).map_err(|e| open_err(e.to_string()))?;
        txn.commit().map_err(|e| open_err(e.to_string()))?;
        let db = Arc::new(db);
        let (writes, queue) = mpsc::sync_channel(QUEUE);
        let writer = db.clone();
        let writer = std::thread::Builder::new()
            .name("plasmoid-store".into())
            .spawn(move || write_loop(&writer, &queue, Quotas::new(quotas)))
            .map_err(StoreError::Thread)?;
        Ok(Embedded {
            db,
            cursors: Cursors::default(),
            writes: Some(writes),
            writer: Some(writer),
        })
    }
}

impl KvStore for Embedded {
    fn call(&self, bucket: &str, op: KvOp) -> KvFuture {
        let bucket = bucket.to_string();
        match op {
            // Reads run right here: a read transaction on pages the OS has
            // cached takes about a microsecond, far less than a hand-off
            // to another thread and back would.
            KvOp::Get(_) | KvOp::Exists(_) | KvOp::ListKeys(_) | KvOp::GetMany(_) => {
                let r = read(&self.db, &self.cursors, &bucket, op);
                Box::pin(async move { r })
            }
            op => {
                let (reply, answer) = oneshot::channel();
                let queued = match &self.writes {
                    Some(w) => w.try_send(Write { bucket, op, reply }),
                    None => Err(mpsc::TrySendError::Disconnected(Write {
                        bucket,
                        op,
                        reply,
                    })),
                };
                Box::pin(async move {
                    match queued {
                        Ok(()) => answer
                            .await
                            .unwrap_or_else(|_| Err(failed("the writer stopped"))),
                        Err(mpsc::TrySendError::Full(_)) => Err(KvError::Other(format!(
                            "the store is overloaded: {QUEUE} writes are waiting"
                        ))),
                        Err(mpsc::TrySendError::Disconnected(_)) => {
                            Err(failed("the writer stopped"))
                        }
                    }
                })
            }
        }
    }
}

fn read(db: &Database, cursors: &Cursors, bucket: &str, op: KvOp) -> Result<KvReply, KvError> {
    let txn = db.begin_read().map_err(failed)?;
    let table = txn.open_table(TABLE).map_err(failed)?;
    let get = |k: &str| -> Result<Option<Vec<u8>>, KvError> {
        Ok(table
            .get((bucket, k))
            .map_err(failed)?
            .map(|v| v.value().to_vec()))
    };
    match op {
        KvOp::Get(k) => Ok(KvReply::Value(get(&k)?)),
        KvOp::Exists(k) => Ok(KvReply::Exists(get(&k)?.is_some())),
        KvOp::GetMany(ks) => Ok(KvReply::Values(
            ks.iter().map(|k| get(k)).collect::<Result<_, _>>()?,
        )),
        KvOp::ListKeys(cursor) => {
            // A cursor stands for the last key of its page: the next page
            // starts after it, so each page costs one page of reading.
            let after = match cursor {
                None => None,
                Some(c) => Some(cursors.take(c, bucket).ok_or_else(|| {
                    KvError::Other(
                        "that list-keys cursor is unknown or expired; list again from the start"
                            .into(),
                    )
                })?),
            };
            let start = after.as_deref().unwrap_or("");
            let mut keys = Vec::new();
            let mut more = false;
            for entry in table.range((bucket, start)..).map_err(failed)? {
                let (k, _) = entry.map_err(failed)?;
                let (b, key) = k.value();
                if b != bucket {
                    break;
                }
                if after.as_deref() == Some(key) {
                    continue;
                }
                if keys.len() == LIST_PAGE {
                    more = true;
                    break;
                }
                keys.push(key.to_string());
            }
            let next = match (more, keys.last()) {
                (true, Some(last)) => Some(cursors.give(bucket, last)),
                _ => None,
            };
            Ok(KvReply::Keys(keys, next))
        }
        other => Err(failed(format!("{other:?} is not a read"))),
    }
}

/// The writer: take what waits, apply it in one transaction, commit, answer.
fn write_loop(db: &Database, queue: &mpsc::Receiver<Write>, mut quotas: Quotas) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match queue.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        let results = commit(db, &group, &mut quotas);
        for (w, r) in group.into_iter().zip(results) {
            let _ = w.reply.send(r);
        }
    }
}

/// Apply `group` in one durable commit; one result per write. A write
/// that fails on its own (an increment of a non-number) changes nothing
/// and fails alone; a failed commit fails them all.
fn commit(db: &Database, group: &[Write], quotas: &mut Quotas) -> Vec<Result<KvReply, KvError>> {
    let all = |e: KvError, quotas: &mut Quotas| {
        quotas.forget();
        group.iter().map(|_| Err(e.clone())).collect()
    };
    let txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => return all(failed(e), quotas),
    };
    let mut results = Vec::with_capacity(group.len());
    {
        let mut table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(e) => return all(failed(e), quotas),
        };
        for w in group {
            let r = quotas.admit(&table, &w.bucket, &w.op).and_then(|used| {
                let r = apply(&mut table, &w.bucket, &w.op)?;
                if let Some(used) = used {
                    quotas.settle(&w.bucket, used);
                }
                Ok(r)
            });
            results.push(r);
        }
    }
    match txn.commit() {
        Ok(()) => results,
        Err(e) => all(failed(e), quotas),
    }
}

fn apply(
    table: &mut redb::Table<(&str, &str), &[u8]>,
    bucket: &str,
    op: &KvOp,
) -> Result<KvReply, KvError> {
    match op {
        KvOp::Set(k, v) => {
            table
                .insert((bucket, k.as_str()), v.as_slice())
                .map_err(failed)?;
        }
        KvOp::Delete(k) => {
            table.remove((bucket, k.as_str())).map_err(failed)?;
        }
        KvOp::SetMany(kvs) => {
            for (k, v) in kvs {
                table
                    .insert((bucket, k.as_str()), v.as_slice())
                    .map_err(failed)?;
            }
        }
        KvOp::DeleteMany(ks) => {
            for k in ks {
                table.remove((bucket, k.as_str())).map_err(failed)?;
            }
        }
        KvOp::Increment(k, delta) => {
            let now = match table.get((bucket, k.as_str())).map_err(failed)? {
                None => 0,
                Some(v) => parse_count(k, v.value())?,
            };
            let next = now.checked_add(*delta).ok_or_else(|| {
                KvError::Other(format!("incrementing `{k}` by {delta} overflows a u64"))
            })?;
            table
                .insert((bucket, k.as_str()), next.to_string().as_bytes())
                .map_err(failed)?;
            return Ok(KvReply::Count(next));
        }
        KvOp::CompareAndSwap { key, expected, new } => {
            let now = table.get((bucket, key.as_str())).map_err(failed)?;
            let same = now.as_ref().map(|v| v.value()) == expected.as_deref();
            drop(now);
            if same {
                table
                    .insert((bucket, key.as_str()), new.as_slice())
                    .map_err(failed)?;
            }
            return Ok(KvReply::Swapped(same));
        }
        other => return Err(failed(format!("{other:?} is not a write"))),
    }
    Ok(KvReply::Done)
}

/// A counter is stored as decimal text, as Redis's INCRBY keeps it.
fn parse_count(key: &str, v: &[u8]) -> Result<u64, KvError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            KvError::Other(format!(
                "`{key}` does not hold a counter (a decimal u64), so it cannot be incremented"
            ))
        })
}
