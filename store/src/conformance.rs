//! The conformance suite: the same checks, run against every backend
//! (the embedded one in this crate's tests, Redis in the repository's
//! `tests/store_backends.rs` against a real redis-server). Behind the
//! `conformance` feature: test support, not for production code.

use plasmoid_runtime::kv::{KvOp, KvReply, KvStore, LIST_PAGE};

async fn call(s: &dyn KvStore, b: &str, op: KvOp) -> KvReply {
    s.call(b, op).await.expect("the store answers")
}

/// Get, set, delete, exists, batches and counters, bucket by bucket.
pub async fn basics(s: &dyn KvStore) {
    let v = |x: &str| x.as_bytes().to_vec();
    assert_eq!(
        call(s, "a", KvOp::Get("k".into())).await,
        KvReply::Value(None)
    );
    call(s, "a", KvOp::Set("k".into(), v("1"))).await;
    assert_eq!(
        call(s, "a", KvOp::Get("k".into())).await,
        KvReply::Value(Some(v("1")))
    );
    // Buckets are apart.
    assert_eq!(
        call(s, "b", KvOp::Exists("k".into())).await,
        KvReply::Exists(false)
    );
    assert_eq!(
        call(s, "a", KvOp::Exists("k".into())).await,
        KvReply::Exists(true)
    );
    call(s, "a", KvOp::Delete("k".into())).await;
    assert_eq!(
        call(s, "a", KvOp::Exists("k".into())).await,
        KvReply::Exists(false)
    );
    call(
        s,
        "a",
        KvOp::SetMany(vec![("x".into(), v("1")), ("y".into(), v("2"))]),
    )
    .await;
    assert_eq!(
        call(
            s,
            "a",
            KvOp::GetMany(vec!["x".into(), "nope".into(), "y".into()])
        )
        .await,
        KvReply::Values(vec![Some(v("1")), None, Some(v("2"))])
    );
    call(s, "a", KvOp::DeleteMany(vec!["x".into(), "y".into()])).await;
    assert_eq!(
        call(s, "a", KvOp::Get("x".into())).await,
        KvReply::Value(None)
    );
    assert_eq!(
        call(s, "a", KvOp::Increment("n".into(), 5)).await,
        KvReply::Count(5)
    );
    assert_eq!(
        call(s, "a", KvOp::Increment("n".into(), 2)).await,
        KvReply::Count(7)
    );
    call(s, "a", KvOp::Set("text".into(), v("hello"))).await;
    let err = s
        .call("a", KvOp::Increment("text".into(), 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("counter"), "{err}");
}

/// `list-keys` pages through a bucket in order, and only that bucket.
pub async fn listing(s: &dyn KvStore) {
    let n = LIST_PAGE + 5;
    let kvs: Vec<(String, Vec<u8>)> = (0..n).map(|i| (format!("k{i:05}"), vec![1])).collect();
    for chunk in kvs.chunks(500) {
        call(s, "many", KvOp::SetMany(chunk.to_vec())).await;
    }
    call(s, "other", KvOp::Set("zz".into(), vec![1])).await;
    // Page through: every key once (a backend may order them as it likes).
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..=n {
        let KvReply::Keys(page, next) = call(s, "many", KvOp::ListKeys(cursor)).await else {
            panic!("keys")
        };
        all.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    all.sort();
    all.dedup();
    let want: Vec<String> = kvs.into_iter().map(|(k, _)| k).collect();
    assert_eq!(all, want);
}
