//! A guest trap, endless loop or memory bomb ends that particle only; bad
//! components are refused at load with the reason.

mod common;
use common::{Harness, SEC, s};
use plasmoid_runtime::{ExitReason, Limits, RuntimeError, SpawnOpts};
use serde_json::json;
use std::time::{Duration, Instant};

fn limited(cpu_ms: u64, memory_mb: u64) -> Harness {
    let limits = Limits {
        cpu_ms,
        memory_bytes: memory_mb << 20,
        ..Default::default()
    };
    Harness::with(common::config(), Some(limits))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_does_not_starve_others_and_hits_its_cpu_budget() {
    let h = limited(1_500, 64);
    let spinner = h.probe().await;
    let other = h.probe().await;
    let watch = h.ctl.monitor(spinner);
    h.fire(spinner, json!("spin"));
    // While it spins, the other particle keeps answering promptly.
    for _ in 0..10 {
        let t = Instant::now();
        assert_eq!(h.ok(other, json!("self_pid")).await, s(other));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "answer took {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match h.down_reason(watch, 10 * SEC).await {
        Some(ExitReason::Exception(m)) => assert!(m.contains("cpu budget"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The node lives on.
    assert_eq!(h.ok(other, json!("self_pid")).await, s(other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_stops_a_busy_loop_at_once() {
    let h = limited(0, 64);
    let spinner = h.probe().await;
    let watch = h.ctl.monitor(spinner);
    h.fire(spinner, json!("spin"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    h.ctl.send_exit(spinner, ExitReason::Kill).unwrap();
    assert_eq!(
        h.down_reason(watch, 5 * SEC).await,
        Some(ExitReason::Killed)
    );
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "kill took {:?}",
        t.elapsed()
    );
    assert_eq!(h.node.live_particles(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_ends_at_its_cap() {
    let h = limited(0, 32);
    let bomb = h.probe().await;
    let other = h.probe().await;
    let watch = h.ctl.monitor(bomb);
    assert_eq!(h.ok(bomb, json!({"alloc_mb": 8})).await, 8);
    h.fire(bomb, json!({"alloc_mb": 1000}));
    match h.down_reason(watch, 10 * SEC).await {
        Some(ExitReason::Exception(m)) => assert!(m.contains("memory limit"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.ok(other, json!("self_pid")).await, s(other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_and_an_error_return_are_exceptions() {
    let h = Harness::new();
    let p = h.probe().await;
    let watch = h.ctl.monitor(p);
    h.fire(p, json!({"return_err": "init failed"}));
    assert_eq!(
        h.down_reason(watch, 5 * SEC).await,
        Some(ExitReason::Exception("init failed".into()))
    );
    let q = h.probe().await;
    let watch = h.ctl.monitor(q);
    h.fire(q, json!("panic"));
    assert!(matches!(
        h.down_reason(watch, 5 * SEC).await,
        Some(ExitReason::Exception(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_refused_at_load_with_the_reason() {
    let h = Harness::new();
    let err = h
        .node
        .load_component_bytes("junk", b"\0asm garbage", None)
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::InvalidComponent { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("`junk` is not a valid WebAssembly component"),
        "{text}"
    );
    // Nothing was registered.
    assert!(h.node.spawn("junk", "", SpawnOpts::default()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_of_another_world_is_refused() {
    let h = Harness::new();
    // Exports a `start` with the wrong signature.
    let wrong_export = r#"(component
        (core module $m (func (export "f") (result i32) i32.const 0))
        (core instance $i (instantiate $m))
        (func (export "start") (result u32) (canon lift (core func $i "f"))))"#;
    let err = h
        .node
        .load_component_bytes("wrong", wrong_export.as_bytes(), None)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::WrongWorld { .. }), "{err}");
    // Imports an interface the runtime does not offer.
    let foreign = r#"(component (import "acme:db/query@1.0.0" (instance (export "run" (func)))))"#;
    let err = h
        .node
        .load_component_bytes("foreign", foreign.as_bytes(), None)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RuntimeError::WrongWorld { .. }), "{text}");
    assert!(text.contains("acme:db/query"), "{text}");
    // Exports nothing at all.
    let err = h
        .node
        .load_component_bytes("empty", b"(component)", None)
        .unwrap_err();
    assert!(err.to_string().contains("start"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_written_wat_particle_runs() {
    let h = Harness::new();
    h.node
        .load_component("wat", &common::wat_particle(), None)
        .unwrap();
    let (_, watch) = h
        .ctl
        .spawn_monitor("wat", "", SpawnOpts::default())
        .unwrap();
    assert_eq!(
        h.down_reason(watch, 5 * SEC).await,
        Some(ExitReason::Shutdown("from-wat".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_enforced_with_a_clear_error() {
    let cfg = plasmoid_runtime::NodeConfig {
        max_particles: 2,
        ..common::config()
    };
    let h = Harness::with(cfg, None);
    let _a = h.probe().await;
    let _b = h.probe().await;
    let err = h
        .node
        .spawn("echo", "null", SpawnOpts::default())
        .unwrap_err();
    assert!(format!("{err:?}").contains("capacity"), "{err:?}");
}
