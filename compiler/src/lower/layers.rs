//! The IR expansion of each built-in, found by name in [`lower`]: dense layers, activations,
//! tensor functions, losses and constructors here; convolutions, normalisation, attention and
//! recurrence in their own files.

use netc_grammar::Span;

use super::{Emitter, Mode};
use crate::builtins::BoundArgs;
use crate::ir::{
    self, BinaryOp, DType, Distribution, IrError, NodeId, Op, ReduceOp, Type, UnaryOp,
};

/// What a built-in's expansion receives.
pub struct LowerCtx<'a> {
    /// Tensor inputs, in the built-in's input order.
    pub inputs: Vec<NodeId>,
    pub args: &'a BoundArgs,
    /// Parameter and buffer nodes, in the order the shape rule listed its weights.
    pub weights: Vec<NodeId>,
    pub weight_names: &'a [String],
    /// The checked result type, made concrete.
    pub out: ir::Type,
    pub span: Span,
}

type R = Result<NodeId, IrError>;

/// Expand built-in `name`.
pub fn lower(em: &mut Emitter, name: &str, c: &LowerCtx) -> R {
    let s = c.span;
    let x = c.inputs.first().copied();
    let input = || {
        x.ok_or_else(|| IrError {
            message: format!("`{name}` has no input"),
            span: s,
        })
    };
    match name {
        "linear" => linear(em, input()?, c.weights[0], c.weights.get(1).copied(), s),
        "embedding" => em.add(Op::Gather, &[c.weights[0], input()?], None, s),
        "position_embedding" | "param" => Ok(c.weights[0]),
        "relu" => unary(em, UnaryOp::Relu, input()?, s),
        "tanh" => unary(em, UnaryOp::Tanh, input()?, s),
        "sigmoid" => unary(em, UnaryOp::Sigmoid, input()?, s),
        "exp" => unary(em, UnaryOp::Exp, input()?, s),
        "log" => unary(em, UnaryOp::Log, input()?, s),
        "sqrt" => unary(em, UnaryOp::Sqrt, input()?, s),
        "leaky_relu" => leaky_relu(em, input()?, c.args.float("slope"), s),
        "gelu" => gelu(em, input()?, c.args.word("approximate") == "tanh", s),
        "softmax" => softmax(em, input()?, axis(c.args.int("axis"), &c.out), false, s),
        "log_softmax" => softmax(em, input()?, axis(c.args.int("axis"), &c.out), true, s),
        "stop_gradient" | "detach" => em.add(Op::StopGradient, &[input()?], None, s),
        "dropout" => dropout(em, input()?, c.args.float("p"), s),
        "flatten" | "reshape" => em.add(Op::Reshape, &[input()?], Some(c.out.clone()), s),
        "transpose" => {
            let x = input()?;
            let rank = em.graph.ty(x).rank();
            let (a, b) = (
                axis(c.args.int("a"), &em.graph.ty(x).clone()),
                axis(c.args.int("b"), &em.graph.ty(x).clone()),
            );
            let mut perm: Vec<usize> = (0..rank).collect();
            perm.swap(a, b);
            em.add(Op::Transpose { perm }, &[x], None, s)
        }
        "sum" | "mean" => {
            let x = input()?;
            let ty = em.graph.ty(x).clone();
            let axes: Vec<usize> = if c.args.has("axis") {
                let mut a: Vec<usize> = c
                    .args
                    .axes("axis")
                    .into_iter()
                    .map(|a| axis(a, &ty))
                    .collect();
                a.sort_unstable();
                a.dedup();
                a
            } else {
                (0..ty.rank()).collect()
            };
            let reduced = if ty.dtype == DType::I64 {
                em.add(Op::Cast { to: DType::F32 }, &[x], None, s)?
            } else {
                x
            };
            let r = reduce(em, ReduceOp::Sum, reduced, axes.clone(), s)?;
            let r = if name == "mean" {
                let count: usize = axes.iter().map(|&a| ty.shape[a]).product();
                scale(em, r, 1.0 / count.max(1) as f64, s)?
            } else {
                r
            };
            if em.graph.ty(r).shape == c.out.shape {
                Ok(r)
            } else {
                em.add(Op::Reshape, &[r], Some(c.out.clone()), s)
            }
        }
        "concat" => {
            let ty = em.graph.ty(c.inputs[0]).clone();
            em.add(
                Op::Concat {
                    axis: axis(c.args.int("axis"), &ty),
                },
                &c.inputs,
                None,
                s,
            )
        }
        "matmul" => matmul_broadcast(em, c.inputs[0], c.inputs[1], &c.out, s),
        "normal" => {
            let (seed, stream) = em.random_stream(s);
            em.add(
                Op::Random {
                    dist: Distribution::Normal,
                    stream,
                },
                &[seed],
                Some(c.out.clone()),
                s,
            )
        }
        "cross_entropy" => super::loss::cross_entropy(
            em,
            c.inputs[0],
            c.inputs[1],
            c.args.float("label_smoothing"),
            s,
        ),
        "bce" => super::loss::bce(em, c.inputs[0], c.inputs[1], s),
        "bce_with_logits" => super::loss::bce_with_logits(em, c.inputs[0], c.inputs[1], s),
        "mse" => super::loss::mse(em, c.inputs[0], c.inputs[1], s),
        "conv2d" => super::conv::conv2d(em, input()?, c),
        "conv_transpose2d" => super::conv::conv_transpose2d(em, input()?, c),
        "max_pool" => super::conv::max_pool(em, input()?, c),
        "avg_pool" => super::conv::avg_pool(em, input()?, c),
        "batch_norm" => super::norm::batch_norm(em, input()?, c),
        "layer_norm" => super::norm::layer_norm(em, input()?, c),
        "self_attention" => super::attention::self_attention(em, input()?, c),
        "attention" => super::attention::attention(em, c.inputs[0], c.inputs[1], c),
        "lstm" => super::recurrent::lstm(em, input()?, c),
        "gru" => super::recurrent::gru(em, input()?, c),
        _ => Err(IrError {
            message: format!("`{name}` cannot be compiled yet"),
            span: s,
        }),
    }
}

/// A possibly negative axis as an index into `ty`'s dims.
pub fn axis(a: i64, ty: &Type) -> usize {
    if a < 0 {
        (ty.rank() as i64 + a).max(0) as usize
    } else {
        a as usize
    }
}

pub fn unary(em: &mut Emitter, op: UnaryOp, x: NodeId, s: Span) -> R {
    em.add(Op::Unary(op), &[x], None, s)
}

pub fn bin(em: &mut Emitter, op: BinaryOp, a: NodeId, b: NodeId, s: Span) -> R {
    em.add(Op::Binary(op), &[a, b], None, s)
}

/// A tensor of `x`'s type filled with `value`.
pub fn fill_like(em: &mut Emitter, value: f64, x: NodeId, s: Span) -> R {
    let ty = em.graph.ty(x).clone();
    em.add(Op::Fill { value }, &[], Some(ty), s)
}

/// `x * factor`.
pub fn scale(em: &mut Emitter, x: NodeId, factor: f64, s: Span) -> R {
    let c = fill_like(em, factor, x, s)?;
    bin(em, BinaryOp::Mul, x, c, s)
}

pub fn reduce(em: &mut Emitter, op: ReduceOp, x: NodeId, axes: Vec<usize>, s: Span) -> R {
    if axes.is_empty() {
        return Ok(x);
    }
    em.add(Op::Reduce { op, axes }, &[x], None, s)
}

/// Reduce `axis` keeping it as a dim of 1, then broadcast back to `x`'s shape: the usual
/// "subtract the row max / divide by the row sum" pattern.
pub fn reduce_keep(em: &mut Emitter, op: ReduceOp, x: NodeId, axis: usize, s: Span) -> R {
    let ty = em.graph.ty(x).clone();
    let r = reduce(em, op, x, vec![axis], s)?;
    let mut kept = ty.shape.clone();
    kept[axis] = 1;
    let r = em.add(
        Op::Reshape,
        &[r],
        Some(Type {
            dtype: ty.dtype,
            shape: kept,
        }),
        s,
    )?;
    em.add(Op::Broadcast, &[r], Some(ty), s)
}

/// `a op b` after broadcasting both to `out`.
pub fn binary(
    em: &mut Emitter,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
    out: &ir::Type,
    span: Span,
) -> R {
    let a = broadcast_to(em, a, out, span)?;
    let b = broadcast_to(em, b, out, span)?;
    em.add(Op::Binary(op), &[a, b], None, span)
}

/// `x` broadcast to `out`'s shape (no node when it already has it).
pub fn broadcast_to(em: &mut Emitter, x: NodeId, out: &ir::Type, span: Span) -> R {
    let ty = em.graph.ty(x).clone();
    if ty.shape == out.shape {
        return Ok(x);
    }
    em.add(
        Op::Broadcast,
        &[x],
        Some(Type {
            dtype: ty.dtype,
            shape: out.shape.clone(),
        }),
        span,
    )
}

/// `y = x W^T + b` over the last axis: leading axes are flattened into one matmul.
pub fn linear(em: &mut Emitter, x: NodeId, w: NodeId, b: Option<NodeId>, s: Span) -> R {
    let xt = em.graph.ty(x).clone();
    let out_features = em.graph.ty(w).shape[0];
    let in_features = *xt.shape.last().unwrap_or(&1);
    let rows: usize = xt.shape[..xt.rank().saturating_sub(1)].iter().product();
    let flat = if xt.rank() == 2 {
        x
    } else {
        em.add(
            Op::Reshape,
            &[x],
            Some(Type::f32(vec![rows, in_features])),
            s,
        )?
    };
    let mut y = em.add(
        Op::MatMul {
            ta: false,
            tb: true,
        },
        &[flat, w],
        None,
        s,
    )?;
    if let Some(b) = b {
        let bb = em.add(
            Op::Broadcast,
            &[b],
            Some(Type::f32(vec![rows, out_features])),
            s,
        )?;
        y = bin(em, BinaryOp::Add, y, bb, s)?;
    }
    let mut shape = xt.shape.clone();
    if let Some(last) = shape.last_mut() {
        *last = out_features;
    }
    if shape.len() == 2 {
        Ok(y)
    } else {
        em.add(Op::Reshape, &[y], Some(Type::f32(shape)), s)
    }
}

/// `matmul(a, b)` with NumPy batch broadcasting: both operands are broadcast to the result's
/// batch dims, and a 2-D operand is treated as a stack of one.
fn matmul_broadcast(em: &mut Emitter, a: NodeId, b: NodeId, out: &Type, s: Span) -> R {
    let batch = &out.shape[..out.rank() - 2];
    let expand = |em: &mut Emitter, x: NodeId| -> R {
        let t = em.graph.ty(x).clone();
        let mut shape = batch.to_vec();
        shape.extend_from_slice(&t.shape[t.rank() - 2..]);
        if shape == t.shape {
            Ok(x)
        } else {
            em.add(Op::Broadcast, &[x], Some(Type::f32(shape)), s)
        }
    };
    let a = expand(em, a)?;
    let b = expand(em, b)?;
    em.add(
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[a, b],
        None,
        s,
    )
}

/// `x if x > 0 else slope * x`.
fn leaky_relu(em: &mut Emitter, x: NodeId, slope: f64, s: Span) -> R {
    let zero = fill_like(em, 0.0, x, s)?;
    let positive = bin(em, BinaryOp::Greater, x, zero, s)?;
    let scaled = scale(em, x, slope, s)?;
    em.add(Op::Select, &[positive, x, scaled], None, s)
}

/// Exact: `0.5 x (1 + erf(x / √2))`; approximate: `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
fn gelu(em: &mut Emitter, x: NodeId, tanh: bool, s: Span) -> R {
    let inner = if tanh {
        let x3 = bin(em, BinaryOp::Mul, x, x, s)?;
        let x3 = bin(em, BinaryOp::Mul, x3, x, s)?;
        let c = scale(em, x3, 0.044715, s)?;
        let sum = bin(em, BinaryOp::Add, x, c, s)?;
        let arg = scale(em, sum, (2.0 / std::f64::consts::PI).sqrt(), s)?;
        unary(em, UnaryOp::Tanh, arg, s)?
    } else {
        let arg = scale(em, x, std::f64::consts::FRAC_1_SQRT_2, s)?;
        unary(em, UnaryOp::Erf, arg, s)?
    };
    let one = fill_like(em, 1.0, x, s)?;
    let sum = bin(em, BinaryOp::Add, one, inner, s)?;
    let half = scale(em, x, 0.5, s)?;
    bin(em, BinaryOp::Mul, half, sum, s)
}

/// Softmax (or log-softmax) along `axis`, stabilised by subtracting the maximum.
pub fn softmax(em: &mut Emitter, x: NodeId, axis: usize, log: bool, s: Span) -> R {
    let max = reduce_keep(em, ReduceOp::Max, x, axis, s)?;
    let max = em.add(Op::StopGradient, &[max], None, s)?;
    let shifted = bin(em, BinaryOp::Sub, x, max, s)?;
    let e = unary(em, UnaryOp::Exp, shifted, s)?;
    let total = reduce_keep(em, ReduceOp::Sum, e, axis, s)?;
    if log {
        let log_total = unary(em, UnaryOp::Log, total, s)?;
        bin(em, BinaryOp::Sub, shifted, log_total, s)
    } else {
        bin(em, BinaryOp::Div, e, total, s)
    }
}

/// Inverted dropout in train mode (`x * mask / (1 - p)`, mask drawn with probability `1 - p`);
/// the identity in eval mode or when `p` is 0. Shared with attention (on the attention weights)
/// and the recurrent layers (between stacked layers).
pub(super) fn dropout(em: &mut Emitter, x: NodeId, p: f64, s: Span) -> R {
    if em.mode == Mode::Eval || p == 0.0 {
        return Ok(x);
    }
    let ty = em.graph.ty(x).clone();
    let (seed, stream) = em.random_stream(s);
    let u = em.add(
        Op::Random {
            dist: Distribution::Uniform,
            stream,
        },
        &[seed],
        Some(ty),
        s,
    )?;
    let threshold = fill_like(em, p, x, s)?;
    let keep = bin(em, BinaryOp::Greater, u, threshold, s)?;
    let kept = bin(em, BinaryOp::Mul, x, keep, s)?;
    if p >= 1.0 {
        Ok(kept)
    } else {
        scale(em, kept, 1.0 / (1.0 - p), s)
    }
}
