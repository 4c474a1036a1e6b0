//! plasmoid-store: the backends behind particles' `wasi:keyvalue` buckets.
//!
//! It owns where durable state lives and how a write becomes durable: the
//! embedded backend (redb, one file per node, every write committed with
//! fsync before its call returns, concurrent writes grouped into one
//! commit) and the Redis backend (one server for every node, each call
//! bounded in time). It does not own the guest interface, Cedar's decisions or the
//! size caps (plasmoid-runtime's `kv` module, which calls a backend through
//! [`plasmoid_runtime::kv::KvStore`]), nor where the file goes (the
//! release puts it in its data folder, outside the hashed part).
//!
//! - `embedded`: the redb backend;
//! - `redis`: the Redis backend, for releases whose children fail over
//!   between nodes; `redis_quota` keeps its per-bucket quotas;
//! - `redis_server`: a throwaway local redis-server for tests and benches.

mod embedded;
mod quota;
mod redis;
mod redis_quota;
mod redis_server;

pub use embedded::Embedded;
pub use redis::Redis;
pub use redis_server::RedisServer;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {why} (is another node using it?)")]
    Open { path: String, why: String },
    #[error("cannot start the store's writer thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    RedisServer(String),
}

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_embedded_backend_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(&dir.path().join("node/store.redb")).unwrap();
        conformance::basics(&s).await;
        conformance::listing(&s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_grouped_and_all_durable() {
        use plasmoid_runtime::kv::{KvOp, KvReply, KvStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let s = std::sync::Arc::new(Embedded::open(&path).unwrap());
        let writes: Vec<_> = (0..200)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(
                    async move { s.call("c", KvOp::Set(format!("k{i}"), vec![i as u8])).await },
                )
            })
            .collect();
        for w in writes {
            assert_eq!(w.await.unwrap(), Ok(KvReply::Done));
        }
        drop(s);
        // Reopened, every acknowledged write is there.
        let s = Embedded::open(&path).unwrap();
        for i in 0..200 {
            let got = s.call("c", KvOp::Get(format!("k{i}"))).await.unwrap();
            assert_eq!(got, KvReply::Value(Some(vec![i as u8])));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bucket_over_its_quota_refuses_the_write_and_keeps_the_rest() {
        use plasmoid_runtime::kv::{KvOp, KvReply, KvStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.redb");
        let quotas = || [("q".to_string(), 100u64)].into_iter().collect();
        let s = Embedded::open_with_quotas(&path, quotas()).unwrap();
        conformance::quotas(&s).await;
        drop(s);
        // Reopened, the usage is counted again from what is stored (100).
        let s = Embedded::open_with_quotas(&path, quotas()).unwrap();
        let set = |k: &str, n: usize| KvOp::Set(k.into(), vec![1; n]);
        assert!(s.call("q", set("e", 0)).await.is_err());
        assert_eq!(
            s.call("q", KvOp::Delete("d".into())).await,
            Ok(KvReply::Done)
        );
        assert_eq!(s.call("q", set("e", 62)).await, Ok(KvReply::Done));
    }
}
