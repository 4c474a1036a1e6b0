//! A release node's observer (plasmoid-observer): started when the
//! manifest has `[observer] listen` (root node) or `release run --observer`
//! names an address; its URL is written to `<node dir>/observer` for
//! `plasmoid observe`. The observer asks this module for what only the
//! release knows: the tree (through the control side), the lock's history,
//! and how to kill, restart or hot-swap.

use crate::control::Control;
use crate::error::ReleaseError;
use crate::lock::{LOCK_FILE, Lock};
use plasmoid_mesh::TreeRow;
use plasmoid_observer::{Backend, BoxFuture, Event, Observer, ObserverConfig, TreeNode};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file beside `control` that holds the dashboard's URL.
pub const OBSERVER_FILE: &str = "observer";

struct ReleaseBackend {
    control: Control,
    dir: PathBuf,
}

fn convert(row: TreeRow) -> TreeNode {
    TreeNode {
        id: row.id,
        pid: row.pid,
        node: row.node,
        strategy: row.strategy,
        component: row.component,
        restart: row.restart,
        restarts: row.restarts,
        version: None,
        state: String::new(),
        restarted_at: None,
        children: row.children.into_iter().map(convert).collect(),
    }
}

impl Backend for ReleaseBackend {
    fn tree(&self) -> BoxFuture<'_, Option<TreeNode>> {
        Box::pin(async move { self.control.tree().await.map(convert) })
    }

    fn history(&self) -> Vec<Event> {
        let Ok(lock) = Lock::read(&self.dir) else {
            return Vec::new();
        };
        lock.history
            .iter()
            .map(|r| Event {
                at_ms: r.at.saturating_mul(1000),
                kind: r.outcome.as_str().to_string(),
                text: format!("{} {} → {}: {}", r.component, r.from, r.to, r.detail),
            })
            .collect()
    }

    fn components(&self) -> Vec<String> {
        let mut names = self.control.node().component_names();
        names.sort();
        names
    }

    fn kill<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(self.control.kill(target))
    }

    fn restart<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(self.control.restart(target))
    }

    fn swap<'a>(
        &'a self,
        component: &'a str,
        wasm: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, String>> {
        let (dir, component) = (self.dir.clone(), component.to_string());
        Box::pin(async move {
            // File work of up to 64 MiB: off the threads that run particles.
            tokio::task::spawn_blocking(move || place(&dir, &component, &wasm))
                .await
                .map_err(|e| format!("the swap's file work failed: {e}"))?
        })
    }
}

/// Put the new version where the release's swap watcher looks, the safe
/// way (written aside, renamed into place), as `plasmoid upgrade` does;
/// the watcher checks it and records the outcome in the lock's history.
fn place(dir: &Path, component: &str, wasm: &[u8]) -> Result<String, String> {
    let lock = Lock::read(dir).map_err(|e| e.to_string())?;
    if lock.component(component).is_none() {
        return Err(format!("the release has no component `{component}`"));
    }
    if !wasm.starts_with(b"\0asm") {
        return Err("that file is not WebAssembly (no `\\0asm` header)".into());
    }
    if !dir.join("components").is_dir() {
        return Err("this release has no components folder to swap into".into());
    }
    let live = dir.join("components").join(format!("{component}.wasm"));
    // One name per upload: two at once must not write the same file.
    static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let part = live.with_extension(format!("wasm.{}.{n}.part", std::process::id()));
    let placed = std::fs::write(&part, wasm)
        .map_err(|e| format!("cannot write {}: {e}", part.display()))
        .and_then(|_| {
            std::fs::rename(&part, &live)
                .map_err(|e| format!("cannot move the file to {}: {e}", live.display()))
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    Ok(format!(
        "{} bytes handed to the release's hot swap; its outcome appears in the timeline ({LOCK_FILE})",
        wasm.len()
    ))
}

/// Start the observer on `listen` and write its URL to `<node_dir>/observer`.
pub(super) async fn start(
    control: &Control,
    dir: &Path,
    node_dir: &Path,
    listen: SocketAddr,
    release: String,
    node_name: &str,
) -> Result<Observer, ReleaseError> {
    let key = crate::nodes::client_key(dir)?;
    let backend = Arc::new(ReleaseBackend {
        control: control.clone(),
        dir: dir.to_path_buf(),
    });
    let cfg = ObserverConfig {
        listen,
        release,
        node: node_name.to_string(),
        client_token: Some(plasmoid_observer::client_token(&key.to_bytes())),
        interval: plasmoid_observer::DEFAULT_INTERVAL,
    };
    let observer = Observer::start(control.node().clone(), backend, cfg)
        .await
        .map_err(|e| ReleaseError::Node(e.to_string()))?;
    // A listener on every interface is reached here through loopback.
    let mut reach = observer.addr();
    if reach.ip().is_unspecified() {
        reach.set_ip(match reach.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{reach}/");
    crate::lock::write_file(&node_dir.join(OBSERVER_FILE), url.as_bytes())?;
    if observer.addr().ip().is_loopback() {
        tracing::info!(
            "observer at {} (read-only there; `plasmoid observe` opens it with actions)",
            observer.url()
        );
    } else {
        tracing::warn!(
            token = observer.token(),
            "observer at {} beyond loopback: every request needs the token, \
             as `?token=` or `Authorization: Bearer`",
            observer.url()
        );
    }
    Ok(observer)
}
