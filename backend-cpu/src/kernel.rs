//! The kernel IR: a backend-neutral description of the work of one step graph.
//!
//! A step graph becomes a [`KernelProgram`]: a static memory plan (every value a fixed [`Slot`]
//! in one f32 arena or one i64 arena) and a list of [`Kernel`]s run in order. Nothing in here
//! knows about Cranelift or x86: a fused elementwise kernel is a loop nest over an output shape
//! computing an [`Expr`] of strided loads, which a CPU backend JIT-compiles and a GPU backend
//! could print as a CUDA kernel. Shapes are static, so every offset and stride is a number.

use std::fmt::Write;

use netc_compiler::ir::{BinaryOp, DType, Graph, Op, ReduceOp, UnaryOp};

/// Where a value lives: `len` elements at `offset` in the arena of `dtype` (f32 values in the
/// f32 arena, i64 values — labels, token ids, seeds — in the i64 arena). Slots are planned once
/// per compile; nothing is allocated while a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Which arena.
    pub dtype: DType,
    /// First element, in elements of the arena (f32 slots are 64-byte aligned).
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

/// The body of a fused elementwise kernel: one scalar expression per output element, evaluated
/// at the element's multi-index `k` over the kernel's (collapsed) shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `arena[offset + sum_d k[d] * strides[d]]`: a broadcast has stride 0, a transpose or slice
    /// permuted or offset strides, a plain operand row-major strides.
    Load {
        /// Element offset in the f32 arena.
        offset: usize,
        /// Element stride per kernel dimension.
        strides: Vec<usize>,
    },
    /// A constant (a `fill`).
    Const(f32),
    /// An IR unary op, with the IR's exact semantics (relu keeps NaN, ...).
    Unary(UnaryOp, Box<Expr>),
    /// An IR binary op (`max`/`min` propagate NaN, `greater` gives 1.0/0.0).
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `a * b + c` with one rounding: an `add` of a `mul` whose result had no other user.
    Fma(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `select(cond, a, b)`: `a` where `cond != 0` (NaN counts as non-zero), else `b`.
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Every load's offset and strides in evaluation order, mutably (for dimension collapsing
    /// and for moving buffers in the arena).
    pub fn loads_mut(&mut self) -> Vec<(&mut usize, &mut Vec<usize>)> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a mut Expr, out: &mut Vec<(&'a mut usize, &'a mut Vec<usize>)>) {
            match e {
                Expr::Load { offset, strides } => out.push((offset, strides)),
                Expr::Const(_) => {}
                Expr::Unary(_, a) => walk(a, out),
                Expr::Binary(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Fma(a, b, c) | Expr::Select(a, b, c) => {
                    walk(a, out);
                    walk(b, out);
                    walk(c, out);
                }
            }
        }
        walk(self, &mut out);
        out
    }

    /// Every load's offset and strides, in evaluation order.
    pub fn loads(&self) -> Vec<(usize, &[usize])> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a Expr, out: &mut Vec<(usize, &'a [usize])>) {
            match e {
                Expr::Load { offset, strides } => out.push((*offset, strides)),
                Expr::Const(_) => {}
                Expr::Unary(_, a) => walk(a, out),
                Expr::Binary(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Fma(a, b, c) | Expr::Select(a, b, c) => {
                    walk(a, out);
                    walk(b, out);
                    walk(c, out);
                }
            }
        }
        walk(self, &mut out);
        out
    }

    /// Every load over a loop of `shape`: the element range its strides reach, its base offset
    /// and its strides, in evaluation order.
    pub fn load_ranges(&self, shape: &[usize]) -> Vec<(std::ops::Range<usize>, usize, Vec<usize>)> {
        self.loads()
            .into_iter()
            .map(|(offset, strides)| {
                let reach: usize = strides.iter().zip(shape).map(|(s, n)| s * (n - 1)).sum();
                (offset..offset + reach + 1, offset, strides.to_vec())
            })
            .collect()
    }

    /// The same computation over a loop of shape `to` instead of `from` (the same elements in
    /// the same row-major order): every load's strides re-expressed ([`restride`]), if each
    /// stays affine.
    pub fn reshaped(&self, from: &[usize], to: &[usize]) -> Option<Expr> {
        let mut out = self.clone();
        for (_, strides) in out.loads_mut() {
            *strides = restride(from, strides, to)?;
        }
        Some(out)
    }

    /// Number of operations (not loads or constants): the work per element.
    pub fn op_count(&self) -> usize {
        match self {
            Expr::Load { .. } | Expr::Const(_) => 0,
            Expr::Unary(_, a) => 1 + a.op_count(),
            Expr::Binary(_, a, b) => 1 + a.op_count() + b.op_count(),
            Expr::Fma(a, b, c) | Expr::Select(a, b, c) => {
                1 + a.op_count() + b.op_count() + c.op_count()
            }
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Expr::Load { offset, strides } => {
                let s: Vec<String> = strides.iter().map(usize::to_string).collect();
                let _ = write!(out, "@{offset}[{}]", s.join(","));
            }
            Expr::Const(c) => {
                let _ = write!(out, "{c:?}");
            }
            Expr::Unary(op, a) => {
                let _ = write!(out, "{}(", unary_name(*op));
                a.write(out);
                out.push(')');
            }
            Expr::Binary(op, a, b) => {
                let _ = write!(out, "{}(", binary_name(*op));
                a.write(out);
                out.push_str(", ");
                b.write(out);
                out.push(')');
            }
            Expr::Fma(a, b, c) | Expr::Select(a, b, c) => {
                out.push_str(if matches!(self, Expr::Fma(..)) {
                    "fma("
                } else {
                    "select("
                });
                a.write(out);
                out.push_str(", ");
                b.write(out);
                out.push_str(", ");
                c.write(out);
                out.push(')');
            }
        }
    }
}

/// The strides over `to` of a load with `strides` over `shape` (the same elements in the same
/// row-major order), if its address is affine in every dimension of `to`: a flat loop seen as
/// rows, rows split over two axes seen as one. Dimensions of size 1 get stride 0.
pub fn restride(shape: &[usize], strides: &[usize], to: &[usize]) -> Option<Vec<usize>> {
    let mut dims: Vec<(usize, usize)> = shape
        .iter()
        .zip(strides)
        .filter(|(n, _)| **n != 1)
        .map(|(&n, &s)| (n, s))
        .collect();
    let mut out = vec![0; to.len()];
    for (stride, &n) in out.iter_mut().zip(to).rev() {
        *stride = take(&mut dims, n)?;
    }
    dims.is_empty().then_some(out)
}

/// Take the innermost `count` elements of `dims` (splitting a dimension if needed) as one
/// dimension: its stride, if they are evenly spaced.
fn take(dims: &mut Vec<(usize, usize)>, count: usize) -> Option<usize> {
    if count == 1 {
        return Some(0);
    }
    let mut covered = 1;
    let mut unit = None;
    while covered < count {
        let (n, s) = dims.pop()?;
        match unit {
            None => unit = Some(s),
            Some(u) if s == u * covered => {}
            Some(_) => return None,
        }
        let need = count / covered;
        if n <= need {
            if !need.is_multiple_of(n) {
                return None;
            }
            covered *= n;
        } else {
            if !n.is_multiple_of(need) {
                return None;
            }
            dims.push((n / need, s * need));
            covered = count;
        }
    }
    unit
}

/// A reduction's dimensions over `shape` reducing `axes`, simplified: size-1 axes dropped and
/// neighbours of the same kind (reduced or kept) merged, as `(size, reduced)` — the loop nest
/// every backend runs it as.
pub fn reduced_dims(shape: &[usize], axes: &[usize]) -> Vec<(usize, bool)> {
    let mut dims: Vec<(usize, bool)> = Vec::new();
    for (a, &n) in shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let reduced = axes.contains(&a);
        match dims.last_mut() {
            Some((m, r)) if *r == reduced => *m *= n,
            _ => dims.push((n, reduced)),
        }
    }
    dims
}

/// The dump name of a unary op (as the IR text calls it).
pub fn unary_name(op: UnaryOp) -> &'static str {
    netc_compiler::ir::Op::Unary(op).name()
}

/// The dump name of a binary op (as the IR text calls it).
pub fn binary_name(op: BinaryOp) -> &'static str {
    netc_compiler::ir::Op::Binary(op).name()
}

/// One unit of work. `node` fields name the IR node (`%n` as in the IR dump) whose value the
/// kernel produces, so a kernel dump can be read beside the graph dump.
#[derive(Clone, Debug)]
pub enum Kernel {
    /// A fused loop nest: `out[k] = expr(k)` for every multi-index `k` of `shape` (row-major,
    /// contiguous output). Adjacent dimensions that every load walks contiguously are merged,
    /// so most kernels are one flat loop.
    Elementwise {
        node: usize,
        out: Slot,
        shape: Vec<usize>,
        expr: Expr,
        /// Further outputs of the same loop, `slot[k] = expr(k)` over the same shape (sibling
        /// kernels merged in by [`crate::siblings`], as Adam's `m` and `v` into its parameter
        /// update). Every value of an element is computed before any is stored.
        also: Vec<(Slot, Expr)>,
    },
    /// `out = reduce(op, input)` over `axes` of the contiguous `shape`, summing each output in
    /// the input's row-major order (the interpreter's order, so f32 sums agree exactly).
    Reduce {
        node: usize,
        op: ReduceOp,
        input: Slot,
        shape: Vec<usize>,
        axes: Vec<usize>,
        out: Slot,
    },
    /// `out[b] = op(a[b]) x op(b[b])` for each of `batch` contiguous matrices, by a GEMM library.
    MatMul {
        node: usize,
        a: Slot,
        b: Slot,
        out: Slot,
        batch: usize,
        m: usize,
        n: usize,
        k: usize,
        ta: bool,
        tb: bool,
    },
    /// A convolution, pool, or index/layout op (`gather`, `scatter_add`, `one_hot`, `concat`,
    /// `cast`) run by a native Rust loop over the arenas ([`crate::native`]), with the
    /// interpreter's exact semantics. Convolutions lower to im2col + GEMM (the same `gemm` call
    /// path as [`Kernel::MatMul`]) through `scratch`, one region planned once and shared by every
    /// convolution of the step, so a run allocates nothing.
    Native {
        /// The IR node computed (`%n`).
        node: usize,
        /// The IR op, attributes included (the window of a convolution or pool).
        op: Op,
        /// The operands' shapes, in operand order.
        shapes: Vec<Vec<usize>>,
        /// The result's shape.
        out_shape: Vec<usize>,
        /// The operands' slots (f32 or i64 arena by their dtype).
        inputs: Vec<Slot>,
        /// The result's slot (fresh: it overlaps no operand).
        out: Slot,
        /// im2col / col2im buffer of one batch of images (convolutions only; see
        /// [`crate::native::scratch_len`]).
        scratch: Option<Slot>,
    },
    /// Any op without a fast path: `graph` (input nodes `in0..`, outputs `out0..`) evaluated by
    /// the reference interpreter at f32 precision, so every graph runs and agrees exactly.
    Fallback {
        node: usize,
        /// The op's dump name with attributes, `one_hot[classes=10]`.
        what: String,
        graph: Graph,
        inputs: Vec<Slot>,
        outputs: Vec<Slot>,
    },
    /// `to = from`: gives an update output its own slot when it would otherwise share an
    /// input's (an unchanged buffer), so the end-of-step update copies cannot clobber each other.
    Copy { from: Slot, to: Slot },
    /// Row fusion ([`crate::rows`]): a run of reductions over the last axis and the elementwise
    /// kernels around them (softmax, layer norm and their gradients), done row by row: every
    /// stage for row `r`, then every stage for row `r + 1`. A row's intermediate values stay in
    /// the L1 cache between stages instead of streaming through memory once per kernel.
    Rows {
        /// Rows (the kept axes, merged); a run splits them over threads.
        rows: usize,
        /// Elements per row (the reduced axis).
        len: usize,
        /// What is computed for each row, in order.
        stages: Vec<RowStage>,
    },
}

/// One stage of a [`Kernel::Rows`] kernel. Loads index `[row, column]` (two strides); a
/// stage reads only its own row of what earlier stages of the kernel wrote.
#[derive(Clone, Debug, PartialEq)]
pub enum RowStage {
    /// `out[r] = reduce(op, expr(r, j) for j < len)`: one value per row.
    Reduce {
        /// The IR node of the reduction (`%n`).
        node: usize,
        op: ReduceOp,
        /// The reduced values: a load of the input, or the map it absorbed.
        expr: Expr,
        /// One value per row.
        out: Slot,
    },
    /// `slot[r * width + j] = expr(r, j)` for `j < width` and each output (`width` is the row
    /// length, or 1 for values per row such as a mean from a sum). All of a column's values are
    /// computed before any is stored, as in [`Kernel::Elementwise`].
    Map {
        /// The IR node of the first output (`%n`).
        node: usize,
        /// Columns computed per row: the row length, or 1.
        width: usize,
        /// Each output with its expression.
        outs: Vec<(Slot, Expr)>,
    },
}

impl RowStage {
    /// The IR node of the stage's (first) value.
    pub fn node(&self) -> usize {
        match self {
            RowStage::Reduce { node, .. } | RowStage::Map { node, .. } => *node,
        }
    }

    /// Elements per row this stage's expressions run over: the row for a reduction, else the
    /// stage's width.
    pub fn columns(&self, len: usize) -> usize {
        match self {
            RowStage::Reduce { .. } => len,
            RowStage::Map { width, .. } => *width,
        }
    }

    /// The stage's outputs with their widths and expressions (a reduction's expression is its
    /// input, not its stored value).
    pub fn outputs(&self) -> Vec<(Slot, usize, &Expr)> {
        match self {
            RowStage::Reduce { expr, out, .. } => vec![(*out, 1, expr)],
            RowStage::Map { width, outs, .. } => {
                outs.iter().map(|(s, e)| (*s, *width, e)).collect()
            }
        }
    }
}

/// How the nodes of a graph were covered: the share of the fast paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Input nodes.
    pub inputs: usize,
    /// Nodes that cost nothing (reshape, stop_gradient, same-type casts alias their operand).
    pub aliases: usize,
    /// Nodes computed inside fused elementwise kernels.
    pub fused: usize,
    /// Reductions and matmuls on their fast paths.
    pub library: usize,
    /// Convolutions, pools and index/layout ops on native Rust kernels (see [`Kernel::Native`]).
    pub native: usize,
    /// Nodes evaluated by the fallback (the interpreter), scans counted with their bodies as one.
    pub fallback: usize,
}

/// The arena ranges a kernel reads and writes, per arena: what decides whether a kernel may
/// move past another (sibling fusion).
pub struct Footprint {
    pub reads: Vec<(DType, std::ops::Range<usize>)>,
    pub writes: Vec<(DType, std::ops::Range<usize>)>,
}

impl Footprint {
    /// The f32 ranges of `ranges` (what elementwise kernels touch).
    pub fn f32s(ranges: &[(DType, std::ops::Range<usize>)]) -> Vec<std::ops::Range<usize>> {
        ranges
            .iter()
            .filter(|(d, _)| *d == DType::F32)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl Kernel {
    /// An elementwise kernel's outputs with their expressions, the primary one first, then
    /// its sibling outputs (`also`); none for any other kernel.
    pub fn elementwise_outputs(&self) -> impl Iterator<Item = (Slot, &Expr)> {
        let (first, also) = match self {
            Kernel::Elementwise {
                out, expr, also, ..
            } => (Some((*out, expr)), also.as_slice()),
            _ => (None, &[][..]),
        };
        first.into_iter().chain(also.iter().map(|(s, e)| (*s, e)))
    }

    /// Every arena range this kernel reads and writes (a native kernel's scratch counts as
    /// both; a fused load, the whole range its strides reach).
    pub fn footprint(&self) -> Footprint {
        let range = |s: &Slot| (s.dtype, s.offset..s.offset + s.len);
        let slots = |s: &[Slot]| s.iter().map(range).collect::<Vec<_>>();
        match self {
            Kernel::Elementwise { shape, .. } => Footprint {
                reads: self
                    .elementwise_outputs()
                    .flat_map(|(_, e)| e.load_ranges(shape))
                    .map(|(r, _, _)| (DType::F32, r))
                    .collect(),
                writes: self.elementwise_outputs().map(|(s, _)| range(&s)).collect(),
            },
            Kernel::Reduce { input, out, .. } => Footprint {
                reads: slots(&[*input]),
                writes: slots(&[*out]),
            },
            Kernel::MatMul { a, b, out, .. } => Footprint {
                reads: slots(&[*a, *b]),
                writes: slots(&[*out]),
            },
            Kernel::Native {
                inputs,
                out,
                scratch,
                ..
            } => Footprint {
                reads: slots(inputs)
                    .into_iter()
                    .chain(scratch.iter().map(range))
                    .collect(),
                writes: std::iter::once(out).chain(scratch).map(range).collect(),
            },
            Kernel::Fallback {
                inputs, outputs, ..
            } => Footprint {
                reads: slots(inputs),
                writes: slots(outputs),
            },
            Kernel::Copy { from, to } => Footprint {
                reads: slots(&[*from]),
                writes: slots(&[*to]),
            },
            Kernel::Rows { rows, len, stages } => Footprint {
                reads: stages
                    .iter()
                    .flat_map(|st| {
                        let shape = [*rows, st.columns(*len)];
                        st.outputs()
                            .into_iter()
                            .flat_map(move |(_, _, e)| e.load_ranges(&shape))
                    })
                    .map(|(r, _, _)| (DType::F32, r))
                    .collect(),
                writes: stages
                    .iter()
                    .flat_map(RowStage::outputs)
                    .map(|(s, _, _)| range(&s))
                    .collect(),
            },
        }
    }
}

/// A compiled step's plan: arenas, named inputs and outputs, kernels, and the copies that carry
/// updated values into their inputs' slots after each run.
#[derive(Clone, Debug)]
pub struct KernelProgram {
    /// Elements of the f32 arena.
    pub f32_len: usize,
    /// Elements of the i64 arena.
    pub i64_len: usize,
    /// Every graph input with its shape, in creation order.
    pub inputs: Vec<(String, Slot, Vec<usize>)>,
    /// Every graph output with its shape, in the graph's order.
    pub outputs: Vec<(String, Slot, Vec<usize>)>,
    /// The kernels, in execution order.
    pub kernels: Vec<Kernel>,
    /// `(input name, from, to)`: after the kernels run, each update output is copied into its
    /// input's slot, so the next run sees the new parameter and optimizer state in place.
    pub updates: Vec<(String, Slot, Slot)>,
    /// How the graph's nodes were covered.
    pub coverage: Coverage,
}

fn slot(s: &Slot) -> String {
    match s.dtype {
        DType::F32 => format!("@{}+{}", s.offset, s.len),
        DType::I64 => format!("i@{}+{}", s.offset, s.len),
    }
}

fn dims(shape: &[usize]) -> String {
    let d: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", d.join(", "))
}

impl KernelProgram {
    /// Deterministic text of the plan, one line per input, kernel, update and output: what
    /// `netc build --emit kernels` prints and what snapshot tests compare.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "arena f32[{}] i64[{}]", self.f32_len, self.i64_len);
        for (name, s, shape) in &self.inputs {
            let _ = writeln!(out, "input {name} {} {}", dims(shape), slot(s));
        }
        for i in 0..self.kernels.len() {
            self.write_kernel(&mut out, i);
            out.push('\n');
        }
        for (name, from, to) in &self.updates {
            let _ = writeln!(out, "update {name} {} -> {}", slot(from), slot(to));
        }
        for (name, s, shape) in &self.outputs {
            let _ = writeln!(out, "output {name} {} {}", dims(shape), slot(s));
        }
        let c = &self.coverage;
        let _ = writeln!(
            out,
            "coverage inputs={} aliases={} fused={} library={} native={} fallback={}",
            c.inputs, c.aliases, c.fused, c.library, c.native, c.fallback
        );
        out
    }

    /// Kernel `i`'s line of [`KernelProgram::dump`] (`k3 matmul %10 ...`), to name kernels in
    /// profiles.
    pub fn kernel_line(&self, i: usize) -> String {
        let mut out = String::new();
        self.write_kernel(&mut out, i);
        out
    }

    fn write_kernel(&self, out: &mut String, i: usize) {
        let k = &self.kernels[i];
        let _ = write!(out, "k{i} ");
        match k {
            Kernel::Elementwise {
                node,
                out: o,
                shape,
                expr,
                also,
            } => {
                let _ = write!(out, "elementwise %{node} {} {} = ", dims(shape), slot(o));
                expr.write(out);
                for (o, e) in also {
                    let _ = write!(out, "; {} = ", slot(o));
                    e.write(out);
                }
            }
            Kernel::Reduce {
                node,
                op,
                input,
                shape,
                axes,
                out: o,
            } => {
                let name = match op {
                    ReduceOp::Sum => "sum",
                    ReduceOp::Max => "max",
                };
                let _ = write!(
                    out,
                    "reduce_{name} %{node} {} axes={axes:?} {} -> {}",
                    dims(shape),
                    slot(input),
                    slot(o)
                );
            }
            Kernel::MatMul {
                node,
                a,
                b,
                out: o,
                batch,
                m,
                n,
                k,
                ta,
                tb,
            } => {
                let _ = write!(
                    out,
                    "matmul %{node} batch={batch} m={m} n={n} k={k} ta={ta} tb={tb} {} {} -> {}",
                    slot(a),
                    slot(b),
                    slot(o)
                );
            }
            Kernel::Native {
                node,
                op,
                inputs,
                out: o,
                scratch,
                ..
            } => {
                let i: Vec<String> = inputs.iter().map(slot).collect();
                let _ = write!(
                    out,
                    "native %{node} {}{} ({}) -> {}",
                    op.name(),
                    op.attributes(),
                    i.join(", "),
                    slot(o)
                );
                if let Some(s) = scratch {
                    let _ = write!(out, " scratch {}", slot(s));
                }
            }
            Kernel::Fallback {
                node,
                what,
                inputs,
                outputs,
                ..
            } => {
                let i: Vec<String> = inputs.iter().map(slot).collect();
                let o: Vec<String> = outputs.iter().map(slot).collect();
                let _ = write!(
                    out,
                    "fallback %{node} {what} ({}) -> ({})",
                    i.join(", "),
                    o.join(", ")
                );
            }
            Kernel::Copy { from, to } => {
                let _ = write!(out, "copy {} -> {}", slot(from), slot(to));
            }
            Kernel::Rows { rows, len, stages } => {
                let _ = write!(out, "rows [{rows} x {len}]");
                for st in stages {
                    match st {
                        RowStage::Reduce {
                            node,
                            op,
                            expr,
                            out: o,
                        } => {
                            let name = match op {
                                ReduceOp::Sum => "sum",
                                ReduceOp::Max => "max",
                            };
                            let _ = write!(out, " | reduce_{name} %{node} {} = ", slot(o));
                            expr.write(out);
                        }
                        RowStage::Map { node, width, outs } => {
                            let _ = write!(out, " | map %{node} width={width}");
                            for (i, (o, e)) in outs.iter().enumerate() {
                                let _ =
                                    write!(out, "{} {} = ", if i == 0 { "" } else { ";" }, slot(o));
                                e.write(out);
                            }
                        }
                    }
                }
            }
        }
    }
}
