//! Floating-point operations of a graph's contractions (matmuls and convolutions, scan bodies
//! times their length), counted as PyTorch's FLOP counter does (two per multiply-add, and
//! nothing for elementwise ops or reductions), so `netc bench` reports GFLOP/s comparable with
//! the peers' tables.

use super::{Graph, Op};

/// Two times the multiply-adds of every matmul and convolution in `graph`.
pub fn contraction_flops(graph: &Graph) -> u64 {
    2 * multiply_adds(graph)
}

fn multiply_adds(graph: &Graph) -> u64 {
    graph
        .graph
        .node_indices()
        .map(|id| {
            let node = graph.node(id);
            let ty = |i: usize| graph.ty(graph.operands(id)[i]);
            let out = node.ty.numel() as u64;
            match &node.op {
                Op::MatMul { ta, .. } => {
                    let a = &ty(0).shape;
                    let k = if *ta { a[a.len() - 2] } else { a[a.len() - 1] };
                    out * k as u64
                }
                // Each output element takes C * kh * kw products (w is [O, C, kh, kw]).
                Op::Conv2d { .. } => out * ty(1).shape[1..].iter().product::<usize>() as u64,
                // Each element of dy meets C * kh * kw inputs (dw is [O, C, kh, kw]).
                Op::Conv2dWeightGrad { .. } => {
                    ty(1).numel() as u64 * node.ty.shape[1..].iter().product::<usize>() as u64
                }
                // Each input element spreads over O * kh * kw outputs (w is [I, O, kh, kw]).
                Op::ConvTranspose2d { .. } => {
                    ty(0).numel() as u64 * ty(1).shape[1..].iter().product::<usize>() as u64
                }
                Op::Scan(scan) => multiply_adds(&scan.body) * scan.length as u64,
                _ => 0,
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use crate::lower::program::compile_run;

    /// Issue 5's table (PyTorch's counter): the MLP 32-64-10 step at batch 32 is 385 024
    /// FLOPs — forward, the two weight gradients and one input gradient.
    #[test]
    fn the_mlp_step_counts_as_pytorch_does() {
        let p = compile_run(include_str!("../../../benches/mlp.net"), None, None).unwrap();
        assert_eq!(super::contraction_flops(&p.steps[0].graph), 385_024);
    }

    /// LeNet at batch 64: 0.205 GFLOP in the table (convolutions, their weight gradients, the
    /// second one's input gradient, and the linear layers).
    #[test]
    fn the_lenet_step_matches_the_table() {
        let p = compile_run(include_str!("../../../benches/lenet.net"), None, None).unwrap();
        let gflop = super::contraction_flops(&p.steps[0].graph) as f64 / 1e9;
        assert!((gflop - 0.205).abs() < 0.005, "{gflop}");
    }
}
