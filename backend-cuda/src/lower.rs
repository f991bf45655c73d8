//! From the kernel IR (`netc_backend_cpu::kernel`) to GPU work: [`gpu::Kernel`]s with launch
//! configurations, cuBLAS GEMM records for contractions, host steps for fallbacks, and copies.
//!
//! Mapping, kernel by kernel:
//! - **Elementwise**: one thread per output element in a grid-stride loop; each load indexes the
//!   arena exactly as `Expr::Load` says (offset plus multi-index times strides, the multi-index
//!   decomposed only when some load is not contiguous).
//! - **Reduce**: one block per output (grid-stride over outputs, so the loop around the barriers
//!   is uniform across the block): per-thread strided partials, warp shuffles, one shared word
//!   per warp, a last warp-level pass. Sums are reassociated (a tree, not the interpreter's
//!   left-to-right order): equal within float tolerance, not bit for bit.
//! - **MatMul**: a [`Gemm`] record (strided batched), run by cuBLAS on a device.
//! - **Native**: gather, one-hot, concat and casts as one thread per output element;
//!   `scatter_add` as a zeroing kernel and `atomicAdd`s; convolutions as a batched im2col kernel
//!   into scratch appended after the plan's arena plus a GEMM (the weight gradient also
//!   transposes `dy` so that the images become the GEMM's inner dimension; the transposed
//!   convolution gathers its col2im so no atomics are needed); pools and their gradients in
//!   gather form, one thread per output, adding in the CPU backend's order.
//! - **Fallback**: a host step (the interpreter on copies of its operands), so every graph runs.

use netc_backend_cpu::kernel::{
    Expr as KExpr, Kernel as KKernel, KernelProgram, RowStage, Slot, reduced_dims,
};
use netc_compiler::ir::{BinaryOp, DType, Graph, Op, ReduceOp, Window};
use netc_grammar::ast::Span;

use crate::gpu::{Arith, Builder, Builtin, Cmp, Expr, Kernel, Mem, Stmt, Ty, Var, WARP};

/// Launch parameters. The defaults suit real devices; tests shrink them so that the emulator
/// exercises grid-stride loops, tails and multi-warp reductions on small tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Threads per block (a multiple of 32, at most 1024).
    pub block: u32,
    /// Blocks at most per launch; grid-stride loops cover the rest.
    pub max_grid: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            block: 256,
            max_grid: 8192,
        }
    }
}

/// `C = op(A) x op(B)` (or `C += ...` when `accumulate`) for `batch` matrices, in row-major
/// terms: `A(i, l)` is `F[a + batch_index * stride_a + i * lda + l]`, or `... + l * lda + i` when
/// `ta`; likewise `B(l, j)`; `C(i, j)` is `F[c + ... + i * ldc + j]`. cuBLAS (column-major)
/// computes it as `C^T = op(B)^T op(A)^T`, see [`crate::device`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gemm {
    /// The IR node (`%n`).
    pub node: usize,
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// The contracted dimension.
    pub k: usize,
    /// Matrices in the batch.
    pub batch: usize,
    /// `A`: offset, leading dimension, transposed, batch stride.
    pub a: (usize, usize, bool, usize),
    /// `B`: offset, leading dimension, transposed, batch stride.
    pub b: (usize, usize, bool, usize),
    /// `C`: offset, leading dimension, batch stride.
    pub c: (usize, usize, usize),
    /// Add to `C` instead of overwriting it.
    pub accumulate: bool,
}

/// One unit of a step, run in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Launch `kernels[i]`.
    Launch(usize),
    /// A cuBLAS GEMM.
    Gemm(Gemm),
    /// Run `plan.kernels[i]` (a fallback) on the host.
    Host(usize),
    /// Copy one slot into another (device to device).
    Copy { from: Slot, to: Slot },
}

/// A step graph lowered for a GPU: the CPU backend's plan (slots, inputs, outputs, fallbacks)
/// plus the GPU kernels and the steps that run them.
#[derive(Clone, Debug)]
pub struct CudaProgram {
    /// The kernel IR program this was lowered from (the same slots and liveness plan).
    pub plan: KernelProgram,
    /// Elements of the f32 arena: the plan's plus convolution scratch.
    pub f32_len: usize,
    /// The GPU kernels, in launch order.
    pub kernels: Vec<Kernel>,
    /// Where each kernel came from in the `.net` file (its IR node's span).
    pub spans: Vec<Span>,
    /// Everything one run does, in order (update copies last).
    pub steps: Vec<Step>,
    /// Messages of `Stmt::Fail` codes (code `i + 1` is `errors[i]`).
    pub errors: Vec<String>,
}

/// Plan `graph` with the CPU backend's planner and lower every kernel.
pub fn lower(graph: &Graph, config: Config) -> Result<CudaProgram, String> {
    let plan = netc_backend_cpu::plan::plan(graph)?;
    lower_plan(plan, graph, config)
}

/// Lower an existing plan of `graph` (the graph supplies the spans of the kernels' nodes).
pub fn lower_plan(
    plan: KernelProgram,
    graph: &Graph,
    config: Config,
) -> Result<CudaProgram, String> {
    if config.block == 0
        || !config.block.is_multiple_of(WARP)
        || config.block > 1024
        || config.max_grid == 0
    {
        return Err(format!("internal: bad launch configuration {config:?}"));
    }
    let mut l = Lowering {
        config,
        f32_len: plan.f32_len,
        kernels: Vec::new(),
        spans: Vec::new(),
        steps: Vec::new(),
        errors: Vec::new(),
        span: Span::default(),
    };
    for (i, k) in plan.kernels.iter().enumerate() {
        let node = match k {
            KKernel::Rows { stages, .. } => stages.first().map(RowStage::node),
            KKernel::Elementwise { node, .. }
            | KKernel::Reduce { node, .. }
            | KKernel::MatMul { node, .. }
            | KKernel::Native { node, .. }
            | KKernel::Fallback { node, .. } => Some(*node),
            KKernel::Copy { .. } => None,
        };
        l.span = node
            .map(petgraph_index)
            .filter(|&id| graph.graph.contains_node(id))
            .map(|id| graph.node(id).span)
            .unwrap_or_default();
        l.kernel(i, k)?;
    }
    for (_, from, to) in &plan.updates {
        l.steps.push(Step::Copy {
            from: *from,
            to: *to,
        });
    }
    Ok(CudaProgram {
        f32_len: l.f32_len.next_multiple_of(16),
        plan,
        kernels: l.kernels,
        spans: l.spans,
        steps: l.steps,
        errors: l.errors,
    })
}

fn petgraph_index(n: usize) -> netc_compiler::ir::NodeId {
    netc_compiler::ir::NodeId::new(n)
}

struct Lowering {
    config: Config,
    /// The f32 arena so far (scratch is appended).
    f32_len: usize,
    kernels: Vec<Kernel>,
    spans: Vec<Span>,
    steps: Vec<Step>,
    errors: Vec<String>,
    /// The span of the kernel being lowered.
    span: Span,
}

fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// `i` as a multi-index over `dims` (row-major), as let-bound variables.
fn decompose(b: &mut Builder, i: Expr, dims: &[usize]) -> Vec<Expr> {
    let mut out = vec![Expr::I64(0); dims.len()];
    let mut rest = i;
    for d in (0..dims.len()).rev() {
        if d == 0 {
            out[0] = rest.clone();
            break;
        }
        out[d] = b.let_(
            Ty::I64,
            Expr::arith(Arith::Rem, rest.clone(), Expr::idx(dims[d])),
        );
        rest = b.let_(Ty::I64, Expr::arith(Arith::Div, rest, Expr::idx(dims[d])));
    }
    out
}

/// `F[index]`.
fn load_f(index: Expr) -> Expr {
    Expr::Load(Mem::F, index.boxed())
}

/// For element `e` of a `[rows, width]` gather output (or scatter input, or one-hot output):
/// the id read from the i64 ids at `ids` for `e`'s row, and `e`'s column.
fn table_row(b: &mut Builder, e: &Expr, width: usize, ids: usize) -> (Expr, Expr) {
    let s = b.let_(
        Ty::I64,
        Expr::arith(Arith::Div, e.clone(), Expr::idx(width)),
    );
    let j = b.let_(
        Ty::I64,
        Expr::arith(Arith::Rem, e.clone(), Expr::idx(width)),
    );
    let id = b.let_(
        Ty::I64,
        Expr::Load(Mem::I, Expr::plus(Expr::idx(ids), s).boxed()),
    );
    (id, j)
}

/// `0 <= x && x < n`.
fn in_range(x: &Expr, n: usize) -> Expr {
    Expr::And(
        Expr::cmp(Cmp::Ge, x.clone(), Expr::I64(0)).boxed(),
        Expr::cmp(Cmp::Lt, x.clone(), Expr::idx(n)).boxed(),
    )
}

/// A window's input coordinate `pos * stride + tap * dilation - padding` along `axis` (may be
/// negative or past the end: in the padding).
fn coord(w: &Window, axis: usize, pos: &Expr, tap: &Expr) -> Expr {
    Expr::arith(
        Arith::Sub,
        Expr::plus(
            Expr::times(pos.clone(), Expr::idx(w.stride[axis])),
            Expr::times(tap.clone(), Expr::idx(w.dilation[axis])),
        ),
        Expr::idx(w.padding[axis]),
    )
}

impl Lowering {
    fn grid(&self, n: usize) -> u32 {
        let blocks = n.div_ceil(self.config.block as usize).max(1);
        blocks.min(self.config.max_grid as usize) as u32
    }

    /// Finish a kernel with one thread per element of `n` and schedule its launch.
    fn launch(
        &mut self,
        b: Builder,
        node: usize,
        kind: &str,
        what: String,
        grid: u32,
        block: u32,
    ) -> Result<(), String> {
        let name = format!("k{}_{kind}", self.kernels.len());
        let k = b.finish(name, node, what, grid, block)?;
        self.steps.push(Step::Launch(self.kernels.len()));
        self.kernels.push(k);
        self.spans.push(self.span);
        Ok(())
    }

    /// An elementwise-style kernel: `body(b, i)` for every `i < n`, one thread each.
    fn per_element(
        &mut self,
        node: usize,
        kind: &str,
        what: String,
        n: usize,
        body: impl FnOnce(&mut Builder, Expr),
    ) -> Result<(), String> {
        let mut b = Builder::new();
        b.grid_stride(n, body);
        let grid = self.grid(n);
        self.launch(b, node, kind, what, grid, self.config.block)
    }

    /// A kernel with one block per item (a grid-stride loop over `items`), `body(b, item,
    /// partials)` the work of one, its threads striding over `len` elements; `partials` is the
    /// shared array [`block_total`] needs (none with a single warp). Returns the builder, the
    /// grid and the block size.
    fn block_per_item(
        &self,
        items: usize,
        len: usize,
        mut body: impl FnMut(&mut Builder, Expr, Option<(Mem, usize)>),
    ) -> (Builder, u32, u32) {
        let block = (len.next_power_of_two() as u32).clamp(WARP, self.config.block);
        let grid = (items as u32).min(self.config.max_grid);
        let mut b = Builder::new();
        let warps = (block / WARP) as usize;
        let partials = (warps > 1).then(|| (b.shared(Ty::F32, warps), warps));
        b.for_(
            Expr::Builtin(Builtin::BlockIdx),
            Expr::idx(items),
            Expr::Builtin(Builtin::GridDim),
            |b, item| body(b, item, partials),
        );
        (b, grid, block)
    }

    /// A fresh error code for `message`.
    fn error(&mut self, message: String) -> u32 {
        self.errors.push(message);
        self.errors.len() as u32
    }

    /// Scratch appended to the f32 arena (not shared between kernels: simple, and the largest
    /// programs need few).
    fn scratch(&mut self, len: usize) -> usize {
        let offset = self.f32_len.next_multiple_of(16);
        self.f32_len = offset + len;
        offset
    }

    fn kernel(&mut self, index: usize, k: &KKernel) -> Result<(), String> {
        match k {
            KKernel::Elementwise { node, shape, .. } => {
                let outs: Vec<(Slot, &KExpr)> = k.elementwise_outputs().collect();
                self.elementwise(*node, &outs, shape)
            }
            KKernel::Rows { rows, len, stages } => self.rows(*rows, *len, stages),
            KKernel::Reduce {
                node,
                op,
                input,
                shape,
                axes,
                out,
            } => self.reduce(*node, *op, *input, shape, axes, *out),
            KKernel::MatMul {
                node,
                a,
                b,
                out,
                batch,
                m,
                n,
                k,
                ta,
                tb,
            } => {
                let (m, n, k) = (*m, *n, *k);
                self.steps.push(Step::Gemm(Gemm {
                    node: *node,
                    m,
                    n,
                    k,
                    batch: *batch,
                    a: (a.offset, if *ta { m } else { k }, *ta, m * k),
                    b: (b.offset, if *tb { k } else { n }, *tb, k * n),
                    c: (out.offset, n, m * n),
                    accumulate: false,
                }));
                Ok(())
            }
            KKernel::Native {
                node,
                op,
                shapes,
                out_shape,
                inputs,
                out,
                ..
            } => self.native(*node, op, shapes, out_shape, inputs, *out),
            KKernel::Fallback { .. } => {
                self.steps.push(Step::Host(index));
                Ok(())
            }
            KKernel::Copy { from, to } => {
                self.steps.push(Step::Copy {
                    from: *from,
                    to: *to,
                });
                Ok(())
            }
        }
    }

    /// One thread per element computing every output's value, then storing them all (as the
    /// CPU code does: a load of an output's own element sees its old value).
    fn elementwise(
        &mut self,
        node: usize,
        outs: &[(Slot, &KExpr)],
        shape: &[usize],
    ) -> Result<(), String> {
        let n: usize = shape.iter().product();
        let contiguous = row_major(shape);
        let needs_index = outs
            .iter()
            .any(|(_, e)| e.loads().iter().any(|(_, s)| *s != contiguous.as_slice()));
        let what = format!("elementwise {shape:?}");
        self.per_element(node, "elementwise", what, n, |b, i| {
            let k = if needs_index {
                decompose(b, i.clone(), shape)
            } else {
                Vec::new()
            };
            store_values(b, outs, &i, &k, &contiguous);
        })
    }

    /// A row kernel: one block per row (a grid-stride loop over rows), its stages in order with
    /// a barrier after each (a stage reads what other threads of the block stored for the row).
    /// A map's threads stride over the row's columns (thread 0 computes a value per row); a
    /// reduction is a block reduction like [`Lowering::reduce`]'s, stored by one thread.
    fn rows(&mut self, rows: usize, len: usize, stages: &[RowStage]) -> Result<(), String> {
        let tid = Expr::Builtin(Builtin::ThreadIdx);
        let (b, grid, block) = self.block_per_item(rows, len, |b, r, partials| {
            for stage in stages {
                match stage {
                    RowStage::Map { width, outs, .. } => {
                        let outs: Vec<(Slot, &KExpr)> = outs.iter().map(|(s, e)| (*s, e)).collect();
                        let contiguous = [*width, 1];
                        let column = |b: &mut Builder, j: Expr| {
                            let i = b.let_(
                                Ty::I64,
                                Expr::plus(Expr::times(r.clone(), Expr::idx(*width)), j.clone()),
                            );
                            store_values(b, &outs, &i, &[r.clone(), j], &contiguous);
                        };
                        if *width == 1 {
                            b.if_(Expr::cmp(Cmp::Eq, tid.clone(), Expr::I64(0)), |b| {
                                column(b, Expr::I64(0))
                            });
                        } else {
                            b.for_(
                                tid.clone(),
                                Expr::idx(*width),
                                Expr::Builtin(Builtin::BlockDim),
                                column,
                            );
                        }
                    }
                    RowStage::Reduce { op, expr, out, .. } => {
                        let acc = b.var(Ty::F32);
                        b.push(Stmt::Let(acc, Expr::F32(init_of(*op))));
                        b.for_(
                            tid.clone(),
                            Expr::idx(len),
                            Expr::Builtin(Builtin::BlockDim),
                            |b, j| {
                                let i =
                                    Expr::plus(Expr::times(r.clone(), Expr::idx(len)), j.clone());
                                let x = translate(expr, &i, &[r.clone(), j], &[len, 1]);
                                b.push(Stmt::Set(acc, combine(*op, Expr::Var(acc), x)));
                            },
                        );
                        block_total(b, acc, *op, partials, |b, total| {
                            b.push(Stmt::Store(
                                Mem::F,
                                Expr::plus(Expr::idx(out.offset), r.clone()),
                                total,
                            ));
                        });
                    }
                }
                b.push(Stmt::Barrier);
            }
        });
        let node = stages.first().map_or(0, RowStage::node);
        let what = format!("rows [{rows} x {len}], {} stages", stages.len());
        self.launch(b, node, "rows", what, grid, block)
    }

    fn reduce(
        &mut self,
        node: usize,
        op: ReduceOp,
        input: Slot,
        shape: &[usize],
        axes: &[usize],
        out: Slot,
    ) -> Result<(), String> {
        let dims = reduced_dims(shape, axes);
        let strides = row_major(&dims.iter().map(|d| d.0).collect::<Vec<_>>());
        let kept: Vec<(usize, usize)> = dims
            .iter()
            .zip(&strides)
            .filter(|(d, _)| !d.1)
            .map(|(d, s)| (d.0, *s))
            .collect();
        let red: Vec<(usize, usize)> = dims
            .iter()
            .zip(&strides)
            .filter(|(d, _)| d.1)
            .map(|(d, s)| (d.0, *s))
            .collect();
        let outputs = out.len;
        let len: usize = red.iter().map(|d| d.0).product();
        if input.len == 0 || outputs == 0 {
            // Nothing to read: every output is the initial value.
            let init = init_of(op);
            return self.per_element(
                node,
                "reduce_init",
                format!("reduce init [{outputs}]"),
                outputs,
                |b, i| {
                    b.push(Stmt::Store(
                        Mem::F,
                        Expr::plus(Expr::idx(out.offset), i),
                        Expr::F32(init),
                    ));
                },
            );
        }
        let tid = Expr::Builtin(Builtin::ThreadIdx);
        let (b, grid, block) = self.block_per_item(outputs, len, |b, o, partials| {
            let ko = decompose(b, o.clone(), &kept.iter().map(|d| d.0).collect::<Vec<_>>());
            let base = kept
                .iter()
                .zip(&ko)
                .fold(Expr::idx(input.offset), |acc, ((_, s), k)| {
                    Expr::plus(acc, Expr::times(k.clone(), Expr::idx(*s)))
                });
            let base = b.let_(Ty::I64, base);
            let acc = b.var(Ty::F32);
            b.push(Stmt::Let(acc, Expr::F32(init_of(op))));
            b.for_(
                tid.clone(),
                Expr::idx(len),
                Expr::Builtin(Builtin::BlockDim),
                |b, r| {
                    let kr = decompose(b, r, &red.iter().map(|d| d.0).collect::<Vec<_>>());
                    let at = red.iter().zip(&kr).fold(base.clone(), |acc, ((_, s), k)| {
                        Expr::plus(acc, Expr::times(k.clone(), Expr::idx(*s)))
                    });
                    b.push(Stmt::Set(acc, combine(op, Expr::Var(acc), load_f(at))));
                },
            );
            block_total(b, acc, op, partials, |b, total| {
                b.push(Stmt::Store(
                    Mem::F,
                    Expr::plus(Expr::idx(out.offset), o.clone()),
                    total,
                ));
            });
        });
        let name = match op {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Max => "reduce_max",
        };
        let what = format!("{name} {shape:?} axes={axes:?}");
        self.launch(b, node, name, what, grid, block)
    }

    fn native(
        &mut self,
        node: usize,
        op: &Op,
        shapes: &[Vec<usize>],
        out_shape: &[usize],
        inputs: &[Slot],
        out: Slot,
    ) -> Result<(), String> {
        let dims4 = |s: &[usize]| -> [usize; 4] { [s[0], s[1], s[2], s[3]] };
        let oo = out.offset;
        match op {
            Op::Gather => {
                let (table, ids) = (inputs[0].offset, inputs[1].offset);
                let (rows, width) = (shapes[0][0], shapes[0][1]);
                let code = self.error(format!("gather: an id is out of range for {rows} rows"));
                self.per_element(
                    node,
                    "gather",
                    format!("gather {:?}", shapes[0]),
                    out.len,
                    |b, e| {
                        let (id, j) = table_row(b, &e, width, ids);
                        b.if_else(
                            in_range(&id, rows),
                            |b| {
                                let src = Expr::plus(
                                    Expr::idx(table),
                                    Expr::plus(Expr::times(id.clone(), Expr::idx(width)), j),
                                );
                                b.push(Stmt::Store(
                                    Mem::F,
                                    Expr::plus(Expr::idx(oo), e.clone()),
                                    load_f(src),
                                ));
                            },
                            |b| b.push(Stmt::Fail(code)),
                        );
                    },
                )
            }
            Op::ScatterAdd => {
                let (ids, dy) = (inputs[0].offset, inputs[1].offset);
                let (rows, width) = (out_shape[0], out_shape[1]);
                let code = self.error(format!(
                    "scatter_add: an id is out of range for {rows} rows"
                ));
                self.per_element(
                    node,
                    "scatter_add_zero",
                    format!("scatter_add zero {out_shape:?}"),
                    out.len,
                    |b, e| {
                        b.push(Stmt::Store(
                            Mem::F,
                            Expr::plus(Expr::idx(oo), e),
                            Expr::F32(0.0),
                        ));
                    },
                )?;
                let n = inputs[1].len;
                self.per_element(
                    node,
                    "scatter_add",
                    format!("scatter_add {out_shape:?}"),
                    n,
                    |b, e| {
                        let (id, j) = table_row(b, &e, width, ids);
                        b.if_else(
                            in_range(&id, rows),
                            |b| {
                                let at = Expr::plus(
                                    Expr::idx(oo),
                                    Expr::plus(Expr::times(id.clone(), Expr::idx(width)), j),
                                );
                                b.push(Stmt::AtomicAdd(
                                    at,
                                    load_f(Expr::plus(Expr::idx(dy), e.clone())),
                                ));
                            },
                            |b| b.push(Stmt::Fail(code)),
                        );
                    },
                )
            }
            Op::OneHot { classes } => {
                let classes = *classes;
                let ids = inputs[0].offset;
                let code = self.error(format!("one_hot: an id is out of range for {classes} rows"));
                self.per_element(
                    node,
                    "one_hot",
                    format!("one_hot[classes={classes}]"),
                    out.len,
                    |b, e| {
                        let (id, c) = table_row(b, &e, classes, ids);
                        b.if_(
                            Expr::And(
                                Expr::cmp(Cmp::Eq, c.clone(), Expr::I64(0)).boxed(),
                                Expr::cmp(Cmp::Eq, in_range(&id, classes), Expr::I32(0)).boxed(),
                            ),
                            |b| b.push(Stmt::Fail(code)),
                        );
                        let hot = Expr::Select(
                            Expr::cmp(Cmp::Eq, id, c).boxed(),
                            Expr::F32(1.0).boxed(),
                            Expr::F32(0.0).boxed(),
                        );
                        b.push(Stmt::Store(Mem::F, Expr::plus(Expr::idx(oo), e), hot));
                    },
                )
            }
            Op::Concat { axis } => {
                let axis = *axis;
                let inner: usize = out_shape[axis + 1..].iter().product();
                let row = out_shape[axis] * inner;
                let mem = if out.dtype == DType::F32 {
                    Mem::F
                } else {
                    Mem::I
                };
                self.per_element(
                    node,
                    "concat",
                    format!("concat[axis={axis}] {out_shape:?}"),
                    out.len,
                    |b, e| {
                        let o = b.let_(Ty::I64, Expr::arith(Arith::Div, e.clone(), Expr::idx(row)));
                        let w = b.let_(Ty::I64, Expr::arith(Arith::Rem, e.clone(), Expr::idx(row)));
                        // The source index: a select chain over the operands' column ranges.
                        let mut bounds = Vec::new();
                        let mut start = 0;
                        for (s, shape) in inputs.iter().zip(shapes) {
                            let block = shape[axis] * inner;
                            let src = Expr::plus(
                                Expr::plus(
                                    Expr::idx(s.offset),
                                    Expr::times(o.clone(), Expr::idx(block)),
                                ),
                                Expr::arith(Arith::Sub, w.clone(), Expr::idx(start)),
                            );
                            start += block;
                            bounds.push((start, src));
                        }
                        let (_, last) = bounds.pop().expect("concat has operands");
                        let index = bounds.into_iter().rev().fold(last, |rest, (end, src)| {
                            Expr::Select(
                                Expr::cmp(Cmp::Lt, w.clone(), Expr::idx(end)).boxed(),
                                src.boxed(),
                                rest.boxed(),
                            )
                        });
                        let index = b.let_(Ty::I64, index);
                        b.push(Stmt::Store(
                            mem,
                            Expr::plus(Expr::idx(oo), e),
                            Expr::Load(mem, index.boxed()),
                        ));
                    },
                )
            }
            Op::Cast { to } => {
                let (from_mem, to_mem, from, ty) = match to {
                    DType::I64 => (Mem::F, Mem::I, Ty::F32, Ty::I64),
                    DType::F32 => (Mem::I, Mem::F, Ty::I64, Ty::F32),
                };
                let x = inputs[0].offset;
                self.per_element(node, "cast", format!("cast to {to}"), out.len, |b, e| {
                    let v = Expr::Cast(
                        from,
                        ty,
                        Expr::Load(from_mem, Expr::plus(Expr::idx(x), e.clone()).boxed()).boxed(),
                    );
                    b.push(Stmt::Store(to_mem, Expr::plus(Expr::idx(oo), e), v));
                })
            }
            Op::Conv2d { window } => {
                let [n, c, _, _] = dims4(&shapes[0]);
                let [_, o, oh, ow] = dims4(out_shape);
                let (k, p) = (c * window.kernel[0] * window.kernel[1], oh * ow);
                let col = self.scratch(n * k * p);
                self.im2col(
                    node,
                    inputs[0].offset,
                    dims4(&shapes[0]),
                    (oh, ow),
                    window,
                    col,
                    (p, k * p),
                )?;
                self.steps.push(Step::Gemm(Gemm {
                    node,
                    m: o,
                    n: p,
                    k,
                    batch: n,
                    a: (inputs[1].offset, k, false, 0),
                    b: (col, p, false, k * p),
                    c: (oo, p, o * p),
                    accumulate: false,
                }));
                Ok(())
            }
            Op::Conv2dWeightGrad { window } => {
                let [n, c, _, _] = dims4(&shapes[0]);
                let [_, o, oh, ow] = dims4(&shapes[1]);
                let (k, p) = (c * window.kernel[0] * window.kernel[1], oh * ow);
                // col as [K, N*P] and dy as [O, N*P]: one GEMM contracts over images and positions.
                let col = self.scratch(n * k * p);
                self.im2col(
                    node,
                    inputs[0].offset,
                    dims4(&shapes[0]),
                    (oh, ow),
                    window,
                    col,
                    (n * p, p),
                )?;
                let dyt = self.scratch(o * n * p);
                let dy = inputs[1].offset;
                self.per_element(
                    node,
                    "transpose",
                    format!("dy [N,O,P] -> [O,N,P] {:?}", shapes[1]),
                    o * n * p,
                    |b, e| {
                        let q = decompose(b, e.clone(), &[o, n, p]);
                        let src = Expr::plus(
                            Expr::idx(dy),
                            Expr::plus(
                                Expr::times(q[1].clone(), Expr::idx(o * p)),
                                Expr::plus(Expr::times(q[0].clone(), Expr::idx(p)), q[2].clone()),
                            ),
                        );
                        b.push(Stmt::Store(
                            Mem::F,
                            Expr::plus(Expr::idx(dyt), e),
                            load_f(src),
                        ));
                    },
                )?;
                self.steps.push(Step::Gemm(Gemm {
                    node,
                    m: o,
                    n: k,
                    k: n * p,
                    batch: 1,
                    a: (dyt, n * p, false, 0),
                    b: (col, n * p, true, 0),
                    c: (oo, k, 0),
                    accumulate: false,
                }));
                Ok(())
            }
            Op::ConvTranspose2d { window } => {
                let [n, ci, h, w] = dims4(&shapes[0]);
                let [_, o, oh, ow] = dims4(out_shape);
                let (kh, kw) = (window.kernel[0], window.kernel[1]);
                let (k, p) = (o * kh * kw, h * w);
                let col = self.scratch(n * k * p);
                self.steps.push(Step::Gemm(Gemm {
                    node,
                    m: k,
                    n: p,
                    k: ci,
                    batch: n,
                    a: (inputs[1].offset, k, true, 0),
                    b: (inputs[0].offset, p, false, ci * p),
                    c: (col, p, k * p),
                    accumulate: false,
                }));
                let win = *window;
                // col2im, gathered: each output pixel sums its taps in (a, b) order, the order
                // in which the CPU's scatter adds them.
                self.per_element(
                    node,
                    "col2im",
                    format!("col2im {out_shape:?}"),
                    out.len,
                    |b, e| {
                        let q = decompose(b, e.clone(), &[n, o, oh, ow]);
                        let acc = b.var(Ty::F32);
                        b.push(Stmt::Let(acc, Expr::F32(0.0)));
                        b.for_(Expr::I64(0), Expr::idx(kh), Expr::I64(1), |b, a| {
                            let i = window_pos(b, &win, 0, &q[2], &a, h);
                            b.if_(i.0, |b| {
                                b.for_(Expr::I64(0), Expr::idx(kw), Expr::I64(1), |b, bb| {
                                    let j = window_pos(b, &win, 1, &q[3], &bb, w);
                                    b.if_(j.0, |b| {
                                        let row = Expr::plus(
                                            Expr::times(
                                                Expr::plus(
                                                    Expr::times(q[1].clone(), Expr::idx(kh)),
                                                    a.clone(),
                                                ),
                                                Expr::idx(kw),
                                            ),
                                            bb.clone(),
                                        );
                                        let at = Expr::plus(
                                            Expr::plus(
                                                Expr::idx(col),
                                                Expr::times(q[0].clone(), Expr::idx(k * p)),
                                            ),
                                            Expr::plus(
                                                Expr::times(row, Expr::idx(p)),
                                                Expr::plus(
                                                    Expr::times(i.1.clone(), Expr::idx(w)),
                                                    j.1,
                                                ),
                                            ),
                                        );
                                        b.push(Stmt::Set(
                                            acc,
                                            Expr::Binary(
                                                BinaryOp::Add,
                                                Expr::Var(acc).boxed(),
                                                load_f(at).boxed(),
                                            ),
                                        ));
                                    });
                                });
                            });
                        });
                        b.push(Stmt::Store(
                            Mem::F,
                            Expr::plus(Expr::idx(oo), e),
                            Expr::Var(acc),
                        ));
                    },
                )
            }
            Op::MaxPool2d { window } | Op::AvgPool2d { window } => {
                let [_, _, h, w] = dims4(&shapes[0]);
                let [_, _, oh, ow] = dims4(out_shape);
                let x = inputs[0].offset;
                let win = *window;
                let max = matches!(op, Op::MaxPool2d { .. });
                let kind = if max { "max_pool2d" } else { "avg_pool2d" };
                self.per_element(
                    node,
                    kind,
                    format!("{kind} {:?} -> {out_shape:?}", shapes[0]),
                    out.len,
                    |b, e| {
                        let q = decompose(b, e.clone(), &[out.len / (oh * ow).max(1), oh, ow]);
                        let plane =
                            Expr::plus(Expr::idx(x), Expr::times(q[0].clone(), Expr::idx(h * w)));
                        let value = if max {
                            let (m, _) = window_max(b, &win, plane, (h, w), &q[1], &q[2]);
                            m
                        } else {
                            let acc = b.var(Ty::F32);
                            b.push(Stmt::Let(acc, Expr::F32(0.0)));
                            taps(b, &win, (h, w), &q[1], &q[2], |b, at| {
                                b.push(Stmt::Set(
                                    acc,
                                    Expr::Binary(
                                        BinaryOp::Add,
                                        Expr::Var(acc).boxed(),
                                        load_f(Expr::plus(plane.clone(), at)).boxed(),
                                    ),
                                ));
                            });
                            let count = (win.kernel[0] * win.kernel[1]) as f32;
                            Expr::Binary(
                                BinaryOp::Div,
                                Expr::Var(acc).boxed(),
                                Expr::F32(count).boxed(),
                            )
                        };
                        b.push(Stmt::Store(Mem::F, Expr::plus(Expr::idx(oo), e), value));
                    },
                )
            }
            Op::MaxPool2dGrad { window } | Op::AvgPool2dGrad { window } => {
                let max = matches!(op, Op::MaxPool2dGrad { .. });
                // Max: operands (x, dy); avg: operand dy and the result has x's shape.
                let (xs, ds) = if max {
                    (dims4(&shapes[0]), dims4(&shapes[1]))
                } else {
                    (dims4(out_shape), dims4(&shapes[0]))
                };
                let [_, _, h, w] = xs;
                let [_, _, oh, ow] = ds;
                let x = inputs[0].offset;
                let dy = inputs[if max { 1 } else { 0 }].offset;
                let win = *window;
                let kind = if max {
                    "max_pool2d_grad"
                } else {
                    "avg_pool2d_grad"
                };
                self.per_element(
                    node,
                    kind,
                    format!("{kind} {out_shape:?}"),
                    out.len,
                    |b, e| {
                        let q = decompose(b, e.clone(), &[out.len / (h * w).max(1), h, w]);
                        let here = b.let_(
                            Ty::I64,
                            Expr::plus(Expr::times(q[1].clone(), Expr::idx(w)), q[2].clone()),
                        );
                        let plane = Expr::times(q[0].clone(), Expr::idx(h * w));
                        let dplane = Expr::plus(
                            Expr::idx(dy),
                            Expr::times(q[0].clone(), Expr::idx(oh * ow)),
                        );
                        let acc = b.var(Ty::F32);
                        b.push(Stmt::Let(acc, Expr::F32(0.0)));
                        // Windows containing this pixel in row-major (i, j) order: taps descending.
                        let (kh, kw) = (win.kernel[0] as i64, win.kernel[1] as i64);
                        b.for_(Expr::I64(0), Expr::I64(kh), Expr::I64(1), |b, ar| {
                            let a = Expr::arith(Arith::Sub, Expr::I64(kh - 1), ar);
                            let i = window_pos(b, &win, 0, &q[1], &a, oh);
                            b.if_(i.0, |b| {
                                b.for_(Expr::I64(0), Expr::I64(kw), Expr::I64(1), |b, br| {
                                    let bb = Expr::arith(Arith::Sub, Expr::I64(kw - 1), br);
                                    let j = window_pos(b, &win, 1, &q[2], &bb, ow);
                                    b.if_(j.0, |b| {
                                        let g = load_f(Expr::plus(
                                            dplane.clone(),
                                            Expr::plus(
                                                Expr::times(i.1.clone(), Expr::idx(ow)),
                                                j.1.clone(),
                                            ),
                                        ));
                                        if max {
                                            let (_, at) = window_max(
                                                b,
                                                &win,
                                                Expr::plus(Expr::idx(x), plane.clone()),
                                                (h, w),
                                                &i.1,
                                                &j.1,
                                            );
                                            b.if_(Expr::cmp(Cmp::Eq, at, here.clone()), |b| {
                                                b.push(Stmt::Set(
                                                    acc,
                                                    Expr::Binary(
                                                        BinaryOp::Add,
                                                        Expr::Var(acc).boxed(),
                                                        g.boxed(),
                                                    ),
                                                ));
                                            });
                                        } else {
                                            let count = (win.kernel[0] * win.kernel[1]) as f32;
                                            let share = Expr::Binary(
                                                BinaryOp::Div,
                                                g.boxed(),
                                                Expr::F32(count).boxed(),
                                            );
                                            b.push(Stmt::Set(
                                                acc,
                                                Expr::Binary(
                                                    BinaryOp::Add,
                                                    Expr::Var(acc).boxed(),
                                                    share.boxed(),
                                                ),
                                            ));
                                        }
                                    });
                                });
                            });
                        });
                        b.push(Stmt::Store(
                            Mem::F,
                            Expr::plus(Expr::idx(oo), e),
                            Expr::Var(acc),
                        ));
                    },
                )
            }
            other => Err(format!(
                "internal: no GPU kernel for native op {}",
                other.name()
            )),
        }
    }

    /// `col[kk * row_stride + n * image_stride + p] = x[n, c, h, w]` (0 in the padding) for every
    /// image `n`, row `kk = (c, a, b)` and window position `p = (i, j)`.
    #[allow(clippy::too_many_arguments)]
    fn im2col(
        &mut self,
        node: usize,
        x: usize,
        [n, c, h, w]: [usize; 4],
        (oh, ow): (usize, usize),
        win: &Window,
        col: usize,
        (row_stride, image_stride): (usize, usize),
    ) -> Result<(), String> {
        let (kh, kw) = (win.kernel[0], win.kernel[1]);
        let total = n * c * kh * kw * oh * ow;
        let win = *win;
        self.per_element(
            node,
            "im2col",
            format!("im2col [{n}, {c}, {h}, {w}] k={kh}x{kw}"),
            total,
            |b, e| {
                let q = decompose(b, e, &[n, c, kh, kw, oh, ow]);
                let hh = b.let_(Ty::I64, coord(&win, 0, &q[4], &q[2]));
                let vv = b.let_(Ty::I64, coord(&win, 1, &q[5], &q[3]));
                let src = Expr::plus(
                    Expr::plus(
                        Expr::idx(x),
                        Expr::times(
                            Expr::plus(Expr::times(q[0].clone(), Expr::idx(c)), q[1].clone()),
                            Expr::idx(h * w),
                        ),
                    ),
                    Expr::plus(Expr::times(hh.clone(), Expr::idx(w)), vv.clone()),
                );
                let value = Expr::Select(
                    Expr::And(in_range(&hh, h).boxed(), in_range(&vv, w).boxed()).boxed(),
                    load_f(src).boxed(),
                    Expr::F32(0.0).boxed(),
                );
                let kk = Expr::plus(
                    Expr::times(
                        Expr::plus(Expr::times(q[1].clone(), Expr::idx(kh)), q[2].clone()),
                        Expr::idx(kw),
                    ),
                    q[3].clone(),
                );
                let p = Expr::plus(Expr::times(q[4].clone(), Expr::idx(ow)), q[5].clone());
                let at = Expr::plus(
                    Expr::idx(col),
                    Expr::plus(
                        Expr::plus(
                            Expr::times(kk, Expr::idx(row_stride)),
                            Expr::times(q[0].clone(), Expr::idx(image_stride)),
                        ),
                        p,
                    ),
                );
                b.push(Stmt::Store(Mem::F, at, value));
            },
        )
    }
}

fn init_of(op: ReduceOp) -> f32 {
    op.identity() as f32
}

/// One step of a reduction: `acc + x`, or the NaN-propagating `max`.
fn combine(op: ReduceOp, acc: Expr, x: Expr) -> Expr {
    let bop = match op {
        ReduceOp::Sum => BinaryOp::Add,
        ReduceOp::Max => BinaryOp::Max,
    };
    Expr::Binary(bop, acc.boxed(), x.boxed())
}

/// Reduce every thread's `acc` across the block: by warp shuffles, then (with several warps)
/// through the shared `partials`, one per warp, reduced by warp 0. `store` runs in the one
/// thread that ends with the total. Every thread of the block must reach this call (it has
/// barriers); it ends with one, so `partials` can be reused at once.
fn block_total(
    b: &mut Builder,
    acc: Var,
    op: ReduceOp,
    partials: Option<(Mem, usize)>,
    store: impl FnOnce(&mut Builder, Expr),
) {
    let tid = Expr::Builtin(Builtin::ThreadIdx);
    let lane = Expr::arith(Arith::Rem, tid.clone(), Expr::I64(WARP as i64));
    let warp = Expr::arith(Arith::Div, tid.clone(), Expr::I64(WARP as i64));
    let combine = |a: Expr, x: Expr| combine(op, a, x);
    let total = warp_reduce(b, acc, &combine);
    match partials {
        None => b.if_(Expr::cmp(Cmp::Eq, tid, Expr::I64(0)), |b| {
            store(b, Expr::Var(total))
        }),
        Some((s, warps)) => {
            b.if_(Expr::cmp(Cmp::Eq, lane.clone(), Expr::I64(0)), |b| {
                b.push(Stmt::Store(s, warp.clone(), Expr::Var(total)));
            });
            b.push(Stmt::Barrier);
            let warps = Expr::I64(warps as i64);
            b.if_(Expr::cmp(Cmp::Eq, warp, Expr::I64(0)), |b| {
                let v = b.var(Ty::F32);
                b.push(Stmt::Let(
                    v,
                    Expr::Select(
                        Expr::cmp(Cmp::Lt, lane.clone(), warps).boxed(),
                        Expr::Load(s, lane.clone().boxed()).boxed(),
                        Expr::F32(init_of(op)).boxed(),
                    ),
                ));
                let total = warp_reduce(b, v, &combine);
                b.if_(Expr::cmp(Cmp::Eq, lane, Expr::I64(0)), |b| {
                    store(b, Expr::Var(total))
                });
            });
            // The next reduction reuses the partials.
            b.push(Stmt::Barrier);
        }
    }
}

/// Compute every output's value at flat index `i` (multi-index `k`), then store them all (as
/// the CPU code does: a load of an output's own element sees its old value).
fn store_values(
    b: &mut Builder,
    outs: &[(Slot, &KExpr)],
    i: &Expr,
    k: &[Expr],
    contiguous: &[usize],
) {
    let values: Vec<Expr> = if outs.len() == 1 {
        vec![translate(outs[0].1, i, k, contiguous)]
    } else {
        outs.iter()
            .map(|(_, e)| b.let_(Ty::F32, translate(e, i, k, contiguous)))
            .collect()
    };
    for ((out, _), value) in outs.iter().zip(values) {
        b.push(Stmt::Store(
            Mem::F,
            Expr::plus(Expr::idx(out.offset), i.clone()),
            value,
        ));
    }
}

/// Reduce `v` across the warp with shuffles (unrolled: the offsets are static); lane 0 ends with
/// the warp's total.
fn warp_reduce(b: &mut Builder, v: Var, combine: &dyn Fn(Expr, Expr) -> Expr) -> Var {
    let mut delta = WARP / 2;
    while delta > 0 {
        let other = b.var(Ty::F32);
        b.push(Stmt::ShflDown {
            dst: other,
            src: v,
            delta,
        });
        b.push(Stmt::Set(v, combine(Expr::Var(v), Expr::Var(other))));
        delta /= 2;
    }
    v
}

/// The kernel IR expression as a GPU expression at flat index `i` (multi-index `k`, computed
/// only when some load is not contiguous).
fn translate(e: &KExpr, i: &Expr, k: &[Expr], contiguous: &[usize]) -> Expr {
    let t = |x: &KExpr| translate(x, i, k, contiguous).boxed();
    match e {
        KExpr::Load { offset, strides } => {
            let index = if strides == contiguous {
                Expr::plus(Expr::idx(*offset), i.clone())
            } else {
                strides
                    .iter()
                    .zip(k)
                    .fold(Expr::idx(*offset), |acc, (s, kd)| {
                        Expr::plus(acc, Expr::times(kd.clone(), Expr::idx(*s)))
                    })
            };
            load_f(index)
        }
        KExpr::Const(c) => Expr::F32(*c),
        KExpr::Unary(op, a) => Expr::Unary(*op, t(a)),
        KExpr::Binary(op, a, b) => Expr::Binary(*op, t(a), t(b)),
        KExpr::Fma(a, b, c) => Expr::Fma(t(a), t(b), t(c)),
        // NaN counts as non-zero: `NaN != 0` is true in C.
        KExpr::Select(c, a, b) => Expr::Select(
            Expr::Cmp(Cmp::Ne, t(c), Expr::F32(0.0).boxed()).boxed(),
            t(a),
            t(b),
        ),
    }
}

/// Visit the in-bounds taps of window `(i, j)` in row-major order with the tap's flat position
/// in the `[h, w]` plane.
fn taps(
    b: &mut Builder,
    win: &Window,
    (h, w): (usize, usize),
    i: &Expr,
    j: &Expr,
    body: impl FnOnce(&mut Builder, Expr),
) {
    let win = *win;
    b.for_(
        Expr::I64(0),
        Expr::idx(win.kernel[0]),
        Expr::I64(1),
        |b, a| {
            let hh = b.let_(Ty::I64, coord(&win, 0, i, &a));
            b.if_(in_range(&hh, h), |b| {
                b.for_(
                    Expr::I64(0),
                    Expr::idx(win.kernel[1]),
                    Expr::I64(1),
                    |b, t| {
                        let vv = b.let_(Ty::I64, coord(&win, 1, j, &t));
                        b.if_(in_range(&vv, w), |b| {
                            body(b, Expr::plus(Expr::times(hh.clone(), Expr::idx(w)), vv));
                        });
                    },
                );
            });
        },
    );
}

/// The maximum of window `(i, j)` of the plane at `plane` and the flat position of its first
/// occurrence (-inf and -1 for a window entirely in the padding); a NaN beats everything and is
/// never displaced, as in the CPU backend and the interpreter.
fn window_max(
    b: &mut Builder,
    win: &Window,
    plane: Expr,
    (h, w): (usize, usize),
    i: &Expr,
    j: &Expr,
) -> (Expr, Expr) {
    let m = b.var(Ty::F32);
    let at = b.var(Ty::I64);
    b.push(Stmt::Let(m, Expr::F32(f32::NEG_INFINITY)));
    b.push(Stmt::Let(at, Expr::I64(-1)));
    taps(b, win, (h, w), i, j, |b, pos| {
        let x = b.let_(Ty::F32, load_f(Expr::plus(plane, pos.clone())));
        let m_ok = Expr::cmp(Cmp::Eq, Expr::Var(m), Expr::Var(m));
        let better = Expr::Or(
            Expr::cmp(Cmp::Lt, Expr::Var(at), Expr::I64(0)).boxed(),
            Expr::And(
                m_ok.boxed(),
                Expr::Or(
                    Expr::cmp(Cmp::Ne, x.clone(), x.clone()).boxed(),
                    Expr::cmp(Cmp::Gt, x.clone(), Expr::Var(m)).boxed(),
                )
                .boxed(),
            )
            .boxed(),
        );
        b.if_(better, |b| {
            b.push(Stmt::Set(m, x));
            b.push(Stmt::Set(at, pos));
        });
    });
    (Expr::Var(m), Expr::Var(at))
}

/// The window index `i` whose tap `tap` lands on input coordinate `pos` (`i * stride + tap *
/// dilation - padding == pos`), with whether it exists in `0..count`.
fn window_pos(
    b: &mut Builder,
    win: &Window,
    axis: usize,
    pos: &Expr,
    tap: &Expr,
    count: usize,
) -> (Expr, Expr) {
    let t = b.let_(
        Ty::I64,
        Expr::arith(
            Arith::Sub,
            Expr::plus(pos.clone(), Expr::idx(win.padding[axis])),
            Expr::times(tap.clone(), Expr::idx(win.dilation[axis])),
        ),
    );
    let s = Expr::idx(win.stride[axis]);
    let i = b.let_(Ty::I64, Expr::arith(Arith::Div, t.clone(), s.clone()));
    let ok = Expr::And(
        Expr::cmp(Cmp::Ge, t.clone(), Expr::I64(0)).boxed(),
        Expr::And(
            Expr::cmp(Cmp::Eq, Expr::arith(Arith::Rem, t, s), Expr::I64(0)).boxed(),
            Expr::cmp(Cmp::Lt, i.clone(), Expr::idx(count)).boxed(),
        )
        .boxed(),
    );
    (ok, i)
}

/// Where each kernel came from, for its comment and for error messages: the IR node and, given
/// the `.net` source, the line, column and text of the construct (`%12 at 9:5 `linear(64)``).
pub fn origins(p: &CudaProgram, source: Option<&str>) -> Vec<String> {
    let index = source.map(netc_grammar::line_index::LineIndex::new);
    p.kernels
        .iter()
        .zip(&p.spans)
        .map(|(k, span)| match (source, &index) {
            (Some(text), Some(index)) if span.end > span.start && span.end <= text.len() => {
                let at = index.line_col(
                    text,
                    span.start,
                    netc_grammar::line_index::ColumnUnit::Chars,
                );
                let snippet: String = text[span.start..span.end]
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(60)
                    .collect();
                format!("%{} at {}:{} `{snippet}`", k.node, at.line + 1, at.col + 1)
            }
            _ => format!("%{}", k.node),
        })
        .collect()
}
