//! Dead-code elimination: remove every node that no output depends on.
//!
//! A node is live when it is an output or an operand (transitively) of a live node; every other
//! node except `Input` nodes is removed. Safe because IR ops have no side effects: a node's
//! only effect is its value, and nobody reads a dead node's value. Inputs are kept even when
//! unused because they are the graph's interface (the caller provides them by name, and a scan
//! body's inputs are matched to the scan's operands by position). Scan bodies are cleaned the
//! same way after the outer graph, so a removed scan's body is not visited; their outputs (the
//! roots) are all kept, so the body's interface does not change.

use std::collections::HashSet;

use petgraph::Direction;

use super::super::{Graph, NodeId, Op};

/// Remove the nodes no output depends on (never inputs); returns how many were removed,
/// including those removed from scan bodies.
pub fn run(graph: &mut Graph) -> usize {
    let mut live: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = graph.outputs.iter().map(|o| o.node).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(graph.graph.neighbors_directed(n, Direction::Incoming));
        }
    }
    let dead: Vec<NodeId> = graph
        .graph
        .node_indices()
        .filter(|n| !live.contains(n) && !matches!(graph.graph[*n].op, Op::Input { .. }))
        .collect();
    for &n in &dead {
        graph.graph.remove_node(n);
    }
    dead.len() + super::in_scan_bodies(graph, run)
}
