//! Start order with petgraph: components by `depends`, the children of each
//! supervisor so that what a child needs starts before it.
//!
//! Orders are stable: among items that are free to go in any order, the
//! manifest's order wins, so a manifest without dependencies starts exactly
//! as written (which matters for rest-for-one).

use crate::model::{ChildDef, ChildKind, SupervisorDef};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

/// A topological order of `0..n` given edges `before → after`, keeping the
/// original order where it is free; on a cycle, the cycle's members in order
/// with the first repeated at the end.
pub fn stable_order(n: usize, edges: &[(usize, usize)]) -> Result<Vec<usize>, Vec<usize>> {
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(n, edges.len());
    let nodes: Vec<NodeIndex> = (0..n).map(|i| g.add_node(i)).collect();
    for &(a, b) in edges {
        g.update_edge(nodes[a], nodes[b], ());
    }
    let mut indegree: Vec<usize> = nodes
        .iter()
        .map(|&v| g.neighbors_directed(v, Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for next in g.neighbors_directed(nodes[i], Direction::Outgoing) {
            let j = g[next];
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(find_cycle(&g))
}

/// One cycle of a graph that has one, starting from its lowest index.
fn find_cycle(g: &DiGraph<usize, ()>) -> Vec<usize> {
    let scc = petgraph::algo::tarjan_scc(g)
        .into_iter()
        .filter(|c| c.len() > 1 || g.contains_edge(c[0], c[0]))
        .min_by_key(|c| c.iter().map(|&v| g[v]).min())
        .unwrap_or_default();
    let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
    let Some(&start) = scc.iter().min_by_key(|&&v| g[v]) else {
        return Vec::new();
    };
    // Walk inside the component, lowest neighbour first, until a node repeats.
    let mut path = vec![start];
    while let Some(&here) = path.last() {
        let next = g
            .neighbors_directed(here, Direction::Outgoing)
            .filter(|n| members.contains(n))
            .min_by_key(|&n| g[n]);
        let Some(next) = next else { break };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<usize> = path[pos..].iter().map(|&v| g[v]).collect();
            cycle.push(g[next]);
            return cycle;
        }
        path.push(next);
    }
    path.iter().map(|&v| g[v]).collect()
}

/// The components a child runs (all of them for a supervisor).
pub fn provides(child: &ChildDef) -> BTreeSet<&str> {
    match &child.kind {
        ChildKind::Worker { component, .. } => BTreeSet::from([component.as_str()]),
        ChildKind::Supervisor(s) => s.children.iter().flat_map(provides).collect(),
    }
}

/// The components a child needs from outside itself.
pub fn needs<'a>(child: &'a ChildDef, deps: &'a HashMap<String, Vec<String>>) -> BTreeSet<&'a str> {
    let mine = provides(child);
    mine.iter()
        .flat_map(|c| deps.get(*c).into_iter().flatten())
        .map(String::as_str)
        .filter(|d| !mine.contains(d))
        .collect()
}

/// The order in which to start `children`: a child that needs a component
/// a sibling provides starts after that sibling, unless the component is
/// `running` already (started earlier elsewhere in the tree).
pub fn sibling_order(
    children: &[ChildDef],
    deps: &HashMap<String, Vec<String>>,
    running: &BTreeSet<String>,
) -> Result<Vec<usize>, Vec<usize>> {
    let provided: Vec<BTreeSet<&str>> = children.iter().map(provides).collect();
    let mut edges = Vec::new();
    for (j, child) in children.iter().enumerate() {
        let mut wanted = needs(child, deps);
        wanted.retain(|w| !running.contains(*w));
        for (i, p) in provided.iter().enumerate() {
            if i != j && wanted.iter().any(|w| p.contains(w)) {
                edges.push((i, j));
            }
        }
    }
    stable_order(children.len(), &edges)
}

/// A supervisor whose children need each other's components in a cycle.
pub struct SiblingCycle {
    pub supervisor: String,
    pub ids: Vec<String>,
}

/// Put the children of every supervisor in start order, top down, so that
/// each supervisor knows what already runs before it starts.
pub fn order_tree(
    sup: &mut SupervisorDef,
    deps: &HashMap<String, Vec<String>>,
    running: &mut BTreeSet<String>,
) -> Result<(), SiblingCycle> {
    let order = sibling_order(&sup.children, deps, running).map_err(|cycle| SiblingCycle {
        supervisor: sup.name.clone(),
        ids: cycle.iter().map(|&i| sup.children[i].id.clone()).collect(),
    })?;
    let mut old: Vec<Option<ChildDef>> = std::mem::take(&mut sup.children)
        .into_iter()
        .map(Some)
        .collect();
    sup.children = order.into_iter().filter_map(|i| old[i].take()).collect();
    for child in &mut sup.children {
        match &mut child.kind {
            ChildKind::Worker { component, .. } => {
                running.insert(component.clone());
            }
            ChildKind::Supervisor(sub) => order_tree(sub, deps, running)?,
        }
    }
    Ok(())
}

/// A worker whose component needs one that no earlier child runs.
pub struct Unmet {
    pub path: Vec<String>,
    pub component: String,
    pub missing: String,
}

/// Walk the tree in start order and check that every dependency of every
/// worker is already running when it starts.
pub fn check_started_before(
    root: &SupervisorDef,
    deps: &HashMap<String, Vec<String>>,
) -> Result<(), Unmet> {
    let mut running = BTreeSet::new();
    for (path, child) in root.workers() {
        let ChildKind::Worker { component, .. } = &child.kind else {
            continue;
        };
        for d in deps.get(component).into_iter().flatten() {
            if !running.contains(d.as_str()) {
                return Err(Unmet {
                    path: path.iter().map(|s| s.to_string()).collect(),
                    component: component.clone(),
                    missing: d.clone(),
                });
            }
        }
        running.insert(component.as_str());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_items_keep_their_order() {
        assert_eq!(stable_order(4, &[]), Ok(vec![0, 1, 2, 3]));
        // 0 needs 2: 2 moves before 0, the rest stays.
        assert_eq!(stable_order(4, &[(2, 0)]), Ok(vec![1, 2, 0, 3]));
    }

    #[test]
    fn diamond_starts_the_base_first_and_the_top_last() {
        // top(0) needs left(1) and right(2); both need base(3).
        let edges = [(1, 0), (2, 0), (3, 1), (3, 2)];
        assert_eq!(stable_order(4, &edges), Ok(vec![3, 1, 2, 0]));
    }

    #[test]
    fn a_cycle_is_reported_in_order() {
        let edges = [(0, 1), (1, 2), (2, 0), (3, 0)];
        assert_eq!(stable_order(4, &edges), Err(vec![0, 1, 2, 0]));
        assert_eq!(stable_order(1, &[(0, 0)]), Err(vec![0, 0]));
    }
}
