//! Lowering a step graph to the kernel IR: which nodes fuse, which get a slot, and the kernels.
//!
//! Fusion rule: an elementwise-family node (unary, binary, select, fill, broadcast, transpose,
//! slice) is computed inside its user's kernel when that user is elementwise too and nothing
//! else needs the value; data movement (broadcast, transpose, slice) becomes the index map of a
//! load, never a copy. A value is materialised in a slot when it is a graph output, has several
//! users, feeds a non-elementwise op (matmul, reduce, fallback, reshape), or is a computed value
//! about to be broadcast to more elements (recomputing it per copy would multiply the work).
//! Reshape, stop_gradient and same-type casts are free: they share their operand's slot.

use std::collections::{HashMap, HashSet};

use netc_compiler::ir::{BinaryOp, DType, Graph, NodeId, Op, Role, Type, UnaryOp};

use crate::kernel::{Coverage, Expr, Kernel, KernelProgram, Slot};

/// Whether `add(mul(a, b), c)` becomes one fused multiply-add (one rounding instead of two).
/// On: it is what the hardware does well, and the tests allow the last-bit differences.
const FUSE_FMA: bool = true;

/// The most cheap operations an elementwise value may cost for its users to recompute it
/// instead of reading it from memory ([`Planner::recomputable`]).
const RECOMPUTE_OPS: usize = 3;

/// What a node becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Input,
    /// Shares its operand's memory.
    Alias,
    /// Computed elementwise (fused into a user, or materialised by its own kernel).
    Elementwise,
    Reduce,
    MatMul,
    /// A convolution, pool or index/layout op on a native Rust kernel.
    Native,
    /// A scan: one fallback kernel producing all its projections.
    Scan,
    /// A projection of a scan, produced by the scan's kernel.
    Project,
    Fallback,
}

fn classify(graph: &Graph, id: NodeId) -> Class {
    let node = graph.node(id);
    let f32_out = node.ty.dtype == DType::F32;
    let operand_f32 = |i: usize| {
        graph
            .operands(id)
            .get(i)
            .is_some_and(|&o| graph.ty(o).dtype == DType::F32)
    };
    match &node.op {
        Op::Input { .. } => Class::Input,
        Op::Reshape | Op::StopGradient => Class::Alias,
        Op::Cast { to } if graph.operands(id).first().map(|&o| graph.ty(o).dtype) == Some(*to) => {
            Class::Alias
        }
        Op::Unary(_) | Op::Binary(_) | Op::Broadcast | Op::Transpose { .. } | Op::Slice { .. }
            if f32_out =>
        {
            Class::Elementwise
        }
        Op::Fill { .. } if f32_out => Class::Elementwise,
        Op::Select if f32_out && operand_f32(0) => Class::Elementwise,
        Op::Reduce { .. } if f32_out => Class::Reduce,
        Op::MatMul { .. } => Class::MatMul,
        Op::Scan(_) => Class::Scan,
        Op::Project { .. } => Class::Project,
        op if crate::native::supports(
            op,
            &graph
                .operands(id)
                .iter()
                .map(|&o| graph.ty(o).dtype)
                .collect::<Vec<_>>(),
            node.ty.dtype,
        ) =>
        {
            Class::Native
        }
        _ => Class::Fallback,
    }
}

/// For a reshape from `operand` to `alias` that only splits axes: per operand axis, the
/// range of alias axes whose product it is (trailing alias axes of size 1 belong to none);
/// `None` for any other reshape.
fn split_groups(operand: &[usize], alias: &[usize]) -> Option<Vec<std::ops::Range<usize>>> {
    let mut groups = Vec::with_capacity(operand.len());
    let mut d = 0;
    for &size in operand {
        let start = d;
        let mut product = 1;
        while product < size && d < alias.len() {
            product *= alias[d];
            d += 1;
        }
        if product != size {
            return None;
        }
        groups.push(start..d);
    }
    alias[d..].iter().all(|&n| n == 1).then_some(groups)
}

/// An affine index map from the kernel's multi-index to one node's multi-index: node axis `j`
/// is `base[j] + sum_d coef[j][d] * k[d]`.
#[derive(Clone, Debug)]
struct Map {
    base: Vec<usize>,
    coef: Vec<Vec<usize>>,
    /// Rank of the kernel's index space.
    kdims: usize,
}

impl Map {
    /// This map (into an alias of shape `alias`) as a map into the operand the alias splits
    /// (`groups` from [`split_groups`]): each operand index is the row-major combination of
    /// its group's alias indices, still affine.
    fn merged(&self, groups: &[std::ops::Range<usize>], alias: &[usize]) -> Map {
        let mut base = vec![0; groups.len()];
        let mut coef = vec![vec![0; self.kdims]; groups.len()];
        for (g, range) in groups.iter().enumerate() {
            let mut weight = 1;
            for d in range.clone().rev() {
                base[g] += self.base[d] * weight;
                for (c, &k) in coef[g].iter_mut().zip(&self.coef[d]) {
                    *c += k * weight;
                }
                weight *= alias[d];
            }
        }
        Map {
            base,
            coef,
            kdims: self.kdims,
        }
    }

    fn identity(rank: usize) -> Map {
        Map {
            base: vec![0; rank],
            coef: (0..rank)
                .map(|j| (0..rank).map(|d| usize::from(j == d)).collect())
                .collect(),
            kdims: rank,
        }
    }
}

pub(crate) fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

struct Planner<'g> {
    graph: &'g Graph,
    class: HashMap<NodeId, Class>,
    users: HashMap<NodeId, Vec<NodeId>>,
    materialized: HashSet<NodeId>,
    slots: HashMap<NodeId, Slot>,
    f32_len: usize,
    i64_len: usize,
    /// Every buffer handed out, in order (for [`crate::reuse::pack`]).
    allocations: Vec<Slot>,
}

impl Planner<'_> {
    fn alloc(&mut self, ty: &Type) -> Slot {
        let slot = self.bump(ty);
        self.allocations.push(slot);
        slot
    }

    /// A fresh buffer after every earlier one; [`crate::reuse::pack`] packs them afterwards.
    fn bump(&mut self, ty: &Type) -> Slot {
        let len = ty.numel();
        match ty.dtype {
            DType::F32 => {
                // 64-byte alignment: every slot starts on a cache line and a vector boundary.
                let offset = self.f32_len.next_multiple_of(16);
                self.f32_len = offset + len;
                Slot {
                    dtype: DType::F32,
                    offset,
                    len,
                }
            }
            DType::I64 => {
                let offset = self.i64_len.next_multiple_of(8);
                self.i64_len = offset + len;
                Slot {
                    dtype: DType::I64,
                    offset,
                    len,
                }
            }
        }
    }

    /// The slot holding `id`'s value (following aliases).
    fn slot_of(&self, id: NodeId) -> Result<Slot, String> {
        self.slots
            .get(&id)
            .copied()
            .ok_or_else(|| format!("internal: node %{} has no slot", id.index()))
    }

    /// Whether alias `id` (a reshape that only splits axes, or a same-shape view) stands for a
    /// value that is not materialised (directly or through another such view): its users then
    /// inline the value through it.
    fn virtual_view(&self, id: NodeId) -> bool {
        self.class[&id] == Class::Alias && {
            let operand = self.graph.operands(id)[0];
            let unmaterialized = (self.class[&operand] == Class::Elementwise
                && !self.materialized.contains(&operand))
                || self.virtual_view(operand);
            unmaterialized
                && split_groups(&self.graph.ty(operand).shape, &self.graph.ty(id).shape).is_some()
        }
    }

    /// The users of `id`, with each alias that could be virtual (it only splits axes and is
    /// not an output) replaced by its own users, so a reshape between two elementwise ops does
    /// not force the first into memory.
    fn users_through_views(&self, id: NodeId, outputs: &HashSet<NodeId>) -> Vec<NodeId> {
        let mut users = Vec::new();
        for &u in &self.users[&id] {
            let splits = self.class[&u] == Class::Alias
                && !outputs.contains(&u)
                && split_groups(&self.graph.ty(id).shape, &self.graph.ty(u).shape).is_some();
            if splits {
                users.extend(self.users_through_views(u, outputs));
            } else {
                users.push(u);
            }
        }
        users
    }

    /// Whether every user of elementwise `id` may compute it again rather than read it from
    /// memory: it costs at most [`RECOMPUTE_OPS`] cheap operations (no transcendental) and
    /// reads at most one buffer of its own size (smaller, broadcast ones are cache-resident).
    /// Then `x * 0.5` or a bias add feeding several kernels costs each a few instructions
    /// instead of a full write and a read per user.
    fn recomputable(&self, id: NodeId) -> bool {
        let numel = self.graph.ty(id).numel();
        let mut ops = 0;
        let mut leaves = HashSet::new();
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            let node = self.graph.node(n);
            if self.virtual_view(n) {
                stack.extend(self.graph.operands(n));
                continue;
            }
            let inlined = n == id
                || (!self.materialized.contains(&n) && self.class[&n] == Class::Elementwise);
            if !inlined {
                if self.graph.ty(n).numel() >= numel {
                    leaves.insert(n);
                }
                continue;
            }
            ops += match &node.op {
                Op::Unary(u) if !matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu) => {
                    return false;
                }
                Op::Binary(BinaryOp::Div) => return false,
                Op::Unary(_) | Op::Binary(_) | Op::Select => 1,
                Op::Fill { .. } | Op::Broadcast => 0,
                // A transposed or sliced read could cost the users their vector loops.
                _ => return false,
            };
            if ops > RECOMPUTE_OPS || leaves.len() > 1 {
                return false;
            }
            stack.extend(self.graph.operands(n));
        }
        leaves.len() <= 1
    }

    /// Build the expression of `id` under `map` (a map into `id`'s own multi-index).
    fn expr(&self, id: NodeId, map: &Map, root: bool) -> Result<Expr, String> {
        if self.virtual_view(id) {
            let operand = self.graph.operands(id)[0];
            let groups = split_groups(&self.graph.ty(operand).shape, &self.graph.ty(id).shape)
                .ok_or("internal: a virtual view that is not a split")?;
            return self.expr(
                operand,
                &map.merged(&groups, &self.graph.ty(id).shape),
                false,
            );
        }
        if !root && self.materialized.contains(&id) || self.class[&id] != Class::Elementwise {
            let slot = self.slot_of(id)?;
            let ty = self.graph.ty(id);
            let strides = row_major(&ty.shape);
            let kdims = map.kdims;
            let mut out = vec![0; kdims];
            let mut offset = slot.offset;
            for (j, s) in strides.iter().enumerate() {
                offset += map.base[j] * s;
                for (d, o) in out.iter_mut().enumerate() {
                    *o += map.coef[j][d] * s;
                }
            }
            return Ok(Expr::Load {
                offset,
                strides: out,
            });
        }
        let node = self.graph.node(id);
        let ops = self.graph.operands(id);
        let sub = |i: usize, m: &Map| self.expr(ops[i], m, false);
        Ok(match &node.op {
            Op::Fill { value } => Expr::Const(*value as f32),
            Op::Unary(u) => Expr::Unary(*u, Box::new(sub(0, map)?)),
            Op::Binary(BinaryOp::Add) if FUSE_FMA => {
                let fusable_mul = |o: NodeId| {
                    !self.materialized.contains(&o)
                        && matches!(self.graph.node(o).op, Op::Binary(BinaryOp::Mul))
                        && self.class[&o] == Class::Elementwise
                };
                let (mul, other) = if fusable_mul(ops[0]) {
                    (ops[0], ops[1])
                } else if fusable_mul(ops[1]) {
                    (ops[1], ops[0])
                } else {
                    return Ok(Expr::Binary(
                        BinaryOp::Add,
                        Box::new(sub(0, map)?),
                        Box::new(sub(1, map)?),
                    ));
                };
                let m = self.graph.operands(mul);
                Expr::Fma(
                    Box::new(self.expr(m[0], map, false)?),
                    Box::new(self.expr(m[1], map, false)?),
                    Box::new(self.expr(other, map, false)?),
                )
            }
            Op::Binary(b) => Expr::Binary(*b, Box::new(sub(0, map)?), Box::new(sub(1, map)?)),
            Op::Select => Expr::Select(
                Box::new(sub(0, map)?),
                Box::new(sub(1, map)?),
                Box::new(sub(2, map)?),
            ),
            Op::Broadcast => {
                let x = &self.graph.ty(ops[0]).shape;
                let shift = node.ty.rank() - x.len();
                let kdims = map.kdims;
                let mut m = Map {
                    base: vec![0; x.len()],
                    coef: vec![vec![0; kdims]; x.len()],
                    kdims,
                };
                for (k, &size) in x.iter().enumerate() {
                    if size != 1 {
                        m.base[k] = map.base[k + shift];
                        m.coef[k] = map.coef[k + shift].clone();
                    }
                }
                sub(0, &m)?
            }
            Op::Transpose { perm } => {
                let mut m = map.clone();
                for (i, &p) in perm.iter().enumerate() {
                    m.base[p] = map.base[i];
                    m.coef[p] = map.coef[i].clone();
                }
                sub(0, &m)?
            }
            Op::Slice { axis, start, .. } => {
                let mut m = map.clone();
                m.base[*axis] += start;
                sub(0, &m)?
            }
            other => return Err(format!("internal: {} is not elementwise", other.name())),
        })
    }
}

/// Merge adjacent kernel dimensions that every load (and the contiguous output) walks as one,
/// and drop dimensions of size 1: `[32, 64]` with all-contiguous loads becomes `[2048]`.
fn collapse(shape: &[usize], expr: &mut Expr) -> Vec<usize> {
    let keep: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
    let mut dims: Vec<usize> = keep.iter().map(|&d| shape[d]).collect();
    let mut loads: Vec<&mut Vec<usize>> = expr.loads_mut().into_iter().map(|(_, s)| s).collect();
    for l in loads.iter_mut() {
        **l = keep.iter().map(|&d| l[d]).collect();
    }
    let mut d = dims.len();
    while d >= 2 {
        d -= 1;
        // Try merging dims d-1 and d.
        let n = dims[d];
        if loads.iter().all(|l| l[d - 1] == l[d] * n) {
            dims[d - 1] *= n;
            dims.remove(d);
            for l in loads.iter_mut() {
                let inner = l[d];
                l[d - 1] = inner;
                l.remove(d);
            }
        }
    }
    if dims.is_empty() {
        dims.push(1);
        for l in loads.iter_mut() {
            l.push(0);
        }
    }
    dims
}

/// Plan `graph`: slots for every input and materialised value, kernels in topological order.
pub fn plan(graph: &Graph) -> Result<KernelProgram, String> {
    // Only what some output depends on runs (as in the interpreter).
    let mut needed = HashSet::new();
    let mut stack: Vec<NodeId> = graph.outputs.iter().map(|o| o.node).collect();
    while let Some(id) = stack.pop() {
        if graph.graph.contains_node(id) && needed.insert(id) {
            stack.extend(graph.operands(id));
        }
    }
    let order: Vec<NodeId> = graph
        .topo_order()
        .into_iter()
        .filter(|n| needed.contains(n) || matches!(graph.node(*n).op, Op::Input { .. }))
        .collect();
    let mut p = Planner {
        graph,
        class: HashMap::new(),
        users: HashMap::new(),
        materialized: HashSet::new(),
        slots: HashMap::new(),
        f32_len: 0,
        i64_len: 0,
        allocations: Vec::new(),
    };
    for &id in &order {
        p.class.insert(id, classify(graph, id));
        let users: Vec<NodeId> = graph
            .users(id)
            .into_iter()
            .filter(|u| needed.contains(u))
            .collect();
        p.users.insert(id, users);
    }
    let outputs: HashSet<NodeId> = graph.outputs.iter().map(|o| o.node).collect();

    // Decide materialisation in topological order (a view's decision reads its operand's).
    for &id in &order {
        if p.class[&id] != Class::Elementwise {
            continue;
        }
        let users = &p.users_through_views(id, &outputs);
        let node = graph.node(id);
        let all_ew_users = users.iter().all(|u| p.class[u] == Class::Elementwise);
        let must = outputs.contains(&id)
            || !all_ew_users
            || match &node.op {
                Op::Fill { .. } => false,
                Op::Broadcast | Op::Transpose { .. } | Op::Slice { .. } => {
                    let operand = graph.operands(id)[0];
                    let operand_free = p.materialized.contains(&operand)
                        || (p.class[&operand] != Class::Elementwise && !p.virtual_view(operand))
                        || matches!(graph.node(operand).op, Op::Fill { .. });
                    users.len() > 1 && !operand_free
                }
                _ => {
                    let expanded = users.iter().any(|&u| {
                        matches!(graph.node(u).op, Op::Broadcast)
                            && graph.ty(u).numel() > node.ty.numel()
                    });
                    expanded || (users.len() != 1 && !p.recomputable(id))
                }
            };
        if must {
            p.materialized.insert(id);
        }
    }

    let mut coverage = Coverage::default();
    let mut kernels = Vec::new();
    let mut inputs = Vec::new();
    // The largest im2col buffer (one batch of images) of any convolution: one region serves
    // them all.
    let mut scratch_len = 0;
    for &id in &order {
        let node = graph.node(id);
        let ops = graph.operands(id);
        match p.class[&id] {
            Class::Input => {
                let slot = p.alloc(&node.ty);
                p.slots.insert(id, slot);
                coverage.inputs += 1;
                if let Op::Input { name, .. } = &node.op {
                    inputs.push((name.clone(), slot, node.ty.shape.clone()));
                }
            }
            Class::Alias => {
                coverage.aliases += 1;
                // A view of a value that is never materialised is only ever inlined.
                if !p.virtual_view(id) {
                    let s = p.slot_of(ops[0])?;
                    p.slots.insert(id, s);
                }
            }
            Class::Elementwise => {
                coverage.fused += 1;
                if !p.materialized.contains(&id) {
                    continue;
                }
                let out = p.alloc(&node.ty);
                p.slots.insert(id, out);
                let mut expr = p.expr(id, &Map::identity(node.ty.rank()), true)?;
                let shape = collapse(&node.ty.shape, &mut expr);
                kernels.push(Kernel::Elementwise {
                    node: id.index(),
                    out,
                    shape,
                    expr,
                    also: Vec::new(),
                });
            }
            Class::Reduce => {
                let Op::Reduce { op, axes } = &node.op else {
                    unreachable!("classified as reduce")
                };
                let out = p.alloc(&node.ty);
                p.slots.insert(id, out);
                coverage.library += 1;
                kernels.push(Kernel::Reduce {
                    node: id.index(),
                    op: *op,
                    input: p.slot_of(ops[0])?,
                    shape: graph.ty(ops[0]).shape.clone(),
                    axes: axes.clone(),
                    out,
                });
            }
            Class::MatMul => {
                let Op::MatMul { ta, tb } = node.op else {
                    unreachable!("classified as matmul")
                };
                let out = p.alloc(&node.ty);
                p.slots.insert(id, out);
                coverage.library += 1;
                let at = graph.ty(ops[0]);
                let r = at.rank();
                let k = if ta { at.shape[r - 2] } else { at.shape[r - 1] };
                kernels.push(Kernel::MatMul {
                    node: id.index(),
                    a: p.slot_of(ops[0])?,
                    b: p.slot_of(ops[1])?,
                    out,
                    batch: node.ty.shape[..r - 2].iter().product(),
                    m: node.ty.shape[r - 2],
                    n: node.ty.shape[r - 1],
                    k,
                    ta,
                    tb,
                });
            }
            Class::Native => {
                let out = p.alloc(&node.ty);
                p.slots.insert(id, out);
                coverage.native += 1;
                let shapes: Vec<Vec<usize>> =
                    ops.iter().map(|&o| graph.ty(o).shape.clone()).collect();
                scratch_len = scratch_len.max(crate::native::scratch_len(
                    &node.op,
                    &shapes,
                    &node.ty.shape,
                ));
                kernels.push(Kernel::Native {
                    node: id.index(),
                    op: node.op.clone(),
                    shapes,
                    out_shape: node.ty.shape.clone(),
                    inputs: ops
                        .iter()
                        .map(|&o| p.slot_of(o))
                        .collect::<Result<_, _>>()?,
                    out,
                    scratch: None,
                });
            }
            Class::Project => {}
            Class::Scan | Class::Fallback => {
                coverage.fallback += 1;
                let mut mini = Graph::new();
                let mut ids = Vec::new();
                let mut in_slots = Vec::new();
                for (i, &o) in ops.iter().enumerate() {
                    let ty = graph.ty(o).clone();
                    ids.push(mini.input(&format!("in{i}"), Role::Data, ty, node.span));
                    in_slots.push(p.slot_of(o)?);
                }
                let op_node = mini
                    .add(node.op.clone(), &ids, Some(node.ty.clone()), node.span)
                    .map_err(|e| e.message)?;
                let mut out_slots = Vec::new();
                if p.class[&id] == Class::Scan {
                    for u in p.users[&id].clone() {
                        let un = graph.node(u);
                        let proj = mini
                            .add(un.op.clone(), &[op_node], Some(un.ty.clone()), un.span)
                            .map_err(|e| e.message)?;
                        mini.set_output(&format!("out{}", out_slots.len()), proj);
                        let s = p.alloc(&un.ty);
                        p.slots.insert(u, s);
                        out_slots.push(s);
                    }
                } else {
                    mini.set_output("out0", op_node);
                    let s = p.alloc(&node.ty);
                    p.slots.insert(id, s);
                    out_slots.push(s);
                }
                kernels.push(Kernel::Fallback {
                    node: id.index(),
                    what: format!("{}{}", node.op.name(), node.op.attributes()),
                    graph: mini,
                    inputs: in_slots,
                    outputs: out_slots,
                });
            }
        }
    }

    if scratch_len > 0 {
        let scratch = p.alloc(&Type::f32(vec![scratch_len]));
        for k in &mut kernels {
            if let Kernel::Native {
                op,
                shapes,
                out_shape,
                scratch: s,
                ..
            } = k
                && crate::native::scratch_len(op, shapes, out_shape) > 0
            {
                *s = Some(scratch);
            }
        }
    }

    // Update outputs must not share an input's slot, or the copies after a step could read a
    // slot another copy already overwrote.
    let input_slots: HashSet<(DType, usize)> =
        inputs.iter().map(|(_, s, _)| (s.dtype, s.offset)).collect();
    let mut outs = Vec::new();
    let mut updates = Vec::new();
    for o in &graph.outputs {
        let mut s = p.slot_of(o.node)?;
        let ty = graph.ty(o.node).clone();
        if let Some(target) = &o.updates {
            if input_slots.contains(&(s.dtype, s.offset)) {
                let fresh = p.alloc(&ty);
                kernels.push(Kernel::Copy { from: s, to: fresh });
                s = fresh;
            }
            let to = inputs
                .iter()
                .find(|(n, _, _)| n == target)
                .map(|(_, s, _)| *s)
                .ok_or_else(|| format!("output `{}` updates unknown input `{target}`", o.name))?;
            updates.push((target.clone(), s, to));
        }
        outs.push((o.name.clone(), s, ty.shape));
    }
    let mut program = KernelProgram {
        f32_len: p.f32_len.next_multiple_of(16),
        i64_len: p.i64_len,
        inputs,
        outputs: outs,
        kernels,
        updates,
        coverage,
    };
    crate::inplace::update_in_place(&mut program);
    crate::rows::fuse(&mut program);
    crate::reuse::pack(&mut program, &p.allocations);
    crate::siblings::merge(&mut program);
    Ok(program)
}

#[cfg(test)]
mod tests {
    use netc_compiler::ir::{BinaryOp, Graph, NodeId, Op, Role, Type, UnaryOp};
    use netc_grammar::Span;

    use crate::kernel::Kernel;

    fn add(g: &mut Graph, op: Op, operands: &[NodeId]) -> NodeId {
        g.add(op, operands, None, Span::default()).unwrap()
    }

    /// Values written by elementwise kernels planned for `t = shared(x, y)` used by two
    /// outputs, `t + x` and `t * t` (a kernel with sibling outputs counts each).
    fn kernels_with_shared(shared: impl Fn(&mut Graph, NodeId, NodeId) -> NodeId) -> usize {
        let mut g = Graph::new();
        let ty = Type::f32(vec![64]);
        let x = g.input("x", Role::Data, ty.clone(), Span::default());
        let y = g.input("y", Role::Data, ty, Span::default());
        let t = shared(&mut g, x, y);
        let a = add(&mut g, Op::Binary(BinaryOp::Add), &[t, x]);
        let b = add(&mut g, Op::Binary(BinaryOp::Mul), &[t, t]);
        g.set_output("a", a);
        g.set_output("b", b);
        let program = super::plan(&g).unwrap();
        program
            .kernels
            .iter()
            .map(|k| match k {
                Kernel::Elementwise { also, .. } => 1 + also.len(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn cheap_values_of_one_buffer_are_recomputed_by_each_user() {
        let half = |g: &mut Graph, x, _| {
            let h = g
                .add(
                    Op::Fill { value: 0.5 },
                    &[],
                    Some(Type::f32(vec![64])),
                    Span::default(),
                )
                .unwrap();
            add(g, Op::Binary(BinaryOp::Mul), &[x, h])
        };
        assert_eq!(
            kernels_with_shared(half),
            2,
            "x * 0.5 is inlined into both users"
        );
    }

    #[test]
    fn reshapes_that_split_axes_are_seen_through() {
        use super::split_groups;
        assert_eq!(split_groups(&[6, 4], &[2, 3, 4]), Some(vec![0..2, 2..3]));
        assert_eq!(split_groups(&[1, 4], &[4, 1]), Some(vec![0..0, 0..1]));
        assert_eq!(
            split_groups(&[2, 3, 4], &[6, 4]),
            None,
            "a merge is not affine"
        );
        assert_eq!(split_groups(&[4, 6], &[6, 4]), None);
        // `t = x * 0.5` computed as [1, 64] and reshaped to [64] before both users (with a
        // stop_gradient between, two views in a row): still recomputed by each.
        for stop in [false, true] {
            let half = |g: &mut Graph, x, _| {
                let wide = Some(Type::f32(vec![1, 64]));
                let x = g
                    .add(Op::Reshape, &[x], wide.clone(), Span::default())
                    .unwrap();
                let h = g
                    .add(Op::Fill { value: 0.5 }, &[], wide, Span::default())
                    .unwrap();
                let mut t = add(g, Op::Binary(BinaryOp::Mul), &[x, h]);
                if stop {
                    t = add(g, Op::StopGradient, &[t]);
                }
                let flat = Some(Type::f32(vec![64]));
                g.add(Op::Reshape, &[t], flat, Span::default()).unwrap()
            };
            assert_eq!(kernels_with_shared(half), 2, "stop_gradient: {stop}");
        }
    }

    #[test]
    fn transcendentals_and_values_of_two_buffers_are_materialized() {
        let exp = |g: &mut Graph, x, _| add(g, Op::Unary(UnaryOp::Exp), &[x]);
        assert_eq!(kernels_with_shared(exp), 3, "exp(x) is computed once");
        let sum = |g: &mut Graph, x, y| add(g, Op::Binary(BinaryOp::Add), &[x, y]);
        assert_eq!(
            kernels_with_shared(sum),
            3,
            "x + y is read, not re-read from two buffers"
        );
    }
}
