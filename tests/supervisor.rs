//! Supervisors over real particles; scenarios named after OTP's
//! supervisor_SUITE where they apply.

mod common;
use common::{Harness, SEC, s};
use plasmoid_runtime::{ExitReason, Pid};
use plasmoid_supervisor::{
    ChildSpec, Restart, Shutdown, Strategy, SupervisorRef, SupervisorSpec, start_link,
};
use serde_json::json;
use std::time::Duration;

fn probe_child(h: &Harness, id: &str) -> ChildSpec {
    let init = json!({"controller": s(h.ctl.pid())}).to_string();
    ChildSpec::worker(id, "probe", &init)
}

async fn pids(sup: &SupervisorRef) -> Vec<Option<Pid>> {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.pid)
        .collect()
}

async fn pid_of(sup: &SupervisorRef, id: &str) -> Pid {
    let rows = sup.which_children().await.unwrap();
    rows.into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.pid)
        .expect("child running")
}

/// Crash a child with an abnormal exit and wait until it is gone.
async fn crash(h: &Harness, pid: Pid) {
    let r = h.ctl.monitor(pid);
    h.fire(pid, json!({"return_err": "crash"}));
    h.down_reason(r, 5 * SEC).await.expect("child ended");
}

/// Wait until the supervisor reports a different set of pids.
async fn settle(sup: &SupervisorRef, before: &[Option<Pid>]) -> Vec<Option<Pid>> {
    for _ in 0..200 {
        let now = pids(sup).await;
        if now != before && now.iter().all(Option::is_some) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no restart seen");
}

async fn three(h: &Harness, strategy: Strategy) -> SupervisorRef {
    let spec = SupervisorSpec::new(strategy)
        .intensity(10, Duration::from_secs(5))
        .child(probe_child(h, "a"))
        .child(probe_child(h, "b"))
        .child(probe_child(h, "c"));
    start_link(h.node.clone(), spec, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one() {
    let h = Harness::new();
    let sup = three(&h, Strategy::OneForOne).await;
    let before = pids(&sup).await;
    crash(&h, before[1].unwrap()).await;
    let after = settle(&sup, &before).await;
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_eq!(after[2], before[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all() {
    let h = Harness::new();
    let sup = three(&h, Strategy::OneForAll).await;
    let before = pids(&sup).await;
    crash(&h, before[1].unwrap()).await;
    let after = settle(&sup, &before).await;
    for i in 0..3 {
        assert_ne!(after[i], before[i], "child {i} restarted");
        assert!(!h.node.is_alive(before[i].unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one() {
    let h = Harness::new();
    let sup = three(&h, Strategy::RestForOne).await;
    let before = pids(&sup).await;
    crash(&h, before[1].unwrap()).await;
    let after = settle(&sup, &before).await;
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_ne!(after[2], before[2]);
}

/// End the only child with `end` and report whether it was restarted and
/// whether its spec is still there.
async fn restart_case(restart: Restart, end: serde_json::Value) -> (bool, bool) {
    let h = Harness::new();
    let spec =
        SupervisorSpec::new(Strategy::OneForOne).child(probe_child(&h, "w").restart(restart));
    let sup = start_link(h.node.clone(), spec, None).await.unwrap();
    let old = pid_of(&sup, "w").await;
    let r = h.ctl.monitor(old);
    h.fire(old, end);
    h.down_reason(r, 5 * SEC).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let rows = sup.which_children().await.unwrap();
    let restarted = rows.iter().any(|c| c.pid.is_some_and(|p| p != old));
    (restarted, !rows.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_normal() {
    assert_eq!(
        restart_case(Restart::Permanent, json!("return_ok")).await,
        (true, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_abnormal() {
    assert_eq!(
        restart_case(Restart::Permanent, json!("trap")).await,
        (true, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_normal() {
    assert_eq!(
        restart_case(Restart::Transient, json!("return_ok")).await,
        (false, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_shutdown() {
    let end = json!({"exit": {"shutdown": "done"}});
    assert_eq!(restart_case(Restart::Transient, end).await, (false, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_abnormal() {
    assert_eq!(
        restart_case(Restart::Transient, json!({"return_err": "x"})).await,
        (true, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_abnormal() {
    assert_eq!(
        restart_case(Restart::Temporary, json!({"return_err": "x"})).await,
        (false, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_escalation() {
    // OTP default intensity: 1 restart in 5 s; the second crash is too many.
    let h = Harness::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe_child(&h, "a"))
        .child(probe_child(&h, "b"));
    let sup = start_link(h.node.clone(), spec, None).await.unwrap();
    let watch = h.ctl.monitor(sup.pid());
    let first = pids(&sup).await;
    crash(&h, first[0].unwrap()).await;
    let second = settle(&sup, &first).await;
    crash(&h, second[0].unwrap()).await;
    assert_eq!(
        h.down_reason(watch, 5 * SEC).await,
        Some(ExitReason::Shutdown(String::new()))
    );
    // Every child was stopped.
    assert!(!h.node.is_alive(second[1].unwrap()));
    assert_eq!(h.node.live_particles(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_start_fail() {
    // A child whose init fails makes the supervisor's own start fail, and
    // the children already started are stopped.
    let h = Harness::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe_child(&h, "good"))
        .child(ChildSpec::worker("bad", "probe", "not json"));
    let err = start_link(h.node.clone(), spec, None).await.err().unwrap();
    let text = err.to_string();
    assert!(text.contains("child `bad` failed to start"), "{text}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.node.live_particles(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_then_kill() {
    let h = Harness::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe_child(&h, "stubborn").shutdown(Shutdown::Timeout(Duration::from_millis(300))))
        .child(probe_child(&h, "brutal").shutdown(Shutdown::BrutalKill));
    let sup = start_link(h.node.clone(), spec, None).await.unwrap();
    let stubborn = pid_of(&sup, "stubborn").await;
    let brutal = pid_of(&sup, "brutal").await;
    // Trapping exits, it turns `shutdown` into a message and keeps running.
    h.ok(stubborn, json!({"trap_exit": true})).await;
    let r = h.ctl.monitor(stubborn);
    let t = std::time::Instant::now();
    sup.terminate_child("stubborn").await.unwrap();
    assert_eq!(h.down_reason(r, 5 * SEC).await, Some(ExitReason::Killed));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let r = h.ctl.monitor(brutal);
    let t = std::time::Instant::now();
    sup.terminate_child("brutal").await.unwrap();
    assert_eq!(h.down_reason(r, 5 * SEC).await, Some(ExitReason::Killed));
    assert!(t.elapsed() < Duration::from_millis(300));
    // Terminated children keep their spec, can be restarted and deleted.
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (2, 0, 2));
    let again = sup.restart_child("brutal").await.unwrap();
    assert!(h.node.is_alive(again));
    assert!(
        sup.delete_child("brutal").await.is_err(),
        "running children cannot be deleted"
    );
    sup.delete_child("stubborn").await.unwrap();
    assert_eq!(sup.which_children().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_supervisors_restart_only_what_the_strategy_says() {
    let h = Harness::new();
    let inner = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(5, Duration::from_secs(5))
        .child(probe_child(&h, "x"))
        .child(probe_child(&h, "y"));
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe_child(&h, "top"))
        .child(ChildSpec::supervisor("inner", inner));
    let sup = start_link(h.node.clone(), root, None).await.unwrap();
    let top = pid_of(&sup, "top").await;
    let inner_pid = pid_of(&sup, "inner").await;
    assert!(sup.which_children().await.unwrap()[1].supervisor);
    // Find x and y: the probes that are neither `top` nor the supervisor.
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(h.node.resolve(h.next_ready().await.as_str()).unwrap());
    }
    workers.retain(|p| *p != top);
    assert_eq!(workers.len(), 2);
    let (x, y) = (workers[0], workers[1]);
    let r = h.ctl.monitor(y);
    crash(&h, x).await;
    // y (after x) is restarted by rest-for-one; top and the inner
    // supervisor itself are untouched.
    assert_eq!(
        h.down_reason(r, 5 * SEC).await,
        Some(ExitReason::Shutdown(String::new()))
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.node.is_alive(top));
    assert!(h.node.is_alive(inner_pid));
    assert_eq!(pid_of(&sup, "inner").await, inner_pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_one_for_one_dynamic_children() {
    let h = Harness::new();
    let init = json!({"controller": s(h.ctl.pid())}).to_string();
    let spec = SupervisorSpec::new(Strategy::SimpleOneForOne)
        .intensity(5, Duration::from_secs(5))
        .child(ChildSpec::worker("probe", "probe", "").restart(Restart::Transient));
    let sup = start_link(h.node.clone(), spec, None).await.unwrap();
    let mut kids = Vec::new();
    for _ in 0..3 {
        kids.push(sup.start_instance(&init).await.unwrap());
    }
    let c = sup.count_children().await.unwrap();
    assert_eq!((c.specs, c.active, c.workers), (1, 3, 3));
    // Transient: an abnormal exit restarts that instance only.
    crash(&h, kids[0]).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let c = sup.count_children().await.unwrap();
    assert_eq!(c.active, 3);
    assert!(h.node.is_alive(kids[1]) && h.node.is_alive(kids[2]));
    // A normal exit removes it; terminate_child by pid removes another.
    let r = h.ctl.monitor(kids[1]);
    h.fire(kids[1], json!("return_ok"));
    h.down_reason(r, 5 * SEC).await.unwrap();
    sup.terminate_child(&s(kids[2])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sup.count_children().await.unwrap().active, 1);
    assert!(sup.start_child(probe_child(&h, "x")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_supervisor_takes_its_children_down() {
    let h = Harness::new();
    let sup = three(&h, Strategy::OneForOne).await;
    let kids = pids(&sup).await;
    h.ctl.send_exit(sup.pid(), ExitReason::Kill).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for k in kids {
        assert!(!h.node.is_alive(k.unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_interface_is_denied_without_a_permit() {
    let h = Harness::new();
    let sup = three(&h, Strategy::OneForOne).await;
    let p = h.probe().await;
    let r = h.cmd(p, json!({"which_children": s(sup.pid())})).await;
    let text = r["err"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("denied: ") && text.contains("supervise"),
        "{r}"
    );
    let r = h
        .cmd(p, json!({"terminate_child": [s(sup.pid()), "a"]}))
        .await;
    assert!(
        r["err"]
            .as_str()
            .unwrap_or_default()
            .starts_with("denied: "),
        "{r}"
    );
    // Nothing happened to the children.
    assert!(pids(&sup).await.iter().all(Option::is_some));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permitted_particle_uses_the_supervisor_interface() {
    let policies = format!(
        "{}\npermit (principal == Particle::\"probe\", action == Action::\"supervise\", resource == Particle::\"supervisor\");",
        plasmoid_runtime::DEFAULT_POLICIES
    );
    let h = Harness::with(common::config_with_policies(&policies), None);
    let sup = three(&h, Strategy::OneForOne).await;
    let p = h.probe().await;
    let sp = s(sup.pid());
    let rows = h.ok(p, json!({"which_children": sp})).await;
    let ids: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let counts = h.ok(p, json!({"count_children": sp})).await;
    assert_eq!(
        counts,
        json!({"specs": 3, "active": 3, "supervisors": 0, "workers": 3})
    );
    let init = json!({"controller": s(h.ctl.pid())}).to_string();
    let d = h
        .ok(
            p,
            json!({"start_child": {"sup": sp, "id": "d", "component": "probe", "init": init}}),
        )
        .await;
    assert_eq!(pid_of(&sup, "d").await.to_string(), d.as_str().unwrap());
    let dup = h
        .cmd(
            p,
            json!({"start_child": {"sup": sp, "id": "d", "component": "probe", "init": init}}),
        )
        .await;
    assert_eq!(dup["err"], "already-present: d");
    h.ok(p, json!({"terminate_child": [sp, "d"]})).await;
    assert_eq!(
        h.cmd(p, json!({"delete_child": [sp, "a"]})).await["err"],
        "running: a"
    );
    h.ok(p, json!({"delete_child": [sp, "d"]})).await;
    assert_eq!(
        h.cmd(p, json!({"restart_child": [sp, "d"]})).await["err"],
        "not-found: d"
    );
    // A pid that is not a supervisor.
    let r = h.cmd(p, json!({"which_children": s(p)})).await;
    assert!(r.get("err").is_some(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_escalation_restarts_the_child_supervisor() {
    // The inner supervisor allows no restart at all; a crash makes it give
    // up, and the root (one-for-one) restarts it with fresh children.
    let h = Harness::new();
    let inner = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(5))
        .child(probe_child(&h, "leaf"));
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(5))
        .child(probe_child(&h, "sibling"))
        .child(ChildSpec::supervisor("inner", inner));
    let sup = start_link(h.node.clone(), root, None).await.unwrap();
    let sibling = pid_of(&sup, "sibling").await;
    let inner_before = pid_of(&sup, "inner").await;
    let watch_inner = h.ctl.monitor(inner_before);
    let _sibling_ready = h.next_ready().await;
    let leaf = h.node.resolve(&h.next_ready().await).unwrap();
    crash(&h, leaf).await;
    assert_eq!(
        h.down_reason(watch_inner, 5 * SEC).await,
        Some(ExitReason::Shutdown(String::new()))
    );
    let rows = {
        let mut rows = sup.which_children().await.unwrap();
        for _ in 0..100 {
            if rows[1].pid.is_some_and(|p| p != inner_before) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            rows = sup.which_children().await.unwrap();
        }
        rows
    };
    assert_ne!(
        rows[1].pid,
        Some(inner_before),
        "inner supervisor restarted"
    );
    assert_eq!(rows[1].restarts, 1);
    assert_eq!(rows[0].pid, Some(sibling), "sibling untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_shutdown() {
    let end = json!({"exit": {"shutdown": "done"}});
    assert_eq!(restart_case(Restart::Permanent, end).await, (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_normal() {
    assert_eq!(
        restart_case(Restart::Temporary, json!("return_ok")).await,
        (false, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_shutdown() {
    let end = json!({"exit": {"shutdown": "done"}});
    assert_eq!(restart_case(Restart::Temporary, end).await, (false, false));
}
