//! Answers `plasmoid status | spawn | send | call | stop | kill` for a running
//! release node (the transport and the request types are plasmoid-mesh's).
//!
//! Targets are pids (`3618bc80.7`, of this node or a peer), names
//! registered on this node, or `name@node` for a name on another node of
//! the mesh. Requests act as the node's operator: they are admitted by the
//! client key, not by the particles' Cedar policies.

use plasmoid_mesh::{
    ControlFuture, ControlHandler, ParticleRow, PeerStatus, Reply, Request, Status, TreeRow,
};
use plasmoid_runtime::{CallError, ExitReason, Node, Pid, SpawnOpts};
use plasmoid_supervisor::SupervisorRef;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a control `call` waits for its answer (10 minutes).
pub const MAX_CALL_MS: u64 = 600_000;

/// How long a `name@node` lookup or a spawn on another node may take.
const REMOTE_WAIT: Duration = Duration::from_secs(5);
/// How long `status` waits for a supervisor on another node to list its
/// children (a subtree placed there); past it the subtree shows empty.
const TREE_WAIT: Duration = Duration::from_secs(2);

/// The control side of one running node; cheap to clone.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    name: String,
    /// `name-version` of what runs (an upgrade changes it).
    release: Arc<parking_lot::Mutex<String>>,
    started: Instant,
    root: parking_lot::Mutex<Option<SupervisorRef>>,
    stop: tokio::sync::Notify,
    /// On the root node: its versions, for `release upgrade | confirm | rollback`.
    releases: parking_lot::Mutex<Option<crate::upgrade::Releases>>,
}

impl Control {
    /// `name` is the node's name in a release with `[nodes]` (empty
    /// otherwise); `release` its `name-version`.
    pub fn new(node: Node, name: &str, release: &str) -> Control {
        Control {
            inner: Arc::new(Inner {
                node,
                name: name.to_string(),
                release: Arc::new(parking_lot::Mutex::new(release.to_string())),
                started: Instant::now(),
                root: parking_lot::Mutex::new(None),
                stop: tokio::sync::Notify::new(),
                releases: parking_lot::Mutex::new(None),
            }),
        }
    }

    /// The root supervisor, once the tree is up (only on the root node).
    pub fn set_root(&self, root: SupervisorRef) {
        *self.inner.root.lock() = Some(root);
    }

    /// Manage this root node's versions (declarative upgrades) from
    /// `current`, the version it booted; returns the manager.
    pub fn enable_upgrades(
        &self,
        current: crate::upgrade::Version,
        swap: Option<crate::swap::SwapOptions>,
    ) -> crate::upgrade::Releases {
        let r = crate::upgrade::Releases::new(
            self.inner.node.clone(),
            &self.inner.name,
            current,
            swap,
            self.inner.release.clone(),
        );
        *self.inner.releases.lock() = Some(r.clone());
        r
    }

    /// Resolves when a client asked this node to stop.
    pub async fn stop_requested(&self) {
        self.inner.stop.notified().await
    }
}

impl ControlHandler for Control {
    fn handle(&self, request: Request) -> ControlFuture {
        let inner = self.inner.clone();
        Box::pin(async move { inner.handle(request).await })
    }

    fn replied(&self, request: &Request) {
        // The node stops only once the client has its answer: stopping
        // first could close the endpoint under the reply.
        if matches!(request, Request::Stop { target: None }) {
            self.inner.stop.notify_one();
        }
    }
}

impl Inner {
    async fn handle(&self, request: Request) -> Result<Reply, String> {
        match request {
            Request::Status => Ok(Reply::Status(Box::new(self.status().await))),
            Request::Spawn {
                component,
                init,
                name,
                node,
            } => self.spawn(&component, &init, name, node.as_deref()).await,
            Request::Send { target, data } => {
                let pid = self.target(&target).await?;
                let me = self.node.native("control");
                me.send(pid, data)
                    .map_err(|e| format!("send to {pid} failed: {e}"))?;
                Ok(Reply::Done(format!("sent to {pid}")))
            }
            Request::Call {
                target,
                data,
                timeout_ms,
            } => {
                let pid = self.target(&target).await?;
                let me = self.node.native("control");
                let timeout = Duration::from_millis(timeout_ms.min(MAX_CALL_MS));
                match me.call(pid, data, timeout).await {
                    Ok(answer) => Ok(Reply::Answer(answer)),
                    Err(CallError::Timeout) => {
                        Err(format!("{pid} did not answer within {timeout_ms} ms"))
                    }
                    Err(CallError::Down(reason)) => Err(format!("{pid} is down: {reason}")),
                    Err(CallError::Send(e)) => Err(format!("call to {pid} failed: {e}")),
                    Err(CallError::Exited(r)) => Err(format!("call to {pid} interrupted: {r}")),
                }
            }
            Request::Stop { target: None } => {
                tracing::info!("stop requested by a control client");
                Ok(Reply::Done(format!("node {} stopping", self.node.id())))
            }
            Request::Stop {
                target: Some(target),
            } => self.stop(&target).await,
            Request::Store { bucket, op } => self.store(&bucket, op).await,
            Request::Kill { target } => self.kill(&target).await,
            Request::Upgrade { dir, probation_ms } => {
                let (releases, root) = self.releases()?;
                let probation =
                    Duration::from_millis(probation_ms).min(crate::upgrade::MAX_PROBATION);
                let out = releases
                    .upgrade(&root, std::path::Path::new(&dir), probation)
                    .await?;
                Ok(Reply::Done(out))
            }
            Request::Confirm => {
                let (releases, _) = self.releases()?;
                Ok(Reply::Done(releases.confirm().await?))
            }
            Request::Rollback => {
                let (releases, root) = self.releases()?;
                let out = releases.rollback(&root, "rolled back by hand").await?;
                Ok(Reply::Done(out))
            }
        }
    }

    /// The version manager and the running tree, on the root node once up.
    fn releases(&self) -> Result<(crate::upgrade::Releases, SupervisorRef), String> {
        let releases = self.releases.lock().clone().ok_or_else(|| {
            "this node does not run the release's root: upgrade through the first node of [nodes]"
                .to_string()
        })?;
        let root = self
            .root
            .lock()
            .clone()
            .ok_or_else(|| "the release's tree is not up yet; try again".to_string())?;
        Ok((releases, root))
    }

    /// An operator's read or write of a bucket: admitted like every control
    /// request (the release's client key), with the store's caps.
    async fn store(&self, bucket: &str, op: plasmoid_mesh::StoreRequest) -> Result<Reply, String> {
        use plasmoid_mesh::StoreRequest;
        use plasmoid_runtime::kv::{KvOp, KvReply};
        let kv = match &op {
            StoreRequest::Get(k) => KvOp::Get(k.clone()),
            StoreRequest::Put(k, v) => KvOp::Set(k.clone(), v.clone()),
            StoreRequest::Delete(k) => KvOp::Delete(k.clone()),
            StoreRequest::List => KvOp::ListKeys(None),
        };
        if let StoreRequest::List = op {
            let mut keys = Vec::new();
            let mut op = kv;
            loop {
                match self.node.store_call(bucket, op).await {
                    Ok(KvReply::Keys(page, next)) => {
                        keys.extend(page);
                        match next {
                            Some(c) => op = KvOp::ListKeys(Some(c)),
                            None => break,
                        }
                    }
                    Ok(other) => return Err(format!("the store answered {other:?}")),
                    Err(e) => return Err(format!("bucket `{bucket}`: {e}")),
                }
            }
            keys.sort();
            keys.dedup();
            return Ok(Reply::Done(keys.join("\n")));
        }
        let kind = match &op {
            StoreRequest::Get(_) => "get",
            StoreRequest::Put(..) => "put",
            StoreRequest::Delete(_) => "delete",
            StoreRequest::List => "list",
        };
        tracing::info!(bucket, kind, "store request from a control client");
        match self.node.store_call(bucket, kv).await {
            Ok(KvReply::Value(Some(v))) => Ok(Reply::Answer(v)),
            Ok(KvReply::Value(None)) => Err(format!("no key in bucket `{bucket}` by that name")),
            Ok(_) => Ok(Reply::Done(format!("bucket `{bucket}` written"))),
            Err(e) => Err(format!("bucket `{bucket}`: {e}")),
        }
    }

    /// A pid, `name` or `name@node`.
    async fn target(&self, target: &str) -> Result<Pid, String> {
        if let Some(pid) = self.node.resolve(target) {
            return Ok(pid);
        }
        match self.node.whereis_qualified(target, REMOTE_WAIT).await {
            Ok(Some(pid)) => Ok(pid),
            Ok(None) => Err(format!(
                "no process is registered as `{target}` (give a name, name@node or a pid such as {}.1)",
                self.node.id()
            )),
            Err(e) => Err(format!("cannot look up `{target}`: {e}")),
        }
    }

    async fn spawn(
        &self,
        component: &str,
        init: &str,
        name: Option<String>,
        node: Option<&str>,
    ) -> Result<Reply, String> {
        let there = match node {
            Some(n) => self
                .node
                .node_named(n)
                .ok_or_else(|| format!("no node `{n}` in this node's mesh"))?,
            None => self.node.id(),
        };
        if there == self.node.id() {
            let opts = SpawnOpts {
                name,
                ..Default::default()
            };
            let pid = self
                .node
                .spawn(component, init, opts)
                .map_err(|e| format!("cannot spawn `{component}`: {e}"))?;
            return Ok(Reply::Pid(pid.to_string()));
        }
        if name.is_some() {
            return Err("--name registers on the node you connect to; connect to that node (--node) to spawn a named particle there".into());
        }
        let me = self.node.native("control");
        let pid = me
            .start_child(Some(there), component, init, REMOTE_WAIT)
            .await
            .map_err(|why| format!("spawn of `{component}` on {there} failed: {why}"))?;
        // The particle outlives this request: undo the link the start made.
        me.unlink(pid);
        Ok(Reply::Pid(pid.to_string()))
    }

    async fn stop(&self, target: &str) -> Result<Reply, String> {
        let pid = self.target(target).await?;
        if let Some((sup, id)) = plasmoid_supervisor::find_child(&self.node, pid) {
            sup.terminate_child(&id)
                .await
                .map_err(|e| format!("cannot stop child `{id}`: {e}"))?;
            return Ok(Reply::Done(format!(
                "terminated child `{id}` ({pid}) of supervisor {}; it stays stopped until restarted",
                sup.pid()
            )));
        }
        let me = self.node.native("control");
        me.send_exit(pid, ExitReason::Shutdown("stopped by plasmoid stop".into()))
            .map_err(|e| format!("cannot stop {pid}: {e}"))?;
        Ok(Reply::Done(format!("sent shutdown to {pid}")))
    }

    async fn status(&self) -> Status {
        let node = &self.node;
        let me = node.id();
        let mut components = Vec::new();
        let mut particles = Vec::new();
        let mut names = node.component_names();
        names.sort();
        for c in names {
            let version = node.component_version(&c).map(|v| v.to_string());
            for p in node.particles_of(&c) {
                particles.push(ParticleRow {
                    pid: p.pid.to_string(),
                    component: c.clone(),
                    version: p.version.to_string(),
                    name: p.name,
                });
            }
            components.push((c, version.unwrap_or_default()));
        }
        let mine = node.release();
        let peers = node
            .peers()
            .into_iter()
            .filter(|(_, id)| *id != me)
            .map(|(name, id)| PeerStatus {
                name,
                id: id.to_hex(),
                connected: node.reachable(id),
                release: node.peer_release(id).map(|t| {
                    let same = mine.as_ref().is_none_or(|m| m.code == t.code);
                    (t.release, same)
                }),
            })
            .collect();
        let tree = self.tree().await;
        let view = node.partition_view();
        let partition = view
            .policy
            .map(|p| (p.to_string(), view.standing.as_str().to_string()));
        let mut globals: Vec<(String, String)> = node
            .global_names()
            .into_iter()
            .map(|(n, p)| (n, p.to_string()))
            .collect();
        globals.sort();
        globals.truncate(plasmoid_mesh::MAX_STATUS_GLOBALS);
        Status {
            node: self.name.clone(),
            id: me.to_hex(),
            release: self.release.lock().clone(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            peers,
            components,
            particles,
            tree,
            partition,
            globals,
        }
    }

    /// The node a pid lives on, by name when it has one.
    fn node_of(&self, pid: Pid) -> String {
        let peers = self.node.peers();
        match peers.iter().find(|(_, id)| *id == pid.node) {
            Some((n, _)) => n.clone(),
            None if pid.node == self.node.id() && !self.name.is_empty() => self.name.clone(),
            None => pid.node.to_string(),
        }
    }

    /// The rows of supervisor `sup`, here or on another node (asked over
    /// the mesh, authorized there for this node).
    fn tree_of<'a>(
        &'a self,
        id: &'a str,
        sup: Pid,
        strategy: Option<String>,
        restarts: u32,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TreeRow> + Send + 'a>> {
        Box::pin(async move {
            let rows = match self
                .node
                .ask_supervisor(sup, plasmoid_runtime::SupRequest::Which, TREE_WAIT)
                .await
            {
                Ok(plasmoid_runtime::SupReply::Rows(rows)) => rows,
                Ok(_) => Vec::new(),
                Err(e) => {
                    tracing::debug!(%sup, "supervisor not listed: {e:?}");
                    Vec::new()
                }
            };
            let mut children = Vec::new();
            for c in rows {
                let restart = Some(restart_name(c.restart).to_string());
                let strategy = c.strategy.map(|s| s.as_str().to_string());
                let row = match c.pid {
                    Some(p) if c.supervisor => TreeRow {
                        restart,
                        ..self.tree_of(&c.id, p, strategy, c.restarts).await
                    },
                    _ => TreeRow {
                        restart,
                        id: c.id.clone(),
                        pid: c.pid.map(|p| p.to_string()),
                        node: c.pid.map(|p| self.node_of(p)),
                        strategy,
                        component: c.component.clone(),
                        restarts: c.restarts,
                        children: Vec::new(),
                    },
                };
                children.push(row);
            }
            TreeRow {
                id: id.to_string(),
                pid: Some(sup.to_string()),
                node: Some(self.node_of(sup)),
                strategy,
                component: None,
                restarts,
                children,
                restart: None,
            }
        })
    }

    /// The tree, on the node that runs it.
    async fn tree(&self) -> Option<TreeRow> {
        let root = self.root.lock().clone()?;
        let strategy = Some(root.strategy().as_str().to_string());
        Some(self.tree_of("root", root.pid(), strategy, 0).await)
    }

    /// Kill a target, as `plasmoid kill`.
    async fn kill(&self, target: &str) -> Result<Reply, String> {
        let pid = self.target(target).await?;
        let me = self.node.native("control");
        me.send_exit(pid, ExitReason::Kill)
            .map_err(|e| format!("cannot kill {pid}: {e}"))?;
        tracing::warn!(%pid, "killed by a control client");
        Ok(Reply::Done(format!(
            "killed {pid}; a supervisor restarts it per its restart policy"
        )))
    }

    /// Restart a supervised child: terminate it within its shutdown time,
    /// then start it again (OTP's terminate_child + restart_child).
    async fn restart(&self, target: &str) -> Result<String, String> {
        let pid = self.target(target).await?;
        let Some((sup, id)) = plasmoid_supervisor::find_child(&self.node, pid) else {
            return Err(format!(
                "{pid} is not a child of a supervisor on this node; kill it instead"
            ));
        };
        // terminate_child deletes these (as OTP does): there would be
        // nothing left to restart.
        if sup.is_simple() {
            return Err(format!(
                "{pid} is an instance of a simple-one-for-one supervisor, which keeps no spec to restart; kill it instead"
            ));
        }
        let children = sup
            .which_children()
            .await
            .map_err(|e| format!("cannot ask the supervisor: {e}"))?;
        if children
            .iter()
            .any(|c| c.id == id && c.restart == plasmoid_runtime::Restart::Temporary)
        {
            return Err(format!(
                "child `{id}` is temporary: stopping it removes it for good; kill it instead"
            ));
        }
        sup.terminate_child(&id)
            .await
            .map_err(|e| format!("cannot stop child `{id}`: {e}"))?;
        let new = sup
            .restart_child(&id)
            .await
            .map_err(|e| format!("child `{id}` stopped but did not start again: {e}"))?;
        Ok(format!("restarted child `{id}`: {pid} → {new}"))
    }
}

fn restart_name(r: plasmoid_runtime::Restart) -> &'static str {
    match r {
        plasmoid_runtime::Restart::Permanent => "permanent",
        plasmoid_runtime::Restart::Transient => "transient",
        plasmoid_runtime::Restart::Temporary => "temporary",
    }
}

/// What the observer's actions and tree use (observe.rs).
impl Control {
    pub(crate) async fn tree(&self) -> Option<TreeRow> {
        self.inner.tree().await
    }

    pub(crate) async fn kill(&self, target: &str) -> Result<String, String> {
        match self.inner.kill(target).await? {
            Reply::Done(m) => Ok(m),
            other => Ok(format!("{other:?}")),
        }
    }

    pub(crate) async fn restart(&self, target: &str) -> Result<String, String> {
        self.inner.restart(target).await
    }

    pub(crate) fn node(&self) -> &Node {
        &self.inner.node
    }
}
