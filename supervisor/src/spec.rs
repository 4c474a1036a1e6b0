//! Child and supervisor specifications, with OTP's names and defaults.

use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use plasmoid_runtime::{Restart, Shutdown, Strategy};

/// What a child is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ChildStart {
    /// A particle of a loaded component, with its init arguments (JSON),
    /// on the first reachable node of `nodes` (empty: the supervisor's node).
    Particle {
        component: String,
        init: String,
        nodes: Vec<plasmoid_runtime::NodeId>,
    },
    /// A nested supervisor.
    Supervisor(Box<SupervisorSpec>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildSpec {
    pub id: String,
    pub start: ChildStart,
    pub restart: Restart,
    pub shutdown: Shutdown,
}

impl ChildSpec {
    /// A permanent worker with OTP's default shutdown (5 s).
    pub fn worker(id: &str, component: &str, init: &str) -> Self {
        ChildSpec {
            id: id.to_string(),
            start: ChildStart::Particle {
                component: component.to_string(),
                init: init.to_string(),
                nodes: Vec::new(),
            },
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
        }
    }

    /// A permanent nested supervisor (shutdown `infinity`, as OTP defaults).
    pub fn supervisor(id: &str, spec: SupervisorSpec) -> Self {
        ChildSpec {
            id: id.to_string(),
            start: ChildStart::Supervisor(Box::new(spec)),
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
        }
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub fn is_supervisor(&self) -> bool {
        matches!(self.start, ChildStart::Supervisor(_))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SupervisorSpec {
    /// A label for logs (`core`, `edge`…); the release names it after its manifest key.
    pub name: String,
    pub strategy: Strategy,
    /// More than this many restarts within `max_seconds` and the supervisor gives up.
    pub max_restarts: u32,
    pub max_seconds: Duration,
    pub children: Vec<ChildSpec>,
    /// How long a child may take to initialise (reach its first `recv`).
    pub start_timeout: Duration,
    /// Simple-one-for-one: how many instances of the template to start
    /// with the supervisor (a pool); more are added with `start_child`.
    pub instances: u32,
    /// Where a nested supervisor runs with its whole subtree: the first
    /// reachable of these nodes, in order of preference (empty: its
    /// parent's node). Placed so, it fails over like a worker placed with
    /// `node = [...]`.
    pub nodes: Vec<plasmoid_runtime::NodeId>,
}

impl SupervisorSpec {
    /// OTP's defaults: at most 1 restart in 5 seconds.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            name: "supervisor".into(),
            strategy,
            max_restarts: 1,
            max_seconds: Duration::from_secs(5),
            children: Vec::new(),
            start_timeout: Duration::from_secs(5),
            instances: 0,
            nodes: Vec::new(),
        }
    }

    pub fn intensity(mut self, max_restarts: u32, max_seconds: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.max_seconds = max_seconds;
        self
    }

    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Run on the first reachable of `nodes` (see [`SupervisorSpec::nodes`]).
    pub fn on(mut self, nodes: Vec<plasmoid_runtime::NodeId>) -> Self {
        self.nodes = nodes;
        self
    }

    /// Every component the subtree starts, each once.
    pub fn components(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in &self.children {
            match &c.start {
                ChildStart::Particle { component, .. } => {
                    if !out.contains(&component.as_str()) {
                        out.push(component);
                    }
                }
                ChildStart::Supervisor(s) => {
                    for n in s.components() {
                        if !out.contains(&n) {
                            out.push(n);
                        }
                    }
                }
            }
        }
        out
    }

    /// How long the whole subtree may take to start on another node: each
    /// child's start timeout, nested supervisors counted by their own.
    pub fn subtree_timeout(&self) -> Duration {
        let per_child = |c: &ChildSpec| match &c.start {
            ChildStart::Particle { .. } => self.start_timeout,
            ChildStart::Supervisor(s) => s.subtree_timeout(),
        };
        let children = self
            .children
            .iter()
            .map(per_child)
            .fold(Duration::ZERO, Duration::saturating_add);
        let instances = self.start_timeout.saturating_mul(self.instances.min(1000));
        self.start_timeout
            .saturating_add(children)
            .saturating_add(instances)
            .min(MAX_SUBTREE_START)
    }

    /// Whether a spec from another node is within what this node starts:
    /// `Err` names the first field past its bound.
    pub fn check_bounds(&self) -> Result<(), String> {
        if self.instances > MAX_INSTANCES {
            return Err(format!(
                "supervisor `{}` asks for {} instances; at most {MAX_INSTANCES}",
                self.name, self.instances
            ));
        }
        if self.start_timeout > MAX_SUBTREE_START || self.max_seconds > MAX_SUBTREE_START {
            return Err(format!(
                "supervisor `{}` has a start timeout or max_seconds over {} s",
                self.name,
                MAX_SUBTREE_START.as_secs()
            ));
        }
        for c in &self.children {
            match (&c.start, c.shutdown) {
                (_, Shutdown::Timeout(t)) if t > MAX_SUBTREE_START => {
                    return Err(format!(
                        "child `{}` has a shutdown over {} s",
                        c.id,
                        MAX_SUBTREE_START.as_secs()
                    ));
                }
                (ChildStart::Supervisor(sub), _) => sub.check_bounds()?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// The most instances a simple-one-for-one supervisor starts with (as the
/// manifest allows).
pub const MAX_INSTANCES: u32 = 100_000;

/// The longest a subtree may take to start on another node (1 hour), and
/// the bound on any timeout in a spec from another node.
pub const MAX_SUBTREE_START: Duration = Duration::from_secs(3600);
