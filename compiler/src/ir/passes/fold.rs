//! Constant folding: a node computed from splat constants becomes a splat constant.
//!
//! When every operand of a node is a `Fill` and every element of the result is the same
//! function of those values (elementwise ops, layout ops, `Select`, `Cast`, `StopGradient`,
//! `Concat` of equal fills, `Reduce`), the node turns into a `Fill` of that value, keeping its
//! id, type and span (its users and outputs are untouched; operands left unused are removed
//! later by dead-code elimination). Folded ops:
//!
//! - `Unary`, `Binary`, `Select`: the op on the values (`erf` is the interpreter's own).
//! - `Broadcast`, `Reshape`, `Transpose`, `Slice`, `StopGradient`, `Cast`: the value itself
//!   (truncated toward zero for a cast to `I64`, as `as` does).
//! - `Concat` of fills with bitwise-equal values: that value.
//! - `Reduce` `Sum` over axes holding `k` elements in all: `value * k` (0 when `k` is 0);
//!   `Max`: the value (not folded when `k` is 0). The product is the exact sum rounded once,
//!   where an f32 backend may round after every addition: the folded value is the more
//!   accurate one.
//!
//! Values are computed in f64 from the operands' values rounded to their element type (f32
//! rounding for `F32`, as the interpreter materializes a fill in its F32 mode), then rounded to
//! the node's element type: for `+ - * /` and `sqrt` this is exactly the f32 result. Nothing is
//! folded when an operand value is NaN (the comparison-like ops treat NaN differently across
//! implementations), when an `I64` value would not be an exact integer (a cast of 2.5 to `I64`),
//! nor for the other ops: their elements differ (`Random`, `OneHot`, convolutions and pools
//! near padding) or come from sums whose rounding the backend decides (`MatMul`).

use petgraph::Direction;
use petgraph::visit::EdgeRef;

use super::super::{BinaryOp, DType, Graph, NodeId, Op, ReduceOp, UnaryOp, interp};

/// Fold nodes whose operands are all fills; returns how many nodes became fills, scan bodies
/// included.
pub fn run(graph: &mut Graph) -> usize {
    let mut changed = super::in_scan_bodies(graph, run);
    for n in graph.topo_order() {
        let operands = graph.operands(n);
        if operands.is_empty() {
            continue;
        }
        let Some(value) = folded(graph, n, &operands) else {
            continue;
        };
        graph.graph[n].op = Op::Fill { value };
        let edges: Vec<_> = graph
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in edges {
            graph.graph.remove_edge(e);
        }
        changed += 1;
    }
    changed
}

/// The splat value node `n` computes when all its `operands` are fills, if it can be folded.
fn folded(graph: &Graph, n: NodeId, operands: &[NodeId]) -> Option<f64> {
    let values = operands
        .iter()
        .map(|&o| {
            let v = super::fill_value(graph, o)?;
            if v.is_nan() {
                None
            } else {
                exact(graph.ty(o).dtype, v)
            }
        })
        .collect::<Option<Vec<f64>>>()?;
    let v = match &graph.node(n).op {
        Op::Unary(u) => unary(*u, values[0]),
        Op::Binary(b) => binary(*b, values[0], values[1]),
        Op::Select => {
            if values[0] != 0.0 {
                values[1]
            } else {
                values[2]
            }
        }
        Op::Cast { to: DType::I64 } => values[0].trunc(),
        Op::Cast { .. }
        | Op::StopGradient
        | Op::Broadcast
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::Slice { .. } => values[0],
        Op::Concat { .. } => {
            if values.iter().any(|v| v.to_bits() != values[0].to_bits()) {
                return None;
            }
            values[0]
        }
        Op::Reduce { op, axes } => {
            let x = graph.ty(operands[0]);
            let k: usize = axes.iter().map(|&a| x.shape[a]).product();
            match (op, k) {
                (ReduceOp::Sum, 0) => 0.0,
                (ReduceOp::Sum, k) => values[0] * k as f64,
                (ReduceOp::Max, 0) => return None,
                (ReduceOp::Max, _) => values[0],
            }
        }
        _ => return None,
    };
    exact(graph.ty(n).dtype, v)
}

/// `v` as an element of `dtype`: rounded through f32 for `F32`; for `I64` only an integer
/// that f64 holds exactly.
fn exact(dtype: DType, v: f64) -> Option<f64> {
    match dtype {
        DType::F32 => Some(v as f32 as f64),
        DType::I64 => (v.fract() == 0.0 && v.abs() <= (1u64 << 53) as f64).then_some(v),
    }
}

fn unary(op: UnaryOp, v: f64) -> f64 {
    match op {
        UnaryOp::Neg => -v,
        UnaryOp::Exp => v.exp(),
        UnaryOp::Log => v.ln(),
        UnaryOp::Sqrt => v.sqrt(),
        UnaryOp::Tanh => v.tanh(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        UnaryOp::Relu => {
            if v > 0.0 {
                v
            } else {
                0.0
            }
        }
        UnaryOp::Abs => v.abs(),
        UnaryOp::Recip => 1.0 / v,
        UnaryOp::Erf => interp::erf(v),
    }
}

fn binary(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        BinaryOp::Greater => {
            if a > b {
                1.0
            } else {
                0.0
            }
        }
    }
}
