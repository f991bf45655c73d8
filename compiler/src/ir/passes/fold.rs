//! Constant folding: a node computed from splat constants becomes a splat constant.
//!
//! When every operand of a node is a `Fill` and every element of the result is the same
//! function of those values, the node turns into a `Fill` of that value, keeping its id, type
//! and span (its users and outputs are untouched; operands left unused are removed later by
//! dead-code elimination). Folded ops:
//!
//! - `Broadcast`, `Reshape`, `Transpose`, `Slice`, `StopGradient`, `Cast` to the same element
//!   type, `Reduce` `Max` over a non-empty set of elements, `Select` (by its condition), and
//!   `Concat` of bitwise-equal fills: the value itself, unchanged.
//! - `Unary` (`erf` is the interpreter's own), `Binary`, `Cast` between `F32` and `I64`
//!   (truncating toward zero, as `as` does): the op on the values.
//! - `Reduce` `Sum` over `k` elements in all: `0 + value * k`.
//!
//! Values are computed in f64 and the fold only happens when its result is exact, so the folded
//! graph computes bit for bit what the original computes in both of the interpreter's modes
//! (f32, rounding after every op, and f64): every `F32` value that is computed rather than
//! passed through must be an f32 (the operands and the result: rounding them through f32 changes
//! nothing), and a `Sum` folds only when every partial sum is an exact f32, so summing
//! element by element gives `value * k` whatever the order. An `I64` value must be an integer
//! that f64 holds exactly. This leaves `exp(1)` or `1 / 3` as they are: folding them means
//! choosing one rounding, and the graph would then compute something else in one of the modes
//! (a cancellation downstream turns that last-bit change into any relative error at all).
//! Nothing computed from a NaN is folded (comparisons and `max` treat NaN in their own ways).
//! Other ops are left alone: their elements differ (`Random`, `OneHot`, convolutions and pools
//! near padding) or come from sums of products (`MatMul`).

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
        graph.set_op(n, Op::Fill { value }, &[]);
        changed += 1;
    }
    changed
}

/// The splat value node `n` computes when all its `operands` are fills, if it can be folded
/// exactly.
fn folded(graph: &Graph, n: NodeId, operands: &[NodeId]) -> Option<f64> {
    let values = operands
        .iter()
        .map(|&o| super::fill_value(graph, o))
        .collect::<Option<Vec<f64>>>()?;
    let dtypes: Vec<DType> = operands.iter().map(|&o| graph.ty(o).dtype).collect();
    // Operand `i` as a value that computes the same in both modes, for the ops that compute.
    let exact_operand = |i: usize| {
        if values[i].is_nan() {
            None
        } else {
            exact(dtypes[i], values[i])
        }
    };
    let node = graph.node(n);
    let dtype = node.ty.dtype;
    let computed = match &node.op {
        // Values passed through unchanged.
        Op::StopGradient
        | Op::Broadcast
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::Slice { .. } => {
            return Some(values[0]);
        }
        Op::Cast { to } if *to == dtypes[0] => return Some(values[0]),
        Op::Reduce {
            op: ReduceOp::Max,
            axes,
        } => {
            let k: usize = axes
                .iter()
                .map(|&a| graph.ty(operands[0]).shape[a])
                .product();
            return (k > 0).then_some(values[0]);
        }
        Op::Select => {
            return Some(if exact_operand(0)? != 0.0 {
                values[1]
            } else {
                values[2]
            });
        }
        Op::Concat { .. } => {
            return values
                .iter()
                .all(|v| v.to_bits() == values[0].to_bits())
                .then_some(values[0]);
        }
        // Values computed.
        Op::Cast { to: DType::I64 } => exact_operand(0)?.trunc(),
        Op::Cast { .. } => exact_operand(0)?,
        Op::Unary(u) => unary(*u, exact_operand(0)?),
        Op::Binary(b) => binary(*b, exact_operand(0)?, exact_operand(1)?),
        Op::Reduce {
            op: ReduceOp::Sum,
            axes,
        } => {
            let k: usize = axes
                .iter()
                .map(|&a| graph.ty(operands[0]).shape[a])
                .product();
            sum(dtype, exact_operand(0)?, k)?
        }
        _ => return None,
    };
    if computed.is_nan() && dtype == DType::F32 {
        // NaN in both modes (`log(-1)`, `0 / 0`); its payload is not observable.
        return Some(computed);
    }
    exact(dtype, computed)
}

/// `v` itself when it is exactly an element of `dtype` in both interpreter modes: an f32 value
/// for `F32`, an integer that f64 holds exactly for `I64`.
fn exact(dtype: DType, v: f64) -> Option<f64> {
    let fits = match dtype {
        DType::F32 => f64::from(v as f32) == v,
        DType::I64 => v.fract() == 0.0 && v.abs() <= (1u64 << 53) as f64,
    };
    fits.then_some(v)
}

/// The sum of `k` copies of `v` (an exact element of `dtype`), when adding them one by one
/// (starting from 0, as the interpreter does) never rounds: then it is `0 + v * k` in any order
/// and precision. For a finite nonzero `v = m * 2^e` with `m` odd, every partial sum `j * v`
/// (`j <= k`) is an exact f32 when `k * m <= 2^24` and `|v * k|` does not overflow.
fn sum(dtype: DType, v: f64, k: usize) -> Option<f64> {
    let total = 0.0 + v * k as f64;
    if k == 0 || v == 0.0 || v.is_infinite() {
        return Some(total);
    }
    match dtype {
        DType::I64 => Some(total),
        DType::F32 => {
            let mut m = v.abs();
            while m.fract() != 0.0 {
                m *= 2.0;
            }
            while m >= 2.0 && (m / 2.0).fract() == 0.0 {
                m /= 2.0;
            }
            (m * k as f64 <= (1u64 << 24) as f64 && total.abs() <= f64::from(f32::MAX))
                .then_some(total)
        }
    }
}

/// One elementwise unary function, as the interpreter computes it in f64.
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

/// One elementwise binary function on non-NaN values, as the interpreter computes it in f64.
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
