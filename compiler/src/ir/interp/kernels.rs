//! Elementwise ops, reductions, matmul and the id-indexed ops (gather, scatter, one-hot),
//! each a direct loop over its definition.

use super::layout;
use super::math::erf;
use super::{Data, Precision, Value};
use crate::ir::{BinaryOp, ReduceOp, Type, UnaryOp};

/// One elementwise unary function, in f64.
pub(super) fn unary(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        // NaN stays NaN (as in PyTorch); -0.0 becomes 0.0.
        UnaryOp::Relu => {
            if x.is_nan() || x > 0.0 {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Erf => erf(x),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Recip => 1.0 / x,
    }
}

/// One elementwise binary function, in f64. `max`/`min` propagate NaN like PyTorch's
/// `maximum`/`minimum` (unlike `f64::max`).
pub(super) fn binary(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max | BinaryOp::Min if a.is_nan() || b.is_nan() => f64::NAN,
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

/// `select(cond, a, b)`: `a` where `cond != 0`, else `b`; `cond` may be f32 or i64.
pub(super) fn select(cond: &Value, a: &Value, b: &Value) -> Result<Data, String> {
    let take_a: Vec<bool> = match &cond.data {
        Data::F(c) => c.iter().map(|&c| c != 0.0).collect(),
        Data::I(c) => c.iter().map(|&c| c != 0).collect(),
    };
    Ok(match (&a.data, &b.data) {
        (Data::F(a), Data::F(b)) => Data::F(
            (0..a.len())
                .map(|i| if take_a[i] { a[i] } else { b[i] })
                .collect(),
        ),
        (Data::I(a), Data::I(b)) => Data::I(
            (0..a.len())
                .map(|i| if take_a[i] { a[i] } else { b[i] })
                .collect(),
        ),
        _ => return Err("select operands mix f32 and i64 data".into()),
    })
}

/// `Reduce { op, axes }`: each input element, in row-major order, is folded into the output
/// element at its index with the reduced axes dropped. Sums start at 0 (f32 sums round after
/// every addition), maxima at -inf (and propagate NaN). Integer sums wrap instead of overflowing.
pub(super) fn reduce(op: ReduceOp, axes: &[usize], x: &Value, out: &Type, p: Precision) -> Data {
    let shape = &x.ty.shape;
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let out_strides = layout::strides(&out.shape);
    let mut index = vec![0; shape.len()];
    let target = |flat: usize, index: &mut Vec<usize>| {
        layout::unravel(flat, shape, index);
        kept.iter()
            .zip(&out_strides)
            .map(|(&axis, &stride)| index[axis] * stride)
            .sum::<usize>()
    };
    match &x.data {
        Data::F(v) => {
            let mut acc = vec![op.identity(); out.numel()];
            for (flat, &v) in v.iter().enumerate() {
                let o = target(flat, &mut index);
                acc[o] = match op {
                    ReduceOp::Sum => p.round(acc[o] + v),
                    ReduceOp::Max if v.is_nan() || v > acc[o] => v,
                    ReduceOp::Max => acc[o],
                };
            }
            Data::F(acc)
        }
        Data::I(v) => {
            let init = match op {
                ReduceOp::Sum => 0,
                ReduceOp::Max => i64::MIN,
            };
            let mut acc = vec![init; out.numel()];
            for (flat, &v) in v.iter().enumerate() {
                let o = target(flat, &mut index);
                acc[o] = match op {
                    ReduceOp::Sum => acc[o].wrapping_add(v),
                    ReduceOp::Max => acc[o].max(v),
                };
            }
            Data::I(acc)
        }
    }
}

/// `MatMul { ta, tb }`: for each batch index, `out[i, j] = sum_k A[i, k] * B[k, j]` where
/// `A` is the last two axes of `a` (transposed when `ta`) and likewise `B`; `k` runs in order.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    a: &[f64],
    b: &[f64],
    at: &Type,
    bt: &Type,
    ta: bool,
    tb: bool,
    out: &Type,
    p: Precision,
) -> Data {
    let r = at.rank();
    let (a_rows, a_cols) = (at.shape[r - 2], at.shape[r - 1]);
    let (b_rows, b_cols) = (bt.shape[r - 2], bt.shape[r - 1]);
    let (m, n) = (out.shape[r - 2], out.shape[r - 1]);
    let k = if ta { a_rows } else { a_cols };
    let batches: usize = out.shape[..r - 2].iter().product();
    let mut result = Vec::with_capacity(out.numel());
    for batch in 0..batches {
        let a0 = batch * a_rows * a_cols;
        let b0 = batch * b_rows * b_cols;
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for kk in 0..k {
                    let av = if ta {
                        a[a0 + kk * a_cols + i]
                    } else {
                        a[a0 + i * a_cols + kk]
                    };
                    let bv = if tb {
                        b[b0 + j * b_cols + kk]
                    } else {
                        b[b0 + kk * b_cols + j]
                    };
                    acc = p.mac(acc, av, bv);
                }
                result.push(acc);
            }
        }
    }
    Data::F(result)
}

/// Check an id against a table of `rows` rows.
fn row(id: i64, rows: usize, op: &str) -> Result<usize, String> {
    usize::try_from(id)
        .ok()
        .filter(|&r| r < rows)
        .ok_or_else(|| format!("{op}: id {id} is out of range for {rows} rows"))
}

/// `Gather`: `out[s, :] = table[ids[s], :]` for every position `s` of `ids`.
pub(super) fn gather(table: &Value, ids: &[i64]) -> Result<Data, String> {
    let (rows, width) = (table.ty.shape[0], table.ty.shape[1]);
    let mut src = Vec::with_capacity(ids.len() * width);
    for &id in ids {
        let r = row(id, rows, "gather")?;
        src.extend(r * width..(r + 1) * width);
    }
    Ok(table.data.pick(&src))
}

/// `ScatterAdd`: start from zeros of the node's type `[V, D]` and add `dy[s, :]` into row
/// `ids[s]` for every position `s`, in order.
pub(super) fn scatter_add(
    ids: &[i64],
    dy: &[f64],
    out: &Type,
    p: Precision,
) -> Result<Vec<f64>, String> {
    let (rows, width) = (out.shape[0], out.shape[1]);
    let mut result = vec![0.0; out.numel()];
    for (s, &id) in ids.iter().enumerate() {
        let r = row(id, rows, "scatter_add")?;
        for d in 0..width {
            result[r * width + d] = p.round(result[r * width + d] + dy[s * width + d]);
        }
    }
    Ok(result)
}

/// `OneHot { classes }`: `out[s, k] = 1.0` where `ids[s] == k`, else `0.0`.
pub(super) fn one_hot(ids: &[i64], classes: usize) -> Result<Vec<f64>, String> {
    let mut result = vec![0.0; ids.len() * classes];
    for (s, &id) in ids.iter().enumerate() {
        result[s * classes + row(id, classes, "one_hot")?] = 1.0;
    }
    Ok(result)
}
