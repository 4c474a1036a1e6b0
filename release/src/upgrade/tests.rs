//! Plans for each kind of change, without building anything: manifests
//! parsed from text, locks written by hand.

use super::{Plan, Step};
use crate::lock::{Lock, LockedComponent, LockedFile};
use crate::model::Manifest;

fn manifest(version: &str, rest: &str) -> Manifest {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("w.wat"), "(component)").expect("write");
    let path = dir.path().join("prod.toml");
    let text = format!("[release]\nname = \"shop\"\nversion = \"{version}\"\n{rest}");
    std::fs::write(&path, text).expect("write");
    crate::manifest::load(&path).expect("a valid manifest")
}

/// A lock with these components (name, blake3) and policy files.
fn lock(components: &[(&str, &str)], policies: &[(&str, &str)]) -> Lock {
    Lock {
        release: "shop".into(),
        built_by: "test".into(),
        components: components
            .iter()
            .map(|(n, h)| LockedComponent {
                name: n.to_string(),
                source: String::new(),
                wasm: String::new(),
                cwasm: String::new(),
                blake3: h.to_string(),
                size: 0,
                cwasm_mac: String::new(),
            })
            .collect(),
        files: policies
            .iter()
            .map(|(p, h)| LockedFile {
                path: format!("policies/{p}"),
                blake3: h.to_string(),
                size: 0,
            })
            .collect(),
        history: Vec::new(),
        previous: None,
        upgrades: Vec::new(),
    }
}

const BASE: &str = r#"
[components.a]
wasm = "w.wat"
[components.b]
wasm = "w.wat"
[supervisor]
strategy = "one-for-one"
children = ["a", "inner"]
[supervisors.inner]
strategy = "one-for-all"
children = [{ id = "b1", component = "b" }, { id = "b2", component = "b" }]
"#;

fn plan_of(old: &str, new: &str, old_lock: &Lock, new_lock: &Lock) -> Plan {
    super::plan(
        &manifest("1.0.0", old),
        old_lock,
        &manifest("1.1.0", new),
        new_lock,
    )
    .expect("a plan")
}

fn steps(p: &Plan) -> Vec<&Step> {
    p.steps.iter().map(|s| &s.step).collect()
}

#[test]
fn the_same_version_is_refused_with_what_to_do() {
    let l = lock(&[("a", "1"), ("b", "1")], &[]);
    let err = super::plan(&manifest("1.0.0", BASE), &l, &manifest("1.0.0", BASE), &l)
        .expect_err("same version");
    let msg = err.to_string();
    assert!(msg.contains("release.version is still \"1.0.0\""), "{msg}");
}

#[test]
fn nothing_but_the_version_is_an_empty_plan() {
    let l = lock(&[("a", "1"), ("b", "1")], &[("p.cedar", "x")]);
    let p = plan_of(BASE, BASE, &l, &l);
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(p.render().contains("nothing changes but the version"));
}

#[test]
fn changed_code_is_swapped_per_its_mode_and_a_policy_change_comes_first() {
    let old = lock(
        &[("a", "aaaaaaaaaaaaaaaa"), ("b", "1")],
        &[("p.cedar", "x")],
    );
    let new = lock(
        &[("a", "bbbbbbbbbbbbbbbb"), ("b", "1")],
        &[("p.cedar", "y")],
    );
    let p = plan_of(BASE, BASE, &old, &new);
    assert_eq!(
        steps(&p),
        vec![
            &Step::SwapPolicies {
                files: vec!["policies/p.cedar changed".into()]
            },
            &Step::SwapComponent {
                name: "a".into(),
                from: "aaaaaaaaaaaa".into(),
                to: "bbbbbbbbbbbb".into(),
                mode: "handoff",
            },
        ]
    );
}

#[test]
fn children_added_and_removed_start_in_order_and_stop_in_reverse() {
    let new = r#"
[components.a]
wasm = "w.wat"
[components.c]
wasm = "w.wat"
[supervisor]
strategy = "one-for-one"
children = ["a", "c", "extra"]
[supervisors.extra]
strategy = "one-for-one"
children = [{ id = "c2", component = "c" }]
"#;
    let l = lock(&[("a", "1"), ("b", "1")], &[]);
    let l2 = lock(&[("a", "1"), ("b", "1"), ("c", "2")], &[]);
    let p = plan_of(BASE, new, &l, &l2);
    assert_eq!(
        steps(&p),
        vec![
            &Step::InstallComponent {
                name: "c".into(),
                version: "2".into()
            },
            // `inner` goes whole (its children with it), after nothing else.
            &Step::StopChild {
                path: "inner".into()
            },
            &Step::StartChild { path: "c".into() },
            // A new subtree starts with its root.
            &Step::StartChild {
                path: "extra".into()
            },
            &Step::RemoveComponent { name: "b".into() },
        ],
        "{}",
        p.render()
    );
}

#[test]
fn supervisor_flags_update_in_place_and_changed_specs_restart_the_child() {
    let new = r#"
[components.a]
wasm = "w.wat"
[components.b]
wasm = "w.wat"
[supervisor]
strategy = "one-for-one"
max_restarts = 9
children = [{ id = "a", component = "a", init = { n = 2 } }, "inner"]
[supervisors.inner]
strategy = "rest-for-one"
children = [{ id = "b1", component = "b" }]
"#;
    let l = lock(&[("a", "1"), ("b", "1")], &[]);
    let p = plan_of(BASE, new, &l, &l);
    let s = steps(&p);
    assert!(
        matches!(s[0], Step::UpdateSupervisor { path, changes } if path == "supervisor" && changes[0].starts_with("intensity 1/5 s → 9/5 s")),
        "{}",
        p.render()
    );
    assert!(
        matches!(s[1], Step::UpdateSupervisor { path, changes } if path == "inner" && changes[0].contains("RestForOne")),
        "{}",
        p.render()
    );
    assert_eq!(
        s[2],
        &Step::StopChild {
            path: "inner/b2".into()
        }
    );
    assert!(
        matches!(s[3], Step::RestartChild { path, changes } if path == "a" && changes[0].contains("init")),
        "{}",
        p.render()
    );
    assert_eq!(s.len(), 4, "{}", p.render());
}

#[test]
fn settings_and_component_limits_are_listed() {
    let new = BASE.replace(
        "[components.b]\nwasm = \"w.wat\"",
        "[components.b]\nwasm = \"w.wat\"\nlimits = { memory_mb = 8 }\n[http]\nlisten = \"127.0.0.1:8081\"\nroutes = [{ path = \"/x\", to = \"a\" }]",
    );
    let l = lock(&[("a", "1"), ("b", "1")], &[]);
    let p = plan_of(BASE, &new, &l, &l);
    let text = p.render();
    assert!(
        text.contains("restart `b`'s particles with limits"),
        "{text}"
    );
    assert!(text.contains("[all] http: None →"), "{text}");
}

#[test]
fn new_code_with_new_limits_is_one_restart_and_a_new_mode_alone_restarts_nothing() {
    let limits = BASE.replace(
        "[components.a]\nwasm = \"w.wat\"",
        "[components.a]\nwasm = \"w.wat\"\nlimits = { memory_mb = 8 }",
    );
    let old = lock(&[("a", "aaaaaaaaaaaa"), ("b", "1")], &[]);
    let new = lock(&[("a", "bbbbbbbbbbbb"), ("b", "1")], &[]);
    let p = plan_of(BASE, &limits, &old, &new);
    assert!(
        matches!(steps(&p)[..], [Step::ChangeComponent { name, changes, restart: true }]
            if name == "a" && changes[0] == "code aaaaaaaaaaaa → bbbbbbbbbbbb"),
        "{}",
        p.render()
    );
    let mode = BASE.replace(
        "[components.b]\nwasm = \"w.wat\"",
        "[components.b]\nwasm = \"w.wat\"\nupgrade = \"restart\"",
    );
    let l = lock(&[("a", "1"), ("b", "1")], &[]);
    let p = plan_of(BASE, &mode, &l, &l);
    assert!(
        matches!(steps(&p)[..], [Step::ChangeComponent { name, restart: false, .. }] if name == "b"),
        "{}",
        p.render()
    );
}

#[test]
fn restarted_and_added_children_come_up_in_the_new_start_order() {
    let new = r#"
[components.a]
wasm = "w.wat"
[components.b]
wasm = "w.wat"
[supervisor]
strategy = "one-for-one"
children = ["first", { id = "a", component = "a", init = { n = 1 } }, "inner"]
[supervisors.first]
strategy = "one-for-one"
children = [{ id = "f", component = "b" }]
[supervisors.inner]
strategy = "simple-one-for-one"
children = [{ id = "b1", component = "b" }]
"#;
    let l = lock(&[("a", "1"), ("b", "1")], &[]);
    let p = plan_of(BASE, new, &l, &l);
    let s = steps(&p);
    // `first` precedes `a` in the new tree, so it starts first; `inner`
    // became simple-one-for-one: restarted, not updated in place.
    assert_eq!(
        s[0],
        &Step::StartChild {
            path: "first".into()
        },
        "{}",
        p.render()
    );
    assert!(
        matches!(s[1], Step::RestartChild { path, .. } if path == "a"),
        "{}",
        p.render()
    );
    assert!(
        matches!(s[2], Step::RestartChild { path, changes } if path == "inner" && changes.iter().any(|c| c.contains("SimpleOneForOne"))),
        "{}",
        p.render()
    );
    assert_eq!(s.len(), 3, "{}", p.render());
}
