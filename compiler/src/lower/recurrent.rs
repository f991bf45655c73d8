//! The IR expansions of the recurrent layers `lstm` and `gru`.
//!
//! Each layer and direction is one `Scan` node, so the graph has the same size for a sequence of
//! 5 steps or 500: the input projection of every step is one matmul outside the loop
//! (`[T*B, in] x W_ih^T + b_ih`, time-major), and the scan body does only what depends on the
//! previous hidden state (`h W_hh^T + b_hh` and the gate math). A backward direction is the same
//! scan with `reverse: true` over the same projected input, whose outputs stay aligned with the
//! inputs. Equations, gate order and weight layouts are PyTorch's (`nn.LSTM` / `nn.GRU`,
//! `batch_first=True`, zero initial state), so checkpoints load unchanged.

use netc_grammar::Span;

use super::Emitter;
use super::layers::{LowerCtx, bin, dropout, linear, unary};
use crate::ir::{BinaryOp, Graph, IrError, NodeId, Op, Role, Scan, Type, UnaryOp};

type R = Result<NodeId, IrError>;

/// Which recurrent cell a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    /// Gates i, f, g, o; carries (h, c).
    Lstm,
    /// Gates r, z, n; carries h.
    Gru,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    fn carries(self) -> usize {
        match self {
            Cell::Lstm => 2,
            Cell::Gru => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }
}

/// `lstm(x, hidden, layers, bidirectional, output, dropout)` over `x` `[B, T, F]`:
/// `gates = x_t W_ih^T + b_ih + h W_hh^T + b_hh`, `i, f, o = sigmoid`, `g = tanh`,
/// `c' = f c + i g`, `h' = o tanh(c')`.
pub fn lstm(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    recurrent(em, x, c, Cell::Lstm)
}

/// `gru(x, hidden, layers, bidirectional, output, dropout)` over `x` `[B, T, F]`:
/// `r, z = sigmoid(x_t W_i^T + b_i + h W_h^T + b_h)` (their blocks),
/// `n = tanh(x_t W_in^T + b_in + r (h W_hn^T + b_hn))`, `h' = (1 - z) n + z h`.
pub fn gru(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    recurrent(em, x, c, Cell::Gru)
}

/// A stack of `layers` (bi)directional layers. Works time-major (`[T, B, features]`) inside, so
/// each layer's output is the next one's input without transposes; layer `k > 0` reads
/// `concat(forward, backward)` along features, after dropout in train mode (PyTorch applies it
/// to every layer's output but the last). `output: sequence` gives `[B, T, H*dirs]`;
/// `output: final` the last layer's final hidden states `[B, H*dirs]`, forward then backward
/// (PyTorch's `cat(h_n[-2], h_n[-1])`).
fn recurrent(em: &mut Emitter, x: NodeId, c: &LowerCtx, cell: Cell) -> R {
    let s = c.span;
    let hidden = size(c, "hidden")?;
    let layers = size(c, "layers")?;
    let dirs = if c.args.bool("bidirectional") { 2 } else { 1 };
    if c.weights.len() != layers * dirs * 4 {
        return Err(IrError {
            message: format!(
                "{} with {layers} layer(s) and {dirs} direction(s) expects {} weights, got {}",
                cell.name(),
                layers * dirs * 4,
                c.weights.len()
            ),
            span: s,
        });
    }
    let p = c.args.float("dropout");
    let mut seq = em.add(
        Op::Transpose {
            perm: vec![1, 0, 2],
        },
        &[x],
        None,
        s,
    )?;
    let mut finals = Vec::new();
    for k in 0..layers {
        if k > 0 {
            seq = dropout(em, seq, p, s)?;
        }
        let mut outputs = Vec::with_capacity(dirs);
        finals.clear();
        for d in 0..dirs {
            let first = (k * dirs + d) * 4;
            let weights = &c.weights[first..first + 4];
            let (ys, last) = direction(em, cell, seq, weights, hidden, d == 1, s)?;
            outputs.push(ys);
            finals.push(last);
        }
        seq = concat(em, &outputs, 2, s)?;
    }
    match c.args.word("output") {
        "final" => concat(em, &finals, 1, s),
        _ => em.add(
            Op::Transpose {
                perm: vec![1, 0, 2],
            },
            &[seq],
            None,
            s,
        ),
    }
}

/// A positive size argument.
fn size(c: &LowerCtx, name: &str) -> Result<usize, IrError> {
    match c.args.int(name) {
        n if n > 0 => Ok(n as usize),
        n => Err(IrError {
            message: format!("`{name}` must be positive, got {n}"),
            span: c.span,
        }),
    }
}

/// `parts` joined along `axis` (no node for a single part).
fn concat(em: &mut Emitter, parts: &[NodeId], axis: usize, s: Span) -> R {
    match parts {
        [one] => Ok(*one),
        _ => em.add(Op::Concat { axis }, parts, None, s),
    }
}

/// One layer in one direction over time-major `seq` `[T, B, in]` with its weights
/// `[w_ih, w_hh, b_ih, b_hh]`: one `Scan`. Returns the per-step hidden states `[T, B, H]`
/// (aligned with `seq` in both directions) and the final hidden state `[B, H]`.
fn direction(
    em: &mut Emitter,
    cell: Cell,
    seq: NodeId,
    weights: &[NodeId],
    hidden: usize,
    reverse: bool,
    s: Span,
) -> Result<(NodeId, NodeId), IrError> {
    let &[w_ih, w_hh, b_ih, b_hh] = weights else {
        return Err(IrError {
            message: format!(
                "a recurrent direction needs 4 weights, got {}",
                weights.len()
            ),
            span: s,
        });
    };
    let shape = em.graph.ty(seq).shape.clone();
    let (length, batch) = (shape[0], shape[1]);
    // Every step's input projection at once, outside the loop: [T, B, gates*H].
    let projected = linear(em, seq, w_ih, Some(b_ih), s)?;
    let body = build_body(em, cell, batch, hidden, s)?;
    let state = Type::f32(vec![batch, hidden]);
    let mut operands = Vec::new();
    for _ in 0..cell.carries() {
        operands.push(em.add(Op::Fill { value: 0.0 }, &[], Some(state.clone()), s)?);
    }
    operands.extend([projected, w_hh, b_hh]);
    let scan = Scan {
        body,
        length,
        reverse,
        carries: cell.carries(),
        xs: 1,
        consts: 2,
    };
    // The scan's own type is a placeholder; its projects carry the real types.
    let node = em.add(Op::Scan(Box::new(scan)), &operands, Some(state.clone()), s)?;
    let last = em.add(Op::Project { index: 0 }, &[node], Some(state), s)?;
    let ys_type = Type::f32(vec![length, batch, hidden]);
    let index = cell.carries();
    let ys = em.add(Op::Project { index }, &[node], Some(ys_type), s)?;
    Ok((ys, last))
}

/// The scan body of one step, built with the emitter's helpers on a graph of its own (the
/// emitter's graph is swapped out meanwhile and always restored). Inputs: `carry0` = h
/// (`carry1` = c for the LSTM) `[B, H]`, `x0` = the step's projected input `[B, gates*H]`,
/// `const0` = `W_hh`, `const1` = `b_hh`; outputs: the new carries, then `y0` = the new h.
fn build_body(
    em: &mut Emitter,
    cell: Cell,
    batch: usize,
    hidden: usize,
    s: Span,
) -> Result<Graph, IrError> {
    let outer = std::mem::take(&mut em.graph);
    let built = step(em, cell, batch, hidden, s);
    let body = std::mem::replace(&mut em.graph, outer);
    built.map(|()| body)
}

fn step(em: &mut Emitter, cell: Cell, batch: usize, hidden: usize, s: Span) -> Result<(), IrError> {
    let rows = cell.gates() * hidden;
    let state = Type::f32(vec![batch, hidden]);
    let h = em.graph.input("carry0", Role::Data, state.clone(), s);
    let c = match cell {
        Cell::Lstm => Some(em.graph.input("carry1", Role::Data, state.clone(), s)),
        Cell::Gru => None,
    };
    let x = em
        .graph
        .input("x0", Role::Data, Type::f32(vec![batch, rows]), s);
    let w = em
        .graph
        .input("const0", Role::Data, Type::f32(vec![rows, hidden]), s);
    let b = em
        .graph
        .input("const1", Role::Data, Type::f32(vec![rows]), s);
    // h W_hh^T + b_hh: [B, gates*H].
    let hh = linear(em, h, w, Some(b), s)?;
    let gate = |em: &mut Emitter, t: NodeId, k: usize| -> R {
        em.add(
            Op::Slice {
                axis: 1,
                start: k * hidden,
                len: hidden,
            },
            &[t],
            None,
            s,
        )
    };
    let sigmoid = |em: &mut Emitter, t: NodeId| unary(em, UnaryOp::Sigmoid, t, s);
    let tanh = |em: &mut Emitter, t: NodeId| unary(em, UnaryOp::Tanh, t, s);
    match (cell, c) {
        (Cell::Lstm, Some(c)) => {
            let gates = bin(em, BinaryOp::Add, x, hh, s)?;
            let i = gate(em, gates, 0)?;
            let i = sigmoid(em, i)?;
            let f = gate(em, gates, 1)?;
            let f = sigmoid(em, f)?;
            let g = gate(em, gates, 2)?;
            let g = tanh(em, g)?;
            let o = gate(em, gates, 3)?;
            let o = sigmoid(em, o)?;
            let kept = bin(em, BinaryOp::Mul, f, c, s)?;
            let written = bin(em, BinaryOp::Mul, i, g, s)?;
            let c_new = bin(em, BinaryOp::Add, kept, written, s)?;
            let squashed = tanh(em, c_new)?;
            let h_new = bin(em, BinaryOp::Mul, o, squashed, s)?;
            em.graph.set_output("carry0", h_new);
            em.graph.set_output("carry1", c_new);
            em.graph.set_output("y0", h_new);
        }
        _ => {
            let (xr, hr) = (gate(em, x, 0)?, gate(em, hh, 0)?);
            let r = bin(em, BinaryOp::Add, xr, hr, s)?;
            let r = sigmoid(em, r)?;
            let (xz, hz) = (gate(em, x, 1)?, gate(em, hh, 1)?);
            let z = bin(em, BinaryOp::Add, xz, hz, s)?;
            let z = sigmoid(em, z)?;
            let (xn, hn) = (gate(em, x, 2)?, gate(em, hh, 2)?);
            let reset = bin(em, BinaryOp::Mul, r, hn, s)?;
            let n = bin(em, BinaryOp::Add, xn, reset, s)?;
            let n = tanh(em, n)?;
            let one = em.add(Op::Fill { value: 1.0 }, &[], Some(state), s)?;
            let keep_new = bin(em, BinaryOp::Sub, one, z, s)?;
            let new_part = bin(em, BinaryOp::Mul, keep_new, n, s)?;
            let old_part = bin(em, BinaryOp::Mul, z, h, s)?;
            let h_new = bin(em, BinaryOp::Add, new_part, old_part, s)?;
            em.graph.set_output("carry0", h_new);
            em.graph.set_output("y0", h_new);
        }
    }
    Ok(())
}
