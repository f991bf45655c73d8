//! The native CPU backend: a step graph compiled once into a static memory plan and a list of
//! kernels — Cranelift-compiled fused elementwise loops, GEMM calls, Rust reductions, native
//! Rust convolutions (im2col + GEMM), pools and index ops, and an interpreter fallback for every
//! op without a fast path (random numbers, scans) — then run many times with parameters and
//! optimizer state kept in place between runs.
//!
//! A step compiled for several threads ([`par`]) splits its large kernels over rayon's pool;
//! one thread (the default) never starts any.
//!
//! Data layout: one f32 arena (64-byte aligned slots) holds every float value; integer tensors
//! (class labels, token ids, the random seed) live in a separate i64 arena. Both are allocated
//! at compile time; a run allocates only inside fallback kernels.
//!
//! ```no_run
//! # fn demo(graph: &netc_compiler::ir::Graph) -> Result<(), String> {
//! let mut step = netc_backend_cpu::CompiledStep::compile(graph)?;
//! step.set_input("pixels", &vec![0.0; 32 * 64])?;
//! step.run()?; // updates are copied into their inputs' slots: the next run sees them
//! let loss = step.output("loss")?;
//! # Ok(()) }
//! ```

pub mod codegen;
mod exec;
mod inplace;
pub mod kernel;
pub mod native;
pub mod par;
pub mod plan;
mod reuse;
mod rows;
pub mod runner;
mod scan;
mod siblings;

pub use par::{set_threads, threads};
pub use runner::Runner;

use std::collections::HashMap;

use netc_compiler::ir::{DType, Graph};

use crate::kernel::{Expr, Kernel, KernelProgram, Slot};

/// Check that every load of `outs` (fused outputs over `shape`, each with the length it must
/// have) and every output lies inside the arena — the safety argument of entering the
/// generated code rests on it — and count their operations per element.
fn checked_ops(
    outs: &[(Slot, usize, &Expr)],
    shape: &[usize],
    program: &KernelProgram,
) -> Result<usize, String> {
    let mut ops = 0;
    for &(out, elements, expr) in outs {
        if expr
            .load_ranges(shape)
            .iter()
            .any(|(r, _, _)| r.end > program.f32_len)
        {
            return Err("internal: a load reaches outside the arena".into());
        }
        if out.dtype != DType::F32 || out.offset + out.len > program.f32_len || out.len != elements
        {
            return Err("internal: a fused output is outside the arena".into());
        }
        ops += expr.op_count();
    }
    Ok(ops.max(1))
}

/// Into how many parts a kernel of `work` (elements times operations) over `rows` rows is split.
fn parts(threads: usize, work: usize, rows: usize) -> usize {
    if threads > 1 && work >= par::ELEMENTWISE_WORK {
        threads.min(rows)
    } else {
        1
    }
}

/// One step graph, compiled for the host CPU, with its arenas.
pub struct CompiledStep {
    program: KernelProgram,
    /// Owns the generated code; kept alive as long as `code` is used.
    _jit: codegen::Jit,
    /// Per kernel (elementwise kernels only): the code address, and into how many parts a run
    /// splits the kernel's rows.
    code: Vec<Option<(*const u8, usize)>>,
    /// Threads this step splits large kernels over.
    threads: usize,
    /// Per-thread convolution buffers (empty for one thread).
    workspace: native::Workspace,
    /// Per kernel: the natively compiled scan of a fallback kernel that is one.
    scans: Vec<Option<scan::ScanExec>>,
    f32s: Vec<f32>,
    /// Elements skipped at the start of `f32s` so that the arena starts 64-byte aligned.
    align: usize,
    i64s: Vec<i64>,
    inputs: HashMap<String, (Slot, Vec<usize>)>,
    outputs: HashMap<String, (Slot, Vec<usize>)>,
    compile_ms: f64,
    /// Per kernel: time spent in it over the profiled runs (`None` when not profiling).
    timings: Option<Vec<std::time::Duration>>,
}

impl CompiledStep {
    /// Plan and compile `graph` for [`threads()`] threads. Fails only on an internal error (a
    /// malformed graph, or code generation refusing a kernel), never for an op without a fast
    /// path: those fall back.
    pub fn compile(graph: &Graph) -> Result<CompiledStep, String> {
        CompiledStep::compile_with_threads(graph, threads())
    }

    /// [`CompiledStep::compile`] for `threads` threads (at least 1): large kernels are split
    /// over rayon's global pool as [`par`] describes.
    pub fn compile_with_threads(graph: &Graph, threads: usize) -> Result<CompiledStep, String> {
        let threads = threads.max(1);
        let started = std::time::Instant::now();
        let program = plan::plan(graph)?;
        let mut jit = codegen::Jit::new()?;
        let mut index = Vec::new();
        for k in &program.kernels {
            match k {
                Kernel::Elementwise { shape, .. } => {
                    let elements = shape.iter().product::<usize>();
                    let outs: Vec<(Slot, &Expr)> = k.elementwise_outputs().collect();
                    let checked: Vec<_> = outs.iter().map(|&(s, e)| (s, elements, e)).collect();
                    let ops = checked_ops(&checked, shape, &program)?;
                    let parts = parts(threads, shape.iter().product::<usize>() * ops, shape[0]);
                    let outs: Vec<(usize, &Expr)> =
                        outs.into_iter().map(|(s, e)| (s.offset, e)).collect();
                    index.push(Some((jit.add_elementwise(&outs, shape)?, parts)));
                }
                Kernel::Rows { rows, len, stages } => {
                    let mut ops = 0;
                    for stage in stages {
                        let shape = [*rows, stage.columns(*len)];
                        let outs: Vec<_> = stage
                            .outputs()
                            .into_iter()
                            .map(|(s, width, e)| (s, rows * width, e))
                            .collect();
                        ops += checked_ops(&outs, &shape, &program)? * shape[1];
                    }
                    let parts = parts(threads, rows * ops, *rows);
                    index.push(Some((jit.add_rows(*len, stages)?, parts)));
                }
                _ => index.push(None),
            }
        }
        let addrs = jit.finish()?;
        let code = index
            .into_iter()
            .map(|i| i.map(|(i, parts)| (addrs[i], parts)))
            .collect();
        let f32s = vec![0.0f32; program.f32_len + 16];
        let align = (64 - (f32s.as_ptr() as usize % 64)) % 64 / 4;
        let inputs = program
            .inputs
            .iter()
            .map(|(n, s, d)| (n.clone(), (*s, d.clone())))
            .collect();
        let outputs = program
            .outputs
            .iter()
            .map(|(n, s, d)| (n.clone(), (*s, d.clone())))
            .collect();
        let i64s = vec![0; program.i64_len];
        let scans = program
            .kernels
            .iter()
            .map(|k| match k {
                Kernel::Fallback {
                    graph,
                    inputs,
                    outputs,
                    ..
                } => scan::ScanExec::compile(graph, inputs, outputs, threads),
                _ => None,
            })
            .collect();
        let workspace = native::Workspace::new(
            threads,
            program.kernels.iter().filter_map(|k| match k {
                Kernel::Native {
                    op,
                    shapes,
                    out_shape,
                    ..
                } => Some((op, shapes.as_slice(), out_shape.as_slice())),
                _ => None,
            }),
        );
        Ok(CompiledStep {
            program,
            _jit: jit,
            code,
            threads,
            workspace,
            scans,
            f32s,
            align,
            i64s,
            inputs,
            outputs,
            compile_ms: started.elapsed().as_secs_f64() * 1e3,
            timings: None,
        })
    }

    /// The plan: kernels, slots, coverage; `program().dump()` is the kernel text.
    pub fn program(&self) -> &KernelProgram {
        &self.program
    }

    /// Wall time of [`CompiledStep::compile`], for `netc bench` and reports.
    pub fn compile_ms(&self) -> f64 {
        self.compile_ms
    }

    fn arena(&mut self) -> &mut [f32] {
        let n = self.program.f32_len;
        &mut self.f32s[self.align..self.align + n]
    }

    fn input_slot(&self, name: &str, dtype: DType, len: usize) -> Result<Slot, String> {
        let (s, shape) = self
            .inputs
            .get(name)
            .ok_or_else(|| format!("the step has no input `{name}`"))?;
        if s.dtype != dtype || s.len != len {
            return Err(format!(
                "input `{name}` is {}{shape:?}, given {len} {dtype} elements",
                s.dtype
            ));
        }
        Ok(*s)
    }

    /// Set an f32 input (data, parameter, optimizer state or scalar). Parameters and state need
    /// setting once: runs update them in place.
    pub fn set_input(&mut self, name: &str, data: &[f32]) -> Result<(), String> {
        let s = self.input_slot(name, DType::F32, data.len())?;
        self.arena()[s.offset..s.offset + s.len].copy_from_slice(data);
        Ok(())
    }

    /// Set an f32 input from f64 elements (the interpreter's `Value` storage), rounding each
    /// to f32 straight into the arena: no intermediate buffer.
    pub fn set_input_f64(&mut self, name: &str, data: &[f64]) -> Result<(), String> {
        let s = self.input_slot(name, DType::F32, data.len())?;
        for (t, &x) in self.arena()[s.offset..s.offset + s.len]
            .iter_mut()
            .zip(data)
        {
            *t = x as f32;
        }
        Ok(())
    }

    /// Set an i64 input (labels, token ids, the random seed).
    pub fn set_input_i64(&mut self, name: &str, data: &[i64]) -> Result<(), String> {
        let s = self.input_slot(name, DType::I64, data.len())?;
        self.i64s[s.offset..s.offset + s.len].copy_from_slice(data);
        Ok(())
    }

    /// Whether the step has an input of this name.
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.contains_key(name)
    }

    /// Run the step once: every kernel in order, then copy each update output into its input's
    /// slot so the next run starts from the new parameters and state.
    pub fn run(&mut self) -> Result<(), String> {
        let n = self.program.f32_len;
        let align = self.align;
        let arena = &mut self.f32s[align..align + n];
        let kernels = self.program.kernels.iter().zip(&self.code);
        for (i, ((k, code), scan)) in kernels.zip(&mut self.scans).enumerate() {
            let started = self.timings.is_some().then(std::time::Instant::now);
            match k {
                Kernel::Elementwise { shape, .. } => {
                    let (code, parts) = code.ok_or("internal: elementwise kernel without code")?;
                    // Rank-1 kernels split at multiples of 16 elements (whole vectors).
                    let align = if shape.len() == 1 { 16 } else { 1 };
                    exec::call_kernel(code, arena, shape[0], align, parts);
                }
                Kernel::Rows { rows, .. } => {
                    let (code, parts) = code.ok_or("internal: row kernel without code")?;
                    exec::call_kernel(code, arena, *rows, 1, parts);
                }
                Kernel::Reduce {
                    op,
                    input,
                    shape,
                    axes,
                    out,
                    ..
                } => exec::reduce(arena, *op, *input, shape, axes, *out),
                Kernel::MatMul {
                    a,
                    b,
                    out,
                    batch,
                    m,
                    n,
                    k,
                    ta,
                    tb,
                    ..
                } => exec::matmul(
                    arena,
                    *a,
                    *b,
                    *out,
                    *batch,
                    (*m, *n, *k),
                    *ta,
                    *tb,
                    self.threads,
                ),
                Kernel::Native {
                    op,
                    shapes,
                    out_shape,
                    inputs,
                    out,
                    scratch,
                    ..
                } => native::run(
                    arena,
                    &mut self.i64s,
                    &native::Call {
                        op,
                        shapes,
                        out_shape,
                        inputs,
                        out: *out,
                        scratch: *scratch,
                    },
                    self.threads,
                    &mut self.workspace,
                )?,
                Kernel::Fallback {
                    graph,
                    inputs,
                    outputs,
                    ..
                } => match scan {
                    Some(scan) => scan.run(arena, &mut self.i64s, inputs, outputs)?,
                    None => exec::fallback(arena, &mut self.i64s, graph, inputs, outputs)?,
                },
                Kernel::Copy { from, to } => copy(arena, &mut self.i64s, *from, *to),
            }
            if let (Some(started), Some(t)) = (started, &mut self.timings) {
                t[i] += started.elapsed();
            }
        }
        for (_, from, to) in &self.program.updates {
            copy(arena, &mut self.i64s, *from, *to);
        }
        Ok(())
    }

    /// Start (or stop) timing every kernel of every run, from zero: what `netc bench --profile`
    /// reports. Off by default, since reading the clock costs a small kernel's worth of time.
    /// Scan bodies are timed too.
    pub fn set_profiling(&mut self, on: bool) {
        self.timings = on.then(|| vec![std::time::Duration::ZERO; self.program.kernels.len()]);
        for scan in self.scans.iter_mut().flatten() {
            scan.body_mut().set_profiling(on);
        }
    }

    /// Per kernel, its [`KernelProgram::kernel_line`] and the time spent in it since profiling
    /// started (empty when not profiling). Self time: a natively run scan's line counts its
    /// copies and loop, and each kernel of its body follows as its own line (`k7 > k2 ...`),
    /// so the times add up to the step's.
    pub fn profile(&self) -> Vec<(String, std::time::Duration)> {
        let Some(timings) = &self.timings else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        for (i, (&total, scan)) in timings.iter().zip(&self.scans).enumerate() {
            let body = scan
                .as_ref()
                .map(|s| s.body().profile())
                .unwrap_or_default();
            let inside: std::time::Duration = body.iter().map(|(_, t)| *t).sum();
            lines.push((self.program.kernel_line(i), total.saturating_sub(inside)));
            lines.extend(
                body.into_iter()
                    .map(|(line, t)| (format!("k{i} > {line}"), t)),
            );
        }
        lines
    }

    /// An f32 output's current value (after the last run).
    pub fn output(&self, name: &str) -> Result<Vec<f32>, String> {
        Ok(self.output_slice(name)?.to_vec())
    }

    /// An f32 output's current value (after the last run), borrowed from the arena.
    pub fn output_slice(&self, name: &str) -> Result<&[f32], String> {
        let (s, _) = self
            .outputs
            .get(name)
            .ok_or_else(|| format!("the step has no output `{name}`"))?;
        match s.dtype {
            DType::F32 => {
                let base = self.align + s.offset;
                Ok(&self.f32s[base..base + s.len])
            }
            DType::I64 => Err(format!("output `{name}` is i64")),
        }
    }

    /// An f32 input's current value: a parameter after the updates of the last run.
    pub fn input(&self, name: &str) -> Result<Vec<f32>, String> {
        let (s, _) = self
            .inputs
            .get(name)
            .ok_or_else(|| format!("the step has no input `{name}`"))?;
        self.read(*s)
    }

    /// An i64 input's current value.
    pub fn input_i64(&self, name: &str) -> Result<Vec<i64>, String> {
        let (s, _) = self
            .inputs
            .get(name)
            .ok_or_else(|| format!("the step has no input `{name}`"))?;
        match s.dtype {
            DType::I64 => Ok(self.i64s[s.offset..s.offset + s.len].to_vec()),
            DType::F32 => Err(format!("input `{name}` is f32")),
        }
    }

    /// Set input `name` to `other`'s input of the same name (a parameter another step of the
    /// same run updated), arena to arena.
    pub fn copy_input_from(&mut self, other: &CompiledStep, name: &str) -> Result<(), String> {
        let (from, _) = other
            .inputs
            .get(name)
            .ok_or_else(|| format!("the other step has no input `{name}`"))?;
        let to = self.input_slot(name, from.dtype, from.len)?;
        match from.dtype {
            DType::F32 => {
                let (a, b) = (other.align + from.offset, self.align + to.offset);
                self.f32s[b..b + to.len].copy_from_slice(&other.f32s[a..a + from.len]);
            }
            DType::I64 => self.i64s[to.offset..to.offset + to.len]
                .copy_from_slice(&other.i64s[from.offset..from.offset + from.len]),
        }
        Ok(())
    }

    /// An i64 output's current value.
    pub fn output_i64(&self, name: &str) -> Result<Vec<i64>, String> {
        let (s, _) = self
            .outputs
            .get(name)
            .ok_or_else(|| format!("the step has no output `{name}`"))?;
        match s.dtype {
            DType::I64 => Ok(self.i64s[s.offset..s.offset + s.len].to_vec()),
            DType::F32 => Err(format!("output `{name}` is f32")),
        }
    }

    fn read(&self, s: Slot) -> Result<Vec<f32>, String> {
        match s.dtype {
            DType::F32 => {
                let base = self.align + s.offset;
                Ok(self.f32s[base..base + s.len].to_vec())
            }
            DType::I64 => Err("an i64 value; use the _i64 accessor".into()),
        }
    }
}

/// Copy one slot's contents into another of the same type and size.
fn copy(f32s: &mut [f32], i64s: &mut [i64], from: Slot, to: Slot) {
    match from.dtype {
        DType::F32 => f32s.copy_within(from.offset..from.offset + from.len, to.offset),
        DType::I64 => i64s.copy_within(from.offset..from.offset + from.len, to.offset),
    }
}
