//! What the dashboard is sent, as JSON: one [`Sample`] per interval, the
//! rows it is made of, and the points and events of the history.

use serde::Serialize;

/// One supervisor or child of the tree, as the host (plasmoid-release)
/// reports it; the sampler fills in `version` and `state`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TreeNode {
    pub id: String,
    pub pid: Option<String>,
    /// The node it runs on (its name when it has one).
    pub node: Option<String>,
    /// `Some(strategy)` for a supervisor.
    pub strategy: Option<String>,
    pub component: Option<String>,
    /// Its restart type (`permanent`, `transient`, `temporary`).
    pub restart: Option<String>,
    pub restarts: u32,
    /// The version its particle runs, when it runs on this node.
    pub version: Option<String>,
    /// `running`, `restarting` (no pid now) or `remote`.
    pub state: String,
    /// When it last restarted, in ms since the Unix epoch (the sampler
    /// saw its restart count go up).
    pub restarted_at: Option<u64>,
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// Every node of the tree, depth first, with its parent's id.
    pub fn walk<'a>(
        &'a self,
        parent: Option<&'a TreeNode>,
        f: &mut dyn FnMut(&'a TreeNode, Option<&'a TreeNode>),
    ) {
        f(self, parent);
        for c in &self.children {
            c.walk(Some(self), f);
        }
    }
}

/// A particle (or native process) of this node, with its rates.
#[derive(Clone, Debug, Serialize)]
pub struct ParticleRow {
    pub pid: String,
    pub name: Option<String>,
    pub component: String,
    pub version: Option<String>,
    /// The child id it runs as, when it is a supervised child.
    pub child: Option<String>,
    pub mailbox: usize,
    pub memory: usize,
    /// Epoch ticks it ran, in total and in the last interval.
    pub ticks: u64,
    pub ticks_per_interval: u64,
    pub received: u64,
    pub sent: u64,
    pub in_per_s: f64,
    pub out_per_s: f64,
    /// Its child's restart count (0 when it is not a child).
    pub restarts: u32,
    pub links: usize,
    pub monitors: usize,
    pub native: bool,
}

/// A mesh peer as the dashboard shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerRow {
    pub name: String,
    pub id: String,
    pub connected: bool,
    pub rtt_ms: Option<f64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Links and monitors between this node's processes and that node's.
    pub remote_links: usize,
    pub remote_monitors: usize,
}

/// One point of the charts.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub at_ms: u64,
    pub msgs_per_s: f64,
    pub alive: usize,
    pub memory: u64,
    pub http_per_s: f64,
}

/// Something that happened: a restart, a swap, a rollback, an action.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub at_ms: u64,
    /// `restart`, `exit`, `upgraded`, `confirmed`, `rejected`,
    /// `rolled back`, `action`.
    pub kind: String,
    pub text: String,
}

/// Everything the dashboard shows at one instant.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    pub release: String,
    pub node: String,
    pub node_id: String,
    pub uptime_ms: u64,
    pub alive: usize,
    pub tree: Option<TreeNode>,
    pub particles: Vec<ParticleRow>,
    pub peers: Vec<PeerRow>,
    pub point: Point,
    /// Restarts per supervisor id, for `/metrics`.
    pub restarts: Vec<(String, u64)>,
}
