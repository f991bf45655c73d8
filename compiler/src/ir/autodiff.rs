//! Reverse-mode automatic differentiation as a graph-to-graph transform.
//!
//! [`grad`] appends the backward pass to the same graph, so the optimizer update and every later
//! pass see forward and backward together. Each op has one vector-Jacobian rule in
//! [`Backward::vjp`]; an op on a path from a trained parameter to the loss that has no rule is an
//! error carrying the op's span — never a silent zero gradient.
//!
//! A `Scan` is differentiated as a whole (`Backward::scan_vjp`): its backward pass is a second
//! scan, running the other way, whose body is the reverse mode of the forward body, so a
//! recurrence of any length keeps a graph of fixed size. To give that body each step's incoming
//! carries, differentiating a scan adds them to the forward scan's per-step outputs (appended
//! after its own, so existing `Project`s keep their meaning; added once however often the graph
//! is differentiated). The step's matmul results and its exp, tanh and sigmoid results are
//! saved the same way ([`saves_recomputation`]): the backward body reads them rather than
//! recomputing them, which removes a third of an LSTM's recurrent matmul work and all of its
//! gate activations from the backward pass.

use std::collections::{BTreeMap, HashMap, HashSet};

use netc_grammar::Span;
use petgraph::Direction;

use super::{BinaryOp, DType, Graph, IrError, NodeId, Op, ReduceOp, Role, Scan, Type, UnaryOp};

/// Whether a scan body's value is saved for the backward body rather than recomputed there:
/// matmuls (the step's most expensive work) and the transcendentals whose derivative is
/// written with their result (an LSTM's gates and `tanh(c)`: five per element, about 4 ns
/// each, for one stored float each).
fn saves_recomputation(op: &Op) -> bool {
    matches!(
        op,
        Op::MatMul { .. } | Op::Unary(UnaryOp::Exp | UnaryOp::Tanh | UnaryOp::Sigmoid)
    )
}

/// Gradients of `loss` (a scalar) with respect to each of `wrt`. `None` where the loss does not
/// depend on that node.
pub fn grad(
    graph: &mut Graph,
    loss: NodeId,
    wrt: &[NodeId],
) -> Result<Vec<Option<NodeId>>, IrError> {
    if !on_paths(graph, wrt, &[loss]).contains(&loss) {
        return Ok(vec![None; wrt.len()]);
    }
    let span = graph.node(loss).span;
    let seed = graph.add(
        Op::Fill { value: 1.0 },
        &[],
        Some(graph.ty(loss).clone()),
        span,
    )?;
    backprop(graph, &[(loss, seed)], wrt)
}

/// Reverse mode from several outputs at once: `seeds` pairs a node with the adjoint flowing into
/// it (a node seeded twice gets the sum). Returns the adjoint of each of `wrt`, `None` where no
/// seeded node depends on it. [`grad`] is the one-scalar case; a `Scan`'s backward body uses the
/// general form, seeded with the adjoints of the new carries and of the per-step outputs.
pub fn backprop(
    graph: &mut Graph,
    seeds: &[(NodeId, NodeId)],
    wrt: &[NodeId],
) -> Result<Vec<Option<NodeId>>, IrError> {
    let targets: Vec<NodeId> = seeds.iter().map(|&(n, _)| n).collect();
    let relevant = on_paths(graph, wrt, &targets);
    let order: Vec<NodeId> = graph
        .topo_order()
        .into_iter()
        .filter(|n| relevant.contains(n))
        .collect();
    let mut b = Backward {
        g: graph,
        adjoints: HashMap::new(),
        results: HashMap::new(),
    };
    for &(node, seed) in seeds {
        if relevant.contains(&node) {
            b.accumulate(node, seed)?;
        }
    }
    for &n in order.iter().rev() {
        match b.g.node(n).op {
            // A scan's adjoint is one node per result, gathered from its projects below.
            Op::Scan(_) => {
                if let Some(results) = b.results.remove(&n) {
                    for (operand, contribution) in b.scan_vjp(n, &results, &relevant)? {
                        b.accumulate(operand, contribution)?;
                    }
                }
                continue;
            }
            Op::Project { index } => {
                let scan = b.g.operands(n)[0];
                if let Some(&g) = b.adjoints.get(&n)
                    && relevant.contains(&scan)
                {
                    b.accumulate_result(scan, index, g)?;
                }
                continue;
            }
            _ => {}
        }
        let Some(&g) = b.adjoints.get(&n) else {
            continue;
        };
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

/// Nodes that lie on some path from one of `from` to one of `to`; `StopGradient` cuts paths.
fn on_paths(graph: &Graph, from: &[NodeId], to: &[NodeId]) -> HashSet<NodeId> {
    let mut forward: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = from.to_vec();
    while let Some(n) = stack.pop() {
        if !forward.insert(n) || matches!(graph.node(n).op, Op::StopGradient) {
            continue;
        }
        stack.extend(graph.graph.neighbors_directed(n, Direction::Outgoing));
    }
    let mut both = HashSet::new();
    let mut stack = to.to_vec();
    while let Some(n) = stack.pop() {
        let cut = matches!(graph.node(n).op, Op::StopGradient) && !from.contains(&n);
        if !forward.contains(&n) || cut || !both.insert(n) {
            continue;
        }
        stack.extend(graph.graph.neighbors_directed(n, Direction::Incoming));
    }
    both
}

struct Backward<'g> {
    g: &'g mut Graph,
    adjoints: HashMap<NodeId, NodeId>,
    /// Adjoints of the results of multi-result nodes (scans), by result index: what their
    /// `Project` users received.
    results: HashMap<NodeId, BTreeMap<usize, NodeId>>,
}

impl Backward<'_> {
    fn accumulate(&mut self, x: NodeId, contribution: NodeId) -> Result<(), IrError> {
        let total = match self.adjoints.get(&x) {
            Some(&previous) => {
                let span = self.g.node(x).span;
                self.g.add(
                    Op::Binary(BinaryOp::Add),
                    &[previous, contribution],
                    None,
                    span,
                )?
            }
            None => contribution,
        };
        self.adjoints.insert(x, total);
        Ok(())
    }

    /// Add `contribution` to the adjoint of result `index` of the multi-result node `scan`.
    fn accumulate_result(
        &mut self,
        scan: NodeId,
        index: usize,
        contribution: NodeId,
    ) -> Result<(), IrError> {
        let previous = self.results.get(&scan).and_then(|r| r.get(&index)).copied();
        let total = match previous {
            Some(previous) => {
                let span = self.g.node(contribution).span;
                self.g.add(
                    Op::Binary(BinaryOp::Add),
                    &[previous, contribution],
                    None,
                    span,
                )?
            }
            None => contribution,
        };
        self.results.entry(scan).or_default().insert(index, total);
        Ok(())
    }

    /// The vector-Jacobian product of a `Scan` node `n`, given the adjoints of its results
    /// (`results`, by result index): the contribution to each of its operands in `relevant`.
    ///
    /// As JAX's scan transpose: the forward scan is changed to also emit each step's incoming
    /// carries as extra stacked outputs (residuals), and a second scan runs in the opposite
    /// direction. Its body recomputes the forward body from (carry-in, x, consts) of that step
    /// and runs reverse mode on it, seeded with the adjoints of the new carries (threaded as the
    /// backward scan's carries) and of that step's outputs (read as its sequence inputs). It
    /// carries the adjoints of the float carries and the running sums of the consts' adjoints,
    /// and emits each step's adjoint of the sequence inputs as its outputs (aligned with them).
    /// Both bodies have a fixed size, so the graph does not grow with the sequence length.
    fn scan_vjp(
        &mut self,
        n: NodeId,
        results: &BTreeMap<usize, NodeId>,
        relevant: &HashSet<NodeId>,
    ) -> Result<Vec<(NodeId, NodeId)>, IrError> {
        let node = self.g.node(n).clone();
        let span = node.span;
        let Op::Scan(scan) = &node.op else {
            return Err(IrError {
                message: format!("scan_vjp on a `{}` node", node.op.name()),
                span,
            });
        };
        let (nc, nx, nk) = (scan.carries, scan.xs, scan.consts);
        let ops = self.g.operands(n);
        if ops.len() != nc + nx + nk || scan.body.outputs.len() < nc {
            return Err(IrError {
                message: "malformed scan: operands or body outputs do not match its counts".into(),
                span,
            });
        }
        let ny = scan.body.outputs.len() - nc;
        let ty = |g: &Graph, id: NodeId| g.ty(id).clone();
        let step_ty = |t: Type| Type {
            dtype: t.dtype,
            shape: t.shape[1..].to_vec(),
        };
        let stacked_ty = |t: &Type| {
            let mut shape = vec![scan.length];
            shape.extend(&t.shape);
            Type {
                dtype: t.dtype,
                shape,
            }
        };
        let is_float = |g: &Graph, id: NodeId| g.ty(id).dtype == DType::F32;
        let d_carries: Vec<usize> = (0..nc).filter(|&i| is_float(self.g, ops[i])).collect();
        let d_xs: Vec<usize> = (0..nx)
            .filter(|&i| is_float(self.g, ops[nc + i]) && relevant.contains(&ops[nc + i]))
            .collect();
        let d_consts: Vec<usize> = (0..nk)
            .filter(|&j| {
                let o = ops[nc + nx + j];
                is_float(self.g, o) && relevant.contains(&o)
            })
            .collect();
        let seeded_ys: Vec<usize> = results
            .keys()
            .filter(|&&k| k >= nc && k < nc + ny)
            .map(|&k| k - nc)
            .collect();

        // Residuals: each step's incoming carries, as extra per-step outputs of the forward scan.
        let mut residual = vec![None; nc];
        if let Op::Scan(fwd) = &mut self.g.graph[n].op {
            for (i, slot) in residual.iter_mut().enumerate() {
                let Some(input) = fwd.body.find_input(&format!("carry{i}")) else {
                    continue;
                };
                let existing = fwd.body.outputs[nc..].iter().position(|o| o.node == input);
                let k = match existing {
                    Some(k) => k,
                    None => {
                        fwd.body.set_output(&format!("carry_in{i}"), input);
                        fwd.body.outputs.len() - 1 - nc
                    }
                };
                *slot = Some(nc + k);
            }
        }
        let mut residual_nodes = vec![None; nc];
        for i in 0..nc {
            if let Some(index) = residual[i] {
                let t = stacked_ty(self.g.ty(ops[i]));
                residual_nodes[i] = Some(self.add(Op::Project { index }, &[n], Some(t), span)?);
            }
        }
        // Saved results: each step's matmul results and transcendental outputs, also as extra
        // per-step outputs, so the backward body reads them instead of recomputing the step's
        // most expensive work.
        let saved = self.save_results(n, nc, span)?;

        // The backward body: inputs first, in the order the scan contract names them.
        let mut bb = Graph::new();
        let mut carry_in = Vec::new();
        for &i in &d_carries {
            let name = format!("carry{}", carry_in.len());
            carry_in.push(bb.input(&name, Role::Data, ty(self.g, ops[i]), span));
        }
        let mut names: HashMap<String, NodeId> = HashMap::new();
        let mut x_count = 0;
        let mut next_x = |bb: &mut Graph, t: Type| {
            let id = bb.input(&format!("x{x_count}"), Role::Data, t, span);
            x_count += 1;
            id
        };
        for i in 0..nx {
            let id = next_x(&mut bb, step_ty(ty(self.g, ops[nc + i])));
            names.insert(format!("x{i}"), id);
        }
        for i in 0..nc {
            if residual[i].is_some() {
                let id = next_x(&mut bb, ty(self.g, ops[i]));
                names.insert(format!("carry{i}"), id);
            }
        }
        let saved_in: Vec<NodeId> = saved
            .iter()
            .map(|&(m, _)| next_x(&mut bb, scan.body.ty(m).clone()))
            .collect();
        let mut dy_in = Vec::new();
        for &j in &seeded_ys {
            let t = step_ty(ty(self.g, results[&(nc + j)]));
            dy_in.push(next_x(&mut bb, t));
        }
        for j in 0..nk {
            let id = bb.input(
                &format!("const{j}"),
                Role::Data,
                ty(self.g, ops[nc + nx + j]),
                span,
            );
            names.insert(format!("const{j}"), id);
        }

        // Recompute the step, then differentiate it.
        let copied = copy_graph(&mut bb, &scan.body, &names)?;
        let mut seeds = Vec::new();
        for (p, &i) in d_carries.iter().enumerate() {
            seeds.push((copied[&scan.body.outputs[i].node], carry_in[p]));
        }
        for (q, &j) in seeded_ys.iter().enumerate() {
            seeds.push((copied[&scan.body.outputs[nc + j].node], dy_in[q]));
        }
        let mut wrt = Vec::new();
        let carry_wrt: Vec<Option<usize>> = d_carries
            .iter()
            .map(|&i| {
                names.get(&format!("carry{i}")).map(|&id| {
                    wrt.push(id);
                    wrt.len() - 1
                })
            })
            .collect();
        let x_start = wrt.len();
        wrt.extend(d_xs.iter().map(|i| names[&format!("x{i}")]));
        let const_start = wrt.len();
        wrt.extend(d_consts.iter().map(|j| names[&format!("const{j}")]));
        let grads = backprop(&mut bb, &seeds, &wrt)?;
        // Once the adjoints exist, each recomputed saved value is replaced by the saved one
        // (differentiating a matmul needs only its operands; exp, tanh and sigmoid need their
        // results), and the recomputation is dead code.
        for (&(m, _), &input) in saved.iter().zip(&saved_in) {
            bb.replace_uses(copied[&m], input);
        }
        let zero = |bb: &mut Graph, t: Type| bb.add(Op::Fill { value: 0.0 }, &[], Some(t), span);
        for (p, &i) in d_carries.iter().enumerate() {
            let g = match carry_wrt[p].and_then(|w| grads[w]) {
                Some(g) => g,
                None => zero(&mut bb, ty(self.g, ops[i]))?,
            };
            bb.set_output(&format!("carry{p}"), g);
        }
        // A const's adjoint is summed over the steps. Terms that are contractions over the
        // batch rows (`a^T b`, a weight's gradient; `sum over rows`, a bias's) are summed after
        // the loop as one contraction over all steps' rows, a large efficient matmul instead of
        // one small matmul and one accumulation per step; the rest is a running sum (a carry).
        let mut const_terms = Vec::new();
        let mut kept = Vec::new();
        for (q, &j) in d_consts.iter().enumerate() {
            let (terms, rest) = match grads[const_start + q] {
                Some(g) => split_over_rows(&bb, g),
                None => (Vec::new(), Vec::new()),
            };
            if let Some((&first, others)) = rest.split_first() {
                let name = format!("carry{}", d_carries.len() + kept.len());
                let sum = bb.input(&name, Role::Data, ty(self.g, ops[nc + nx + j]), span);
                let mut total = bb.add(Op::Binary(BinaryOp::Add), &[sum, first], None, span)?;
                for &r in others {
                    total = bb.add(Op::Binary(BinaryOp::Add), &[total, r], None, span)?;
                }
                bb.set_output(&name, total);
                kept.push(q);
            }
            const_terms.push(terms);
        }
        // Per-step outputs, in order: the adjoints of the sequence inputs, then what the
        // hoisted terms need.
        let mut ys: Vec<NodeId> = Vec::new();
        for (r, &i) in d_xs.iter().enumerate() {
            let g = match grads[x_start + r] {
                Some(g) => g,
                None => zero(&mut bb, step_ty(ty(self.g, ops[nc + i])))?,
            };
            bb.set_output(&format!("y{r}"), g);
            ys.push(g);
        }
        // The per-step operands of the hoisted terms: a sequence input is already stacked
        // outside; anything else becomes an extra per-step output.
        let stacked_xs: Vec<NodeId> = ops[nc..nc + nx]
            .iter()
            .copied()
            .chain(residual_nodes.iter().flatten().copied())
            .chain(saved.iter().map(|&(_, stacked)| stacked))
            .chain(seeded_ys.iter().map(|j| results[&(nc + j)]))
            .collect();
        let mut per_step = |bb: &mut Graph, v: NodeId| -> PerStep {
            if let Op::Input { name, .. } = &bb.node(v).op
                && let Some(k) = name.strip_prefix('x').and_then(|k| k.parse::<usize>().ok())
            {
                return PerStep::Stacked(stacked_xs[k]);
            }
            let e = match ys.iter().position(|&y| y == v) {
                Some(e) => e,
                None => {
                    bb.set_output(&format!("y{}", ys.len()), v);
                    ys.push(v);
                    ys.len() - 1
                }
            };
            PerStep::Output(e)
        };
        let const_terms: Vec<Vec<(RowTerm, PerStep, Option<PerStep>)>> = const_terms
            .into_iter()
            .map(|terms| {
                terms
                    .into_iter()
                    .map(|t| match t {
                        RowTerm::Outer(a, b) => {
                            (t, per_step(&mut bb, a), Some(per_step(&mut bb, b)))
                        }
                        RowTerm::Rows(a) => (t, per_step(&mut bb, a), None),
                    })
                    .collect()
            })
            .collect();

        let y_types: Vec<Type> = ys.iter().map(|&v| bb.ty(v).clone()).collect();

        // The backward scan, running the other way over the same steps.
        let mut operands = Vec::new();
        for &i in &d_carries {
            let init = match results.get(&i) {
                Some(&g) => g,
                None => self.fill_like(0.0, ops[i], span)?,
            };
            operands.push(init);
        }
        for &q in &kept {
            operands.push(self.fill_like(0.0, ops[nc + nx + d_consts[q]], span)?);
        }
        operands.extend(&stacked_xs);
        operands.extend(&ops[nc + nx..]);
        let backward = Scan {
            body: bb,
            length: scan.length,
            reverse: !scan.reverse,
            carries: d_carries.len() + kept.len(),
            xs: nx + residual_nodes.iter().flatten().count() + saved.len() + seeded_ys.len(),
            consts: nk,
        };
        let placeholder = Type::f32(vec![]);
        let bwd = self.add(
            Op::Scan(Box::new(backward)),
            &operands,
            Some(placeholder),
            span,
        )?;

        let mut out = Vec::new();
        for (p, &i) in d_carries.iter().enumerate() {
            if relevant.contains(&ops[i]) {
                let t = ty(self.g, ops[i]);
                out.push((
                    ops[i],
                    self.add(Op::Project { index: p }, &[bwd], Some(t), span)?,
                ));
            }
        }
        let carries = d_carries.len() + kept.len();
        let stacked = |this: &mut Self, v: &PerStep| -> Result<NodeId, IrError> {
            match *v {
                PerStep::Stacked(id) => Ok(id),
                PerStep::Output(e) => {
                    let t = stacked_ty(&y_types[e]);
                    let index = carries + e;
                    this.add(Op::Project { index }, &[bwd], Some(t), span)
                }
            }
        };
        for (q, &j) in d_consts.iter().enumerate() {
            let o = ops[nc + nx + j];
            let t = ty(self.g, o);
            let mut total = match kept.iter().position(|&k| k == q) {
                Some(k) => {
                    let index = d_carries.len() + k;
                    Some(self.add(Op::Project { index }, &[bwd], Some(t.clone()), span)?)
                }
                None => None,
            };
            for (term, a, b) in &const_terms[q] {
                let a = stacked(self, a)?;
                let term = match (term, b) {
                    (RowTerm::Outer(..), Some(b)) => {
                        let b = stacked(self, b)?;
                        let a = self.merge_steps(a, span)?;
                        let b = self.merge_steps(b, span)?;
                        self.add(
                            Op::MatMul {
                                ta: true,
                                tb: false,
                            },
                            &[a, b],
                            None,
                            span,
                        )?
                    }
                    _ => {
                        let axes = vec![0, 1];
                        self.add(
                            Op::Reduce {
                                op: ReduceOp::Sum,
                                axes,
                            },
                            &[a],
                            None,
                            span,
                        )?
                    }
                };
                total = Some(match total {
                    Some(sum) => self.bin(BinaryOp::Add, sum, term, span)?,
                    None => term,
                });
            }
            let total = match total {
                Some(total) => total,
                None => self.fill_like(0.0, o, span)?,
            };
            out.push((o, total));
        }
        for (r, &i) in d_xs.iter().enumerate() {
            let o = ops[nc + i];
            let t = ty(self.g, o);
            let index = carries + r;
            out.push((o, self.add(Op::Project { index }, &[bwd], Some(t), span)?));
        }
        Ok(out)
    }

    /// `[T, B, m]` as `[T * B, m]`: every step's rows as rows of one matrix.
    fn merge_steps(&mut self, x: NodeId, span: Span) -> Result<NodeId, IrError> {
        let shape = &self.g.ty(x).shape;
        let merged = Type::f32(vec![shape[0] * shape[1], shape[2]]);
        self.add(Op::Reshape, &[x], Some(merged), span)
    }

    /// Make forward scan `n` also emit, per step, the result of every float matmul of its
    /// body (once, however often it is differentiated), and return each such body node with
    /// the outer node holding its stacked values. `nc` is the scan's carry count.
    fn save_results(
        &mut self,
        n: NodeId,
        nc: usize,
        span: Span,
    ) -> Result<Vec<(NodeId, NodeId)>, IrError> {
        let Op::Scan(fwd) = &mut self.g.graph[n].op else {
            return Ok(Vec::new());
        };
        let length = fwd.length;
        let saved_values: Vec<NodeId> = fwd
            .body
            .topo_order()
            .into_iter()
            .filter(|&m| {
                let node = fwd.body.node(m);
                saves_recomputation(&node.op) && node.ty.dtype == DType::F32
            })
            .collect();
        let mut indexed = Vec::new();
        for (k, &m) in saved_values.iter().enumerate() {
            let existing = fwd.body.outputs[nc..].iter().position(|o| o.node == m);
            let index = match existing {
                Some(i) => nc + i,
                None => {
                    fwd.body.set_output(&format!("saved{k}"), m);
                    fwd.body.outputs.len() - 1
                }
            };
            let mut shape = vec![length];
            shape.extend(&fwd.body.ty(m).shape);
            indexed.push((m, index, Type::f32(shape)));
        }
        let mut saved = Vec::new();
        for (m, index, ty) in indexed {
            saved.push((m, self.add(Op::Project { index }, &[n], Some(ty), span)?));
        }
        Ok(saved)
    }

    fn add(
        &mut self,
        op: Op,
        operands: &[NodeId],
        ty: Option<Type>,
        span: Span,
    ) -> Result<NodeId, IrError> {
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
                    parts.push(self.add(
                        Op::Fill { value: 0.0 },
                        &[],
                        Some(Type {
                            dtype: full.dtype,
                            shape,
                        }),
                        span,
                    )?);
                }
                parts.push(g);
                let after = full.shape[*axis] - start - len;
                if after > 0 {
                    let mut shape = full.shape.clone();
                    shape[*axis] = after;
                    parts.push(self.add(
                        Op::Fill { value: 0.0 },
                        &[],
                        Some(Type {
                            dtype: full.dtype,
                            shape,
                        }),
                        span,
                    )?);
                }
                if parts.len() == 1 {
                    g
                } else {
                    self.add(Op::Concat { axis: *axis }, &parts, None, span)?
                }
            }
            Op::Concat { axis } => {
                let start: usize = ops[..i].iter().map(|&o| self.g.ty(o).shape[*axis]).sum();
                let len = self.g.ty(x).shape[*axis];
                self.add(
                    Op::Slice {
                        axis: *axis,
                        start,
                        len,
                    },
                    &[g],
                    None,
                    span,
                )?
            }
            Op::Reduce {
                op: ReduceOp::Sum,
                axes,
            } => self.expand(g, x, axes, span)?,
            Op::Reduce {
                op: ReduceOp::Max,
                axes,
            } => {
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
                    (0, false, _) => {
                        self.add(Op::MatMul { ta: false, tb: !tb }, &[g, b], None, span)?
                    }
                    (0, true, _) => {
                        self.add(Op::MatMul { ta: *tb, tb: true }, &[b, g], None, span)?
                    }
                    (_, _, false) => {
                        self.add(Op::MatMul { ta: !ta, tb: false }, &[a, g], None, span)?
                    }
                    (_, _, true) => {
                        self.add(Op::MatMul { ta: true, tb: *ta }, &[g, a], None, span)?
                    }
                }
            }
            Op::Conv2d { window } => {
                let ty = self.g.ty(x).clone();
                if i == 0 {
                    self.add(
                        Op::ConvTranspose2d { window: *window },
                        &[g, ops[1]],
                        Some(ty),
                        span,
                    )?
                } else {
                    self.add(
                        Op::Conv2dWeightGrad { window: *window },
                        &[ops[0], g],
                        None,
                        span,
                    )?
                }
            }
            Op::ConvTranspose2d { window } => {
                if i == 0 {
                    self.add(Op::Conv2d { window: *window }, &[g, ops[1]], None, span)?
                } else {
                    self.add(
                        Op::Conv2dWeightGrad { window: *window },
                        &[g, ops[0]],
                        None,
                        span,
                    )?
                }
            }
            Op::MaxPool2d { window } => {
                self.add(Op::MaxPool2dGrad { window: *window }, &[x, g], None, span)?
            }
            Op::AvgPool2d { window } => {
                let ty = self.g.ty(x).clone();
                self.add(Op::AvgPool2dGrad { window: *window }, &[g], Some(ty), span)?
            }
            Op::AvgPool2dGrad { window } => {
                self.add(Op::AvgPool2d { window: *window }, &[g], None, span)?
            }
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
            Op::OneHot { .. } | Op::Random { .. } | Op::Cast { .. } | Op::StopGradient => {
                return Ok(None);
            }
            Op::Input { .. } | Op::Fill { .. } => return Ok(None),
            // Scans and projects are handled in `backprop` (one rule for all results at once).
            Op::Conv2dWeightGrad { .. }
            | Op::MaxPool2dGrad { .. }
            | Op::Scan(_)
            | Op::Project { .. } => {
                return Err(IrError {
                    message: format!(
                        "no gradient rule for `{}` on the path to a trained parameter",
                        node.op.name()
                    ),
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
        let summed = if axes.is_empty() {
            g
        } else {
            self.add(
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes,
                },
                &[g],
                None,
                span,
            )?
        };
        if self.g.ty(summed).shape == from.shape {
            Ok(summed)
        } else {
            self.add(Op::Reshape, &[summed], Some(from), span)
        }
    }

    /// Undo a reduction over `axes`: reshape `v` to keep those axes as 1, then broadcast to `x`.
    fn expand(
        &mut self,
        v: NodeId,
        x: NodeId,
        axes: &[usize],
        span: Span,
    ) -> Result<NodeId, IrError> {
        let full = self.g.ty(x).clone();
        let kept: Vec<usize> = (0..full.rank())
            .map(|a| if axes.contains(&a) { 1 } else { full.shape[a] })
            .collect();
        let dtype = self.g.ty(v).dtype;
        let r = self.add(Op::Reshape, &[v], Some(Type { dtype, shape: kept }), span)?;
        self.add(
            Op::Broadcast,
            &[r],
            Some(Type {
                dtype,
                shape: full.shape,
            }),
            span,
        )
    }
}

/// A term of a const's per-step adjoint that sums over steps as one contraction over rows.
#[derive(Clone, Copy)]
enum RowTerm {
    /// `matmul(a^T, b)` of two `[B, m]`, `[B, n]` step values (a weight's gradient).
    Outer(NodeId, NodeId),
    /// `reduce_sum(a, axes=[0])` of a `[B, m]` step value (a bias's gradient).
    Rows(NodeId),
}

/// Where a hoisted term's operand is stacked over steps outside the backward scan.
enum PerStep {
    /// A sequence input of the backward scan: its outer operand.
    Stacked(NodeId),
    /// The backward scan's per-step output number `e` (`y{e}`).
    Output(usize),
}

/// Split adjoint `g` (inside a backward body) into a sum of [`RowTerm`]s and other terms,
/// looking through `add`s of same-shaped terms.
fn split_over_rows(body: &Graph, g: NodeId) -> (Vec<RowTerm>, Vec<NodeId>) {
    let shape = body.ty(g).shape.clone();
    let rank2 = |id: NodeId| body.ty(id).rank() == 2;
    let (mut terms, mut rest) = (Vec::new(), Vec::new());
    let mut stack = vec![g];
    while let Some(x) = stack.pop() {
        let operands = body.operands(x);
        match &body.node(x).op {
            Op::Binary(BinaryOp::Add) if operands.iter().all(|&o| body.ty(o).shape == shape) => {
                stack.extend(operands.iter().rev());
            }
            Op::MatMul {
                ta: true,
                tb: false,
            } if operands.iter().all(|&o| rank2(o)) => {
                terms.push(RowTerm::Outer(operands[0], operands[1]));
            }
            Op::Reduce {
                op: ReduceOp::Sum,
                axes,
            } if axes == &[0] && rank2(operands[0]) => terms.push(RowTerm::Rows(operands[0])),
            _ => rest.push(x),
        }
    }
    (terms, rest)
}

/// Copy every non-input node of `src` into `dst` (in topological order, with its op, type and
/// span), wiring `src`'s `Input` nodes to the `dst` nodes `inputs` gives by name. Returns the map
/// from `src` nodes to their copies. An input of `src` missing from `inputs` is an error.
fn copy_graph(
    dst: &mut Graph,
    src: &Graph,
    inputs: &HashMap<String, NodeId>,
) -> Result<HashMap<NodeId, NodeId>, IrError> {
    let mut map = HashMap::new();
    for id in src.topo_order() {
        let node = src.node(id);
        let copy = if let Op::Input { name, .. } = &node.op {
            *inputs.get(name).ok_or_else(|| IrError {
                message: format!("scan body input `{name}` has no matching operand"),
                span: node.span,
            })?
        } else {
            let operands: Vec<NodeId> = src.operands(id).iter().map(|o| map[o]).collect();
            dst.add(node.op.clone(), &operands, Some(node.ty.clone()), node.span)?
        };
        map.insert(id, copy);
    }
    Ok(map)
}
