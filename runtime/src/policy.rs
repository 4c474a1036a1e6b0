//! The Cedar gate: every capability a particle uses is authorized here.
//!
//! Decisions are cached per (principal, action, resource) and the cache is
//! dropped whenever the policy set changes (the generation counter tells
//! per-particle caches to drop theirs too), so the message hot path pays a
//! Cedar evaluation once per pair, not once per message.

use crate::error::{Result, RuntimeError};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, Schema, ValidationMode, Validator,
};
use dashmap::DashMap;
use miette::Diagnostic;
use parking_lot::RwLock;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Cached decisions kept at most; past it the cache starts over.
const MAX_CACHED: usize = 4096;

pub const DEFAULT_SCHEMA: &str = include_str!("../../policies/plasmoid.cedarschema");
pub const DEFAULT_POLICIES: &str = include_str!("../../policies/default.cedar");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Spawn,
    Send,
    Exit,
    Link,
    Monitor,
    Register,
    Lookup,
    Log,
    Supervise,
    /// Open a TCP connection to `Host::"IP:PORT"`.
    Connect,
    /// Resolve host names (`wasi:sockets/ip-name-lookup`), on `Node::"local"`.
    Resolve,
    /// Read a `wasi:keyvalue` bucket, `Bucket::"<name>"`.
    Read,
    /// Write a `wasi:keyvalue` bucket.
    Write,
    /// Get node-up and node-down messages and list the connected nodes,
    /// on `Node::"local"`.
    MonitorNodes,
    /// Join a process group, `Group::"<name>"`.
    Join,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Spawn => "spawn",
            Action::Send => "send",
            Action::Exit => "exit",
            Action::Link => "link",
            Action::Monitor => "monitor",
            Action::Register => "register",
            Action::Lookup => "lookup",
            Action::Log => "log",
            Action::Supervise => "supervise",
            Action::Connect => "connect",
            Action::Resolve => "resolve",
            Action::Read => "read",
            Action::Write => "write",
            Action::MonitorNodes => "monitor_nodes",
            Action::Join => "join",
        }
    }

    /// The entity type of this action's resource, as the schema declares it.
    fn resource_type(self) -> &'static str {
        match self {
            Action::Spawn => "Component",
            Action::Register | Action::Lookup => "Name",
            Action::Log | Action::Resolve | Action::MonitorNodes => "Node",
            Action::Connect => "Host",
            Action::Read | Action::Write => "Bucket",
            Action::Join => "Group",
            _ => "Particle",
        }
    }
}

struct Loaded {
    policies: PolicySet,
    schema: Schema,
}

/// How a node principal is told apart from a component in the cache.
const NODE_PREFIX: &str = "node:";

pub struct PolicyGate {
    authorizer: Authorizer,
    loaded: RwLock<Arc<Loaded>>,
    generation: AtomicU64,
    cache: DashMap<(Arc<str>, Action, String), bool>,
    node_principals: DashMap<crate::NodeId, Arc<str>>,
}

/// One policy source: a name for messages (usually the file path) and its text.
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

impl PolicyGate {
    /// The built-in schema and default policies.
    pub fn defaults() -> Result<Self> {
        Self::from_sources(
            ("policies/plasmoid.cedarschema", DEFAULT_SCHEMA),
            vec![PolicySource {
                name: "policies/default.cedar".into(),
                text: DEFAULT_POLICIES.into(),
            }],
        )
    }

    /// A folder with one `.cedarschema` (optional: the built-in one is used
    /// without it) and any number of `.cedar` policy files.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let (schema, sources) = read_dir(dir)?;
        Self::from_sources((&schema.0, &schema.1), sources)
    }

    /// Replace the policy set with a folder's ([`PolicyGate::from_dir`]'s
    /// layout), atomically: validated first, and on error the old set stays.
    /// A release upgrade swaps its policies this way.
    pub fn replace_from_dir(&self, dir: &Path) -> Result<()> {
        let (schema, sources) = read_dir(dir)?;
        self.replace((&schema.0, &schema.1), sources)
    }

    pub fn from_sources(schema: (&str, &str), sources: Vec<PolicySource>) -> Result<Self> {
        let loaded = load(schema, &sources)?;
        Ok(PolicyGate {
            authorizer: Authorizer::new(),
            loaded: RwLock::new(Arc::new(loaded)),
            generation: AtomicU64::new(1),
            cache: DashMap::new(),
            node_principals: DashMap::new(),
        })
    }

    /// Replace the policy set (validated first; on error the old set stays).
    pub fn replace(&self, schema: (&str, &str), sources: Vec<PolicySource>) -> Result<()> {
        let loaded = load(schema, &sources)?;
        *self.loaded.write() = Arc::new(loaded);
        self.cache.clear();
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Bumped on every policy change; per-particle caches compare against it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether another node (its id in hex) may do `action` on `resource`
    /// here: principal `Node::"<id>"`.
    pub fn allowed_node(&self, node_hex: &str, action: Action, resource: &str) -> bool {
        // Component names cannot contain `:`, so this key never collides.
        let principal: Arc<str> = format!("{NODE_PREFIX}{node_hex}").into();
        self.allowed(&principal, action, resource)
    }

    /// [`PolicyGate::allowed_node`] by node id, with the principal built
    /// once per node: this runs for every message from another node.
    pub fn allowed_node_id(&self, node: &crate::NodeId, action: Action, resource: &str) -> bool {
        // A read lock on the hot path; the write lock only for a new peer.
        let known = self.node_principals.get(node).map(|p| p.clone());
        let principal = known.unwrap_or_else(|| {
            self.node_principals
                .entry(*node)
                .or_insert_with(|| format!("{NODE_PREFIX}{}", node.to_hex()).into())
                .clone()
        });
        self.allowed(&principal, action, resource)
    }

    /// Whether `principal` (a component) may do `action` on `resource`.
    pub fn allowed(&self, principal: &Arc<str>, action: Action, resource: &str) -> bool {
        let key = (principal.clone(), action, resource.to_string());
        if let Some(d) = self.cache.get(&key) {
            return *d;
        }
        // Cedar guards its recursion with a stack probe that misreads a
        // wasmtime fiber's stack (host calls run on the guest's fiber) and
        // then denies everything. Misses are rare (the cache keeps the
        // answer), so evaluate them on a thread with a real stack.
        let decision = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("plasmoid-cedar".into())
                .spawn_scoped(s, || self.evaluate(principal, action, resource))
                .ok()
                .and_then(|h| h.join().ok())
                .unwrap_or(false)
        });
        if !decision {
            tracing::warn!(
                principal = %principal,
                action = action.as_str(),
                resource,
                "denied by policy"
            );
        }
        // Names are guest-chosen: keep the cache from growing without bound.
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(key, decision);
        decision
    }

    fn evaluate(&self, principal: &str, action: Action, resource: &str) -> bool {
        let loaded = self.loaded.read().clone();
        let uid = |ty: &str, id: &str| -> Option<EntityUid> {
            let ty = EntityTypeName::from_str(ty).ok()?;
            Some(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
        };
        let p = match principal.strip_prefix(NODE_PREFIX) {
            Some(node) => uid("Node", node),
            None => uid("Particle", principal),
        };
        let (Some(p), Some(a), Some(r)) = (
            p,
            uid("Action", action.as_str()),
            uid(action.resource_type(), resource),
        ) else {
            return false;
        };
        // A bucket access says whether the bucket is the component's own
        // (named after it): the default policies allow exactly that.
        let context = match action {
            Action::Read | Action::Write => {
                let owned = cedar_policy::RestrictedExpression::new_bool(principal == resource);
                match Context::from_pairs([("owned".to_string(), owned)]) {
                    Ok(c) => c,
                    Err(_) => return false,
                }
            }
            _ => Context::empty(),
        };
        let Ok(request) = Request::new(p, a, r, context, Some(&loaded.schema)) else {
            return false;
        };
        let response =
            self.authorizer
                .is_authorized(&request, &loaded.policies, &Entities::empty());
        response.decision() == Decision::Allow
    }
}

/// A policy folder's schema (the built-in one without a `.cedarschema`)
/// and its `.cedar` files, in name order.
fn read_dir(dir: &Path) -> Result<((String, String), Vec<PolicySource>)> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| RuntimeError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let entries = std::fs::read_dir(dir).map_err(|source| RuntimeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut schema = None;
    let mut sources = Vec::new();
    for f in files {
        match f.extension().and_then(|e| e.to_str()) {
            Some("cedarschema") => schema = Some((f.display().to_string(), read(&f)?)),
            Some("cedar") => sources.push(PolicySource {
                name: f.display().to_string(),
                text: read(&f)?,
            }),
            _ => {}
        }
    }
    let schema = schema.unwrap_or_else(|| {
        (
            "policies/plasmoid.cedarschema".into(),
            DEFAULT_SCHEMA.into(),
        )
    });
    Ok((schema, sources))
}

fn load(schema: (&str, &str), sources: &[PolicySource]) -> Result<Loaded> {
    let (schema_name, schema_text) = schema;
    let (schema, _warnings) = Schema::from_cedarschema_str(schema_text)
        .map_err(|e| located(schema_name, schema_text, &e, &e.to_string()))?;
    let mut policies = PolicySet::new();
    for src in sources {
        let set = PolicySet::from_str(&src.text)
            .map_err(|e| located(&src.name, &src.text, &e, &e.to_string()))?;
        for (i, policy) in set.policies().enumerate() {
            let id = PolicyId::new(format!("{}#{i}", src.name));
            policies
                .add(policy.new_id(id))
                .map_err(|e| RuntimeError::PolicySet(e.to_string()))?;
        }
    }
    let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    if let Some(err) = result.validation_errors().next() {
        let id = err.policy_id().to_string();
        let file = id.rsplit_once('#').map(|(f, _)| f).unwrap_or(&id);
        let text = sources
            .iter()
            .find(|s| s.name == file)
            .map(|s| s.text.as_str())
            .unwrap_or("");
        return Err(located(file, text, err, &err.to_string()));
    }
    Ok(Loaded { policies, schema })
}

/// Turn a diagnostic into `file:line:col: message` using its first label.
fn located(file: &str, text: &str, diag: &dyn Diagnostic, message: &str) -> RuntimeError {
    let offset = diag
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| l.offset())
        .unwrap_or(0);
    let (line, column) = line_col(text, offset);
    let mut message = message.to_string();
    if let Some(help) = diag.help() {
        message.push_str(&format!(" ({help})"));
    }
    RuntimeError::Policy {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(policy: &str) -> Result<PolicyGate> {
        PolicyGate::from_sources(
            ("schema", DEFAULT_SCHEMA),
            vec![PolicySource {
                name: "test.cedar".into(),
                text: policy.into(),
            }],
        )
    }

    #[test]
    fn defaults_allow_ordinary_work() {
        let g = PolicyGate::defaults().unwrap();
        let p: Arc<str> = "ring".into();
        assert!(g.allowed(&p, Action::Send, "ring"));
        assert!(g.allowed(&p, Action::Spawn, "echo"));
        assert!(!g.allowed(&p, Action::Supervise, "ring"));
    }

    #[test]
    fn default_deny_without_permit() {
        let g = gate(r#"permit(principal == Particle::"a", action == Action::"send", resource == Particle::"b");"#)
            .unwrap();
        let a: Arc<str> = "a".into();
        let c: Arc<str> = "c".into();
        assert!(g.allowed(&a, Action::Send, "b"));
        assert!(!g.allowed(&a, Action::Send, "c"));
        assert!(!g.allowed(&c, Action::Send, "b"));
        assert!(!g.allowed(&a, Action::Spawn, "b"));
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let err = gate("permit(principal, action, resource);\nforbid(principal action, resource);")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("test.cedar:2:"), "{err}");
    }

    #[test]
    fn schema_violation_names_the_policy_location() {
        let err = gate("\n\npermit(principal, action == Action::\"fly\", resource);")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("test.cedar:3:"), "{err}");
        assert!(err.contains("fly"), "{err}");
    }

    #[test]
    fn replacing_policies_invalidates_cached_decisions() {
        let g = PolicyGate::defaults().unwrap();
        let p: Arc<str> = "x".into();
        assert!(g.allowed(&p, Action::Send, "y"));
        let before = g.generation();
        g.replace(
            ("schema", DEFAULT_SCHEMA),
            vec![PolicySource {
                name: "none.cedar".into(),
                text: String::new(),
            }],
        )
        .unwrap();
        assert!(g.generation() > before);
        assert!(!g.allowed(&p, Action::Send, "y"));
    }
}
