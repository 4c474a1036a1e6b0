//! Every host function of `plasmoid:runtime/process`, exercised by a real
//! probe particle in real wasmtime.

mod common;
use common::{Harness, SEC, s};
use plasmoid_runtime::{ExitReason, Msg, SpawnOpts};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_refs_and_resolve() {
    let h = Harness::new();
    let p = h.probe().await;
    assert_eq!(h.ok(p, json!("self_pid")).await, s(p));
    let r1 = h.ok(p, json!("make_ref")).await.as_u64().unwrap();
    let r2 = h.ok(p, json!("make_ref")).await.as_u64().unwrap();
    assert_ne!(r1, r2);
    assert_eq!(h.ok(p, json!({"resolve": s(p)})).await, s(p));
    assert_eq!(h.ok(p, json!({"resolve": "not-a-pid"})).await, Value::Null);
    assert_eq!(h.ok(p, json!({"pid_equals": [s(p), s(p)]})).await, true);
    assert_eq!(
        h.ok(p, json!({"pid_equals": [s(p), s(h.ctl.pid())]})).await,
        false
    );
    assert_eq!(
        h.ok(
            p,
            json!({"log": {"level": "info", "msg": "hello from a test"}})
        )
        .await,
        Value::Null
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_names_and_cleanup_on_exit() {
    let h = Harness::new();
    let p = h.probe().await;
    assert_eq!(h.ok(p, json!("self_name")).await, Value::Null);
    h.ok(p, json!({"register": "alpha"})).await;
    assert_eq!(h.ok(p, json!("self_name")).await, "alpha");
    assert_eq!(h.ok(p, json!({"lookup": "alpha"})).await, s(p));
    assert_eq!(h.node.whereis("alpha"), Some(p));

    let q = h.probe().await;
    assert_eq!(h.cmd(q, json!({"register": "alpha"})).await["err"], "taken");
    assert_eq!(
        h.cmd(q, json!({"lookup": "nobody"})).await["err"],
        "not-found"
    );

    h.ok(p, json!({"unregister": "alpha"})).await;
    assert_eq!(
        h.cmd(q, json!({"lookup": "alpha"})).await["err"],
        "not-found"
    );

    // A name dies with its process.
    h.ok(q, json!({"register": "beta"})).await;
    let mref = h.ctl.monitor(q);
    h.fire(q, json!({"exit": "normal"}));
    assert_eq!(h.down_reason(mref, 5 * SEC).await, Some(ExitReason::Normal));
    assert_eq!(h.node.whereis("beta"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_recv_and_timeouts() {
    let h = Harness::new();
    let a = h.probe().await;
    let b = h.probe().await;
    // a → b: b reports unsolicited data as an event.
    h.ok(a, json!({"send": {"to": s(b), "data": "hi"}})).await;
    assert_eq!(h.event(5 * SEC).await.unwrap(), json!({"data": "hi"}));
    // recv with a timeout and an empty mailbox answers null after the timeout.
    let start = std::time::Instant::now();
    assert_eq!(
        h.ok(a, json!({"recv": {"timeout_ms": 100}})).await,
        Value::Null
    );
    assert!(start.elapsed() >= Duration::from_millis(100));
    // Sending to a dead pid is `noproc`.
    let mref = h.ctl.monitor(b);
    h.fire(b, json!("return_ok"));
    assert_eq!(h.down_reason(mref, 5 * SEC).await, Some(ExitReason::Normal));
    assert_eq!(
        h.cmd(a, json!({"send": {"to": s(b), "data": "x"}})).await["err"],
        "noproc"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_request_reply_and_selective_receive() {
    let h = Harness::new();
    let a = h.probe().await;
    // `a` waits selectively on a reference; a non-matching tagged message
    // arrives first and must stay queued for later.
    let reference = h.ok(a, json!("make_ref")).await.as_u64().unwrap();
    let b = h.probe().await;
    h.fire(
        a,
        json!({"recv_ref": {"ref": reference, "timeout_ms": 5000}}),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.ok(
        b,
        json!({"send_tagged": {"to": s(a), "ref": reference + 1000, "data": "other"}}),
    )
    .await;
    h.ok(
        b,
        json!({"send_tagged": {"to": s(a), "ref": reference, "data": "reply"}}),
    )
    .await;
    let got = h.reply().await;
    let got = &got["ok"];
    assert_eq!(got["tagged"]["ref"], reference);
    assert_eq!(got["tagged"]["payload"], "reply");
    assert_eq!(got["tagged"]["sender"], s(b));
    // The other tagged message is still there, reported by the main loop.
    let ev = h.event(5 * SEC).await.unwrap();
    assert_eq!(ev["tagged"]["payload"], "other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_gen_server_answers_calls_from_the_host() {
    let h = Harness::new();
    let echo = h.node.spawn("echo", "null", SpawnOpts::default()).unwrap();
    // Requests and replies of the SDK's gen_server are postcard: a Vec<u8>
    // is a varint length followed by the bytes.
    let reply = h
        .ctl
        .call(echo, vec![3, b'a', b'b', b'c'], 5 * SEC)
        .await
        .unwrap();
    assert_eq!(reply, vec![3, b'a', b'b', b'c']);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_and_spawn_errors() {
    let h = Harness::new();
    let p = h.probe().await;
    let err = h.cmd(p, json!({"spawn": {"component": "nope"}})).await;
    assert_eq!(err["err"], "unknown-component: nope");
    let child = h
        .ok(
            p,
            json!({"spawn": {"component": "echo", "name": "echo1", "init": "null"}}),
        )
        .await;
    assert_eq!(
        h.node.whereis("echo1").map(|p| p.to_string()),
        child.as_str().map(String::from)
    );
    let dup = h
        .cmd(
            p,
            json!({"spawn": {"component": "echo", "name": "echo1", "init": "null"}}),
        )
        .await;
    assert_eq!(dup["err"], "name-taken: echo1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_exit_from_one_sender_keep_their_order() {
    let h = Harness::new();
    let p = h.probe().await;
    h.ctl.trap_exit(true);
    h.ctl.link(p).unwrap();
    // The probe floods the controller, then exits abnormally: every data
    // message must arrive before the EXIT signal.
    let sent = h
        .ok(p, json!({"flood": {"to": s(h.ctl.pid()), "count": 500}}))
        .await;
    assert_eq!(sent["sent"], 500);
    h.fire(p, json!({"exit": {"exception": "boom"}}));
    let mut seen = 0;
    let mut stashed = h.drain_stash().into_iter();
    loop {
        let next = match stashed.next() {
            Some(m) => Some(m),
            None => h.ctl.recv(Some(5 * SEC)).await.unwrap(),
        };
        match next {
            Some(Msg::Data(d)) if d.first().is_some_and(|c| c.is_ascii_digit()) => {
                assert_eq!(String::from_utf8(d).unwrap(), seen.to_string());
                seen += 1;
            }
            Some(Msg::Exit { sender, reason }) => {
                assert_eq!(sender, p);
                assert_eq!(reason, ExitReason::Exception("boom".into()));
                break;
            }
            Some(_) => continue,
            None => panic!("no EXIT"),
        }
    }
    assert_eq!(seen, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mailbox_is_a_send_error() {
    let limits = plasmoid_runtime::Limits {
        mailbox: 10,
        ..Default::default()
    };
    let h = Harness::with(common::config(), Some(limits));
    let busy = h.probe().await;
    let sender = h.probe().await;
    h.fire(busy, json!("spin"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = h
        .ok(sender, json!({"flood": {"to": s(busy), "count": 50}}))
        .await;
    assert_eq!(r["sent"], 10);
    assert_eq!(r["error"], "mailbox-full");
    h.node.exit(h.ctl.pid(), busy, ExitReason::Kill).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_server_calls_between_particles() {
    let h = Harness::new();
    let p = h.probe().await;
    let echo = s(h.node.spawn("echo", "null", SpawnOpts::default()).unwrap());
    // A call answered.
    let r = h
        .ok(
            p,
            json!({"call": {"to": echo, "data": "ping", "timeout_ms": 2000}}),
        )
        .await;
    assert_eq!(r, "ping");
    // A call to a server that never answers times out (a probe only reports
    // tagged messages as events).
    let silent = s(h.probe().await);
    let r = h
        .cmd(
            p,
            json!({"call": {"to": silent, "data": "x", "timeout_ms": 100}}),
        )
        .await;
    assert_eq!(r["err"], "call timed out");
    // A call to a dead server fails at once with its reason.
    let dead = h.node.resolve(&echo).unwrap();
    let watch = h.ctl.monitor(dead);
    h.ctl.send_exit(dead, ExitReason::Kill).unwrap();
    h.down_reason(watch, 5 * SEC).await.unwrap();
    let r = h
        .cmd(
            p,
            json!({"call": {"to": echo, "data": "x", "timeout_ms": 5000}}),
        )
        .await;
    assert_eq!(r["err"], "server exited: noproc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_keeps_state_across_calls_and_casts() {
    let h = Harness::new();
    let counter = h.node.spawn("counter", "5", SpawnOpts::default()).unwrap();
    // postcard: CounterRequest::{Get = 0, Increment = 1, Add(n) = 2 n};
    // CounterCast::{Increment = 0, Add(n) = 1 n}; replies are a varint u64.
    assert_eq!(
        h.ctl.call(counter, vec![0], 5 * SEC).await.unwrap(),
        vec![5]
    );
    assert_eq!(
        h.ctl.call(counter, vec![1], 5 * SEC).await.unwrap(),
        vec![6]
    );
    h.ctl.send(counter, vec![1, 10]).unwrap();
    assert_eq!(
        h.ctl.call(counter, vec![2, 100], 5 * SEC).await.unwrap(),
        vec![116]
    );
    assert_eq!(
        h.ctl.call(counter, vec![0], 5 * SEC).await.unwrap(),
        vec![116]
    );
}
