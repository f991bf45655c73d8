//! Losses, each a mean over the batch as PyTorch's `reduction="mean"`.

use netc_grammar::Span;

use super::Emitter;
use super::layers::{bin, broadcast_to, fill_like, reduce, scale, softmax, unary};
use crate::ir::{BinaryOp, DType, IrError, NodeId, Op, ReduceOp, Type, UnaryOp};

type R = Result<NodeId, IrError>;

/// Mean of every element.
fn mean_all(em: &mut Emitter, x: NodeId, s: Span) -> R {
    let ty = em.graph.ty(x).clone();
    let total = reduce(em, ReduceOp::Sum, x, (0..ty.rank()).collect(), s)?;
    scale(em, total, 1.0 / ty.numel().max(1) as f64, s)
}

/// `cross_entropy(logits [B, C], target)`: the target is integer classes `[B]` or class
/// probabilities `[B, C]`. With label smoothing ε the target distribution is
/// `(1 - ε) onehot + ε / C`, as PyTorch's. Uses a stable log-softmax.
pub fn cross_entropy(
    em: &mut Emitter,
    logits: NodeId,
    target: NodeId,
    smoothing: f64,
    s: Span,
) -> R {
    let lt = em.graph.ty(logits).clone();
    let classes = *lt.shape.last().unwrap_or(&1);
    let logp = softmax(em, logits, lt.rank() - 1, true, s)?;
    let mut probs = if em.graph.ty(target).dtype == DType::I64 {
        em.add(Op::OneHot { classes }, &[target], None, s)?
    } else {
        target
    };
    if smoothing > 0.0 {
        let kept = scale(em, probs, 1.0 - smoothing, s)?;
        let uniform = fill_like(em, smoothing / classes as f64, probs, s)?;
        probs = bin(em, BinaryOp::Add, kept, uniform, s)?;
    }
    let picked = bin(em, BinaryOp::Mul, logp, probs, s)?;
    let per_sample = reduce(em, ReduceOp::Sum, picked, vec![lt.rank() - 1], s)?;
    let mean = mean_all(em, per_sample, s)?;
    unary(em, UnaryOp::Neg, mean, s)
}

/// The target as a float tensor of the prediction's shape (a literal `1` or `0` broadcasts).
fn target_like(em: &mut Emitter, target: NodeId, pred: NodeId, s: Span) -> R {
    let pt = em.graph.ty(pred).clone();
    let tt = em.graph.ty(target).clone();
    let t = if tt.dtype == DType::I64 {
        em.add(Op::Cast { to: DType::F32 }, &[target], None, s)?
    } else {
        target
    };
    if tt.shape == pt.shape {
        return Ok(t);
    }
    if tt.numel() == pt.numel() {
        return em.add(Op::Reshape, &[t], Some(pt), s);
    }
    broadcast_to(em, t, &Type::f32(pt.shape), s)
}

/// `bce(p, y) = mean(-(y log p + (1 - y) log(1 - p)))`, each log clamped at -100 as PyTorch.
pub fn bce(em: &mut Emitter, p: NodeId, target: NodeId, s: Span) -> R {
    let y = target_like(em, target, p, s)?;
    let floor = fill_like(em, -100.0, p, s)?;
    let log_p = unary(em, UnaryOp::Log, p, s)?;
    let log_p = bin(em, BinaryOp::Max, log_p, floor, s)?;
    let one = fill_like(em, 1.0, p, s)?;
    let q = bin(em, BinaryOp::Sub, one, p, s)?;
    let log_q = unary(em, UnaryOp::Log, q, s)?;
    let log_q = bin(em, BinaryOp::Max, log_q, floor, s)?;
    let not_y = bin(em, BinaryOp::Sub, one, y, s)?;
    let a = bin(em, BinaryOp::Mul, y, log_p, s)?;
    let b = bin(em, BinaryOp::Mul, not_y, log_q, s)?;
    let sum = bin(em, BinaryOp::Add, a, b, s)?;
    let mean = mean_all(em, sum, s)?;
    unary(em, UnaryOp::Neg, mean, s)
}

/// `bce_with_logits(x, y) = mean(max(x, 0) - x y + log(1 + exp(-|x|)))`, stable for any `x`.
pub fn bce_with_logits(em: &mut Emitter, x: NodeId, target: NodeId, s: Span) -> R {
    let y = target_like(em, target, x, s)?;
    let relu = unary(em, UnaryOp::Relu, x, s)?;
    let xy = bin(em, BinaryOp::Mul, x, y, s)?;
    let abs = unary(em, UnaryOp::Abs, x, s)?;
    let neg = unary(em, UnaryOp::Neg, abs, s)?;
    let e = unary(em, UnaryOp::Exp, neg, s)?;
    let one = fill_like(em, 1.0, x, s)?;
    let onep = bin(em, BinaryOp::Add, one, e, s)?;
    let softplus = unary(em, UnaryOp::Log, onep, s)?;
    let a = bin(em, BinaryOp::Sub, relu, xy, s)?;
    let total = bin(em, BinaryOp::Add, a, softplus, s)?;
    mean_all(em, total, s)
}

/// `mse(p, y) = mean((p - y)²)`.
pub fn mse(em: &mut Emitter, p: NodeId, target: NodeId, s: Span) -> R {
    let y = target_like(em, target, p, s)?;
    let d = bin(em, BinaryOp::Sub, p, y, s)?;
    let sq = bin(em, BinaryOp::Mul, d, d, s)?;
    mean_all(em, sq, s)
}
