//! Common-subexpression elimination: merge nodes that compute the same value.
//!
//! Two nodes are merged when they have equal ops (attributes included; `Fill` values compare
//! by their bits, so `0.0` and `-0.0` stay apart), equal result types and the very same operand
//! list. Every op but `Input` is a pure function of its operands and attributes (`Random` draws
//! from the seed operand and its stream, so equal streams with the same seed draw the same
//! numbers), which makes the merged nodes interchangeable: the first one met in topological
//! order is kept, the other's uses (and outputs) move to it and it is removed. Inputs are never
//! merged: two inputs are different values even when their types agree.
//!
//! Nodes are visited in topological order, so once two operands are merged their users have
//! identical operand lists by the time they are visited: whole duplicated chains collapse in
//! one run. Scan bodies are processed first, so two scans with duplicated bodies compare equal.

use std::collections::HashMap;

use super::super::{Graph, NodeId, Op, Type};

/// Merge duplicated nodes; returns how many nodes were removed, scan bodies included.
pub fn run(graph: &mut Graph) -> usize {
    let mut changed = super::in_scan_bodies(graph, run);
    let mut seen: HashMap<(&'static str, Type, Vec<NodeId>), Vec<NodeId>> = HashMap::new();
    for n in graph.topo_order() {
        let node = graph.node(n);
        if matches!(node.op, Op::Input { .. }) {
            continue;
        }
        let key = (node.op.name(), node.ty.clone(), graph.operands(n));
        let candidates = seen.entry(key).or_default();
        match candidates
            .iter()
            .copied()
            .find(|&m| same_op(&graph.node(m).op, &graph.node(n).op))
        {
            Some(m) => {
                graph.replace_uses(n, m);
                graph.graph.remove_node(n);
                changed += 1;
            }
            None => candidates.push(n),
        }
    }
    changed
}

/// Do two ops compute the same function of the same operands? Fills compare by value bits;
/// inputs are never the same.
fn same_op(a: &Op, b: &Op) -> bool {
    match (a, b) {
        (Op::Input { .. }, _) | (_, Op::Input { .. }) => false,
        (Op::Fill { value: x }, Op::Fill { value: y }) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}
