//! Timers from inside a real guest (the probe): Erlang's send_after,
//! send_interval and cancel_timer, delivered to a native sink process.

mod common;
use common::{Harness, s};
use plasmoid_runtime::Msg;
use serde_json::json;
use std::time::{Duration, Instant};

/// A node, a probe, and a native sink the timers send to (with its pid).
async fn setup() -> (
    Harness,
    plasmoid_runtime::Pid,
    plasmoid_runtime::NativeProcess,
    String,
) {
    let h = Harness::new();
    let p = h.probe().await;
    let sink = h.node.native("sink");
    let to = s(sink.pid());
    (h, p, sink, to)
}

async fn next_data(sink: &plasmoid_runtime::NativeProcess, within: Duration) -> Option<String> {
    match sink.recv(Some(within)).await {
        Ok(Some(Msg::Data(d))) => Some(String::from_utf8_lossy(&d).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_fires_after_its_delay_behind_earlier_messages() {
    let (h, p, sink, to) = setup().await;
    let started = Instant::now();
    h.ok(
        p,
        json!({"send_after": {"to": to, "ms": 150, "data": "late"}}),
    )
    .await;
    h.ok(p, json!({"send": {"to": to, "data": "now"}})).await;
    assert_eq!(
        next_data(&sink, Duration::from_secs(5)).await.as_deref(),
        Some("now")
    );
    assert_eq!(
        next_data(&sink, Duration::from_secs(5)).await.as_deref(),
        Some("late")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_timer_says_what_was_left_and_never_fires() {
    let (h, p, sink, to) = setup().await;
    let r = h
        .ok(
            p,
            json!({"send_after": {"to": to, "ms": 10_000, "data": "never"}}),
        )
        .await;
    let left = h.ok(p, json!({"cancel_timer": r})).await;
    let left = left.as_u64().expect("time left");
    assert!((9_000..=10_000).contains(&left), "{left}");
    // Cancelled again, or a one-shot that fired: nothing left.
    assert_eq!(h.ok(p, json!({"cancel_timer": r})).await, json!(null));
    let r = h
        .ok(
            p,
            json!({"send_after": {"to": to, "ms": 1, "data": "fired"}}),
        )
        .await;
    assert_eq!(
        next_data(&sink, Duration::from_secs(5)).await.as_deref(),
        Some("fired")
    );
    assert_eq!(h.ok(p, json!({"cancel_timer": r})).await, json!(null));
    assert_eq!(next_data(&sink, Duration::from_millis(200)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_repeats_until_cancelled() {
    let (h, p, sink, to) = setup().await;
    let r = h
        .ok(
            p,
            json!({"send_after": {"to": to, "ms": 20, "data": "tick", "every": true}}),
        )
        .await;
    for _ in 0..3 {
        assert_eq!(
            next_data(&sink, Duration::from_secs(5)).await.as_deref(),
            Some("tick")
        );
    }
    assert!(h.ok(p, json!({"cancel_timer": r})).await.is_u64());
    // At most one tick was already on its way.
    let _ = next_data(&sink, Duration::from_millis(50)).await;
    assert_eq!(next_data(&sink, Duration::from_millis(200)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_die_with_their_particle_and_a_dead_target_drops_them() {
    let (h, p, sink, to) = setup().await;
    h.ok(
        p,
        json!({"send_after": {"to": to, "ms": 300, "data": "orphan"}}),
    )
    .await;
    h.ok(
        p,
        json!({"send_after": {"to": to, "ms": 20, "data": "tick", "every": true}}),
    )
    .await;
    let reference = h.ctl.monitor(p);
    h.fire(p, json!({"exit": "normal"}));
    assert!(
        h.down_reason(reference, Duration::from_secs(5))
            .await
            .is_some()
    );
    // Ticks sent before it ended may still be queued; then nothing more.
    let quiet = Instant::now() + Duration::from_millis(600);
    let mut after_quiet = Vec::new();
    while Instant::now() < quiet {
        if let Some(m) = next_data(&sink, Duration::from_millis(100)).await {
            after_quiet.push(m);
        }
    }
    assert!(
        !after_quiet.contains(&"orphan".to_string()),
        "{after_quiet:?}"
    );
    assert!(
        after_quiet.len() <= 1,
        "ticks after the particle ended: {after_quiet:?}"
    );
    // A timer to a process that is gone by then is dropped, not an error.
    let q = h.probe().await;
    let gone = h.node.native("gone");
    let gone_pid = s(gone.pid());
    drop(gone);
    h.ok(
        q,
        json!({"send_after": {"to": gone_pid, "ms": 10, "data": "x"}}),
    )
    .await;
    h.ok(
        q,
        json!({"send_after": {"to": to, "ms": 40, "data": "after"}}),
    )
    .await;
    assert_eq!(
        next_data(&sink, Duration::from_secs(5)).await.as_deref(),
        Some("after")
    );
    assert!(
        h.ok(q, json!("self_pid")).await.is_string(),
        "the probe lives on"
    );
}
