//! The edits of `bench upgrade`: the demo's manifest made buildable from
//! another folder, and the ten changes of the new version. It does not run
//! anything (the bench's mod.rs does).

use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;

/// Make the manifest's relative paths (components, policies) absolute, so
/// it builds from another folder.
pub(super) fn absolutize(m: &mut toml::Table, base: &Path) {
    let abs = |v: &mut toml::Value| {
        if let Some(s) = v.as_str() {
            *v = toml::Value::String(base.join(s).display().to_string());
        }
    };
    if let Some(p) = m
        .get_mut("release")
        .and_then(|r| r.as_table_mut())
        .and_then(|r| r.get_mut("policies"))
    {
        abs(p);
    }
    if let Some(cs) = m.get_mut("components").and_then(|c| c.as_table_mut()) {
        for (_, c) in cs.iter_mut() {
            for key in ["path", "wasm", "python", "js"] {
                if let Some(v) = c.as_table_mut().and_then(|c| c.get_mut(key)) {
                    abs(v);
                }
            }
        }
    }
}

/// The same component with a custom section appended: other bytes (a new
/// version to hot-swap to), the same behaviour.
pub(super) fn with_custom_section(wasm: &[u8]) -> Vec<u8> {
    let name = b"plasmoid-bench";
    let payload = b"version 2";
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push((1 + name.len() + payload.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(payload);
    out
}

/// The ten changes: policies, a new component, the ledger's code (handed
/// over), two supervisors' flags, a removed child and its component, a
/// child with a new spec, two added children.
pub(super) fn ten_changes(
    mut m: toml::Table,
    demo: &Path,
    work: &Path,
    counter: &Path,
    ledger: &Path,
) -> Result<toml::Table> {
    let table = |m: &mut toml::Table, path: &[&str]| -> Result<toml::Table> {
        let mut t = &mut *m;
        for key in path {
            t = t
                .get_mut(*key)
                .and_then(|v| v.as_table_mut())
                .ok_or_else(|| anyhow!("the demo manifest has no [{}]", path.join(".")))?;
        }
        Ok(t.clone())
    };
    let set = |m: &mut toml::Table, path: &[&str], key: &str, v: toml::Value| -> Result<()> {
        let mut t = &mut *m;
        for k in path {
            t = t
                .entry(k.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .ok_or_else(|| anyhow!("`{k}` of the demo manifest is not a table"))?;
        }
        t.insert(key.to_string(), v);
        Ok(())
    };
    let s = |v: &str| toml::Value::String(v.to_string());
    set(&mut m, &["release"], "version", s("1.1.0"))?;
    // 1. Policies: the counter may take a name too.
    let policy = std::fs::read_to_string(demo.join("policies/shop.cedar"))
        .context("the demo has no policies/shop.cedar")?;
    let edited = policy.replace(
        "principal == Particle::\"gateway\"",
        "principal == Particle::\"gateway\" ||\n    principal == Particle::\"counter\"",
    );
    if edited == policy {
        bail!("the demo's policies changed: the bench cannot edit them");
    }
    std::fs::write(work.join("policies-v2/shop.cedar"), edited)?;
    let policies = work.join("policies-v2").display().to_string();
    set(&mut m, &["release"], "policies", s(&policies))?;
    // 2. A new component; 3. the ledger's new code.
    let mut c = toml::Table::new();
    c.insert("wasm".into(), s(&counter.display().to_string()));
    set(&mut m, &["components"], "counter", toml::Value::Table(c))?;
    let mut ledger_def = table(&mut m, &["components", "ledger"])?;
    ledger_def.remove("path");
    ledger_def.insert("wasm".into(), s(&ledger.display().to_string()));
    set(
        &mut m,
        &["components"],
        "ledger",
        toml::Value::Table(ledger_def),
    )?;
    // 4, 5. Flags of the root and of `edge`.
    set(
        &mut m,
        &["supervisor"],
        "max_restarts",
        toml::Value::Integer(5),
    )?;
    set(
        &mut m,
        &["supervisors", "edge"],
        "max_seconds",
        toml::Value::Integer(20),
    )?;
    // 6, 10. The notifier goes, and with it its component.
    let core = table(&mut m, &["supervisors", "core"])?;
    let kept: Vec<toml::Value> = core
        .get("children")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .filter(|c| c.get("id").and_then(|i| i.as_str()) != Some("notifier"))
        .cloned()
        .collect();
    set(
        &mut m,
        &["supervisors", "core"],
        "children",
        toml::Value::Array(kept),
    )?;
    if let Some(cs) = m.get_mut("components").and_then(|c| c.as_table_mut()) {
        cs.remove("notifier");
    }
    // 7. gateway-eu with a new init; 9. a third gateway.
    let edge = table(&mut m, &["supervisors", "edge"])?;
    let mut children: Vec<toml::Value> = edge
        .get("children")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    for c in &mut children {
        if c.get("id").and_then(|i| i.as_str()) == Some("gateway-eu")
            && let Some(init) = c.get_mut("init").and_then(|i| i.as_table_mut())
        {
            init.insert("interval_ms".into(), toml::Value::Integer(250));
        }
    }
    let ap: toml::Value = toml::from_str::<toml::Table>(
        "c = { id = \"gateway-ap\", component = \"gateway\", init = { region = \"ap\", interval_ms = 400 } }",
    )?
    .remove("c")
    .ok_or_else(|| anyhow!("the gateway-ap child"))?;
    children.push(ap);
    set(
        &mut m,
        &["supervisors", "edge"],
        "children",
        toml::Value::Array(children),
    )?;
    // 8. The counter under the root.
    let root = table(&mut m, &["supervisor"])?;
    let mut top = root
        .get("children")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    top.push(s("counter"));
    set(&mut m, &["supervisor"], "children", toml::Value::Array(top))?;
    Ok(m)
}
