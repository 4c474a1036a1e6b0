//! Declarative upgrades: what changes between the running build of a
//! release and a new one, as a plan of steps in the order they apply
//! (`plasmoid release upgrade prod.toml --dry-run` prints it).
//!
//! It owns the comparison of two built releases (manifest and lock) and
//! the order of the plan, in the spirit of an OTP relup written for you:
//! policies first (validated as they were built), new components
//! installed, changed ones hot-swapped per their upgrade mode, supervisor
//! flags updated in place, removed children stopped (deepest and last
//! first), changed children restarted with their new spec, added children
//! started in start order, components no longer used removed last. Each
//! step names the node that carries it out. apply.rs carries a plan out on
//! the running root node and undoes it; live.rs keeps the node's versions
//! (current, previous, on probation) and records each upgrade. It does not
//! build either version (build.rs), nor upgrade subtrees or components on
//! other nodes (refused before anything changes).

mod apply;
mod diff;
mod live;
#[cfg(test)]
mod tests;
mod tree;

pub use apply::{Applied, Version};
pub use diff::plan;
pub use live::{MAX_PROBATION, Releases};

/// One step of an upgrade plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The release's Cedar policies changed: swapped as a whole.
    SwapPolicies { files: Vec<String> },
    /// A component the running release does not have.
    InstallComponent { name: String, version: String },
    /// A component whose code changed: hot-swapped.
    SwapComponent {
        name: String,
        from: String,
        to: String,
        mode: &'static str,
    },
    /// A component whose limits or configuration changed (its code too,
    /// maybe): its particles restart with the new settings. With `restart`
    /// false only its upgrade mode changed, for later swaps.
    ChangeComponent {
        name: String,
        changes: Vec<String>,
        restart: bool,
    },
    /// A supervisor's flags changed: updated in place, not restarted.
    UpdateSupervisor { path: String, changes: Vec<String> },
    /// A child that the new tree no longer has.
    StopChild { path: String },
    /// A child whose spec changed: stopped and started with the new one.
    RestartChild { path: String, changes: Vec<String> },
    /// A child the running tree does not have.
    StartChild { path: String },
    /// A component nothing uses any more.
    RemoveComponent { name: String },
    /// A release-wide setting (nodes, limits, HTTP, store, cluster): takes
    /// effect on the node named when it next boots.
    ChangeSetting {
        what: String,
        from: String,
        to: String,
    },
}

/// A step and the node that carries it out (`all` for every node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub node: String,
    pub step: Step,
}

/// What it takes to go from one build to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `name-version` of the running build and of the new one.
    pub from: String,
    pub to: String,
    pub steps: Vec<Planned>,
}

impl Plan {
    /// The plan as `plasmoid release upgrade` prints it: one numbered line
    /// per step, in the order it applies.
    pub fn render(&self) -> String {
        let mut out = format!("upgrade {} → {}\n", self.from, self.to);
        if self.steps.is_empty() {
            out.push_str("  nothing changes but the version\n");
        }
        for (i, p) in self.steps.iter().enumerate() {
            out.push_str(&format!(
                "{:>3}. [{}] {}\n",
                i + 1,
                p.node,
                describe(&p.step)
            ));
        }
        out
    }
}

pub(crate) fn describe(step: &Step) -> String {
    match step {
        Step::SwapPolicies { files } => format!("swap policies ({})", files.join(", ")),
        Step::InstallComponent { name, version } => {
            format!("install component `{name}` ({version})")
        }
        Step::SwapComponent {
            name,
            from,
            to,
            mode,
        } => format!("hot-swap component `{name}` {from} → {to} ({mode})"),
        Step::ChangeComponent {
            name,
            changes,
            restart: true,
        } => {
            format!("restart `{name}`'s particles with {}", changes.join(", "))
        }
        Step::ChangeComponent { name, changes, .. } => {
            format!(
                "component `{name}`: {} (for later swaps; nothing restarts)",
                changes.join(", ")
            )
        }
        Step::UpdateSupervisor { path, changes } => {
            format!(
                "update supervisor `{path}` in place: {}",
                changes.join(", ")
            )
        }
        Step::StopChild { path } => format!("stop child `{path}`"),
        Step::RestartChild { path, changes } => {
            format!(
                "restart child `{path}` with its new spec: {}",
                changes.join(", ")
            )
        }
        Step::StartChild { path } => format!("start child `{path}`"),
        Step::RemoveComponent { name } => format!("remove component `{name}`"),
        Step::ChangeSetting { what, from, to } => format!("{what}: {from} → {to}"),
    }
}
