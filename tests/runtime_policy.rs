//! Real Cedar policies deciding spawn and send for real particles.

mod common;
use common::{Harness, SEC, s};
use plasmoid_runtime::{Node, NodeConfig, RuntimeError};
use serde_json::json;

fn node_with_policies(policies: &str) -> Result<NodeConfig, RuntimeError> {
    let cfg = common::config_with_policies(policies);
    // Validate now so a bad policy fails the caller, not the harness.
    Node::new(cfg.clone()).map(|_| cfg)
}

/// Probes may spawn echo (not counter), send to echo and to the controller
/// (not to other probes), and log.
const NARROW: &str = r#"
permit (principal == Particle::"probe", action == Action::"spawn", resource == Component::"echo");
permit (principal == Particle::"probe", action == Action::"send", resource == Particle::"echo");
permit (principal == Particle::"probe", action == Action::"send", resource == Particle::"controller");
permit (principal, action == Action::"log", resource);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_is_allowed_and_denied_by_policy() {
    let h = Harness::with(node_with_policies(NARROW).unwrap(), None);
    let p = h.probe().await;
    let ok = h
        .cmd(p, json!({"spawn": {"component": "echo", "init": "null"}}))
        .await;
    assert!(ok.get("ok").is_some(), "{ok}");
    let denied = h
        .cmd(
            p,
            json!({"spawn": {"component": "counter", "init": "null"}}),
        )
        .await;
    let text = denied["err"].as_str().unwrap();
    assert!(text.starts_with("denied: "), "{text}");
    assert!(text.contains("spawn") && text.contains("counter"), "{text}");
    // The denial is a value, not a crash: the probe still answers.
    assert_eq!(h.ok(p, json!("self_pid")).await, s(p));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_is_allowed_and_denied_by_policy() {
    let h = Harness::with(node_with_policies(NARROW).unwrap(), None);
    let a = h.probe().await;
    let b = h.probe().await;
    let echo = h
        .ok(a, json!({"spawn": {"component": "echo", "init": "null"}}))
        .await;
    let ok = h.cmd(a, json!({"send": {"to": echo, "data": "x"}})).await;
    assert!(ok.get("ok").is_some(), "{ok}");
    let denied = h.cmd(a, json!({"send": {"to": s(b), "data": "x"}})).await;
    assert!(
        denied["err"].as_str().unwrap().starts_with("denied: "),
        "{denied}"
    );
    // Nothing reached b.
    assert_eq!(h.event(SEC / 5).await, None);
    // Denied again from the cache, same answer.
    let again = h.cmd(a, json!({"send": {"to": s(b), "data": "y"}})).await;
    assert_eq!(again, denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_deny_without_any_policy() {
    let h = Harness::with(
        node_with_policies(
            r#"permit (principal, action == Action::"send", resource == Particle::"controller");"#,
        )
        .unwrap(),
        None,
    );
    let p = h.probe().await;
    let r = h.cmd(p, json!({"register": "x"})).await;
    assert!(r["err"].as_str().unwrap().starts_with("denied: "), "{r}");
    let r = h.cmd(p, json!({"monitor": s(h.ctl.pid())})).await;
    assert!(r["err"].as_str().unwrap().starts_with("denied: "), "{r}");
}

#[test]
fn an_invalid_policy_file_is_refused_with_file_and_line() {
    let bad = "permit (principal, action, resource);\npermit (principal, action == Action::\"teleport\", resource);\n";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async { node_with_policies(bad).unwrap_err() });
    let text = err.to_string();
    assert!(text.contains("test.cedar:2:"), "{text}");
    assert!(text.contains("teleport"), "{text}");
}
