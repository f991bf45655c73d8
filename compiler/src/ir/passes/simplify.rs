//! Algebraic simplification: local rewrites that drop operations whose result is already
//! available, or merge two layout ops into one.
//!
//! Rewrites to an existing node (the replaced node's uses and outputs move to it, and the
//! replaced node is removed):
//!
//! - `x * 1`, `1 * x`, `x / 1`, `x + 0`, `0 + x`, `x - 0` → `x`, where `1`/`0` is a `Fill` with
//!   that value (binary operands have equal types). `x * 0` is kept: it is NaN for NaN or
//!   infinite `x`. Adding a zero changes nothing but the sign of a zero (`-0 + 0 = +0`), and the
//!   two zeros compare equal.
//! - `neg(neg(x))`, `stop_gradient(stop_gradient(x))` → the inner node.
//! - `transpose` by the identity permutation, `reshape`/`broadcast` to the operand's own shape,
//!   `reduce` over no axes, `cast` to the operand's own element type, a `slice` of a whole axis,
//!   a `concat` of one operand → the operand.
//! - `select(c, a, a)` → `a`; `select(fill c, a, b)` → `a` when `c != 0` (NaN included), else
//!   `b` (an `I64` fill truncates `c` first, as the interpreter does; an `F32` `c` so small that
//!   it rounds to zero in f32 is left alone).
//!
//! Rewrites in place (the node keeps its id, type and span; its op and operands change):
//!
//! - `add(concat(x, 0), concat(0, y))` → `concat(x, y)` along one axis, when block by block at
//!   most one side is not a zero fill and no value block would have to be split (the sum of
//!   slice gradients; zero fills are added for the zero blocks that remain);
//!
//! - `transpose(transpose(x, p), q)` → `transpose(x, r)` with `r[i] = p[q[i]]` (or `x` when
//!   `r` is the identity);
//! - `reshape(reshape(x))` → `reshape(x)` (or `x` when the shapes agree);
//! - `broadcast(broadcast(x))` → `broadcast(x)`: broadcasting composes, since every axis of `x`
//!   that is not 1 keeps its size through both.
//!
//! A rewrite only happens when the result's type equals the replaced node's type, so users and
//! outputs still type-check. Nodes are visited in topological order, so whole chains collapse
//! in one run; inner nodes left unused are removed later by dead-code elimination.

use super::super::{BinaryOp, DType, Graph, NodeId, Op, Type, UnaryOp, op};

/// What to do with one node.
enum Rewrite {
    /// Replace the node by an existing node of the same type.
    Replace(NodeId),
    /// Change the node's op to this one, with this single operand.
    Rewire(Op, NodeId),
}

/// Apply the rewrites; returns how many nodes were replaced or rewritten, scan bodies included.
pub fn run(graph: &mut Graph) -> usize {
    let mut changed = super::in_scan_bodies(graph, run);
    for n in graph.topo_order() {
        match rewrite(graph, n) {
            Some(Rewrite::Replace(x)) if graph.ty(x) == graph.ty(n) => {
                graph.replace_uses(n, x);
                graph.graph.remove_node(n);
                changed += 1;
            }
            Some(Rewrite::Rewire(new_op, x)) => {
                let ty = graph.ty(n);
                if op::infer(&new_op, &[graph.ty(x)], Some(ty)).as_ref() != Ok(ty) {
                    continue;
                }
                graph.set_op(n, new_op, &[x]);
                changed += 1;
            }
            _ => {
                if merge_padded_sum(graph, n) {
                    changed += 1;
                }
            }
        }
    }
    changed
}

/// One block along the concatenation axis: a value, or zeros of this length.
#[derive(Clone, Copy)]
enum Part {
    Value(NodeId),
    Zeros(usize),
}

/// `x`'s blocks along `axis`: a `concat` on that axis gives its operands (zero fills as
/// zeros), a zero fill one block of zeros, anything else one value.
fn blocks(graph: &Graph, x: NodeId, axis: usize) -> Vec<(usize, Part)> {
    let zero = |id: NodeId| super::fill_value(graph, id) == Some(0.0);
    let operands = match graph.node(x).op {
        Op::Concat { axis: a } if a == axis => graph.operands(x),
        _ => vec![x],
    };
    operands
        .into_iter()
        .map(|o| {
            let len = graph.ty(o).shape[axis];
            (
                len,
                if zero(o) {
                    Part::Zeros(len)
                } else {
                    Part::Value(o)
                },
            )
        })
        .collect()
}

/// For `add(a, b)` with a zero-padded `concat` on one side (a slice's gradient) and, block by
/// block, at most one non-zero side: the blocks of the sum. Summing the gradients of the four
/// gate slices of an LSTM step then becomes one `concat` instead of four padded buffers and
/// three additions.
fn padded_sum(graph: &Graph, n: NodeId) -> Option<(usize, Vec<Part>)> {
    let Op::Binary(BinaryOp::Add) = graph.node(n).op else {
        return None;
    };
    let ops = graph.operands(n);
    let axis = ops.iter().find_map(|&o| match graph.node(o).op {
        Op::Concat { axis } => Some(axis),
        _ => None,
    })?;
    let sides = [blocks(graph, ops[0], axis), blocks(graph, ops[1], axis)];
    // Every block edge of either side, in order.
    let mut edges: Vec<usize> = sides
        .iter()
        .flat_map(|blocks| {
            blocks.iter().scan(0, |at, (len, _)| {
                *at += len;
                Some(*at)
            })
        })
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let mut parts: Vec<Part> = Vec::new();
    let mut start = 0;
    for end in edges {
        let mut value = None;
        for blocks in &sides {
            let mut at = 0;
            for &(len, part) in blocks {
                if at <= start && end <= at + len {
                    if let Part::Value(v) = part {
                        // A value must be taken whole, and only from one side.
                        if at != start || at + len != end || value.is_some() {
                            return None;
                        }
                        value = Some(v);
                    }
                    break;
                }
                at += len;
            }
        }
        match (value, parts.last_mut()) {
            (Some(v), _) => parts.push(Part::Value(v)),
            (None, Some(Part::Zeros(z))) => *z += end - start,
            (None, _) => parts.push(Part::Zeros(end - start)),
        }
        start = end;
    }
    Some((axis, parts))
}

/// Rewrite `add(a, b)` in place as the `concat` [`padded_sum`] finds, adding the zero fills
/// it needs; whether it did.
fn merge_padded_sum(graph: &mut Graph, n: NodeId) -> bool {
    let Some((axis, parts)) = padded_sum(graph, n) else {
        return false;
    };
    let ty = graph.ty(n).clone();
    let span = graph.node(n).span;
    let mut operands = Vec::with_capacity(parts.len());
    for part in parts {
        operands.push(match part {
            Part::Value(v) => v,
            Part::Zeros(len) => {
                let mut shape = ty.shape.clone();
                shape[axis] = len;
                let fill = Type {
                    dtype: ty.dtype,
                    shape,
                };
                match graph.add(Op::Fill { value: 0.0 }, &[], Some(fill), span) {
                    Ok(id) => id,
                    Err(_) => return false,
                }
            }
        });
    }
    let concat = Op::Concat { axis };
    let types: Vec<&Type> = operands.iter().map(|&o| graph.ty(o)).collect();
    if op::infer(&concat, &types, Some(&ty)).as_ref() != Ok(&ty) {
        return false;
    }
    graph.set_op(n, concat, &operands);
    true
}

/// The rewrite that applies to node `n`, if any (types are checked by the caller).
fn rewrite(graph: &Graph, n: NodeId) -> Option<Rewrite> {
    let ops = graph.operands(n);
    let node = graph.node(n);
    let is = |id: NodeId, v: f64| super::fill_value(graph, id) == Some(v);
    let same_type = |id: NodeId| graph.ty(id) == &node.ty;
    let inner = |i: usize| &graph.node(ops[i]).op;
    let inner_operand = |i: usize| graph.operands(ops[i]).first().copied();
    use Rewrite::{Replace, Rewire};
    match &node.op {
        Op::Binary(b) => {
            let (a, c) = (ops[0], ops[1]);
            match b {
                BinaryOp::Mul if is(c, 1.0) => Some(Replace(a)),
                BinaryOp::Mul if is(a, 1.0) => Some(Replace(c)),
                BinaryOp::Div if is(c, 1.0) => Some(Replace(a)),
                BinaryOp::Add if is(c, 0.0) => Some(Replace(a)),
                BinaryOp::Add if is(a, 0.0) => Some(Replace(c)),
                BinaryOp::Sub if is(c, 0.0) => Some(Replace(a)),
                _ => None,
            }
        }
        Op::Unary(UnaryOp::Neg) if matches!(inner(0), Op::Unary(UnaryOp::Neg)) => {
            inner_operand(0).map(Replace)
        }
        Op::StopGradient if matches!(inner(0), Op::StopGradient) => Some(Replace(ops[0])),
        Op::Transpose { perm } => {
            let identity = |p: &[usize]| p.iter().enumerate().all(|(i, &a)| i == a);
            if identity(perm) {
                return Some(Replace(ops[0]));
            }
            let Op::Transpose { perm: first } = inner(0) else {
                return None;
            };
            let x = inner_operand(0)?;
            let composed: Vec<usize> = perm.iter().map(|&q| first[q]).collect();
            Some(if identity(&composed) {
                Replace(x)
            } else {
                Rewire(Op::Transpose { perm: composed }, x)
            })
        }
        Op::Reshape | Op::Broadcast if same_type(ops[0]) => Some(Replace(ops[0])),
        Op::Reshape | Op::Broadcast if inner(0) == &node.op => {
            let x = inner_operand(0)?;
            Some(if same_type(x) {
                Replace(x)
            } else {
                Rewire(node.op.clone(), x)
            })
        }
        Op::Reduce { axes, .. } if axes.is_empty() => Some(Replace(ops[0])),
        Op::Cast { to } if graph.ty(ops[0]).dtype == *to => Some(Replace(ops[0])),
        Op::Slice {
            axis,
            start: 0,
            len,
        } if graph.ty(ops[0]).shape[*axis] == *len => Some(Replace(ops[0])),
        Op::Concat { .. } if ops.len() == 1 => Some(Replace(ops[0])),
        Op::Select if ops[1] == ops[2] => Some(Replace(ops[1])),
        Op::Select => {
            let c = super::fill_value(graph, ops[0])?;
            let take_a = match graph.ty(ops[0]).dtype {
                // An f32 run rounds the condition first: skip a value that rounds to zero.
                DType::F32 if (c != 0.0) != (c as f32 != 0.0) => return None,
                DType::F32 => c != 0.0,
                DType::I64 => c as i64 != 0,
            };
            Some(Replace(if take_a { ops[1] } else { ops[2] }))
        }
        _ => None,
    }
}
