//! A small AST of GPU kernels: what [`crate::lower`] produces, [`crate::print`] turns into CUDA C
//! and [`crate::emulate`] executes on the CPU.
//!
//! It is deliberately tiny and closed so that the printer and the emulator can both be exhaustive
//! and obviously agree: every kernel takes the same three parameters (the f32 arena `F`, the i64
//! arena `I` and an error word `err`), every offset, size and launch dimension is a constant
//! (shapes are static), launches are one-dimensional, and the only cross-thread communication is
//! `__shared__` memory between `__syncthreads()` barriers and warp shuffles.

use netc_compiler::ir::{BinaryOp, UnaryOp};

/// A value type. Index arithmetic is `I64` (`long long`), comparisons give `I32` (`int`, 0/1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    /// `float`.
    F32,
    /// `long long`: indices and the i64 arena's ids.
    I64,
    /// `int`: truth values.
    I32,
}

/// A kernel-local variable (printed `vN`); its type is `Kernel::vars[N]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(pub u32);

/// The launch geometry a thread can read (the `.x` component: launches are one-dimensional).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `threadIdx.x`.
    ThreadIdx,
    /// `blockIdx.x`.
    BlockIdx,
    /// `blockDim.x`.
    BlockDim,
    /// `gridDim.x`.
    GridDim,
}

/// Integer arithmetic (both operands of one integer type). Division truncates toward zero and
/// `Rem` takes the dividend's sign, as in C; lowering only divides non-negative values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A comparison of two values of one type, giving `I32` 1 or 0 (false on NaN, except `Ne`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// Addressable memory: the two arenas and the kernel's shared arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mem {
    /// The f32 arena (`F`), indexed in elements.
    F,
    /// The i64 arena (`I`).
    I,
    /// `__shared__` array number N of the kernel (`sN`).
    Shared(usize),
}

/// An expression. Types are checked by [`Kernel::validate`]; the printer and emulator rely on it.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// An f32 constant.
    F32(f32),
    /// An i64 constant.
    I64(i64),
    /// An i32 constant.
    I32(i32),
    /// A variable's current value.
    Var(Var),
    /// Launch geometry, as an `I64`.
    Builtin(Builtin),
    /// `mem[index]` with an `I64` index.
    Load(Mem, Box<Expr>),
    /// An IR unary op on f32 with the IR's semantics (relu keeps NaN).
    Unary(UnaryOp, Box<Expr>),
    /// An IR binary op on f32 (`max`/`min` propagate NaN, `greater` gives 1.0/0.0).
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `a * b + c` rounded once.
    Fma(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `cond != 0 ? a : b` with an `I32` condition.
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Integer arithmetic.
    Arith(Arith, Box<Expr>, Box<Expr>),
    /// A comparison, `I32`.
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    /// Logical and of two `I32` truth values (both evaluated; no side effects exist).
    And(Box<Expr>, Box<Expr>),
    /// Logical or of two `I32` truth values.
    Or(Box<Expr>, Box<Expr>),
    /// A conversion `Cast(from, to, x)`, one of: `F32 -> I64` (truncates toward zero, saturates,
    /// NaN becomes 0: Rust's `as`, the interpreter's rule), `I64 -> F32` (rounds through f64, as
    /// the interpreter does), `I32 -> I64`, `I64 -> I32` (wraps).
    Cast(Ty, Ty, Box<Expr>),
}

/// A statement. Control flow is structured; every loop bound is an expression the emulator
/// evaluates per thread, so grid-stride loops and uniform loops around barriers both work.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// Declare a variable with its initial value.
    Let(Var, Expr),
    /// Assign to a declared variable.
    Set(Var, Expr),
    /// `mem[index] = value`.
    Store(Mem, Expr, Expr),
    /// `atomicAdd(&F[index], value)`.
    AtomicAdd(Expr, Expr),
    /// `if (cond) { then } else { otherwise }` with an `I32` condition.
    If(Expr, Vec<Stmt>, Vec<Stmt>),
    /// `for (long long var = start; var < end; var += step) { body }` (`var` is an `I64`).
    For {
        var: Var,
        start: Expr,
        end: Expr,
        step: Expr,
        body: Vec<Stmt>,
    },
    /// `__syncthreads()`: every thread of the block must reach the same barrier.
    Barrier,
    /// `dst = __shfl_down_sync(full mask, src, delta)` (declares `dst`, an `F32`): lane `l` gets
    /// lane `l + delta`'s `src`, or its own where that lane is outside the warp. The whole warp
    /// must execute it together.
    ShflDown { dst: Var, src: Var, delta: u32 },
    /// Record error `code` (an index + 1 into the program's messages) in `err`; the host reports
    /// it after the step. Used where the interpreter would fail (an id out of range).
    Fail(u32),
}

/// One `extern "C" __global__` kernel with its launch configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// The C symbol, unique in the program (`k3_gather`).
    pub name: String,
    /// The IR node (`%n`) whose value the kernel computes.
    pub node: usize,
    /// What it is, for the comment above it (`elementwise [2048]`).
    pub what: String,
    /// Blocks in the grid.
    pub grid: u32,
    /// Threads per block (a multiple of 32 when the kernel uses shuffles).
    pub block: u32,
    /// The type of each variable.
    pub vars: Vec<Ty>,
    /// Each `__shared__` array's element type and length.
    pub shared: Vec<(Ty, usize)>,
    /// The body, run by every thread.
    pub body: Vec<Stmt>,
}

/// Threads per warp.
pub const WARP: u32 = 32;

impl Expr {
    /// Boxed convenience for building trees.
    pub fn boxed(self) -> Box<Expr> {
        Box::new(self)
    }

    /// `a op b` on integers, folding constants and identities so printed code stays readable.
    pub fn arith(op: Arith, a: Expr, b: Expr) -> Expr {
        match (op, &a, &b) {
            (_, Expr::I64(x), Expr::I64(y)) => {
                let (x, y) = (*x, *y);
                match op {
                    Arith::Add => return Expr::I64(x + y),
                    Arith::Sub => return Expr::I64(x - y),
                    Arith::Mul => return Expr::I64(x * y),
                    Arith::Div if y != 0 => return Expr::I64(x / y),
                    Arith::Rem if y != 0 => return Expr::I64(x % y),
                    _ => {}
                }
            }
            (Arith::Add | Arith::Sub, _, Expr::I64(0))
            | (Arith::Mul | Arith::Div, _, Expr::I64(1)) => {
                return a;
            }
            (Arith::Add, Expr::I64(0), _) | (Arith::Mul, Expr::I64(1), _) => return b,
            (Arith::Mul, Expr::I64(0), _) | (Arith::Mul, _, Expr::I64(0)) => return Expr::I64(0),
            (Arith::Rem, _, Expr::I64(1)) => return Expr::I64(0),
            _ => {}
        }
        Expr::Arith(op, a.boxed(), b.boxed())
    }

    /// `a + b` (integers).
    pub fn plus(a: Expr, b: Expr) -> Expr {
        Expr::arith(Arith::Add, a, b)
    }

    /// `a * b` (integers).
    pub fn times(a: Expr, b: Expr) -> Expr {
        Expr::arith(Arith::Mul, a, b)
    }

    /// `a cmp b`.
    pub fn cmp(op: Cmp, a: Expr, b: Expr) -> Expr {
        Expr::Cmp(op, a.boxed(), b.boxed())
    }

    /// An index constant.
    pub fn idx(n: usize) -> Expr {
        Expr::I64(n as i64)
    }
}

impl Kernel {
    /// Check types, scopes and shared-array bounds of constant indices: what the printer and
    /// the emulator assume. Lowering calls it on every kernel, so a malformed kernel is an
    /// internal error before NVRTC or the emulator ever sees it.
    pub fn validate(&self) -> Result<(), String> {
        let mut scope = vec![false; self.vars.len()];
        let r = self.check_block(&self.body, &mut scope);
        r.map_err(|e| format!("internal: kernel {}: {e}", self.name))
    }

    fn check_block(&self, body: &[Stmt], scope: &mut Vec<bool>) -> Result<(), String> {
        let saved = scope.clone();
        for s in body {
            self.check_stmt(s, scope)?;
        }
        *scope = saved;
        Ok(())
    }

    fn declare(&self, v: Var, scope: &mut [bool]) -> Result<Ty, String> {
        let i = v.0 as usize;
        let ty = *self.vars.get(i).ok_or(format!("v{i} has no type"))?;
        if scope[i] {
            return Err(format!("v{i} declared twice"));
        }
        scope[i] = true;
        Ok(ty)
    }

    fn check_stmt(&self, s: &Stmt, scope: &mut Vec<bool>) -> Result<(), String> {
        let want = |e: &Expr, ty: Ty, scope: &[bool]| -> Result<(), String> {
            let got = self.type_of(e, scope)?;
            if got == ty {
                Ok(())
            } else {
                Err(format!("expected {ty:?}, found {got:?} in {e:?}"))
            }
        };
        match s {
            Stmt::Let(v, e) => {
                let ty = self
                    .vars
                    .get(v.0 as usize)
                    .copied()
                    .ok_or("untyped variable")?;
                want(e, ty, scope)?;
                self.declare(*v, scope)?;
            }
            Stmt::Set(v, e) => {
                let i = v.0 as usize;
                if !scope.get(i).copied().unwrap_or(false) {
                    return Err(format!("v{i} assigned outside its scope"));
                }
                want(e, self.vars[i], scope)?;
            }
            Stmt::Store(mem, i, v) => {
                want(i, Ty::I64, scope)?;
                want(v, self.mem_ty(*mem)?, scope)?;
            }
            Stmt::AtomicAdd(i, v) => {
                want(i, Ty::I64, scope)?;
                want(v, Ty::F32, scope)?;
            }
            Stmt::If(c, a, b) => {
                want(c, Ty::I32, scope)?;
                self.check_block(a, scope)?;
                self.check_block(b, scope)?;
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
            } => {
                for e in [start, end, step] {
                    want(e, Ty::I64, scope)?;
                }
                let saved = scope.clone();
                if self.declare(*var, scope)? != Ty::I64 {
                    return Err("a loop variable must be I64".into());
                }
                self.check_block(body, scope)?;
                *scope = saved;
            }
            Stmt::Barrier | Stmt::Fail(_) => {}
            Stmt::ShflDown { dst, src, delta } => {
                if *delta == 0 || *delta >= WARP || !self.block.is_multiple_of(WARP) {
                    return Err("a shuffle needs 0 < delta < 32 and whole warps".into());
                }
                want(&Expr::Var(*src), Ty::F32, scope)?;
                if self.declare(*dst, scope)? != Ty::F32 {
                    return Err("a shuffle result must be F32".into());
                }
            }
        }
        Ok(())
    }

    fn mem_ty(&self, mem: Mem) -> Result<Ty, String> {
        Ok(match mem {
            Mem::F => Ty::F32,
            Mem::I => Ty::I64,
            Mem::Shared(i) => self.shared.get(i).ok_or("no such shared array")?.0,
        })
    }

    /// The type of `e` given which variables are in scope.
    fn type_of(&self, e: &Expr, scope: &[bool]) -> Result<Ty, String> {
        let same = |a: &Expr, b: &Expr| -> Result<Ty, String> {
            let (x, y) = (self.type_of(a, scope)?, self.type_of(b, scope)?);
            if x == y {
                Ok(x)
            } else {
                Err(format!("mixed {x:?} and {y:?} in {e:?}"))
            }
        };
        let f32s = |es: &[&Expr]| -> Result<Ty, String> {
            for x in es {
                if self.type_of(x, scope)? != Ty::F32 {
                    return Err(format!("non-f32 operand in {e:?}"));
                }
            }
            Ok(Ty::F32)
        };
        Ok(match e {
            Expr::F32(_) => Ty::F32,
            Expr::I64(_) | Expr::Builtin(_) => Ty::I64,
            Expr::I32(_) => Ty::I32,
            Expr::Var(v) => {
                let i = v.0 as usize;
                if !scope.get(i).copied().unwrap_or(false) {
                    return Err(format!("v{i} used outside its scope"));
                }
                self.vars[i]
            }
            Expr::Load(mem, i) => {
                if self.type_of(i, scope)? != Ty::I64 {
                    return Err("a load index must be I64".into());
                }
                if let (Mem::Shared(s), Expr::I64(c)) = (mem, &**i)
                    && (*c < 0 || *c as usize >= self.shared[*s].1)
                {
                    return Err(format!("s{s}[{c}] is out of bounds"));
                }
                self.mem_ty(*mem)?
            }
            Expr::Unary(_, a) => f32s(&[a])?,
            Expr::Binary(_, a, b) => f32s(&[a, b])?,
            Expr::Fma(a, b, c) => f32s(&[a, b, c])?,
            Expr::Select(c, a, b) => {
                if self.type_of(c, scope)? != Ty::I32 {
                    return Err("a select condition must be I32".into());
                }
                same(a, b)?
            }
            Expr::Arith(_, a, b) => match same(a, b)? {
                Ty::F32 => return Err("integer arithmetic on f32".into()),
                t => t,
            },
            Expr::Cmp(_, a, b) => {
                same(a, b)?;
                Ty::I32
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                if same(a, b)? != Ty::I32 {
                    return Err("logic on non-I32".into());
                }
                Ty::I32
            }
            Expr::Cast(from, to, a) => {
                let allowed = matches!(
                    (from, to),
                    (Ty::F32, Ty::I64)
                        | (Ty::I64, Ty::F32)
                        | (Ty::I32, Ty::I64)
                        | (Ty::I64, Ty::I32)
                );
                if !allowed || self.type_of(a, scope)? != *from {
                    return Err(format!("bad cast {e:?}"));
                }
                *to
            }
        })
    }
}

/// Builds a kernel body: allocates variables and nests statement lists through closures, so
/// lowering code reads like the loops it emits.
pub struct Builder {
    vars: Vec<Ty>,
    shared: Vec<(Ty, usize)>,
    stack: Vec<Vec<Stmt>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// An empty body.
    pub fn new() -> Builder {
        Builder {
            vars: Vec::new(),
            shared: Vec::new(),
            stack: vec![Vec::new()],
        }
    }

    /// A fresh variable of type `ty` (not yet declared).
    pub fn var(&mut self, ty: Ty) -> Var {
        self.vars.push(ty);
        Var(self.vars.len() as u32 - 1)
    }

    /// A `__shared__` array.
    pub fn shared(&mut self, ty: Ty, len: usize) -> Mem {
        self.shared.push((ty, len));
        Mem::Shared(self.shared.len() - 1)
    }

    /// Append a statement to the innermost open list.
    pub fn push(&mut self, s: Stmt) {
        self.stack.last_mut().expect("open statement list").push(s);
    }

    /// `let v: ty = e`, returning `Expr::Var(v)`.
    pub fn let_(&mut self, ty: Ty, e: Expr) -> Expr {
        let v = self.var(ty);
        self.push(Stmt::Let(v, e));
        Expr::Var(v)
    }

    fn nested(&mut self, f: impl FnOnce(&mut Builder)) -> Vec<Stmt> {
        self.stack.push(Vec::new());
        f(self);
        self.stack.pop().expect("nested list")
    }

    /// `for (i = start; i < end; i += step) body(i)`.
    pub fn for_(
        &mut self,
        start: Expr,
        end: Expr,
        step: Expr,
        body: impl FnOnce(&mut Builder, Expr),
    ) {
        let var = self.var(Ty::I64);
        let body = self.nested(|b| body(b, Expr::Var(var)));
        self.push(Stmt::For {
            var,
            start,
            end,
            step,
            body,
        });
    }

    /// `for (i = thread's global index; i < n; i += all threads)`: the grid-stride loop.
    pub fn grid_stride(&mut self, n: usize, body: impl FnOnce(&mut Builder, Expr)) {
        use Builtin::*;
        let start = Expr::plus(
            Expr::times(Expr::Builtin(BlockIdx), Expr::Builtin(BlockDim)),
            Expr::Builtin(ThreadIdx),
        );
        let step = Expr::times(Expr::Builtin(BlockDim), Expr::Builtin(GridDim));
        self.for_(start, Expr::idx(n), step, body);
    }

    /// `if (cond) then`.
    pub fn if_(&mut self, cond: Expr, then: impl FnOnce(&mut Builder)) {
        let then = self.nested(then);
        self.push(Stmt::If(cond, then, Vec::new()));
    }

    /// `if (cond) then else otherwise`.
    pub fn if_else(
        &mut self,
        cond: Expr,
        then: impl FnOnce(&mut Builder),
        otherwise: impl FnOnce(&mut Builder),
    ) {
        let then = self.nested(then);
        let otherwise = self.nested(otherwise);
        self.push(Stmt::If(cond, then, otherwise));
    }

    /// The finished kernel, validated.
    pub fn finish(
        mut self,
        name: String,
        node: usize,
        what: String,
        grid: u32,
        block: u32,
    ) -> Result<Kernel, String> {
        let mut body = self.stack.pop().expect("root list");
        prune(&mut body);
        let k = Kernel {
            name,
            node,
            what,
            grid,
            block,
            vars: self.vars,
            shared: self.shared,
            body,
        };
        k.validate()?;
        Ok(k)
    }
}

/// Remove `Let`s whose variable nothing reads (expressions have no side effects), repeatedly,
/// so that index decompositions emit only the coordinates some load uses and the printed code
/// compiles without unused-variable warnings.
fn prune(body: &mut Vec<Stmt>) {
    loop {
        let mut used = std::collections::HashSet::new();
        uses(body, &mut used);
        let before = count(body);
        drop_unused(body, &used);
        if count(body) == before {
            return;
        }
    }
}

fn count(body: &[Stmt]) -> usize {
    body.iter()
        .map(|s| match s {
            Stmt::If(_, a, b) => 1 + count(a) + count(b),
            Stmt::For { body, .. } => 1 + count(body),
            _ => 1,
        })
        .sum()
}

fn drop_unused(body: &mut Vec<Stmt>, used: &std::collections::HashSet<Var>) {
    body.retain(|s| !matches!(s, Stmt::Let(v, _) if !used.contains(v)));
    for s in body {
        match s {
            Stmt::If(_, a, b) => {
                drop_unused(a, used);
                drop_unused(b, used);
            }
            Stmt::For { body, .. } => drop_unused(body, used),
            _ => {}
        }
    }
}

/// Every variable some statement reads (a `Set` target counts: the variable must stay declared).
fn uses(body: &[Stmt], out: &mut std::collections::HashSet<Var>) {
    fn expr(e: &Expr, out: &mut std::collections::HashSet<Var>) {
        match e {
            Expr::Var(v) => {
                out.insert(*v);
            }
            Expr::F32(_) | Expr::I64(_) | Expr::I32(_) | Expr::Builtin(_) => {}
            Expr::Load(_, a) | Expr::Unary(_, a) | Expr::Cast(_, _, a) => expr(a, out),
            Expr::Binary(_, a, b)
            | Expr::Arith(_, a, b)
            | Expr::Cmp(_, a, b)
            | Expr::And(a, b)
            | Expr::Or(a, b) => {
                expr(a, out);
                expr(b, out);
            }
            Expr::Fma(a, b, c) | Expr::Select(a, b, c) => {
                expr(a, out);
                expr(b, out);
                expr(c, out);
            }
        }
    }
    for s in body {
        match s {
            Stmt::Let(_, e) => expr(e, out),
            Stmt::Set(v, e) => {
                out.insert(*v);
                expr(e, out);
            }
            Stmt::Store(_, i, v) | Stmt::AtomicAdd(i, v) => {
                expr(i, out);
                expr(v, out);
            }
            Stmt::If(c, a, b) => {
                expr(c, out);
                uses(a, out);
                uses(b, out);
            }
            Stmt::For {
                start,
                end,
                step,
                body,
                ..
            } => {
                expr(start, out);
                expr(end, out);
                expr(step, out);
                uses(body, out);
            }
            Stmt::ShflDown { src, .. } => {
                out.insert(*src);
            }
            Stmt::Barrier | Stmt::Fail(_) => {}
        }
    }
}
