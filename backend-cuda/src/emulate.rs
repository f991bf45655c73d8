//! An emulator of the GPU kernel AST: runs a [`Kernel`] on the CPU with CUDA's grid, block and
//! thread semantics, so that the indexing and reduction logic the printer emits is checked
//! against the reference interpreter without a GPU.
//!
//! Each block runs its threads one after another *between synchronisation points*: a thread runs
//! until it reaches a `__syncthreads()`, a warp shuffle or its end. When every thread of the
//! block waits at the same barrier they all pass it; when every lane of a warp waits at the same
//! shuffle the values are exchanged. Anything else — a barrier some threads skip or a different
//! one, a shuffle reached by part of a warp — is an error, as it is undefined behaviour on a GPU.
//! Shared memory starts as NaN (reading it uninitialised shows) and every access is checked for
//! races between barriers: a thread reading or writing an element another thread wrote in the
//! same phase, or writing one another thread read, is an error. Every arena access is
//! bounds-checked. Blocks run in order and atomics are plain read-modify-writes, which is one of
//! the interleavings a GPU may choose.
//!
//! [`run`] executes a whole [`CudaProgram`]: kernels on the emulator, GEMM records by a plain
//! reference GEMM, host steps on the interpreter.

use std::cell::Cell;

use netc_backend_cpu::codegen::host_unary;
use netc_compiler::ir::{BinaryOp, DType, UnaryOp};

use crate::gpu::{Arith, Builtin, Cmp, Expr, Kernel, Mem, Stmt, Ty, Var, WARP};
use crate::lower::{CudaProgram, Gemm, Step};

/// A runtime value (types were checked by [`Kernel::validate`]).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Val {
    F(f32),
    I(i64),
    B(i32),
}

impl Val {
    fn f(self) -> f32 {
        match self {
            Val::F(x) => x,
            _ => unreachable!("validated: f32 expected"),
        }
    }
    fn i(self) -> i64 {
        match self {
            Val::I(x) => x,
            _ => unreachable!("validated: i64 expected"),
        }
    }
    fn b(self) -> i32 {
        match self {
            Val::B(x) => x,
            _ => unreachable!("validated: i32 expected"),
        }
    }
}

/// A flattened statement: structured control flow becomes jumps, so a thread can stop at a
/// synchronisation point and resume there.
enum Ins<'k> {
    Set(Var, &'k Expr),
    Store(Mem, &'k Expr, &'k Expr),
    Atomic(&'k Expr, &'k Expr),
    /// Jump to the target unless the `I32` condition is non-zero.
    Unless(&'k Expr, usize),
    Jump(usize),
    /// `if !(var < end) goto exit`.
    LoopTest(Var, &'k Expr, usize),
    /// `var += step; goto head`.
    LoopStep(Var, &'k Expr, usize),
    Barrier,
    Shfl(Var, Var, u32),
    Fail(u32),
}

fn flatten<'k>(body: &'k [Stmt], out: &mut Vec<Ins<'k>>) {
    for s in body {
        match s {
            Stmt::Let(v, e) | Stmt::Set(v, e) => out.push(Ins::Set(*v, e)),
            Stmt::Store(m, i, v) => out.push(Ins::Store(*m, i, v)),
            Stmt::AtomicAdd(i, v) => out.push(Ins::Atomic(i, v)),
            Stmt::If(c, then, otherwise) => {
                let branch = out.len();
                out.push(Ins::Jump(0));
                flatten(then, out);
                if otherwise.is_empty() {
                    out[branch] = Ins::Unless(c, out.len());
                } else {
                    let skip = out.len();
                    out.push(Ins::Jump(0));
                    out[branch] = Ins::Unless(c, out.len());
                    flatten(otherwise, out);
                    out[skip] = Ins::Jump(out.len());
                }
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
            } => {
                out.push(Ins::Set(*var, start));
                let head = out.len();
                out.push(Ins::Jump(0));
                flatten(body, out);
                out.push(Ins::LoopStep(*var, step, head));
                out[head] = Ins::LoopTest(*var, end, out.len());
            }
            Stmt::Barrier => out.push(Ins::Barrier),
            Stmt::ShflDown { dst, src, delta } => out.push(Ins::Shfl(*dst, *src, *delta)),
            Stmt::Fail(code) => out.push(Ins::Fail(*code)),
        }
    }
}

/// Where a thread stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// At the barrier instruction `pc`.
    Barrier(usize),
    /// At the shuffle instruction `pc`.
    Shuffle(usize),
    Done,
}

struct Thread {
    pc: usize,
    regs: Vec<Val>,
    state: State,
}

/// Who touched a shared element in the current phase (between two barriers).
#[derive(Clone, Copy)]
struct Access {
    phase: u64,
    /// The thread that wrote it, or -1.
    writer: i64,
    /// The thread that read it, -1 for none, -2 for several.
    reader: i64,
}

/// One block's shared memory with its race bookkeeping.
struct Shared {
    data: Vec<Vec<Cell<Val>>>,
    access: Vec<Vec<Cell<Access>>>,
    phase: u64,
}

/// The memory a kernel sees.
struct Machine<'a> {
    f32s: &'a mut [f32],
    i64s: &'a mut [i64],
    err: &'a mut i32,
    shared: Shared,
    name: &'a str,
}

/// A thread's coordinates.
#[derive(Clone, Copy)]
struct Coord {
    thread: u32,
    block: u32,
    block_dim: u32,
    grid_dim: u32,
}

/// Instructions one thread may run between synchronisation points before the emulator gives up
/// (every loop the lowering emits is bounded; this catches a broken one).
const STEP_LIMIT: u64 = 1 << 32;

/// Run `kernel` with its launch configuration on the arenas. `err` receives `Stmt::Fail` codes.
pub fn launch(
    kernel: &Kernel,
    f32s: &mut [f32],
    i64s: &mut [i64],
    err: &mut i32,
) -> Result<(), String> {
    kernel.validate()?;
    let mut code = Vec::new();
    flatten(&kernel.body, &mut code);
    let mut m = Machine {
        f32s,
        i64s,
        err,
        shared: Shared {
            data: Vec::new(),
            access: Vec::new(),
            phase: 0,
        },
        name: &kernel.name,
    };
    let (block_dim, grid_dim) = (kernel.block, kernel.grid);
    for block in 0..grid_dim {
        // Fresh shared memory per block: NaN / sentinel, so uninitialised reads show.
        m.shared.data = kernel
            .shared
            .iter()
            .map(|(ty, len)| {
                let v = match ty {
                    Ty::F32 => Val::F(f32::NAN),
                    Ty::I64 => Val::I(i64::MIN),
                    Ty::I32 => Val::B(i32::MIN),
                };
                (0..*len).map(|_| Cell::new(v)).collect()
            })
            .collect();
        m.shared.access = kernel
            .shared
            .iter()
            .map(|(_, len)| {
                (0..*len)
                    .map(|_| {
                        Cell::new(Access {
                            phase: u64::MAX,
                            writer: -1,
                            reader: -1,
                        })
                    })
                    .collect()
            })
            .collect();
        let mut threads: Vec<Thread> = (0..block_dim)
            .map(|_| Thread {
                pc: 0,
                regs: vec![Val::I(0); kernel.vars.len()],
                state: State::Running,
            })
            .collect();
        loop {
            for (t, th) in threads.iter_mut().enumerate() {
                if th.state == State::Running {
                    let at = Coord {
                        thread: t as u32,
                        block,
                        block_dim,
                        grid_dim,
                    };
                    m.run_thread(&code, th, at)?;
                }
            }
            if threads.iter().all(|t| t.state == State::Done) {
                break;
            }
            let first = threads[0].state;
            if matches!(first, State::Barrier(_)) && threads.iter().all(|t| t.state == first) {
                for th in &mut threads {
                    th.pc += 1;
                    th.state = State::Running;
                }
                m.shared.phase += 1;
                continue;
            }
            let mut progressed = false;
            for warp in threads.chunks_mut(WARP as usize) {
                let s = warp[0].state;
                let State::Shuffle(pc) = s else { continue };
                if warp.len() != WARP as usize || !warp.iter().all(|t| t.state == s) {
                    continue;
                }
                let Ins::Shfl(dst, src, delta) = code[pc] else {
                    unreachable!("a shuffle state stops at a shuffle")
                };
                let values: Vec<Val> = warp.iter().map(|t| t.regs[src.0 as usize]).collect();
                for (lane, th) in warp.iter_mut().enumerate() {
                    let from = lane + delta as usize;
                    th.regs[dst.0 as usize] = values[if from < values.len() { from } else { lane }];
                    th.pc += 1;
                    th.state = State::Running;
                }
                progressed = true;
            }
            if !progressed {
                let states: Vec<String> = threads
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.state != first)
                    .take(4)
                    .map(|(i, t)| format!("thread {i}: {:?}", t.state))
                    .collect();
                return Err(format!(
                    "{}: block {block}: threads diverge at a synchronisation point (thread 0: {first:?}; {})",
                    kernel.name,
                    states.join(", ")
                ));
            }
        }
    }
    Ok(())
}

impl Machine<'_> {
    /// Run `th` until it reaches a barrier, a shuffle or its end.
    fn run_thread(&mut self, code: &[Ins], th: &mut Thread, at: Coord) -> Result<(), String> {
        let mut steps = 0u64;
        while th.pc < code.len() {
            steps += 1;
            if steps > STEP_LIMIT {
                return Err(format!(
                    "{}: a thread ran {STEP_LIMIT} steps without synchronising",
                    self.name
                ));
            }
            match &code[th.pc] {
                Ins::Set(v, e) => th.regs[v.0 as usize] = self.eval(e, &th.regs, at)?,
                Ins::Store(mem, i, v) => {
                    let i = self.eval(i, &th.regs, at)?.i();
                    let v = self.eval(v, &th.regs, at)?;
                    self.store(*mem, i, v, at.thread)?;
                }
                Ins::Atomic(i, v) => {
                    let i = self.eval(i, &th.regs, at)?.i();
                    let v = self.eval(v, &th.regs, at)?.f();
                    let slot = self.index(self.f32s.len(), i, "F")?;
                    self.f32s[slot] += v;
                }
                Ins::Unless(c, target) => {
                    if self.eval(c, &th.regs, at)?.b() == 0 {
                        th.pc = *target;
                        continue;
                    }
                }
                Ins::Jump(target) => {
                    th.pc = *target;
                    continue;
                }
                Ins::LoopTest(v, end, exit) => {
                    if th.regs[v.0 as usize].i() >= self.eval(end, &th.regs, at)?.i() {
                        th.pc = *exit;
                        continue;
                    }
                }
                Ins::LoopStep(v, step, head) => {
                    let s = self.eval(step, &th.regs, at)?.i();
                    th.regs[v.0 as usize] = Val::I(th.regs[v.0 as usize].i() + s);
                    th.pc = *head;
                    continue;
                }
                Ins::Barrier => {
                    th.state = State::Barrier(th.pc);
                    return Ok(());
                }
                Ins::Shfl(..) => {
                    th.state = State::Shuffle(th.pc);
                    return Ok(());
                }
                Ins::Fail(code) => *self.err = *code as i32,
            }
            th.pc += 1;
        }
        th.state = State::Done;
        Ok(())
    }

    fn index(&self, len: usize, i: i64, what: &str) -> Result<usize, String> {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < len)
            .ok_or_else(|| format!("{}: {what}[{i}] is out of bounds (length {len})", self.name))
    }

    fn store(&mut self, mem: Mem, i: i64, v: Val, thread: u32) -> Result<(), String> {
        match mem {
            Mem::F => {
                let i = self.index(self.f32s.len(), i, "F")?;
                self.f32s[i] = v.f();
            }
            Mem::I => {
                let i = self.index(self.i64s.len(), i, "I")?;
                self.i64s[i] = v.i();
            }
            Mem::Shared(s) => {
                let i = self.index(self.shared.data[s].len(), i, "shared")?;
                let cell = &self.shared.access[s][i];
                let mut a = cell.get();
                let t = i64::from(thread);
                if a.phase == self.shared.phase
                    && ((a.writer >= 0 && a.writer != t)
                        || a.reader == -2
                        || (a.reader >= 0 && a.reader != t))
                {
                    return Err(format!(
                        "{}: race on s{s}[{i}]: thread {t} writes what another thread accessed since the last barrier",
                        self.name
                    ));
                }
                if a.phase != self.shared.phase {
                    a = Access {
                        phase: self.shared.phase,
                        writer: -1,
                        reader: -1,
                    };
                }
                a.writer = t;
                cell.set(a);
                self.shared.data[s][i].set(v);
            }
        }
        Ok(())
    }

    fn load(&self, mem: Mem, i: i64, thread: u32) -> Result<Val, String> {
        Ok(match mem {
            Mem::F => Val::F(self.f32s[self.index(self.f32s.len(), i, "F")?]),
            Mem::I => Val::I(self.i64s[self.index(self.i64s.len(), i, "I")?]),
            Mem::Shared(s) => {
                let i = self.index(self.shared.data[s].len(), i, "shared")?;
                let cell = &self.shared.access[s][i];
                let mut a = cell.get();
                let t = i64::from(thread);
                if a.phase == self.shared.phase && a.writer >= 0 && a.writer != t {
                    return Err(format!(
                        "{}: race on s{s}[{i}]: thread {t} reads what thread {} wrote since the last barrier",
                        self.name, a.writer
                    ));
                }
                if a.phase != self.shared.phase {
                    a = Access {
                        phase: self.shared.phase,
                        writer: -1,
                        reader: -1,
                    };
                }
                a.reader = match a.reader {
                    -1 => t,
                    r if r == t => t,
                    _ => -2,
                };
                cell.set(a);
                self.shared.data[s][i].get()
            }
        })
    }

    fn eval(&self, e: &Expr, regs: &[Val], at: Coord) -> Result<Val, String> {
        let f = |x: &Expr| self.eval(x, regs, at).map(Val::f);
        Ok(match e {
            Expr::F32(x) => Val::F(*x),
            Expr::I64(x) => Val::I(*x),
            Expr::I32(x) => Val::B(*x),
            Expr::Var(v) => regs[v.0 as usize],
            Expr::Builtin(b) => Val::I(i64::from(match b {
                Builtin::ThreadIdx => at.thread,
                Builtin::BlockIdx => at.block,
                Builtin::BlockDim => at.block_dim,
                Builtin::GridDim => at.grid_dim,
            })),
            Expr::Load(m, i) => {
                let i = self.eval(i, regs, at)?.i();
                self.load(*m, i, at.thread)?
            }
            Expr::Unary(op, a) => Val::F(unary(*op, f(a)?)),
            Expr::Binary(op, a, b) => Val::F(binary(*op, f(a)?, f(b)?)),
            Expr::Fma(a, b, c) => Val::F(f(a)?.mul_add(f(b)?, f(c)?)),
            // Only the chosen side is evaluated, as in C (a guarded load must not fault).
            Expr::Select(c, a, b) => {
                if self.eval(c, regs, at)?.b() != 0 {
                    self.eval(a, regs, at)?
                } else {
                    self.eval(b, regs, at)?
                }
            }
            Expr::Arith(op, a, b) => {
                let (x, y) = (self.eval(a, regs, at)?, self.eval(b, regs, at)?);
                match (x, y) {
                    (Val::I(x), Val::I(y)) => {
                        Val::I(arith(*op, x, y).ok_or_else(|| self.div_zero())?)
                    }
                    (Val::B(x), Val::B(y)) => {
                        let r = arith(*op, i64::from(x), i64::from(y))
                            .ok_or_else(|| self.div_zero())?;
                        Val::B(r as i32)
                    }
                    _ => unreachable!("validated: integer arithmetic"),
                }
            }
            Expr::Cmp(op, a, b) => {
                let (x, y) = (self.eval(a, regs, at)?, self.eval(b, regs, at)?);
                let ord = match (x, y) {
                    (Val::F(x), Val::F(y)) => x.partial_cmp(&y),
                    (Val::I(x), Val::I(y)) => Some(x.cmp(&y)),
                    (Val::B(x), Val::B(y)) => Some(x.cmp(&y)),
                    _ => unreachable!("validated: same types"),
                };
                use std::cmp::Ordering::*;
                let r = match (op, ord) {
                    (Cmp::Ne, None) => true,
                    (_, None) => false,
                    (Cmp::Lt, Some(o)) => o == Less,
                    (Cmp::Le, Some(o)) => o != Greater,
                    (Cmp::Gt, Some(o)) => o == Greater,
                    (Cmp::Ge, Some(o)) => o != Less,
                    (Cmp::Eq, Some(o)) => o == Equal,
                    (Cmp::Ne, Some(o)) => o != Equal,
                };
                Val::B(i32::from(r))
            }
            // Short-circuit, as in C.
            Expr::And(a, b) => Val::B(i32::from(
                self.eval(a, regs, at)?.b() != 0 && self.eval(b, regs, at)?.b() != 0,
            )),
            Expr::Or(a, b) => Val::B(i32::from(
                self.eval(a, regs, at)?.b() != 0 || self.eval(b, regs, at)?.b() != 0,
            )),
            Expr::Cast(from, to, a) => {
                let x = self.eval(a, regs, at)?;
                match (from, to, x) {
                    (Ty::F32, Ty::I64, Val::F(x)) => Val::I(x as i64),
                    (Ty::I64, Ty::F32, Val::I(x)) => Val::F(x as f64 as f32),
                    (Ty::I32, Ty::I64, Val::B(x)) => Val::I(i64::from(x)),
                    (Ty::I64, Ty::I32, Val::I(x)) => Val::B(x as i32),
                    _ => unreachable!("validated: allowed casts"),
                }
            }
        })
    }

    fn div_zero(&self) -> String {
        format!("{}: integer division by zero", self.name)
    }
}

/// Integer arithmetic with C's semantics for the values lowering produces (wrapping, truncating
/// division); `None` on division by zero.
fn arith(op: Arith, x: i64, y: i64) -> Option<i64> {
    Some(match op {
        Arith::Add => x.wrapping_add(y),
        Arith::Sub => x.wrapping_sub(y),
        Arith::Mul => x.wrapping_mul(y),
        Arith::Div => x.checked_div(y)?,
        Arith::Rem => x.checked_rem(y)?,
    })
}

/// An IR unary op on f32 exactly as the interpreter's f32 run computes it (transcendentals in
/// f64 rounded once: the CPU backend's host functions).
fn unary(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Relu => {
            if x.is_nan() || x > 0.0 {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Erf => {
            host_unary(op).expect("every transcendental has a host function")(x)
        }
    }
}

/// An IR binary op on f32 with the IR's NaN rules.
fn binary(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max | BinaryOp::Min if a.is_nan() || b.is_nan() => f32::NAN,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        BinaryOp::Greater => {
            if a > b {
                1.0
            } else {
                0.0
            }
        }
    }
}

/// The reference GEMM for [`Gemm`] records: each `C(i, j)` summed over `l` in order in f32 (the
/// interpreter's matmul order).
pub fn gemm(f32s: &mut [f32], g: &Gemm) -> Result<(), String> {
    let (a0, lda, ta, sa) = g.a;
    let (b0, ldb, tb, sb) = g.b;
    let (c0, ldc, sc) = g.c;
    let get = |f32s: &[f32], at: usize| {
        f32s.get(at)
            .copied()
            .ok_or_else(|| format!("gemm %{}: F[{at}] out of bounds", g.node))
    };
    for batch in 0..g.batch {
        for i in 0..g.m {
            for j in 0..g.n {
                let mut acc = 0.0f32;
                for l in 0..g.k {
                    let a = a0 + batch * sa + if ta { l * lda + i } else { i * lda + l };
                    let b = b0 + batch * sb + if tb { j * ldb + l } else { l * ldb + j };
                    acc += get(f32s, a)? * get(f32s, b)?;
                }
                let c = c0 + batch * sc + i * ldc + j;
                let old = if g.accumulate { get(f32s, c)? } else { 0.0 };
                *f32s
                    .get_mut(c)
                    .ok_or_else(|| format!("gemm %{}: F[{c}] out of bounds", g.node))? = old + acc;
            }
        }
    }
    Ok(())
}

/// Run every step of `p` on host arenas sized `p.f32_len` and `p.plan.i64_len`: kernels on the
/// emulator, GEMMs by [`gemm`], host steps on the interpreter, then the update copies.
pub fn run(p: &CudaProgram, f32s: &mut [f32], i64s: &mut [i64]) -> Result<(), String> {
    if f32s.len() != p.f32_len || i64s.len() != p.plan.i64_len {
        return Err("internal: arenas of the wrong size".into());
    }
    for step in &p.steps {
        match step {
            Step::Launch(i) => {
                let mut err = 0;
                launch(&p.kernels[*i], f32s, i64s, &mut err)?;
                if err != 0 {
                    return Err(p.errors[err as usize - 1].clone());
                }
            }
            Step::Gemm(g) => gemm(f32s, g)?,
            Step::Host(i) => crate::host::run_fallback(&p.plan.kernels[*i], f32s, i64s)?,
            Step::Copy { from, to } => match from.dtype {
                DType::F32 => f32s.copy_within(from.offset..from.offset + from.len, to.offset),
                DType::I64 => i64s.copy_within(from.offset..from.offset + from.len, to.offset),
            },
        }
    }
    Ok(())
}
