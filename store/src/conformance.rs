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
    compare_and_swap(s).await;
}

/// Compare-and-swap: on an absent key, on a matching and a stale value.
async fn compare_and_swap(s: &dyn KvStore) {
    let cas = |expected: Option<&str>, new: &str| KvOp::CompareAndSwap {
        key: "c".into(),
        expected: expected.map(|e| e.as_bytes().to_vec()),
        new: new.as_bytes().to_vec(),
    };
    assert_eq!(
        call(s, "a", cas(Some("x"), "1")).await,
        KvReply::Swapped(false)
    );
    assert_eq!(call(s, "a", cas(None, "1")).await, KvReply::Swapped(true));
    assert_eq!(call(s, "a", cas(None, "2")).await, KvReply::Swapped(false));
    assert_eq!(
        call(s, "a", cas(Some("1"), "2")).await,
        KvReply::Swapped(true)
    );
    assert_eq!(
        call(s, "a", cas(Some("1"), "3")).await,
        KvReply::Swapped(false)
    );
    assert_eq!(
        call(s, "a", KvOp::Get("c".into())).await,
        KvReply::Value(Some(b"2".to_vec()))
    );
    // An empty value is a value, not an absent key.
    assert_eq!(
        call(s, "a", cas(Some("2"), "")).await,
        KvReply::Swapped(true)
    );
    assert_eq!(call(s, "a", cas(None, "4")).await, KvReply::Swapped(false));
    assert_eq!(
        call(s, "a", cas(Some(""), "4")).await,
        KvReply::Swapped(true)
    );
}

/// Quotas: the backend was made with a quota of 100 bytes on bucket `q`
/// and none on `free`; `q` starts empty. A write past the quota fails
/// alone and changes nothing; shrinking and deleting make room; a key
/// twice in one batch counts once.
pub async fn quotas(s: &dyn KvStore) {
    let set = |k: &str, n: usize| KvOp::Set(k.into(), vec![1; n]);
    assert_eq!(call(s, "q", set("a", 59)).await, KvReply::Done); // 60 bytes
    let err = s.call("q", set("b", 59)).await.unwrap_err();
    assert!(
        err.to_string().contains("over its quota of 100 bytes"),
        "{err}"
    );
    assert_eq!(
        call(s, "q", KvOp::Get("b".into())).await,
        KvReply::Value(None)
    );
    assert_eq!(call(s, "free", set("b", 500)).await, KvReply::Done);
    assert_eq!(call(s, "q", set("a", 9)).await, KvReply::Done); // 10
    assert_eq!(call(s, "q", set("b", 59)).await, KvReply::Done); // 70
    assert!(s.call("q", set("c", 40)).await.is_err());
    assert_eq!(call(s, "q", KvOp::Delete("b".into())).await, KvReply::Done);
    assert_eq!(call(s, "q", set("c", 40)).await, KvReply::Done); // 51
    let twice = KvOp::DeleteMany(vec!["a".into(), "a".into()]);
    assert_eq!(call(s, "q", twice).await, KvReply::Done); // 41
    assert!(s.call("q", set("d", 59)).await.is_err(), "41 + 60 > 100");
    // A swap that would pass the quota is refused and changes nothing;
    // one that does not swap needs no room.
    let cas = |expected: Option<Vec<u8>>, n: usize| KvOp::CompareAndSwap {
        key: "c".into(),
        expected,
        new: vec![2; n],
    };
    assert!(s.call("q", cas(Some(vec![1; 40]), 100)).await.is_err());
    assert_eq!(call(s, "q", cas(None, 100)).await, KvReply::Swapped(false));
    assert_eq!(
        call(s, "q", cas(Some(vec![1; 40]), 30)).await,
        KvReply::Swapped(true)
    ); // 31
    // Counters count as their decimal text: `n` and `12345` are 6 bytes.
    assert_eq!(
        call(s, "q", KvOp::Increment("n".into(), 12345)).await,
        KvReply::Count(12345)
    );
    assert_eq!(call(s, "q", set("d", 62)).await, KvReply::Done); // 37 + 63 = 100
    assert!(
        s.call("q", KvOp::Increment("n".into(), 100_000))
            .await
            .is_err()
    );
    assert_eq!(
        call(s, "q", KvOp::Get("n".into())).await,
        KvReply::Value(Some(b"12345".to_vec()))
    );
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
