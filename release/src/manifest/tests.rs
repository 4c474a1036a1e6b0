//! Each class of manifest error: its message and its position.

use crate::error::ReleaseError;
use crate::model::{ChildKind, Manifest};
use std::path::PathBuf;

/// A folder holding `prod.toml` (written per test) and a `w.wat` file the
/// manifests can name as a prebuilt component.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("w.wat"), "(component)").expect("write");
    dir
}

fn parse(text: &str) -> Result<Manifest, ReleaseError> {
    let dir = folder();
    let path: PathBuf = dir.path().join("prod.toml");
    std::fs::write(&path, text).expect("write");
    super::load(&path)
}

/// The error's `line:col` and message.
fn error(text: &str) -> (usize, usize, String) {
    match parse(text) {
        Err(ReleaseError::Manifest {
            file,
            line,
            column,
            message,
        }) => {
            assert!(file.ends_with("prod.toml"), "{file}");
            (line, column, message)
        }
        Err(other) => panic!("not a manifest error: {other}"),
        Ok(_) => panic!("accepted:\n{text}"),
    }
}

const HEAD: &str = "[release]\nname = \"shop\"\nversion = \"1.0.0\"\n";

fn with(rest: &str) -> String {
    format!("{HEAD}{rest}")
}

#[test]
fn a_valid_manifest_resolves() {
    let m = parse(&with(
        "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"a\"]\n",
    ))
    .expect("valid");
    assert_eq!(m.release_id(), "shop-1.0.0");
    assert_eq!(m.root.children.len(), 1);
    assert_eq!((m.root.max_restarts, m.root.max_seconds), (1, 5));
}

#[test]
fn syntax_errors_point_at_the_character() {
    let (line, col, msg) = error(&with("[components.a\nwasm = \"w.wat\"\n"));
    assert_eq!((line, col), (4, 14), "{msg}");
    assert!(msg.contains("']'") || msg.contains("unclosed"), "{msg}");
}

#[test]
fn unknown_keys_are_named_with_the_expected_ones() {
    let (line, col, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\nmemory = 64\n[supervisor]\nstrategy = \"one-for-one\"\n",
    ));
    assert_eq!((line, col), (6, 1), "{msg}");
    assert!(msg.contains("unknown field `memory`"), "{msg}");
    assert!(msg.contains("`limits`"), "{msg}");
}

#[test]
fn unknown_components_suggest_the_closest_name() {
    let (line, col, msg) = error(&with(
        "[components.ledger]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"ledgr\"]\n",
    ));
    assert_eq!((line, col), (8, 13), "{msg}");
    assert!(
        msg.contains("unknown component or supervisor `ledgr`"),
        "{msg}"
    );
    assert!(msg.contains("did you mean `ledger`?"), "{msg}");
}

#[test]
fn unknown_strategies_list_the_valid_ones() {
    let (line, col, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-al\"\n",
    ));
    assert_eq!((line, col), (7, 12), "{msg}");
    assert!(msg.contains("one-for-al"), "{msg}");
    assert!(msg.contains("one-for-all"), "{msg}");
}

#[test]
fn duplicate_child_ids_point_at_the_second() {
    let (line, col, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\n\
         children = [\"a\",\n  { component = \"a\" }]\n",
    ));
    assert_eq!((line, col), (9, 3), "{msg}");
    assert!(msg.contains("already has a child `a` (line 8)"), "{msg}");
    assert!(msg.contains("id = "), "{msg}");
}

#[test]
fn a_component_without_a_source_says_what_to_add() {
    let (line, col, msg) = error(&with(
        "[components.a]\ndepends = []\n[supervisor]\nstrategy = \"one-for-one\"\n",
    ));
    assert_eq!((line, col), (4, 13), "{msg}");
    assert!(msg.contains("component `a` has no source"), "{msg}");
    assert!(msg.contains("path = \"components/a\""), "{msg}");
}

#[test]
fn a_missing_file_or_crate_is_named() {
    let (line, _, msg) = error(&with(
        "[components.a]\nwasm = \"nope.wasm\"\n[supervisor]\nstrategy = \"one-for-one\"\n",
    ));
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("nope.wasm is not a .wasm"), "{msg}");
    let (line, _, msg) = error(&with(
        "[components.a]\npath = \"nope\"\n[supervisor]\nstrategy = \"one-for-one\"\n",
    ));
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("is not a guest crate"), "{msg}");
}

#[test]
fn bad_limits_give_the_range() {
    let (line, col, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\nlimits = { memory_mb = 0 }\n[supervisor]\nstrategy = \"one-for-one\"\n",
    ));
    assert_eq!((line, col), (6, 24), "{msg}");
    assert!(msg.contains("memory_mb = 0 is out of range"), "{msg}");
    let (_, _, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\nlimits = { mailbox = -1 }\n[supervisor]\nstrategy = \"one-for-one\"\n",
    ));
    assert!(msg.contains("expected u64"), "{msg}");
    assert!(msg.contains("6 | limits = { mailbox = -1 }"), "{msg}");
}

#[test]
fn a_dependency_cycle_is_printed() {
    let (line, _, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\ndepends = [\"b\"]\n\
         [components.b]\nwasm = \"w.wat\"\ndepends = [\"c\"]\n\
         [components.c]\nwasm = \"w.wat\"\ndepends = [\"a\"]\n\
         [supervisor]\nstrategy = \"one-for-one\"\n",
    ));
    assert!(msg.contains("a → b → c → a"), "{msg}");
    assert_eq!(line, 6, "{msg}");
}

#[test]
fn a_diamond_starts_base_first_and_top_last() {
    let m = parse(&with(
        "[components.top]\nwasm = \"w.wat\"\ndepends = [\"left\", \"right\"]\n\
         [components.left]\nwasm = \"w.wat\"\ndepends = [\"base\"]\n\
         [components.right]\nwasm = \"w.wat\"\ndepends = [\"base\"]\n\
         [components.base]\nwasm = \"w.wat\"\n\
         [supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"top\", \"left\", \"right\", \"base\"]\n",
    ))
    .expect("valid");
    let ids: Vec<&str> = m.root.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["base", "left", "right", "top"]);
    let comps: Vec<&str> = m.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(comps, ["base", "left", "right", "top"]);
}

#[test]
fn nested_supervisors_move_as_a_whole() {
    let m = parse(&with(
        "[components.web]\nwasm = \"w.wat\"\ndepends = [\"db\"]\n[components.db]\nwasm = \"w.wat\"\n\
         [supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"front\", \"back\"]\n\
         [supervisors.front]\nstrategy = \"one-for-one\"\nchildren = [\"web\"]\n\
         [supervisors.back]\nstrategy = \"rest-for-one\"\nchildren = [\"db\"]\n",
    ))
    .expect("valid");
    let ids: Vec<&str> = m.root.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["back", "front"]);
    assert!(matches!(m.root.children[1].kind, ChildKind::Supervisor(_)));
}

#[test]
fn a_dependency_nobody_starts_is_an_error() {
    let (line, _, msg) = error(&with(
        "[components.web]\nwasm = \"w.wat\"\ndepends = [\"db\"]\n[components.db]\nwasm = \"w.wat\"\n\
         [supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"web\"]\n",
    ));
    assert_eq!(line, 11, "{msg}");
    assert!(
        msg.contains("depends on `db`, but no child started before it runs `db`"),
        "{msg}"
    );
}

#[test]
fn supervisors_must_be_used_once() {
    let (_, _, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"a\"]\n\
         [supervisors.idle]\nstrategy = \"one-for-one\"\n",
    ));
    assert!(
        msg.contains("supervisor `idle` is defined but not in the tree"),
        "{msg}"
    );
    let (_, _, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"s\"]\n\
         [supervisors.s]\nstrategy = \"one-for-one\"\nchildren = [\"s\"]\n",
    ));
    assert!(
        msg.contains("appears twice in the tree (or inside itself)"),
        "{msg}"
    );
}

#[test]
fn init_args_become_json_and_placement_needs_nodes() {
    let m = parse(&with(
        "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\n\
         children = [{ id = \"x\", component = \"a\", init = { port = 8080, tags = [\"a\"] } }]\n",
    ))
    .expect("valid");
    let ChildKind::Worker { init, .. } = &m.root.children[0].kind else {
        panic!("a worker")
    };
    assert_eq!(init.to_string(), r#"{"port":8080,"tags":["a"]}"#);
    let (_, _, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\n\
         children = [{ component = \"a\", node = \"b\" }]\n",
    ));
    assert!(msg.contains("no [nodes] table"), "{msg}");
}

#[test]
fn a_component_already_running_does_not_reorder_siblings() {
    // `b` needs `a`, which `first` already runs: the pool keeps its order.
    let m = parse(&with(
        "[components.a]\nwasm = \"w.wat\"\n[components.b]\nwasm = \"w.wat\"\ndepends = [\"a\"]\n\
         [supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"a\", \"pool\"]\n\
         [supervisors.pool]\nstrategy = \"rest-for-one\"\nchildren = [\"b\", { id = \"a2\", component = \"a\" }]\n",
    ))
    .expect("valid");
    let ChildKind::Supervisor(pool) = &m.root.children[1].kind else {
        panic!("pool is a supervisor")
    };
    let ids: Vec<&str> = pool.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["b", "a2"]);
}

#[test]
fn supervisors_needing_each_other_are_a_cycle() {
    // x runs a and c, y runs b; a needs b and b needs c.
    let (line, _, msg) = error(&with(
        "[components.a]\nwasm = \"w.wat\"\ndepends = [\"b\"]\n[components.b]\nwasm = \"w.wat\"\ndepends = [\"c\"]\n\
         [components.c]\nwasm = \"w.wat\"\n\
         [supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"x\", \"y\"]\n\
         [supervisors.x]\nstrategy = \"one-for-one\"\nchildren = [\"a\", \"c\"]\n\
         [supervisors.y]\nstrategy = \"one-for-one\"\nchildren = [\"b\"]\n",
    ));
    assert_eq!(line, 12, "{msg}");
    assert!(
        msg.contains(
            "children of supervisor `supervisor` need each other's components in a cycle: x → y → x"
        ),
        "{msg}"
    );
}

#[test]
fn wrong_types_say_what_to_write_instead() {
    let child = |field: &str| {
        with(&format!(
            "[nodes]\na = {{ listen = \"127.0.0.1:1\" }}\n[components.a]\nwasm = \"w.wat\"\n\
             [supervisor]\nstrategy = \"one-for-one\"\nchildren = [{{ component = \"a\", {field} }}]\n"
        ))
    };
    for (field, says) in [
        ("shutdown = -5", "negative"),
        ("shutdown = 1.5", "not a whole number"),
        ("shutdown = true", "not valid"),
        ("node = 5", "not a node name"),
        ("node = [\"a\", 5]", "not a node name"),
    ] {
        let (line, _, msg) = error(&child(field));
        assert_eq!(line, 10, "{field}: {msg}");
        assert!(msg.contains(says), "{field}: {msg}");
        assert!(!msg.contains("untagged enum"), "{field}: {msg}");
        assert!(
            msg.contains("brutal-kill") || msg.contains("node = [\"a\", \"b\"]"),
            "{field}: {msg}"
        );
    }
    parse(&child("shutdown = 0")).expect("0 ms is a valid shutdown");
    parse(&child("node = [\"a\"]")).expect("a list of candidates");
}

#[test]
fn a_tree_file_uses_the_manifest_grammar() {
    let loaded = ["echo".to_string(), "counter".to_string()];
    let text = "[supervisor]\nstrategy = \"one-for-all\"\nmax_restarts = 3\n\
                children = [\"echo\", \"pool\"]\n\
                [supervisors.pool]\nstrategy = \"rest-for-one\"\n\
                children = [{ id = \"c\", component = \"counter\", shutdown = \"brutal-kill\" }]\n";
    let root = super::parse_tree(std::path::Path::new("tree.toml"), text, &loaded).expect("valid");
    assert_eq!(root.max_restarts, 3);
    assert_eq!(root.children.len(), 2);
    let ChildKind::Supervisor(pool) = &root.children[1].kind else {
        panic!("a nested supervisor")
    };
    assert_eq!(pool.children[0].id, "c");
    // The manifest's errors, with positions, for a tree file too.
    let bad = "[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"ecko\"]\n";
    match super::parse_tree(std::path::Path::new("tree.toml"), bad, &loaded) {
        Err(ReleaseError::Manifest { line, message, .. }) => {
            assert_eq!(line, 3, "{message}");
            assert!(
                message.contains("echo"),
                "suggests the loaded one: {message}"
            );
        }
        other => panic!("expected a positioned error, got {:?}", other.map(|_| ())),
    }
    match super::parse_tree(
        std::path::Path::new("tree.toml"),
        "strategy = \"one-for-one\"\n",
        &loaded,
    ) {
        Err(ReleaseError::Manifest { message, .. }) => {
            assert!(message.contains("[supervisor]"), "{message}")
        }
        other => panic!("expected a positioned error, got {:?}", other.map(|_| ())),
    }
}

/// A component `a`, a pool supervisor `p` and the root, then `rest`.
fn http_manifest(rest: &str) -> String {
    with(&format!(
        "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"a\", \"p\"]\n\
         [supervisors.p]\nstrategy = \"simple-one-for-one\"\ninstances = 2\nchildren = [\"a\"]\n{rest}"
    ))
}

#[test]
fn http_routes_and_configuration_resolve() {
    let m = parse(&http_manifest(
        "[http]\nlisten = \"127.0.0.1:8080\"\nroutes = [\n  { path = \"/orders\", methods = [\"post\"], to = \"a\" },\n  { path = \"/stock\", component = \"a\" },\n  { path = \"/api/*\", pool = \"p\", balance = \"least-loaded\", timeout_ms = 500 },\n]\n",
    ))
    .expect("valid");
    let h = m.http.expect("[http]");
    assert_eq!(h.listen, Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(h.routes[0].methods, ["POST"]);
    assert_eq!(h.routes[1].to, crate::model::RouteTo::Component("a".into()));
    assert_eq!(
        h.routes[2].to,
        crate::model::RouteTo::Pool {
            supervisor: "p".into(),
            least_loaded: true
        }
    );
    let ChildKind::Supervisor(p) = &m.root.children[1].kind else {
        panic!("p is a supervisor")
    };
    assert_eq!(p.instances, 2);
}

#[test]
fn http_mistakes_say_what_to_write() {
    let cases = [
        (
            "[http]\nroutes = [{ path = \"orders\", to = \"a\" }]\n",
            "write \"/orders\"",
        ),
        (
            "[http]\nroutes = [{ path = \"/a/*/b\", to = \"a\" }]\n",
            "\"/api/*\"",
        ),
        (
            "[http]\nroutes = [{ path = \"/a\", methods = [\"FETCH\"], to = \"a\" }]\n",
            "not an HTTP method",
        ),
        (
            "[http]\nroutes = [{ path = \"/a\" }]\n",
            "add `to = \"name\"`",
        ),
        (
            "[http]\nroutes = [{ path = \"/a\", to = \"a\", pool = \"p\" }]\n",
            "not several",
        ),
        (
            "[http]\nroutes = [{ path = \"/a\", component = \"b\" }]\n",
            "unknown component `b`",
        ),
        (
            "[http]\nroutes = [{ path = \"/a\", component = \"a\", balance = \"least-loaded\" }]\n",
            "`balance` goes with `pool`",
        ),
        (
            "[http]\nroutes = [{ path = \"/a\", to = \"a@b\" }]\n",
            "unknown node `b`",
        ),
        (
            "[http]\nroutes = [{ path = \"/a\", pool = \"q\" }]\n",
            "unknown supervisor `q`",
        ),
        (
            "[http]\nroutes = [{ path = \"/a\", pool = \"p\", balance = \"random\" }]\n",
            "\"least-loaded\"",
        ),
        ("[http]\nlisten = \"localhost\"\n", "not an address"),
    ];
    for (rest, want) in cases {
        let (_, _, message) = error(&http_manifest(rest));
        assert!(message.contains(want), "{rest}: {message}");
    }
}

#[test]
fn guest_configuration_mistakes_are_positioned() {
    let env = |rest: &str| {
        with(&format!(
            "[components.a]\nwasm = \"w.wat\"\n{rest}\n[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"a\"]\n"
        ))
    };
    let (line, _, message) = error(&env("env = { \"BAD-NAME\" = \"x\" }"));
    assert_eq!(line, 6, "{message}");
    assert!(
        message.contains("not an environment variable name"),
        "{message}"
    );
    let (_, _, message) = error(&env("env = { X = \"1\" }\nenv_from = [\"X\"]"));
    assert!(
        message.contains("both in `env` and in `env_from`"),
        "{message}"
    );
    let m = parse(&env(
        "env = { A = \"1\" }\nargs = [\"-v\"]\nenv_from = [\"DB\"]",
    ))
    .expect("valid");
    let c = &m.components[0].config;
    assert_eq!(c.env, [("A".to_string(), "1".to_string())]);
    assert_eq!(
        (c.args.as_slice(), c.env_from.as_slice()),
        (&["-v".to_string()][..], &["DB".to_string()][..])
    );
}

#[test]
fn store_backends_and_quotas_resolve_or_say_what_to_write() {
    let base = "[components.a]\nwasm = \"w.wat\"\n[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"a\"]\n";
    let m = parse(&with(&format!("{base}[store]\nquotas = {{ a = 1024 }}\n"))).expect("valid");
    assert_eq!(m.store, crate::model::StoreDef::Embedded);
    assert_eq!(m.quotas, vec![("a".to_string(), 1024)]);
    let m = parse(&with(&format!(
        "{base}[store]\nbackend = \"redis://127.0.0.1:6379\"\nquotas = {{ a = 5 }}\n"
    )))
    .expect("valid");
    assert_eq!(
        m.store,
        crate::model::StoreDef::Redis("redis://127.0.0.1:6379".into())
    );
    for (rest, want) in [
        ("[store]\nbackend = \"etcd://x\"\n", "write \"embedded\""),
        ("[store]\nquotas = { a = 0 }\n", "lets nothing in"),
    ] {
        let (_, _, message) = error(&with(&format!("{base}{rest}")));
        assert!(message.contains(want), "{rest}: {message}");
    }
}

#[test]
fn python_and_js_sources_are_checked_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "x = 1\n").unwrap();
    std::fs::write(dir.path().join("app.js"), "export function start() {}\n").unwrap();
    let tail = "[supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"a\"]\n";
    let load = |body: &str| {
        let path = dir.path().join("prod.toml");
        std::fs::write(
            &path,
            format!("[release]\nname = \"x\"\nversion = \"1\"\n[components.a]\n{body}{tail}"),
        )
        .unwrap();
        crate::load_manifest(&path)
    };
    assert!(load("python = \"app.py\"\n").is_ok());
    assert!(load("js = \"app.js\"\njs_engine = \"quickjs\"\n").is_ok());
    let msg = load("python = \"app.js\"\n").unwrap_err().to_string();
    assert!(
        msg.contains("prod.toml:5:") && msg.contains("not a Python file"),
        "{msg}"
    );
    let msg = load("js = \"app.js\"\njs_engine = \"v8\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains(":6:") && msg.contains("\"quickjs\""), "{msg}");
    let msg = load("python = \"app.py\"\njs_engine = \"quickjs\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("js_engine is for JavaScript components"),
        "{msg}"
    );
    let msg = load("python = \"app.py\"\njs = \"app.js\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("both `python` and `js`"), "{msg}");
}

#[test]
fn cluster_partition_policies_are_checked() {
    let m = |cluster: &str| {
        with(&format!(
            "[nodes]\na = {{ listen = \"127.0.0.1:1\" }}\n[cluster]\n{cluster}\n[components.a]\nwasm = \"w.wat\"\n\
             [supervisor]\nstrategy = \"one-for-one\"\nchildren = [{{ component = \"a\" }}]\n"
        ))
    };
    let ok = parse(&m(
        "partition = \"static-quorum(2)\"\nstable_after_ms = 500",
    ))
    .expect("valid");
    let c = ok.cluster.expect("[cluster]");
    assert_eq!(c.policy, plasmoid_runtime::PartitionPolicy::StaticQuorum(2));
    assert_eq!(c.stable_after, std::time::Duration::from_millis(500));
    let (line, _, msg) = error(&m("partition = \"split\""));
    assert_eq!(line, 7, "{msg}");
    assert!(msg.contains("keep-majority"), "{msg}");
    let (line, _, msg) = error(&m("partition = \"keep-oldest\"\nstable_after_ms = 0"));
    assert_eq!(line, 8, "{msg}");
    assert!(msg.contains("stable_after_ms = 2000"), "{msg}");
    let (_, _, msg) = error(&m("stable_after_ms = 100"));
    assert!(msg.contains("partition = \"keep-majority\""), "{msg}");
    let (_, _, msg) = error(&format!(
        "{HEAD}[cluster]\npartition = \"keep-majority\"\n[components.a]\nwasm = \"w.wat\"\n\
         [supervisor]\nstrategy = \"one-for-one\"\nchildren = [{{ component = \"a\" }}]\n"
    ));
    assert!(msg.contains("needs [nodes]"), "{msg}");
}

#[test]
fn a_nested_supervisor_is_placed_on_nodes() {
    let m = |root_extra: &str, edge_extra: &str| {
        with(&format!(
            "[nodes]\na = {{ listen = \"127.0.0.1:1\" }}\nb = {{ listen = \"127.0.0.1:2\" }}\n\
             [components.a]\nwasm = \"w.wat\"\n\
             [supervisor]\nstrategy = \"one-for-one\"\nchildren = [\"edge\"]\n{root_extra}\n\
             [supervisors.edge]\nstrategy = \"one-for-all\"\nchildren = [{{ component = \"a\" }}]\n{edge_extra}\n"
        ))
    };
    let ok = parse(&m("", "node = [\"b\", \"a\"]")).expect("valid");
    let ChildKind::Supervisor(edge) = &ok.root.children[0].kind else {
        panic!("edge is a supervisor");
    };
    assert_eq!(edge.nodes, ["b", "a"]);
    let (line, _, msg) = error(&m("node = \"b\"", ""));
    assert_eq!(line, 12, "{msg}");
    assert!(msg.contains("nested [supervisors.NAME]"), "{msg}");
    let (_, _, msg) = error(&m("", "node = \"z\""));
    assert!(msg.contains("`z`"), "{msg}");
}
