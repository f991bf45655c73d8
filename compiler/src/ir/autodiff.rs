//! Reverse-mode automatic differentiation as a graph-to-graph transform.
//!
//! [`grad`] appends the backward pass to the same graph, so the optimizer update and every later
//! pass see forward and backward together. Each op has one vector-Jacobian rule in
//! [`Backward::vjp`]; an op on a path from a trained parameter to the loss that has no rule is an
//! error carrying the op's span — never a silent zero gradient.

use std::collections::{HashMap, HashSet};

use netc_grammar::Span;
use petgraph::Direction;

use super::{BinaryOp, Graph, IrError, NodeId, Op, ReduceOp, Type, UnaryOp};

/// Gradients of `loss` (a scalar) with respect to each of `wrt`. `None` where the loss does not
/// depend on that node.
pub fn grad(graph: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<Option<NodeId>>, IrError> {
    let relevant = on_paths(graph, wrt, loss);
    let order: Vec<NodeId> = graph.topo_order().into_iter().filter(|n| relevant.contains(n)).collect();
    let mut b = Backward { g: graph, adjoints: HashMap::new() };
    if !relevant.contains(&loss) {
        return Ok(vec![None; wrt.len()]);
    }
    let span = b.g.node(loss).span;
    let seed = b.g.add(Op::Fill { value: 1.0 }, &[], Some(b.g.ty(loss).clone()), span)?;
    b.adjoints.insert(loss, seed);
    for &n in order.iter().rev() {
        let Some(&g) = b.adjoints.get(&n) else { continue };
        let operands = b.g.operands(n);
        for (i, &x) in operands.iter().enumerate() {
            if !relevant.contains(&x) {
                continue;
            }
            if let Some(contribution) = b.vjp(n, i, g)? {
                b.accumulate(x, contribution)?;
            }
        }
    }
    Ok(wrt.iter().map(|w| b.adjoints.get(w).copied()).collect())
}

/// Nodes that lie on some path from one of `from` to `to`; `StopGradient` cuts paths.
fn on_paths(graph: &Graph, from: &[NodeId], to: NodeId) -> HashSet<NodeId> {
    let mut forward: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = from.to_vec();
    while let Some(n) = stack.pop() {
        if !forward.insert(n) || matches!(graph.node(n).op, Op::StopGradient) {
            continue;
        }
        stack.extend(graph.graph.neighbors_directed(n, Direction::Outgoing));
    }
    let mut both = HashSet::new();
    let mut stack = vec![to];
    while let Some(n) = stack.pop() {
        if !forward.contains(&n) || matches!(graph.node(n).op, Op::StopGradient) && !from.contains(&n) || !both.insert(n) {
            continue;
        }
        stack.extend(graph.graph.neighbors_directed(n, Direction::Incoming));
    }
    both
}

struct Backward<'g> {
    g: &'g mut Graph,
    adjoints: HashMap<NodeId, NodeId>,
}

impl Backward<'_> {
    fn accumulate(&mut self, x: NodeId, contribution: NodeId) -> Result<(), IrError> {
        let total = match self.adjoints.get(&x) {
            Some(&previous) => {
                let span = self.g.node(x).span;
                self.g.add(Op::Binary(BinaryOp::Add), &[previous, contribution], None, span)?
            }
            None => contribution,
        };
        self.adjoints.insert(x, total);
        Ok(())
    }

    fn add(&mut self, op: Op, operands: &[NodeId], ty: Option<Type>, span: Span) -> Result<NodeId, IrError> {
        self.g.add(op, operands, ty, span)
    }

    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId, span: Span) -> Result<NodeId, IrError> {
        self.add(Op::Binary(op), &[a, b], None, span)
    }

    fn un(&mut self, op: UnaryOp, a: NodeId, span: Span) -> Result<NodeId, IrError> {
        self.add(Op::Unary(op), &[a], None, span)
    }

    fn fill_like(&mut self, value: f64, like: NodeId, span: Span) -> Result<NodeId, IrError> {
        let ty = self.g.ty(like).clone();
        self.add(Op::Fill { value }, &[], Some(ty), span)
    }

    /// The contribution of node `n`'s adjoint `g` to its operand `i`, or `None` when that
    /// operand gets no gradient (integer operands, comparisons, random numbers).
    fn vjp(&mut self, n: NodeId, i: usize, g: NodeId) -> Result<Option<NodeId>, IrError> {
        let node = self.g.node(n).clone();
        let span = node.span;
        let ops = self.g.operands(n);
        let x = ops[i];
        let result = match &node.op {
            Op::Unary(u) => {
                let y = n;
                match u {
                    UnaryOp::Neg => self.un(UnaryOp::Neg, g, span)?,
                    UnaryOp::Exp => self.bin(BinaryOp::Mul, g, y, span)?,
                    UnaryOp::Log => self.bin(BinaryOp::Div, g, x, span)?,
                    UnaryOp::Sqrt => {
                        let two_y = self.bin(BinaryOp::Add, y, y, span)?;
                        self.bin(BinaryOp::Div, g, two_y, span)?
                    }
                    UnaryOp::Tanh => {
                        let yy = self.bin(BinaryOp::Mul, y, y, span)?;
                        let one = self.fill_like(1.0, y, span)?;
                        let d = self.bin(BinaryOp::Sub, one, yy, span)?;
                        self.bin(BinaryOp::Mul, g, d, span)?
                    }
                    UnaryOp::Sigmoid => {
                        let one = self.fill_like(1.0, y, span)?;
                        let one_minus = self.bin(BinaryOp::Sub, one, y, span)?;
                        let d = self.bin(BinaryOp::Mul, y, one_minus, span)?;
                        self.bin(BinaryOp::Mul, g, d, span)?
                    }
                    UnaryOp::Relu => {
                        let zero = self.fill_like(0.0, x, span)?;
                        let mask = self.bin(BinaryOp::Greater, x, zero, span)?;
                        self.bin(BinaryOp::Mul, g, mask, span)?
                    }
                    UnaryOp::Erf => {
                        // d/dx erf(x) = 2/sqrt(pi) * exp(-x^2)
                        let xx = self.bin(BinaryOp::Mul, x, x, span)?;
                        let neg = self.un(UnaryOp::Neg, xx, span)?;
                        let e = self.un(UnaryOp::Exp, neg, span)?;
                        let c = self.fill_like(std::f64::consts::FRAC_2_SQRT_PI, x, span)?;
                        let d = self.bin(BinaryOp::Mul, c, e, span)?;
                        self.bin(BinaryOp::Mul, g, d, span)?
                    }
                    UnaryOp::Abs => {
                        let zero = self.fill_like(0.0, x, span)?;
                        let pos = self.bin(BinaryOp::Greater, x, zero, span)?;
                        let neg = self.bin(BinaryOp::Greater, zero, x, span)?;
                        let sign = self.bin(BinaryOp::Sub, pos, neg, span)?;
                        self.bin(BinaryOp::Mul, g, sign, span)?
                    }
                    UnaryOp::Recip => {
                        let yy = self.bin(BinaryOp::Mul, y, y, span)?;
                        let d = self.bin(BinaryOp::Mul, g, yy, span)?;
                        self.un(UnaryOp::Neg, d, span)?
                    }
                }
            }
            Op::Binary(op) => {
                let (a, b) = (ops[0], ops[1]);
                match (op, i) {
                    (BinaryOp::Add, _) => g,
                    (BinaryOp::Sub, 0) => g,
                    (BinaryOp::Sub, _) => self.un(UnaryOp::Neg, g, span)?,
                    (BinaryOp::Mul, 0) => self.bin(BinaryOp::Mul, g, b, span)?,
                    (BinaryOp::Mul, _) => self.bin(BinaryOp::Mul, g, a, span)?,
                    (BinaryOp::Div, 0) => self.bin(BinaryOp::Div, g, b, span)?,
                    (BinaryOp::Div, _) => {
                        // d(a/b)/db = -(a/b)/b
                        let t = self.bin(BinaryOp::Div, n, b, span)?;
                        let t = self.bin(BinaryOp::Mul, g, t, span)?;
                        self.un(UnaryOp::Neg, t, span)?
                    }
                    (BinaryOp::Max | BinaryOp::Min, _) => {
                        // The operand that was selected gets the gradient; ties go to `b`.
                        let first_wins = match op {
                            BinaryOp::Max => self.bin(BinaryOp::Greater, a, b, span)?,
                            _ => self.bin(BinaryOp::Greater, b, a, span)?,
                        };
                        let mask = if i == 0 {
                            first_wins
                        } else {
                            let one = self.fill_like(1.0, a, span)?;
                            self.bin(BinaryOp::Sub, one, first_wins, span)?
                        };
                        self.bin(BinaryOp::Mul, g, mask, span)?
                    }
                    (BinaryOp::Greater, _) => return Ok(None),
                }
            }
            Op::Select => {
                if i == 0 {
                    return Ok(None);
                }
                let zero = self.fill_like(0.0, g, span)?;
                let (on, off) = if i == 1 { (g, zero) } else { (zero, g) };
                self.add(Op::Select, &[ops[0], on, off], None, span)?
            }
            Op::Broadcast => self.unbroadcast(g, x, span)?,
            Op::Reshape => {
                let ty = self.g.ty(x).clone();
                self.add(Op::Reshape, &[g], Some(ty), span)?
            }
            Op::Transpose { perm } => {
                let mut inverse = vec![0; perm.len()];
                for (out_axis, &in_axis) in perm.iter().enumerate() {
                    inverse[in_axis] = out_axis;
                }
                self.add(Op::Transpose { perm: inverse }, &[g], None, span)?
            }
            Op::Slice { axis, start, len } => {
                let full = self.g.ty(x).clone();
                let mut parts = Vec::new();
                if *start > 0 {
                    let mut shape = full.shape.clone();
                    shape[*axis] = *start;
                    parts.push(self.add(Op::Fill { value: 0.0 }, &[], Some(Type { dtype: full.dtype, shape }), span)?);
                }
                parts.push(g);
                let after = full.shape[*axis] - start - len;
                if after > 0 {
                    let mut shape = full.shape.clone();
                    shape[*axis] = after;
                    parts.push(self.add(Op::Fill { value: 0.0 }, &[], Some(Type { dtype: full.dtype, shape }), span)?);
                }
                if parts.len() == 1 { g } else { self.add(Op::Concat { axis: *axis }, &parts, None, span)? }
            }
            Op::Concat { axis } => {
                let start: usize = ops[..i].iter().map(|&o| self.g.ty(o).shape[*axis]).sum();
                let len = self.g.ty(x).shape[*axis];
                self.add(Op::Slice { axis: *axis, start, len }, &[g], None, span)?
            }
            Op::Reduce { op: ReduceOp::Sum, axes } => self.expand(g, x, axes, span)?,
            Op::Reduce { op: ReduceOp::Max, axes } => {
                // Every position equal to the maximum receives the gradient.
                let gx = self.expand(g, x, axes, span)?;
                let yx = self.expand(n, x, axes, span)?;
                let above = self.bin(BinaryOp::Greater, x, yx, span)?;
                let below = self.bin(BinaryOp::Greater, yx, x, span)?;
                let differ = self.bin(BinaryOp::Add, above, below, span)?;
                let one = self.fill_like(1.0, x, span)?;
                let equal = self.bin(BinaryOp::Sub, one, differ, span)?;
                self.bin(BinaryOp::Mul, gx, equal, span)?
            }
            Op::MatMul { ta, tb } => {
                let (a, b) = (ops[0], ops[1]);
                match (i, ta, tb) {
                    (0, false, _) => self.add(Op::MatMul { ta: false, tb: !tb }, &[g, b], None, span)?,
                    (0, true, _) => self.add(Op::MatMul { ta: *tb, tb: true }, &[b, g], None, span)?,
                    (_, _, false) => self.add(Op::MatMul { ta: !ta, tb: false }, &[a, g], None, span)?,
                    (_, _, true) => self.add(Op::MatMul { ta: true, tb: *ta }, &[g, a], None, span)?,
                }
            }
            Op::Conv2d { window } => {
                let ty = self.g.ty(x).clone();
                if i == 0 {
                    self.add(Op::ConvTranspose2d { window: *window }, &[g, ops[1]], Some(ty), span)?
                } else {
                    self.add(Op::Conv2dWeightGrad { window: *window }, &[ops[0], g], None, span)?
                }
            }
            Op::ConvTranspose2d { window } => {
                if i == 0 {
                    self.add(Op::Conv2d { window: *window }, &[g, ops[1]], None, span)?
                } else {
                    self.add(Op::Conv2dWeightGrad { window: *window }, &[g, ops[0]], None, span)?
                }
            }
            Op::MaxPool2d { window } => self.add(Op::MaxPool2dGrad { window: *window }, &[x, g], None, span)?,
            Op::AvgPool2d { window } => {
                let ty = self.g.ty(x).clone();
                self.add(Op::AvgPool2dGrad { window: *window }, &[g], Some(ty), span)?
            }
            Op::AvgPool2dGrad { window } => self.add(Op::AvgPool2d { window: *window }, &[g], None, span)?,
            Op::Gather => {
                if i == 1 {
                    return Ok(None);
                }
                let ty = self.g.ty(x).clone();
                self.add(Op::ScatterAdd, &[ops[1], g], Some(ty), span)?
            }
            Op::ScatterAdd => {
                if i == 0 {
                    return Ok(None);
                }
                self.add(Op::Gather, &[g, ops[0]], None, span)?
            }
            Op::OneHot { .. } | Op::Random { .. } | Op::Cast { .. } | Op::StopGradient => return Ok(None),
            Op::Input { .. } | Op::Fill { .. } => return Ok(None),
            Op::Conv2dWeightGrad { .. } | Op::MaxPool2dGrad { .. } | Op::Scan(_) | Op::Project { .. } => {
                return Err(IrError {
                    message: format!("no gradient rule for `{}` on the path to a trained parameter", node.op.name()),
                    span,
                });
            }
        };
        Ok(Some(result))
    }

    /// The adjoint of a broadcast: sum over the expanded axes, then restore the operand's shape.
    fn unbroadcast(&mut self, g: NodeId, x: NodeId, span: Span) -> Result<NodeId, IrError> {
        let from = self.g.ty(x).clone();
        let to = self.g.ty(g).clone();
        let lead = to.rank() - from.rank();
        let axes: Vec<usize> = (0..to.rank())
            .filter(|&a| a < lead || (from.shape[a - lead] == 1 && to.shape[a] != 1))
            .collect();
        let summed = if axes.is_empty() { g } else { self.add(Op::Reduce { op: ReduceOp::Sum, axes }, &[g], None, span)? };
        if self.g.ty(summed).shape == from.shape {
            Ok(summed)
        } else {
            self.add(Op::Reshape, &[summed], Some(from), span)
        }
    }

    /// Undo a reduction over `axes`: reshape `v` to keep those axes as 1, then broadcast to `x`.
    fn expand(&mut self, v: NodeId, x: NodeId, axes: &[usize], span: Span) -> Result<NodeId, IrError> {
        let full = self.g.ty(x).clone();
        let kept: Vec<usize> = (0..full.rank()).map(|a| if axes.contains(&a) { 1 } else { full.shape[a] }).collect();
        let dtype = self.g.ty(v).dtype;
        let r = self.add(Op::Reshape, &[v], Some(Type { dtype, shape: kept }), span)?;
        self.add(Op::Broadcast, &[r], Some(Type { dtype, shape: full.shape }), span)
    }
}
