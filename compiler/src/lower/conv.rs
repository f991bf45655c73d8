//! The IR expansions of the convolution family: `conv2d`, `conv_transpose2d`, `max_pool` and
//! `avg_pool`.
//!
//! Each is one window op of the IR plus, for the convolutions, a per-channel bias added after
//! broadcasting it over `[N, O, H, W]`. The window's sizes come from the same arguments the
//! shape rule in `builtins/conv.rs` read, with the same defaults (a pool's stride is its kernel
//! when absent), so the node's type always agrees with the checked type.

use netc_grammar::Span;

use super::Emitter;
use super::layers::{LowerCtx, bin};
use crate::builtins::BoundArgs;
use crate::dim::Dim;
use crate::ir::{BinaryOp, IrError, NodeId, Op, Type, Window};

type R = Result<NodeId, IrError>;

/// `conv2d(x)`: cross-correlation with `weight [O, C, kh, kw]`, then `bias [O]` if the layer
/// has one (weights in the order the shape rule lists them).
pub fn conv2d(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    let window = window(c.args, true, c.span)?;
    let y = em.add(Op::Conv2d { window }, &[x, c.weights[0]], None, c.span)?;
    add_channel_bias(em, y, c.weights.get(1).copied(), c.span)
}

/// `conv_transpose2d(x)`: the adjoint of a convolution with `weight [C, O, kh, kw]`, producing
/// the checked output type (which carries `output_padding`: the IR op is told its output size
/// rather than computing it), then `bias [O]` if present.
pub fn conv_transpose2d(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    let window = window(c.args, false, c.span)?;
    let y = em.add(
        Op::ConvTranspose2d { window },
        &[x, c.weights[0]],
        Some(c.out.clone()),
        c.span,
    )?;
    add_channel_bias(em, y, c.weights.get(1).copied(), c.span)
}

/// `max_pool(x)`: the largest value of each window; padding never wins.
pub fn max_pool(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    let window = window(c.args, false, c.span)?;
    em.add(Op::MaxPool2d { window }, &[x], None, c.span)
}

/// `avg_pool(x)`: the mean of each window, padding counted as zeros (PyTorch's default).
pub fn avg_pool(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    let window = window(c.args, false, c.span)?;
    em.add(Op::AvgPool2d { window }, &[x], None, c.span)
}

/// `y + bias` with `bias [O]` broadcast over `y [N, O, H, W]` (reshaped to `[O, 1, 1]` first,
/// since broadcasting aligns on the right); `y` itself when there is no bias.
fn add_channel_bias(em: &mut Emitter, y: NodeId, bias: Option<NodeId>, s: Span) -> R {
    let Some(bias) = bias else { return Ok(y) };
    let out = em.graph.ty(y).clone();
    let channels = out.shape[1];
    let column = em.add(
        Op::Reshape,
        &[bias],
        Some(Type::f32(vec![channels, 1, 1])),
        s,
    )?;
    let full = em.add(Op::Broadcast, &[column], Some(out), s)?;
    bin(em, BinaryOp::Add, y, full, s)
}

/// The window of a convolution or pool from its bound arguments. `stride` defaults to the
/// kernel when absent (pools); `dilation` is read only where the built-in has it.
fn window(args: &BoundArgs, dilated: bool, s: Span) -> Result<Window, IrError> {
    let kernel = pair(args, "kernel", s)?;
    let stride = if args.has("stride") {
        pair(args, "stride", s)?
    } else {
        kernel
    };
    let dilation = if dilated {
        pair(args, "dilation", s)?
    } else {
        [1, 1]
    };
    Ok(Window {
        kernel,
        stride,
        padding: pair(args, "padding", s)?,
        dilation,
    })
}

/// A size-or-pair argument as concrete `[h, w]`; the checker has bound every hyper-parameter,
/// so a symbolic or negative value here is a compiler bug.
fn pair(args: &BoundArgs, name: &str, s: Span) -> Result<[usize; 2], IrError> {
    let (h, w) = args.pair(name);
    let known = |d: &Dim| {
        d.as_known()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| IrError {
                message: format!("`{name}` must be a known non-negative size here, found {d}"),
                span: s,
            })
    };
    Ok([known(&h)?, known(&w)?])
}
