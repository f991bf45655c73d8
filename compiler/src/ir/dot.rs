//! Graphviz output of a graph (`netc graph --dot`), for looking at a step as a picture.

use std::collections::HashMap;
use std::fmt::Write;

use super::{Graph, NodeId, Op, Role};

/// The graph in the DOT language: one box per node labelled with its op and type, inputs
/// coloured by role, named outputs as extra nodes.
pub fn dot(graph: &Graph) -> String {
    let order = graph.topo_order();
    let numbers: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut out = String::from(
        "digraph step {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
    );
    for &n in &order {
        let node = graph.node(n);
        let color = match &node.op {
            Op::Input {
                role: Role::Param, ..
            } => "lightblue",
            Op::Input {
                role: Role::Data, ..
            } => "lightyellow",
            Op::Input {
                role: Role::State, ..
            } => "lightgrey",
            Op::Input {
                role: Role::Scalar, ..
            } => "lavender",
            Op::Fill { .. } => "white",
            _ => "white",
        };
        let label = format!(
            "%{} {}{}\\n{}",
            numbers[&n],
            node.op.name(),
            node.op.attributes(),
            node.ty
        )
        .replace('"', "\\\"");
        let _ = writeln!(
            out,
            "  n{} [label=\"{label}\", style=filled, fillcolor={color}];",
            numbers[&n]
        );
        for operand in graph.operands(n) {
            let _ = writeln!(out, "  n{} -> n{};", numbers[&operand], numbers[&n]);
        }
    }
    for (i, o) in graph.outputs.iter().enumerate() {
        let _ = writeln!(
            out,
            "  out{i} [label=\"{}\", shape=ellipse];",
            o.name.replace('"', "\\\"")
        );
        let _ = writeln!(out, "  n{} -> out{i};", numbers[&o.node]);
    }
    out.push_str("}\n");
    out
}
