//! End-to-end: `plasmoid release upgrade --dry-run` builds the edited
//! manifest beside the running build and prints the plan, changing
//! nothing; live upgrades of a running release (upgrade_live.rs).

mod common;
use common::{plasmoid, run};

const V1: &str = r#"
[release]
name = "up"
version = "0.1.0"

[components.echo]
wasm = "{echo}"

[supervisor]
strategy = "one-for-one"
children = ["echo", "pool"]

[supervisors.pool]
strategy = "one-for-all"
children = [{ id = "e1", component = "echo" }, { id = "e2", component = "echo" }]
"#;

fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let text = text.replace("{echo}", &common::wasm("echo").display().to_string());
    let text = text.replace("{counter}", &common::wasm("counter").display().to_string());
    let path = dir.join("prod.toml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

#[test]
fn a_dry_run_prints_the_plan_in_order_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = write(dir.path(), V1);
    let (code, _, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    let old = dir.path().join("target/plasmoid/up-0.1.0");
    let lock_before = std::fs::read(old.join("release.lock")).expect("lock");

    // The same version: refused before anything is built.
    let (code, _, err) = run(plasmoid()
        .args(["release", "upgrade", "--dry-run"])
        .arg(&manifest));
    assert_ne!(code, 0);
    assert!(err.contains("release.version is still \"0.1.0\""), "{err}");

    let v2 = V1
        .replace("0.1.0", "0.2.0")
        .replace("strategy = \"one-for-all\"", "strategy = \"rest-for-one\"")
        .replace(", { id = \"e2\", component = \"echo\" }", "")
        .replace(
            "children = [\"echo\", \"pool\"]",
            "children = [\"echo\", \"pool\", { id = \"c\", component = \"counter\" }]",
        )
        + "\n[components.counter]\nwasm = \"{counter}\"\n";
    let manifest = write(dir.path(), &v2);
    let (code, out, err) = run(plasmoid()
        .args(["release", "upgrade", "--dry-run"])
        .arg(&manifest));
    assert_eq!(code, 0, "{err}");
    // The unchanged echo takes the running version's native code; the new
    // counter is compiled.
    assert!(err.contains("reused echo"), "{err}");
    assert!(err.contains("compiled counter"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "upgrade up-0.1.0 → up-0.2.0", "{out}");
    assert!(
        lines[1].contains("[all] install component `counter`"),
        "{out}"
    );
    assert!(
        lines[2].contains(
            "[embedded] update supervisor `pool` in place: strategy OneForAll → RestForOne"
        ),
        "{out}"
    );
    assert!(lines[3].contains("stop child `pool/e2`"), "{out}");
    assert!(lines[4].contains("start child `c`"), "{out}");
    assert!(out.contains("dry run: nothing was applied"), "{out}");
    assert_eq!(
        std::fs::read(old.join("release.lock")).expect("lock"),
        lock_before,
        "the running build is untouched"
    );

    // Applying needs the running release: nothing runs, so nothing changes.
    let (code, _, err) = run(plasmoid().args(["release", "upgrade"]).arg(&manifest));
    assert_ne!(code, 0);
    assert!(err.contains("is the node running?"), "{err}");
    assert_eq!(
        std::fs::read(old.join("release.lock")).expect("lock"),
        lock_before
    );
}
