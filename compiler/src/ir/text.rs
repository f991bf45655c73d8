//! The canonical text form of a graph: deterministic (nodes numbered in topological order,
//! oldest first), one node per line, so snapshot tests show exactly what a pass changed.

use std::collections::HashMap;
use std::fmt::Write;

use super::{Graph, NodeId, Op};

/// The whole graph as text.
pub fn dump(graph: &Graph) -> String {
    let mut out = String::new();
    write_graph(&mut out, graph, 0);
    out
}

fn write_graph(out: &mut String, graph: &Graph, indent: usize) {
    let pad = "  ".repeat(indent);
    let order = graph.topo_order();
    let numbers: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    for &n in &order {
        let node = graph.node(n);
        let operands: Vec<String> = graph
            .operands(n)
            .iter()
            .map(|o| format!("%{}", numbers[o]))
            .collect();
        let _ = write!(
            out,
            "{pad}%{} = {}{}",
            numbers[&n],
            node.op.name(),
            node.op.attributes()
        );
        if !operands.is_empty() {
            let _ = write!(out, "({})", operands.join(", "));
        }
        let _ = writeln!(
            out,
            " : {}  @{}..{}",
            node.ty, node.span.start, node.span.end
        );
        if let Op::Scan(scan) = &node.op {
            let _ = writeln!(out, "{pad}  body {{");
            write_graph(out, &scan.body, indent + 2);
            let _ = writeln!(out, "{pad}  }}");
        }
    }
    for o in &graph.outputs {
        match &o.updates {
            Some(input) => {
                let _ = writeln!(
                    out,
                    "{pad}update {} = %{} -> {input}",
                    o.name, numbers[&o.node]
                );
            }
            None => {
                let _ = writeln!(out, "{pad}output {} = %{}", o.name, numbers[&o.node]);
            }
        }
    }
}
