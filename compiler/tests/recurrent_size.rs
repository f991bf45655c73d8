//! The compiled graph of a recurrent model does not grow with the sequence length: each layer
//! and direction is one `Scan` node (and its gradient one more), whose bodies have a fixed size.

use netc_compiler::ir::{Graph, Op};
use netc_compiler::lower::program::compile_run;

/// A training step (forward, backward, Adam) of a two-layer bidirectional `layer` over `T` steps.
fn step_graph(layer: &str, t: usize) -> Graph {
    let src = format!(
        "data d {{\n  source npy(features: \"x.npy\", labels: \"y.npy\")\n  x: f32[{t}, 3]\n  label: f32[1]\n}}\n\n\
         model M(x: f32[B, T, 3]) -> f32[B, 1] {{\n  x |> {layer}(8, layers: 2, bidirectional: true, output: final, dropout: 0.1) |> linear(1)\n}}\n\n\
         train t {{\n  data d\n  loss bce_with_logits(M(x), label)\n  update M with adam(lr: 1e-3)\n  epochs 1\n  batch 4\n}}\n"
    );
    let program = compile_run(&src, None, None).unwrap_or_else(|d| panic!("{d:#?}"));
    program.steps.into_iter().next().expect("one step").graph
}

/// (all nodes, scan nodes), counting the nodes of every scan body, recursively.
fn count(g: &Graph) -> (usize, usize) {
    g.graph
        .node_indices()
        .fold((0, 0), |(nodes, scans), n| match &g.node(n).op {
            Op::Scan(s) => {
                let (inner, inner_scans) = count(&s.body);
                (nodes + 1 + inner, scans + 1 + inner_scans)
            }
            _ => (nodes + 1, scans),
        })
}

#[test]
fn lstm_graph_size_does_not_depend_on_sequence_length() {
    let short = count(&step_graph("lstm", 5));
    let long = count(&step_graph("lstm", 500));
    assert_eq!(short, long, "(nodes, scans) for T = 5 vs T = 500");
    // Two layers, two directions: four forward scans and their four backward scans.
    assert_eq!(short.1, 8);
    println!(
        "lstm step graph: {} nodes (with scan bodies), {} scans, for T = 5 and T = 500",
        short.0, short.1
    );
}

#[test]
fn gru_graph_size_does_not_depend_on_sequence_length() {
    let short = count(&step_graph("gru", 5));
    assert_eq!(short, count(&step_graph("gru", 500)));
    assert_eq!(short.1, 8);
}

/// Transcendentals among the nodes of `g` (not inside its scans).
fn transcendentals(g: &Graph) -> usize {
    use netc_compiler::ir::UnaryOp;
    g.graph
        .node_indices()
        .filter(|&n| {
            matches!(
                g.node(n).op,
                Op::Unary(UnaryOp::Sigmoid | UnaryOp::Tanh | UnaryOp::Exp)
            )
        })
        .count()
}

/// The forward scans save their gate activations and `tanh(c)` for the backward scans, which
/// read them instead of recomputing five transcendentals per element and step.
#[test]
fn lstm_backward_scans_compute_no_activations() {
    let mut g = step_graph("lstm", 7);
    netc_compiler::ir::passes::optimize(&mut g);
    let per_scan: Vec<usize> = g
        .graph
        .node_indices()
        .filter_map(|n| match &g.node(n).op {
            Op::Scan(s) => Some(transcendentals(&s.body)),
            _ => None,
        })
        .collect();
    assert_eq!(per_scan.len(), 8);
    // Forward bodies: three sigmoid gates, a tanh gate, tanh(c); backward bodies: nothing.
    assert_eq!(
        per_scan.iter().filter(|&&t| t == 5).count(),
        4,
        "{per_scan:?}"
    );
    assert_eq!(
        per_scan.iter().filter(|&&t| t == 0).count(),
        4,
        "{per_scan:?}"
    );
}
