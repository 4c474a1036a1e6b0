//! Links, monitors and trap-exit against Erlang's semantics table, with real
//! particles on both ends.

mod common;
use common::{Harness, SEC, s};
use plasmoid_runtime::{ExitReason, Pid};
use serde_json::{Value, json};
use std::time::Duration;

/// Spawn two probes, link `a` to `b`, optionally make `a` trap exits, end
/// `b` with `reason` and report what happened to `a`: its DOWN reason if it
/// died, or the EXIT event it received.
async fn link_case(trap: bool, end_b: Value) -> (Option<ExitReason>, Option<Value>, Pid) {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    let watch_a = h.ctl.monitor(a);
    h.ok(a, json!({"trap_exit": trap})).await;
    h.ok(a, json!({"link": s(b)})).await;
    h.fire(b, end_b);
    let event = h.event(2 * SEC).await;
    let down = h.down_reason(watch_a, Duration::from_millis(300)).await;
    (down, event, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_exit_does_not_kill_a_linked_process() {
    let (down, event, _) = link_case(false, json!("return_ok")).await;
    assert_eq!(down, None, "a survives");
    assert_eq!(event, None, "and sees nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_exit_reaches_a_trapping_process_as_a_message() {
    let (down, event, b) = link_case(true, json!("return_ok")).await;
    assert_eq!(down, None);
    assert_eq!(
        event.unwrap(),
        json!({"exit": {"sender": s(b), "reason": "normal"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abnormal_exit_kills_a_linked_process_with_the_same_reason() {
    let (down, _, _) = link_case(false, json!({"return_err": "bad"})).await;
    assert_eq!(down, Some(ExitReason::Exception("bad".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abnormal_exit_reaches_a_trapping_process_as_a_message() {
    let (down, event, b) = link_case(true, json!({"exit": {"shutdown": "bye"}})).await;
    assert_eq!(down, None);
    assert_eq!(
        event.unwrap(),
        json!({"exit": {"sender": s(b), "reason": {"shutdown": "bye"}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_an_exception_that_propagates_over_links() {
    let (down, _, _) = link_case(false, json!("trap")).await;
    match down {
        Some(ExitReason::Exception(m)) => assert!(m.contains("unreachable"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_cannot_be_trapped_and_links_see_killed() {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    let watch_a = h.ctl.monitor(a);
    let watch_b = h.ctl.monitor(b);
    // b traps exits, yet `kill` ends it; a (trapping, linked to b) sees `killed`.
    h.ok(b, json!({"trap_exit": true})).await;
    h.ok(a, json!({"trap_exit": true})).await;
    h.ok(a, json!({"link": s(b)})).await;
    h.ok(a, json!({"send_exit": {"to": s(b), "reason": "kill"}}))
        .await;
    assert_eq!(
        h.down_reason(watch_b, 5 * SEC).await,
        Some(ExitReason::Killed)
    );
    assert_eq!(
        h.event(5 * SEC).await.unwrap(),
        json!({"exit": {"sender": s(b), "reason": "killed"}})
    );
    assert_eq!(
        h.down_reason(watch_a, Duration::from_millis(200)).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_signal_other_than_kill_is_trappable() {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    h.ok(b, json!({"trap_exit": true})).await;
    h.ok(
        a,
        json!({"send_exit": {"to": s(b), "reason": {"shutdown": "please"}}}),
    )
    .await;
    assert_eq!(
        h.event(5 * SEC).await.unwrap(),
        json!({"exit": {"sender": s(a), "reason": {"shutdown": "please"}}})
    );
    // Without trapping, the same signal ends the process; `normal` does not.
    let c = h.probe().await;
    let watch_c = h.ctl.monitor(c);
    h.ok(a, json!({"send_exit": {"to": s(c), "reason": "normal"}}))
        .await;
    assert_eq!(h.ok(c, json!("self_pid")).await, s(c));
    h.ok(
        a,
        json!({"send_exit": {"to": s(c), "reason": {"shutdown": "now"}}}),
    )
    .await;
    assert_eq!(
        h.down_reason(watch_c, 5 * SEC).await,
        Some(ExitReason::Shutdown("now".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_stops_propagation() {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    let watch_a = h.ctl.monitor(a);
    h.ok(a, json!({"link": s(b)})).await;
    h.ok(a, json!({"unlink": s(b)})).await;
    h.fire(b, json!({"return_err": "bad"}));
    assert_eq!(
        h.down_reason(watch_a, Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_fires_once_with_the_reason() {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    let r = h.ok(a, json!({"monitor": s(b)})).await.as_u64().unwrap();
    h.fire(b, json!({"return_err": "gone"}));
    assert_eq!(
        h.event(5 * SEC).await.unwrap(),
        json!({"down": {"sender": s(b), "ref": r, "reason": {"exception": "gone"}}})
    );
    assert_eq!(
        h.event(Duration::from_millis(200)).await,
        None,
        "exactly one DOWN"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_a_dead_pid_delivers_noproc_at_once() {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    let watch_b = h.ctl.monitor(b);
    h.fire(b, json!("return_ok"));
    h.down_reason(watch_b, 5 * SEC).await.unwrap();
    let r = h.ok(a, json!({"monitor": s(b)})).await.as_u64().unwrap();
    assert_eq!(
        h.event(SEC).await.unwrap(),
        json!({"down": {"sender": s(b), "ref": r, "reason": "noproc"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demonitor_means_no_down() {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    let r = h.ok(a, json!({"monitor": s(b)})).await.as_u64().unwrap();
    assert_eq!(h.ok(a, json!({"demonitor": r})).await, true);
    assert_eq!(h.ok(a, json!({"demonitor": r})).await, false);
    h.fire(b, json!({"return_err": "x"}));
    assert_eq!(h.event(Duration::from_millis(300)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_to_a_dead_pid() {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    let watch_b = h.ctl.monitor(b);
    h.fire(b, json!("return_ok"));
    h.down_reason(watch_b, 5 * SEC).await.unwrap();
    // Not trapping: link fails with noproc.
    assert_eq!(h.cmd(a, json!({"link": s(b)})).await["err"], "noproc");
    // Trapping: link succeeds and an EXIT noproc arrives.
    h.ok(a, json!({"trap_exit": true})).await;
    assert_eq!(h.ok(a, json!({"link": s(b)})).await, Value::Null);
    assert_eq!(
        h.event(SEC).await.unwrap(),
        json!({"exit": {"sender": s(b), "reason": "noproc"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_link_ties_parent_and_child() {
    let h = Harness::new();
    let a = h.probe().await;
    let watch_a = h.ctl.monitor(a);
    let init = json!({"controller": s(h.ctl.pid())}).to_string();
    let child = h
        .ok(
            a,
            json!({"spawn": {"component": "probe", "init": init, "link": true}}),
        )
        .await;
    let child = h.node.resolve(child.as_str().unwrap()).unwrap();
    // The child's `ready` comes to the controller; then it crashes.
    h.fire(child, json!("panic"));
    match h.down_reason(watch_a, 5 * SEC).await {
        Some(ExitReason::Exception(m)) => {
            assert!(m.contains("unreachable") || m.contains("panic"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}
