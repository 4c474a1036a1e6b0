//! A supervision tree in a small TOML file, for `plasmoid start --tree`.
//!
//! ```toml
//! strategy = "one-for-one"          # the root supervisor
//! max_restarts = 3
//! max_seconds = 5
//!
//! [[children]]
//! id = "echo"
//! component = "echo"
//! init = { greeting = "hi" }        # any TOML value, handed over as JSON
//! restart = "permanent"             # permanent | transient | temporary
//! shutdown = 5000                   # ms, or "brutal-kill", or "infinity"
//!
//! [[children]]
//! id = "pool"
//! strategy = "rest-for-one"         # a nested supervisor: `children`, no `component`
//! children = [{ id = "a", component = "counter" }]
//! ```

use anyhow::{Context, Result, bail};
use plasmoid_supervisor::{ChildSpec, ChildStart, Restart, Shutdown, Strategy, SupervisorSpec};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SupFile {
    strategy: Strategy,
    max_restarts: Option<u32>,
    max_seconds: Option<u64>,
    #[serde(default)]
    children: Vec<ChildFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChildFile {
    id: String,
    component: Option<String>,
    init: Option<toml::Value>,
    #[serde(default)]
    restart: Restart,
    shutdown: Option<ShutdownFile>,
    strategy: Option<Strategy>,
    max_restarts: Option<u32>,
    max_seconds: Option<u64>,
    children: Option<Vec<ChildFile>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ShutdownFile {
    Ms(u64),
    Word(String),
}

pub fn load(path: &Path) -> Result<SupervisorSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: SupFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    supervisor(
        file.strategy,
        file.max_restarts,
        file.max_seconds,
        file.children,
    )
}

fn supervisor(
    strategy: Strategy,
    max_restarts: Option<u32>,
    max_seconds: Option<u64>,
    children: Vec<ChildFile>,
) -> Result<SupervisorSpec> {
    let mut spec = SupervisorSpec::new(strategy);
    spec.max_restarts = max_restarts.unwrap_or(spec.max_restarts);
    spec.max_seconds = max_seconds.map_or(spec.max_seconds, Duration::from_secs);
    let mut seen = std::collections::HashSet::new();
    for c in children {
        if !seen.insert(c.id.clone()) {
            bail!(
                "two children are called `{}`: child ids must be unique within a supervisor",
                c.id
            );
        }
        spec.children.push(child(c)?);
    }
    Ok(spec)
}

fn child(c: ChildFile) -> Result<ChildSpec> {
    let shutdown = match c.shutdown {
        None => None,
        Some(ShutdownFile::Ms(ms)) => Some(Shutdown::Timeout(Duration::from_millis(ms))),
        Some(ShutdownFile::Word(w)) => Some(match w.as_str() {
            "brutal-kill" => Shutdown::BrutalKill,
            "infinity" => Shutdown::Infinity,
            other => bail!(
                "child `{}`: shutdown `{other}` is not a number of ms, \"brutal-kill\" or \"infinity\"",
                c.id
            ),
        }),
    };
    let mut spec = match (c.component, c.children, c.strategy) {
        (Some(component), None, None) => {
            let init = match c.init {
                Some(v) => serde_json::to_string(&v)?,
                None => "null".into(),
            };
            ChildSpec {
                id: c.id.clone(),
                start: ChildStart::Particle {
                    component,
                    init,
                    nodes: Vec::new(),
                },
                restart: c.restart,
                shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            }
        }
        (None, Some(children), Some(strategy)) => {
            let sub = supervisor(strategy, c.max_restarts, c.max_seconds, children)?;
            ChildSpec::supervisor(&c.id, sub).restart(c.restart)
        }
        _ => bail!(
            "child `{}` needs either `component` (a worker) or `strategy` and `children` (a supervisor)",
            c.id
        ),
    };
    if let Some(s) = shutdown {
        spec.shutdown = s;
    }
    Ok(spec)
}
