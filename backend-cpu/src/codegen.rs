//! Cranelift code generation for fused elementwise kernels.
//!
//! Each [`Kernel::Elementwise`] becomes one function `fn(arena: *mut f32, lo: i64, hi: i64)`
//! computing the part `lo..hi` of the outermost (collapsed) dimension, so a large kernel can be
//! split over threads; every offset, stride and inner trip count is baked in as a constant. Loop nest: one counted loop per collapsed outer
//! dimension, then the innermost dimension in `f32x4` steps when every load there is contiguous
//! or a scalar broadcast, and a scalar loop for the tail (or for the whole row otherwise).
//! Cranelift's x64 backend has 128-bit vectors only (toolchain.md §1b), so `f32x4` it is.
//!
//! Semantics follow the IR exactly: relu is a compare+select that keeps NaN (one `maxps`-like
//! sequence, much faster than the IEEE `fmax`), `max`/`min` are the NaN-propagating `fmax`/`fmin`,
//! `greater` and `select` are compare+select. Transcendentals (exp, log, tanh, sigmoid, erf) are
//! inlined polynomial code ([`math`]) within a few ulp of the interpreter's correctly rounded
//! results.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, I64};
use cranelift_codegen::ir::{
    AbiParam, ConstantData, Endianness, InstBuilder, MemFlagsData, Signature, Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};
use netc_compiler::ir::{BinaryOp, ReduceOp, UnaryOp};

use crate::kernel::{Expr, RowStage};

mod math;

/// `exp` as the interpreter computes it: in f64, rounded once to f32.
extern "C" fn host_exp(x: f32) -> f32 {
    f64::from(x).exp() as f32
}
extern "C" fn host_log(x: f32) -> f32 {
    f64::from(x).ln() as f32
}
extern "C" fn host_tanh(x: f32) -> f32 {
    f64::from(x).tanh() as f32
}
extern "C" fn host_sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + (-f64::from(x)).exp())) as f32
}
extern "C" fn host_erf(x: f32) -> f32 {
    netc_compiler::ir::interp::erf(f64::from(x)) as f32
}

/// A transcendental exactly as the interpreter computes it (in f64, rounded once to f32), for
/// emulators and tests. Generated code does not call these: it inlines the few-ulp
/// approximations of [`math`].
pub fn host_unary(op: UnaryOp) -> Option<extern "C" fn(f32) -> f32> {
    Some(match op {
        UnaryOp::Exp => host_exp,
        UnaryOp::Log => host_log,
        UnaryOp::Tanh => host_tanh,
        UnaryOp::Sigmoid => host_sigmoid,
        UnaryOp::Erf => host_erf,
        _ => return None,
    })
}

/// A JIT module holding compiled kernels. It owns the executable memory, so it must outlive
/// every function pointer taken from it.
pub struct Jit {
    module: JITModule,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    fma: bool,
    pending: Vec<FuncId>,
    count: usize,
}

impl Jit {
    /// A module for the host CPU: `cranelift_native` flags (AVX, FMA where present) and
    /// `opt_level=speed`; the verifier only in debug builds.
    pub fn new() -> Result<Jit, String> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v)
                .map_err(|e| format!("cranelift setting {k}: {e}"))
        };
        set(&mut flags, "opt_level", "speed")?;
        set(
            &mut flags,
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        )?;
        let isa_builder = cranelift_native::builder().map_err(|e| e.to_string())?;
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        let fma = has_fma();
        let module = JITModule::new(JITBuilder::with_isa(
            isa,
            cranelift_module::default_libcall_names(),
        ));
        let ctx = module.make_context();
        Ok(Jit {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            fma,
            pending: Vec::new(),
            count: 0,
        })
    }

    /// Compile one elementwise kernel computing `arena[offset + k] = expr(k)` for each of
    /// `outs` (element offset, expression) over `shape`; its address is available after
    /// [`Jit::finish`], at the returned index.
    pub fn add_elementwise(
        &mut self,
        outs: &[(usize, &Expr)],
        shape: &[usize],
    ) -> Result<usize, String> {
        let strides_out = row_major(shape);
        self.define(strides_out, |g| g.body(outs, shape))
    }

    /// Compile one row kernel ([`Kernel::Rows`](crate::kernel::Kernel::Rows)): its stages,
    /// row by row, for the rows `lo..hi` given at the call.
    pub fn add_rows(&mut self, len: usize, stages: &[RowStage]) -> Result<usize, String> {
        self.define(Vec::new(), |g| g.rows(len, stages))
    }

    /// Declare and compile one function `fn(arena, lo, hi)` whose body `body` builds.
    fn define(
        &mut self,
        strides_out: Vec<usize>,
        body: impl FnOnce(&mut Gen<'_>),
    ) -> Result<usize, String> {
        let ptr = self.module.target_config().pointer_type();
        let mut sig = Signature::new(self.module.isa().default_call_conv());
        sig.params.push(AbiParam::new(ptr));
        sig.params.push(AbiParam::new(I64));
        sig.params.push(AbiParam::new(I64));
        let name = format!("k{}", self.count);
        self.count += 1;
        let id = self
            .module
            .declare_function(&name, Linkage::Local, &sig)
            .map_err(|e| e.to_string())?;
        self.ctx.func.signature = sig;
        let frontend = self.module.target_config();
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let (base, lo, hi) = {
                let p = b.block_params(entry);
                (p[0], p[1], p[2])
            };
            let mut g = Gen {
                b,
                base,
                fma: self.fma,
                row_bases: Vec::new(),
                loaded: HashMap::new(),
                out_row: base,
                strides_out,
                split: (lo, hi),
            };
            body(&mut g);
            g.b.ins().return_(&[]);
            g.b.seal_all_blocks();
            g.b.finalize(frontend);
        }
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| format!("cranelift: {e:?}"))?;
        self.module.clear_context(&mut self.ctx);
        self.pending.push(id);
        Ok(self.pending.len() - 1)
    }

    /// Link everything compiled so far; returns the code addresses in [`Jit::add_elementwise`]
    /// order. The addresses stay valid as long as this `Jit` lives.
    pub fn finish(&mut self) -> Result<Vec<*const u8>, String> {
        self.module
            .finalize_definitions()
            .map_err(|e| e.to_string())?;
        Ok(self
            .pending
            .iter()
            .map(|&id| self.module.get_finalized_function(id))
            .collect())
    }
}

/// Whether the host has FMA (then `fma` lowers to one `vfmadd`; without it Cranelift would
/// call `fmaf` per lane, so we emit a multiply and an add instead).
fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// Whether no range in `read` overlaps any `(offset, len)` of `written`.
fn reads_none_of(
    mut read: impl Iterator<Item = (std::ops::Range<usize>, usize, Vec<usize>)>,
    written: &[(usize, usize)],
) -> bool {
    read.all(|(r, _, _)| {
        written
            .iter()
            .all(|&(o, len)| r.end <= o || o + len <= r.start)
    })
}

/// How the innermost loop evaluates: four lanes at a time, or one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Vector,
    Scalar,
}

struct Gen<'a> {
    b: FunctionBuilder<'a>,
    base: Value,
    fma: bool,
    /// Per load (in `Expr::loads` order, output after output): its address at the start of the
    /// current row, in bytes from the arena base, as an i64.
    row_bases: Vec<Value>,
    /// The values loaded for the element being computed, by offset and strides: an
    /// expression that reads the same element twice (a sibling output inlined into its
    /// reader) loads it once, so Cranelift's value numbering can share everything computed
    /// from it (it never merges two loads).
    loaded: HashMap<(usize, Vec<usize>), Value>,
    /// The current row's address within the outputs (absolute, without an output's offset:
    /// the outputs share the shape, so one row address serves them all).
    out_row: Value,
    strides_out: Vec<usize>,
    /// The range of the outermost dimension this call computes (the function's arguments).
    split: (Value, Value),
}

/// The fixed parts of a kernel's loop nest, shared by every level of [`Gen::outer`].
#[derive(Clone, Copy)]
struct Nest<'a> {
    /// The innermost dimension.
    last: usize,
    shape: &'a [usize],
    /// Per load (in evaluation order over all outputs): its strides, and its element offset.
    loads: &'a [Vec<usize>],
    offsets: &'a [usize],
    /// Each output's element offset and expression.
    outs: &'a [(usize, &'a Expr)],
    /// Whether the innermost dimension runs in `f32x4` steps.
    vector: bool,
    /// Whether an element may be computed twice (no load reads an output).
    redo_safe: bool,
}

fn flags() -> MemFlagsData {
    // Not `aligned`: a row of a broadcast or slice may start at any element.
    MemFlagsData::new().with_notrap()
}

impl Gen<'_> {
    fn iconst(&mut self, x: usize) -> Value {
        self.b.ins().iconst(I64, x as i64)
    }

    /// A counted loop `for i in (start..end).step_by(step)`, the body built by `body(self, i)`;
    /// returns the final counter value.
    fn counted(
        &mut self,
        start: Value,
        end: Value,
        step: usize,
        body: &mut dyn FnMut(&mut Self, Value),
    ) -> Value {
        let header = self.b.create_block();
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, I64);
        self.b.append_block_param(exit, I64);
        self.b.ins().jump(header, &[start.into()]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        // Continue while i + step <= end.
        let next = self.b.ins().iadd_imm_s(i, step as i64);
        let ok = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, next, end);
        self.b.ins().brif(ok, body_block, &[], exit, &[i.into()]);
        self.b.switch_to_block(body_block);
        body(self, i);
        self.b.ins().jump(header, &[next.into()]);
        self.b.switch_to_block(exit);
        self.b.block_params(exit)[0]
    }

    /// The loop nest of `out = expr` for every output over `shape`, the outermost dimension
    /// over `self.split`.
    fn body(&mut self, outs: &[(usize, &Expr)], shape: &[usize]) {
        let (offsets, loads): (Vec<usize>, Vec<Vec<usize>>) = outs
            .iter()
            .flat_map(|(_, e)| e.loads())
            .map(|(o, s)| (o, s.to_vec()))
            .unzip();
        let last = shape.len() - 1;
        let vector = shape[last] >= 4 && loads.iter().all(|s| s[last] <= 1);
        let elements = shape.iter().product::<usize>();
        let written: Vec<(usize, usize)> = outs.iter().map(|(o, _)| (*o, elements)).collect();
        let read = outs.iter().flat_map(|(_, e)| e.load_ranges(shape));
        let mut idx: Vec<Value> = Vec::new();
        let at = Nest {
            last,
            shape,
            loads: &loads,
            offsets: &offsets,
            outs,
            vector,
            redo_safe: reads_none_of(read, &written),
        };
        self.outer(0, &at, &mut idx);
    }

    fn outer(&mut self, d: usize, at: &Nest<'_>, idx: &mut Vec<Value>) {
        let Nest {
            last,
            shape,
            loads,
            offsets,
            outs,
            vector,
            ..
        } = *at;
        if d == last {
            // Row bases from the outer indices.
            let mut bases = Vec::new();
            for (l, s) in loads.iter().enumerate() {
                let mut v = self.iconst(offsets[l] * 4);
                for (e, &i) in idx.iter().enumerate() {
                    if s[e] != 0 {
                        let t = self.b.ins().imul_imm_s(i, (s[e] * 4) as i64);
                        v = self.b.ins().iadd(v, t);
                    }
                }
                bases.push(v);
            }
            // The row's offset within every output (they share the shape).
            let mut o = self.iconst(0);
            for (e, &i) in idx.iter().enumerate() {
                let t = self.b.ins().imul_imm_s(i, (self.strides_out[e] * 4) as i64);
                o = self.b.ins().iadd(o, t);
            }
            self.row_bases = bases;
            self.out_row = self.b.ins().iadd(self.base, o);
            let bounds = self.bounds(d, shape);
            let overlap = (d > 0 && at.redo_safe).then_some(shape[d]);
            self.columns(bounds, (vector, overlap), &mut |g, mode, j, _| {
                g.element(mode, j, loads, outs)
            });
            return;
        }
        let (start, end) = self.bounds(d, shape);
        self.counted(start, end, 1, &mut |g, i| {
            idx.push(i);
            g.outer(d + 1, at, idx);
            idx.pop();
        });
    }

    /// Every stage of a row kernel for each row of `self.split`.
    fn rows(&mut self, len: usize, stages: &[RowStage]) {
        let (lo, hi) = self.split;
        self.counted(lo, hi, 1, &mut |g, r| {
            for stage in stages {
                g.row_stage(r, len, stage);
            }
        });
    }

    /// One stage for row `r`: a map's loop over the row's columns (or its one value per row),
    /// or a reduction's loop accumulating four lanes and a scalar tail, combined at the end.
    fn row_stage(&mut self, r: Value, len: usize, stage: &RowStage) {
        let outs: Vec<(usize, &Expr)> = stage
            .outputs()
            .into_iter()
            .map(|(s, _, e)| (s.offset, e))
            .collect();
        let (offsets, loads): (Vec<usize>, Vec<Vec<usize>>) = outs
            .iter()
            .flat_map(|(_, e)| e.loads())
            .map(|(o, s)| (o, s.to_vec()))
            .unzip();
        self.row_bases = loads
            .iter()
            .zip(&offsets)
            .map(|(s, &o)| {
                let t = self.b.ins().imul_imm_s(r, (s[0] * 4) as i64);
                self.b.ins().iadd_imm_s(t, (o * 4) as i64)
            })
            .collect();
        let columns = stage.columns(len);
        let vector = columns >= 4 && loads.iter().all(|s| s[1] <= 1);
        let start = self.iconst(0);
        let end = self.iconst(columns);
        match stage {
            RowStage::Map { width, .. } => {
                let at = self.b.ins().imul_imm_s(r, (width * 4) as i64);
                self.out_row = self.b.ins().iadd(self.base, at);
                let written: Vec<(usize, usize)> = stage
                    .outputs()
                    .iter()
                    .map(|(s, _, _)| (s.offset, s.len))
                    .collect();
                let rows = written.first().map_or(0, |&(_, len)| len / width);
                let shape = [rows, columns];
                let read = outs.iter().flat_map(|(_, e)| e.load_ranges(&shape));
                let overlap = reads_none_of(read, &written).then_some(columns);
                self.columns((start, end), (vector, overlap), &mut |g, mode, j, _| {
                    g.element(mode, j, &loads, &outs)
                });
            }
            RowStage::Reduce { op, expr, out, .. } => {
                let init = op.identity() as f32;
                let lanes = self.b.declare_var(F32X4);
                let tail = self.b.declare_var(F32);
                let v = self.splat(Mode::Vector, init);
                self.b.def_var(lanes, v);
                let s = self.splat(Mode::Scalar, init);
                self.b.def_var(tail, s);
                let identity = self.splat(Mode::Vector, init);
                let overlap = Some(columns);
                self.columns(
                    (start, end),
                    (vector, overlap),
                    &mut |g, mode, j, repeated| {
                        let acc = if mode == Mode::Vector { lanes } else { tail };
                        g.loaded.clear();
                        let mut x = g.eval(mode, j, &loads, expr, &mut 0);
                        if repeated > 0 {
                            // Lanes already counted contribute the identity.
                            let keep: Vec<u8> = (0..4)
                                .flat_map(|l| if l < repeated { [0u8; 4] } else { [0xff; 4] })
                                .collect();
                            let keep = g.b.func.dfg.constants.insert(ConstantData::from(keep));
                            let keep = g.b.ins().vconst(F32X4, keep);
                            x = g.b.ins().bitselect(keep, x, identity);
                        }
                        let a = g.b.use_var(acc);
                        let y = g.combine(*op, a, x);
                        g.b.def_var(acc, y);
                    },
                );
                let v = self.b.use_var(lanes);
                let mut total = self.b.use_var(tail);
                for lane in 0..4 {
                    let x = self.b.ins().extractlane(v, lane);
                    total = self.combine(*op, total, x);
                }
                let at = self.b.ins().imul_imm_s(r, 4);
                let at = self.b.ins().iadd(self.base, at);
                self.b
                    .ins()
                    .store(flags(), total, at, (out.offset * 4) as i32);
            }
        }
    }

    /// One step of a reduction: `acc + x`, or the NaN-propagating `max(acc, x)`.
    fn combine(&mut self, op: ReduceOp, acc: Value, x: Value) -> Value {
        match op {
            ReduceOp::Sum => self.b.ins().fadd(acc, x),
            ReduceOp::Max => self.b.ins().fmax(acc, x),
        }
    }

    /// `body(mode, j, repeated)` for the columns `start..end` of a row: in `f32x4` steps when
    /// `vector`, then one at a time for the tail (or all of them). With `overlap = Some(n)`
    /// (the row is the constant `0..n`, `n >= 4`), a tail is instead one more vector at `n - 4`
    /// whose first `repeated` lanes were already done: a scalar transcendental costs as much
    /// as a vector one, so a 10-wide row's two scalar tail elements cost as much as its two
    /// vectors. Only for bodies that may redo an element: maps that do not read what they
    /// write, and reductions that mask the repeated lanes.
    fn columns(
        &mut self,
        (start, end): (Value, Value),
        (vector, overlap): (bool, Option<usize>),
        body: &mut dyn FnMut(&mut Self, Mode, Value, usize),
    ) {
        let mut j = start;
        if vector {
            j = self.counted(start, end, 4, &mut |g, j| body(g, Mode::Vector, j, 0));
        }
        match overlap {
            Some(n) if vector && n >= 4 && !n.is_multiple_of(4) => {
                let at = self.iconst(n - 4);
                body(self, Mode::Vector, at, 4 - n % 4);
            }
            _ => {
                self.counted(j, end, 1, &mut |g, j| body(g, Mode::Scalar, j, 0));
            }
        }
    }

    /// The loop bounds of dimension `d`: the caller's part for the outermost, else all of it.
    fn bounds(&mut self, d: usize, shape: &[usize]) -> (Value, Value) {
        if d == 0 {
            self.split
        } else {
            (self.iconst(0), self.iconst(shape[d]))
        }
    }

    /// Compute the element(s) at inner index `j` of every output, then store them all (so a
    /// load of an output's own element sees its old value).
    fn element(&mut self, mode: Mode, j: Value, loads: &[Vec<usize>], outs: &[(usize, &Expr)]) {
        self.loaded.clear();
        let mut next = 0;
        let values: Vec<Value> = outs
            .iter()
            .map(|(_, expr)| self.eval(mode, j, loads, expr, &mut next))
            .collect();
        let off = self.b.ins().imul_imm_s(j, 4);
        let addr = self.b.ins().iadd(self.out_row, off);
        for (&(offset, _), v) in outs.iter().zip(values) {
            let at = self.b.ins().iadd_imm_s(addr, (offset * 4) as i64);
            self.b.ins().store(flags(), v, at, 0);
        }
    }

    fn splat(&mut self, mode: Mode, x: f32) -> Value {
        let c = self.b.ins().f32const(x);
        match mode {
            Mode::Vector => self.b.ins().splat(F32X4, c),
            Mode::Scalar => c,
        }
    }

    /// `cond ? a : b` lane-wise for a float comparison result.
    fn choose(&mut self, mode: Mode, cond: Value, a: Value, b: Value) -> Value {
        match mode {
            Mode::Scalar => self.b.ins().select(cond, a, b),
            Mode::Vector => {
                let mask = self.b.ins().bitcast(
                    F32X4,
                    MemFlagsData::new().with_endianness(Endianness::Little),
                    cond,
                );
                self.b.ins().bitselect(mask, a, b)
            }
        }
    }

    fn eval(
        &mut self,
        mode: Mode,
        j: Value,
        loads: &[Vec<usize>],
        expr: &Expr,
        next: &mut usize,
    ) -> Value {
        match expr {
            Expr::Load { offset, strides } => {
                let l = *next;
                *next += 1;
                let key = (*offset, strides.clone());
                if let Some(&v) = self.loaded.get(&key) {
                    return v;
                }
                let inner = loads[l][loads[l].len() - 1];
                let row = self.row_bases[l];
                let addr = if inner == 0 {
                    row
                } else {
                    let t = self.b.ins().imul_imm_s(j, (inner * 4) as i64);
                    self.b.ins().iadd(row, t)
                };
                let addr = self.b.ins().iadd(self.base, addr);
                let v = match (mode, inner) {
                    (Mode::Vector, 0) => {
                        let x = self.b.ins().load(F32, flags(), addr, 0);
                        self.b.ins().splat(F32X4, x)
                    }
                    (Mode::Vector, _) => self.b.ins().load(F32X4, flags(), addr, 0),
                    (Mode::Scalar, _) => self.b.ins().load(F32, flags(), addr, 0),
                };
                self.loaded.insert(key, v);
                v
            }
            Expr::Const(c) => self.splat(mode, *c),
            Expr::Unary(op, a) => {
                let x = self.eval(mode, j, loads, a, next);
                self.unary(mode, *op, x)
            }
            Expr::Binary(op, a, c) => {
                let x = self.eval(mode, j, loads, a, next);
                let y = self.eval(mode, j, loads, c, next);
                match op {
                    BinaryOp::Add => self.b.ins().fadd(x, y),
                    BinaryOp::Sub => self.b.ins().fsub(x, y),
                    BinaryOp::Mul => self.b.ins().fmul(x, y),
                    BinaryOp::Div => self.b.ins().fdiv(x, y),
                    BinaryOp::Max => self.b.ins().fmax(x, y),
                    BinaryOp::Min => self.b.ins().fmin(x, y),
                    BinaryOp::Greater => {
                        let c = self.b.ins().fcmp(FloatCC::GreaterThan, x, y);
                        let one = self.splat(mode, 1.0);
                        let zero = self.splat(mode, 0.0);
                        self.choose(mode, c, one, zero)
                    }
                }
            }
            Expr::Fma(a, c, d) => {
                let x = self.eval(mode, j, loads, a, next);
                let y = self.eval(mode, j, loads, c, next);
                let z = self.eval(mode, j, loads, d, next);
                self.mul_add(x, y, z)
            }
            Expr::Select(c, a, d) => {
                let cv = self.eval(mode, j, loads, c, next);
                let x = self.eval(mode, j, loads, a, next);
                let y = self.eval(mode, j, loads, d, next);
                let zero = self.splat(mode, 0.0);
                let ne = self.b.ins().fcmp(FloatCC::NotEqual, cv, zero);
                self.choose(mode, ne, x, y)
            }
        }
    }

    fn unary(&mut self, mode: Mode, op: UnaryOp, x: Value) -> Value {
        match op {
            UnaryOp::Neg => self.b.ins().fneg(x),
            UnaryOp::Abs => self.b.ins().fabs(x),
            UnaryOp::Sqrt => self.b.ins().sqrt(x),
            UnaryOp::Recip => {
                let one = self.splat(mode, 1.0);
                self.b.ins().fdiv(one, x)
            }
            UnaryOp::Relu => {
                // x where x > 0 or x is NaN, else +0.0 (so -0.0 becomes 0.0, as in the IR).
                let zero = self.splat(mode, 0.0);
                let keep = self.b.ins().fcmp(FloatCC::UnorderedOrGreaterThan, x, zero);
                self.choose(mode, keep, x, zero)
            }
            UnaryOp::Exp => self.exp(mode, x),
            UnaryOp::Log => self.log(mode, x),
            UnaryOp::Tanh => self.tanh(mode, x),
            UnaryOp::Sigmoid => self.sigmoid(mode, x),
            UnaryOp::Erf => self.erf(mode, x),
        }
    }
}
