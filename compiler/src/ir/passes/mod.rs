//! Graph-to-graph optimization passes.
//!
//! Every pass is a function `fn(&mut Graph) -> usize` that rewrites the graph in place and
//! returns how many nodes it changed or removed (0 means the graph is untouched). Passes never
//! change what the graph computes: the named outputs keep their names, order and `updates`
//! targets, and every `Input` node stays (inputs are the graph's interface, even when unused).
//! Each pass also runs on the body of every `Scan` node, whose inputs and outputs keep their
//! names and order.
//!
//! [`optimize`] runs the [`PIPELINE`] (simplify, fold, cse, dce) until nothing changes.

pub mod cse;
pub mod dce;
pub mod fold;
pub mod simplify;

use super::{Graph, NodeId, Op};

/// A pass: rewrites the graph in place and returns how many nodes it changed or removed.
pub type Pass = fn(&mut Graph) -> usize;

/// The passes in the order [`optimize`] runs them, with their names (`netc graph --stage`
/// dumps the graph after each).
pub const PIPELINE: &[(&str, Pass)] = &[
    ("simplify", simplify::run),
    ("fold", fold::run),
    ("cse", cse::run),
    ("dce", dce::run),
];

/// The most rounds of the whole pipeline [`optimize`] runs before giving up on a fixpoint.
pub const MAX_ROUNDS: usize = 10;

/// Run the [`PIPELINE`] repeatedly until a whole round changes nothing (at most
/// [`MAX_ROUNDS`] rounds). Returns, for each pass in pipeline order, its name and the total
/// number of nodes it changed or removed over all rounds.
pub fn optimize(graph: &mut Graph) -> Vec<(&'static str, usize)> {
    let mut stats: Vec<(&'static str, usize)> =
        PIPELINE.iter().map(|&(name, _)| (name, 0)).collect();
    for _ in 0..MAX_ROUNDS {
        let mut changed = 0;
        for (stat, &(_, pass)) in stats.iter_mut().zip(PIPELINE) {
            let n = pass(graph);
            stat.1 += n;
            changed += n;
        }
        if changed == 0 {
            break;
        }
    }
    stats
}

/// Run `pass` on the body of every `Scan` node of `graph`; the sum of what it returned.
fn in_scan_bodies(graph: &mut Graph, pass: Pass) -> usize {
    let scans: Vec<NodeId> = graph
        .graph
        .node_indices()
        .filter(|&n| matches!(graph.graph[n].op, Op::Scan(_)))
        .collect();
    let mut changed = 0;
    for n in scans {
        if let Op::Scan(scan) = &mut graph.graph[n].op {
            changed += pass(&mut scan.body);
        }
    }
    changed
}

/// The value of `id` if it is a `Fill` node.
fn fill_value(graph: &Graph, id: NodeId) -> Option<f64> {
    match graph.node(id).op {
        Op::Fill { value } => Some(value),
        _ => None,
    }
}
