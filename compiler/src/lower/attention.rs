//! The IR expansions of multi-head attention: `self_attention` and cross-`attention`.
//!
//! Both follow PyTorch's `nn.MultiheadAttention` (batch first) step by step, as the parity
//! reference writes it out: one packed input projection `x W_in^T + b_in` whose rows `0:D`,
//! `D:2D`, `2D:3D` make the queries, keys and values; heads of width `D / heads` (head `j` takes
//! features `j*hd .. (j+1)*hd`); scores `q k^T / sqrt(hd)`; softmax over the keys; optional
//! dropout on the attention weights; heads concatenated in order; the output projection. Heads
//! are a batch axis of 4-D matmuls (`[B, heads, T, hd]`), so the graph has the same size for
//! any head count and sequence length.

use netc_grammar::Span;

use super::Emitter;
use super::layers::{LowerCtx, bin, dropout, linear, scale, softmax};
use crate::ir::{BinaryOp, IrError, NodeId, Op, Type};

type R = Result<NodeId, IrError>;

/// What a causal mask adds to the scores of the positions a query may not see: large enough that
/// `exp` underflows to exactly 0 after the row maximum is subtracted, finite so that no `inf - inf`
/// can appear in the forward or backward pass.
const MASKED: f64 = -1e9;

/// `self_attention(x, heads, dropout, causal)`: queries, keys and values all from `x`
/// `[B, T, D]`, computed with one matmul against the packed `in_proj_weight` (as PyTorch does
/// when query, key and value are the same tensor).
pub fn self_attention(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    let s = c.span;
    let [w_in, b_in, w_out, b_out] = weights(c)?;
    let d = width(em, x);
    let qkv = linear(em, x, w_in, Some(b_in), s)?;
    let q = em.add(
        Op::Slice {
            axis: 2,
            start: 0,
            len: d,
        },
        &[qkv],
        None,
        s,
    )?;
    let k = em.add(
        Op::Slice {
            axis: 2,
            start: d,
            len: d,
        },
        &[qkv],
        None,
        s,
    )?;
    let v = em.add(
        Op::Slice {
            axis: 2,
            start: 2 * d,
            len: d,
        },
        &[qkv],
        None,
        s,
    )?;
    let heads = heads(c)?;
    let causal = c.args.bool("causal");
    let o = attend(em, q, k, v, heads, c.args.float("dropout"), causal, s)?;
    linear(em, o, w_out, Some(b_out), s)
}

/// `attention(query, memory, heads, dropout)`: queries from `query` `[B, Tq, D]`, keys and values
/// from `memory` `[B, Tk, D]`, each with its block of rows of the packed projection (PyTorch's
/// path when query and key differ).
pub fn attention(em: &mut Emitter, query: NodeId, memory: NodeId, c: &LowerCtx) -> R {
    let s = c.span;
    let [w_in, b_in, w_out, b_out] = weights(c)?;
    let d = width(em, query);
    let project = |em: &mut Emitter, x: NodeId, block: usize| -> R {
        let start = block * d;
        let w = em.add(
            Op::Slice {
                axis: 0,
                start,
                len: d,
            },
            &[w_in],
            None,
            s,
        )?;
        let b = em.add(
            Op::Slice {
                axis: 0,
                start,
                len: d,
            },
            &[b_in],
            None,
            s,
        )?;
        linear(em, x, w, Some(b), s)
    };
    let q = project(em, query, 0)?;
    let k = project(em, memory, 1)?;
    let v = project(em, memory, 2)?;
    let o = attend(em, q, k, v, heads(c)?, c.args.float("dropout"), false, s)?;
    linear(em, o, w_out, Some(b_out), s)
}

/// The four projection parameters, in the shape rule's order.
fn weights(c: &LowerCtx) -> Result<[NodeId; 4], IrError> {
    c.weights[..].try_into().map_err(|_| IrError {
        message: format!(
            "attention expects 4 projection parameters, got {}",
            c.weights.len()
        ),
        span: c.span,
    })
}

fn heads(c: &LowerCtx) -> Result<usize, IrError> {
    match c.args.int("heads") {
        h if h > 0 => Ok(h as usize),
        h => Err(IrError {
            message: format!("attention needs a positive number of heads, got {h}"),
            span: c.span,
        }),
    }
}

/// The feature width `D` of a `[B, T, D]` tensor.
fn width(em: &Emitter, x: NodeId) -> usize {
    em.graph.ty(x).shape.last().copied().unwrap_or(0)
}

/// Scaled dot-product attention of projected `q` `[B, Tq, D]` over `k`, `v` `[B, Tk, D]` with
/// `heads` heads; returns the concatenated heads `[B, Tq, D]` (before the output projection).
#[allow(clippy::too_many_arguments)]
fn attend(
    em: &mut Emitter,
    q: NodeId,
    k: NodeId,
    v: NodeId,
    heads: usize,
    p: f64,
    causal: bool,
    s: Span,
) -> R {
    let qt = em.graph.ty(q).clone();
    let (b, tq, d) = (qt.shape[0], qt.shape[1], qt.shape[2]);
    let tk = em.graph.ty(k).shape[1];
    if d % heads != 0 {
        return Err(IrError {
            message: format!("width {d} does not split into {heads} heads"),
            span: s,
        });
    }
    let hd = d / heads;
    let q = split_heads(em, q, heads, s)?;
    let k = split_heads(em, k, heads, s)?;
    let v = split_heads(em, v, heads, s)?;
    let scores = em.add(
        Op::MatMul {
            ta: false,
            tb: true,
        },
        &[q, k],
        None,
        s,
    )?;
    let mut scores = scale(em, scores, 1.0 / (hd as f64).sqrt(), s)?;
    if causal {
        let mask = causal_mask(em, tq, tk, s)?;
        let mask = em.add(
            Op::Broadcast,
            &[mask],
            Some(Type::f32(vec![b, heads, tq, tk])),
            s,
        )?;
        scores = bin(em, BinaryOp::Add, scores, mask, s)?;
    }
    let weights = softmax(em, scores, 3, false, s)?;
    let weights = dropout(em, weights, p, s)?;
    let o = em.add(
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[weights, v],
        None,
        s,
    )?;
    let o = em.add(
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[o],
        None,
        s,
    )?;
    em.add(Op::Reshape, &[o], Some(Type::f32(vec![b, tq, d])), s)
}

/// `[B, T, D]` -> `[B, heads, T, D / heads]`: head `j` gets features `j*hd .. (j+1)*hd`.
fn split_heads(em: &mut Emitter, x: NodeId, heads: usize, s: Span) -> R {
    let t = em.graph.ty(x).clone();
    let (b, len, d) = (t.shape[0], t.shape[1], t.shape[2]);
    let x = em.add(
        Op::Reshape,
        &[x],
        Some(Type::f32(vec![b, len, heads, d / heads])),
        s,
    )?;
    em.add(
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[x],
        None,
        s,
    )
}

/// The additive causal mask `[tq, tk]`: 0 where key `j <= i`, [`MASKED`] where `j > i`.
///
/// The IR has no iota, so the triangle comes from a periodic pattern: the row
/// `u = [0, MASKED x (n-1), 0 x n]` (`n = max(tq, tk)`, period `2n`) repeated and re-cut into
/// rows of `2n - 1` puts `u[(j - i) mod 2n]` at `(i, j)`, which is `MASKED` exactly when
/// `0 < j - i < n`. A constant number of nodes (which constant folding can evaluate), whatever
/// the sequence length.
fn causal_mask(em: &mut Emitter, tq: usize, tk: usize, s: Span) -> R {
    let n = tq.max(tk).max(1);
    let mut parts = vec![em.add(Op::Fill { value: 0.0 }, &[], Some(Type::f32(vec![1])), s)?];
    if n > 1 {
        let masked = Type::f32(vec![n - 1]);
        parts.push(em.add(Op::Fill { value: MASKED }, &[], Some(masked), s)?);
    }
    parts.push(em.add(Op::Fill { value: 0.0 }, &[], Some(Type::f32(vec![n])), s)?);
    let period = em.add(Op::Concat { axis: 0 }, &parts, None, s)?;
    let rows = em.add(Op::Broadcast, &[period], Some(Type::f32(vec![n, 2 * n])), s)?;
    let flat = em.add(Op::Reshape, &[rows], Some(Type::f32(vec![2 * n * n])), s)?;
    let cut = n * (2 * n - 1);
    let flat = em.add(
        Op::Slice {
            axis: 0,
            start: 0,
            len: cut,
        },
        &[flat],
        None,
        s,
    )?;
    let skewed = em.add(Op::Reshape, &[flat], Some(Type::f32(vec![n, 2 * n - 1])), s)?;
    let rows = em.add(
        Op::Slice {
            axis: 0,
            start: 0,
            len: tq,
        },
        &[skewed],
        None,
        s,
    )?;
    em.add(
        Op::Slice {
            axis: 1,
            start: 0,
            len: tk,
        },
        &[rows],
        None,
        s,
    )
}
