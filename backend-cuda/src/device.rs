//! Running a step on an NVIDIA GPU: [`CudaStep`], the device counterpart of the CPU backend's
//! `CompiledStep` (the same name-based API, so the training loop can drive either).
//!
//! One f32 and one i64 device arena sized by the plan (plus convolution scratch) hold every
//! value; parameters and optimizer state stay resident across runs (the update copies run on the
//! device), so only batches go down and requested outputs come up. Kernels are compiled by NVRTC
//! for the device's own architecture (`sm_XY` from its compute capability) through the disk
//! cache; GEMM records run as `cublasSgemmStridedBatched`; fallbacks copy their operands to a
//! host mirror, run on the interpreter and copy their results back.
//!
//! Every entry point first checks that the driver library is present (cudarc panics otherwise)
//! and turns "no driver", "no device" and "no cuBLAS" into errors.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg, result as drv,
};
use cudarc::nvrtc::Ptx;
use netc_backend_cpu::kernel::Slot;
use netc_backend_cpu::runner::CompiledGraph;
use netc_compiler::ir::{DType, Graph};

use crate::lower::{Config, CudaProgram, Gemm, Step, lower};
use crate::nvrtc::{Cache, Nvrtc, Target};

/// The message every "no GPU" path starts with, so callers and tests can recognise it.
pub const NO_DEVICE: &str = "no CUDA device";

/// An opened GPU: context, stream and cuBLAS handle.
pub struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: blas_sys::cublasHandle_t,
    /// `(major, minor)` compute capability.
    pub compute_capability: (i32, i32),
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the handle was created in `open` and is destroyed once, here.
        let _ = unsafe { blas::destroy_handle(self.blas) };
    }
}

impl Device {
    /// Open device `ordinal`, or say why there is none.
    pub fn open(ordinal: usize) -> Result<Device, String> {
        // SAFETY: only tries to dlopen the candidate library names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(format!(
                "{NO_DEVICE}: the NVIDIA driver library (libcuda.so.1) is not installed on this machine"
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| format!("{NO_DEVICE}: the driver failed to start: {e}"))?;
        if count <= ordinal as i32 {
            return Err(format!(
                "{NO_DEVICE}: the driver reports {count} GPU(s), device {ordinal} requested"
            ));
        }
        // SAFETY: as above.
        if !unsafe { blas_sys::is_culib_present() } {
            return Err(
                "cuBLAS (libcublas.so.12) was not found: install the CUDA toolkit's cuBLAS or `python3 -m pip install nvidia-cublas-cu12` and add its lib directory to LD_LIBRARY_PATH".into(),
            );
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| format!("cannot open CUDA device {ordinal}: {e}"))?;
        let compute_capability = ctx.compute_capability().map_err(|e| e.to_string())?;
        let stream = ctx.default_stream();
        let blas = blas::create_handle().map_err(|e| format!("cuBLAS: {e:?}"))?;
        // SAFETY: both handles are live.
        unsafe { blas::set_stream(blas, stream.cu_stream() as _) }
            .map_err(|e| format!("cuBLAS: {e:?}"))?;
        Ok(Device {
            ctx,
            stream,
            blas,
            compute_capability,
        })
    }

    /// The NVRTC target for this device's own architecture (`sm_XY`, never a fixed one).
    pub fn target(&self) -> Target {
        let (major, minor) = self.compute_capability;
        Target::Cubin((major * 10 + minor) as u32)
    }
}

/// One step graph compiled for a GPU, with its device arenas.
pub struct CudaStep {
    program: CudaProgram,
    device: Device,
    _module: Arc<CudaModule>,
    functions: Vec<CudaFunction>,
    f32s: CudaSlice<f32>,
    i64s: CudaSlice<i64>,
    err: CudaSlice<i32>,
    /// Host copies of the arenas, for fallbacks (only their operands' slots are kept current).
    host_f32: Vec<f32>,
    host_i64: Vec<i64>,
    inputs: HashMap<String, Slot>,
    outputs: HashMap<String, Slot>,
    compile_ms: f64,
    cache_hit: bool,
}

fn driver(e: impl std::fmt::Display) -> String {
    format!("CUDA: {e}")
}

impl CudaStep {
    /// Plan, lower and compile `graph` for device 0 (kernels through the disk cache).
    pub fn compile(graph: &Graph) -> Result<CudaStep, String> {
        let started = std::time::Instant::now();
        let device = Device::open(0)?;
        let nvrtc = Nvrtc::load()?;
        let program = lower(graph, Config::default())?;
        let source = crate::print::module(&program.kernels, &crate::lower::origins(&program, None));
        let name = "netc_step.cu";
        let target = device.target();
        let (compiled, cache_hit) = match Cache::default_location() {
            Some(cache) => cache.compile(&nvrtc, name, &source, target),
            None => nvrtc.compile(name, &source, target).map(|c| (c, false)),
        }
        .map_err(|e| crate::nvrtc::explain(&program, &e, None))?;
        let cubin = compiled.cubin.ok_or("internal: NVRTC gave no cubin")?;
        let module = device
            .ctx
            .load_module(Ptx::from_binary(cubin))
            .map_err(driver)?;
        let functions = program
            .kernels
            .iter()
            .map(|k| module.load_function(&k.name).map_err(driver))
            .collect::<Result<Vec<_>, _>>()?;
        let stream = device.stream.clone();
        let f32s = stream
            .alloc_zeros::<f32>(program.f32_len.max(1))
            .map_err(driver)?;
        let i64s = stream
            .alloc_zeros::<i64>(program.plan.i64_len.max(1))
            .map_err(driver)?;
        let err = stream.alloc_zeros::<i32>(1).map_err(driver)?;
        let inputs = program
            .plan
            .inputs
            .iter()
            .map(|(n, s, _)| (n.clone(), *s))
            .collect();
        let outputs = program
            .plan
            .outputs
            .iter()
            .map(|(n, s, _)| (n.clone(), *s))
            .collect();
        Ok(CudaStep {
            host_f32: vec![0.0; program.f32_len],
            host_i64: vec![0; program.plan.i64_len],
            program,
            device,
            _module: module,
            functions,
            f32s,
            i64s,
            err,
            inputs,
            outputs,
            compile_ms: started.elapsed().as_secs_f64() * 1e3,
            cache_hit,
        })
    }

    /// The lowered program (kernels, GEMMs, host steps).
    pub fn program(&self) -> &CudaProgram {
        &self.program
    }

    /// Wall time of [`CudaStep::compile`] (for `netc bench`).
    pub fn compile_ms(&self) -> f64 {
        self.compile_ms
    }

    /// Whether the kernels came from the disk cache.
    pub fn cache_hit(&self) -> bool {
        self.cache_hit
    }

    /// Whether the step has an input of this name.
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.contains_key(name)
    }

    fn input_slot(&self, name: &str, dtype: DType, len: usize) -> Result<Slot, String> {
        let s = *self
            .inputs
            .get(name)
            .ok_or_else(|| format!("the step has no input `{name}`"))?;
        if s.dtype != dtype || s.len != len {
            return Err(format!(
                "input `{name}` is {} x {}, given {len} {dtype} elements",
                s.len, s.dtype
            ));
        }
        Ok(s)
    }

    /// Copy an f32 input to the device. Parameters and state need setting once.
    pub fn set_input(&mut self, name: &str, data: &[f32]) -> Result<(), String> {
        let s = self.input_slot(name, DType::F32, data.len())?;
        let mut view = self.f32s.slice_mut(s.offset..s.offset + s.len);
        self.device
            .stream
            .memcpy_htod(data, &mut view)
            .map_err(driver)
    }

    /// Copy an i64 input to the device.
    pub fn set_input_i64(&mut self, name: &str, data: &[i64]) -> Result<(), String> {
        let s = self.input_slot(name, DType::I64, data.len())?;
        let mut view = self.i64s.slice_mut(s.offset..s.offset + s.len);
        self.device
            .stream
            .memcpy_htod(data, &mut view)
            .map_err(driver)
    }

    /// Run the step: every kernel, GEMM, host step and copy in order (updates last), then check
    /// the error word the kernels set where the interpreter would fail.
    pub fn run(&mut self) -> Result<(), String> {
        for i in 0..self.program.steps.len() {
            match &self.program.steps[i] {
                Step::Launch(k) => self.launch(*k)?,
                Step::Gemm(g) => self.gemm(&g.clone())?,
                Step::Host(k) => self.host(*k)?,
                Step::Copy { from, to } => self.copy(*from, *to)?,
            }
        }
        let err = self.device.stream.clone_dtoh(&self.err).map_err(driver)?;
        if err[0] != 0 {
            self.device
                .stream
                .memset_zeros(&mut self.err)
                .map_err(driver)?;
            return Err(self.program.errors[err[0] as usize - 1].clone());
        }
        Ok(())
    }

    fn launch(&mut self, k: usize) -> Result<(), String> {
        let kernel = &self.program.kernels[k];
        let cfg = LaunchConfig {
            grid_dim: (kernel.grid, 1, 1),
            block_dim: (kernel.block, 1, 1),
            shared_mem_bytes: 0,
        };
        let stream = &self.device.stream;
        let mut launch = stream.launch_builder(&self.functions[k]);
        launch
            .arg(&mut self.f32s)
            .arg(&mut self.i64s)
            .arg(&mut self.err);
        // SAFETY: every kernel has the signature (float*, long long*, int*) and, by
        // construction of the lowering (checked by the emulator's bounds checks in tests), only
        // touches elements inside the arenas it is given.
        unsafe { launch.launch(cfg) }.map_err(driver)?;
        Ok(())
    }

    /// `C = op(A) op(B)` in row-major terms as a column-major cuBLAS call: `C^T = op(B)^T
    /// op(A)^T`, i.e. the operands swapped, `m` and `n` swapped, each transposition kept.
    fn gemm(&mut self, g: &Gemm) -> Result<(), String> {
        let (a, lda, ta, sa) = g.a;
        let (b, ldb, tb, sb) = g.b;
        let (c, ldc, sc) = g.c;
        if g.m == 0 || g.n == 0 || g.batch == 0 {
            return Ok(());
        }
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let int = |x: usize| {
            i32::try_from(x)
                .map_err(|_| format!("gemm %{}: {x} exceeds cuBLAS's int range", g.node))
        };
        let (alpha, beta) = (1.0f32, if g.accumulate { 1.0f32 } else { 0.0 });
        let stream = &self.device.stream;
        let (base, _sync) = self.f32s.device_ptr(stream);
        let at = |off: usize| (base + (off * 4) as u64) as *const f32;
        // SAFETY: the record's extents were planned inside the arena (the emulator's reference
        // GEMM bounds-checks the same records in tests); the handle is bound to this stream.
        unsafe {
            blas::sgemm_strided_batched(
                self.device.blas,
                op(tb),
                op(ta),
                int(g.n)?,
                int(g.m)?,
                int(g.k)?,
                &alpha,
                at(b),
                int(ldb)?,
                sb as i64,
                at(a),
                int(lda)?,
                sa as i64,
                &beta,
                at(c) as *mut f32,
                int(ldc)?,
                sc as i64,
                int(g.batch)?,
            )
        }
        .map_err(|e| format!("cuBLAS gemm %{}: {e:?}", g.node))
    }

    fn host(&mut self, k: usize) -> Result<(), String> {
        let kernel = &self.program.plan.kernels[k];
        let (inputs, outputs) = crate::host::slots(kernel)?;
        let stream = &self.device.stream;
        for s in inputs {
            let r = s.offset..s.offset + s.len;
            match s.dtype {
                DType::F32 => {
                    stream.memcpy_dtoh(&self.f32s.slice(r.clone()), &mut self.host_f32[r])
                }
                DType::I64 => {
                    stream.memcpy_dtoh(&self.i64s.slice(r.clone()), &mut self.host_i64[r])
                }
            }
            .map_err(driver)?;
        }
        stream.synchronize().map_err(driver)?;
        crate::host::run_fallback(kernel, &mut self.host_f32, &mut self.host_i64)?;
        for s in outputs {
            let r = s.offset..s.offset + s.len;
            match s.dtype {
                DType::F32 => {
                    stream.memcpy_htod(&self.host_f32[r.clone()], &mut self.f32s.slice_mut(r))
                }
                DType::I64 => {
                    stream.memcpy_htod(&self.host_i64[r.clone()], &mut self.i64s.slice_mut(r))
                }
            }
            .map_err(driver)?;
        }
        Ok(())
    }

    fn copy(&mut self, from: Slot, to: Slot) -> Result<(), String> {
        let stream = &self.device.stream;
        let (base, size, _sync) = match from.dtype {
            DType::F32 => {
                let (p, s) = self.f32s.device_ptr(stream);
                (p, 4u64, s)
            }
            DType::I64 => {
                let (p, s) = self.i64s.device_ptr(stream);
                (p, 8u64, s)
            }
        };
        // SAFETY: both slots lie inside the arena (the plan's), and they do not overlap (an
        // update output never shares its input's slot).
        unsafe {
            drv::memcpy_dtod_async(
                base + to.offset as u64 * size,
                base + from.offset as u64 * size,
                from.len * size as usize,
                stream.cu_stream(),
            )
        }
        .map_err(driver)
    }

    fn read_f32(&self, s: Slot) -> Result<Vec<f32>, String> {
        if s.dtype != DType::F32 {
            return Err("an i64 value; use the _i64 accessor".into());
        }
        self.device
            .stream
            .clone_dtoh(&self.f32s.slice(s.offset..s.offset + s.len))
            .map_err(driver)
    }

    /// An f32 output's value after the last run.
    pub fn output(&self, name: &str) -> Result<Vec<f32>, String> {
        let s = *self
            .outputs
            .get(name)
            .ok_or_else(|| format!("the step has no output `{name}`"))?;
        self.read_f32(s)
    }

    /// An f32 input's current value (a parameter after the last run's update).
    pub fn input(&self, name: &str) -> Result<Vec<f32>, String> {
        let s = *self
            .inputs
            .get(name)
            .ok_or_else(|| format!("the step has no input `{name}`"))?;
        self.read_f32(s)
    }

    /// An i64 input's current value.
    pub fn input_i64(&self, name: &str) -> Result<Vec<i64>, String> {
        let s = *self
            .inputs
            .get(name)
            .ok_or_else(|| format!("the step has no input `{name}`"))?;
        if s.dtype != DType::I64 {
            return Err(format!("input `{name}` is f32"));
        }
        self.device
            .stream
            .clone_dtoh(&self.i64s.slice(s.offset..s.offset + s.len))
            .map_err(driver)
    }

    /// An i64 output's value.
    pub fn output_i64(&self, name: &str) -> Result<Vec<i64>, String> {
        let s = *self
            .outputs
            .get(name)
            .ok_or_else(|| format!("the step has no output `{name}`"))?;
        if s.dtype != DType::I64 {
            return Err(format!("output `{name}` is f32"));
        }
        self.device
            .stream
            .clone_dtoh(&self.i64s.slice(s.offset..s.offset + s.len))
            .map_err(driver)
    }
}

/// The CPU backend's runner over [`CudaStep`]s: the interpreter's calling convention, and
/// training steps whose parameters and optimizer state stay on the device between calls (only
/// batches and scalars go down, only requested outputs come up).
pub type Runner = netc_backend_cpu::runner::Runner<CudaStep>;

/// A [`Runner`], once a CUDA device opens, so a missing GPU is reported before any work starts.
pub fn runner() -> Result<Runner, String> {
    Device::open(0)?;
    Ok(Runner::default())
}

impl CompiledGraph for CudaStep {
    fn compile(graph: &Graph) -> Result<Self, String> {
        CudaStep::compile(graph)
    }

    fn compile_ms(&self) -> f64 {
        CudaStep::compile_ms(self)
    }

    fn has_input(&self, name: &str) -> bool {
        CudaStep::has_input(self, name)
    }

    fn set_input_f64(&mut self, name: &str, data: &[f64]) -> Result<(), String> {
        self.set_input(name, &data.iter().map(|&x| x as f32).collect::<Vec<_>>())
    }

    fn set_input_i64(&mut self, name: &str, data: &[i64]) -> Result<(), String> {
        CudaStep::set_input_i64(self, name, data)
    }

    fn run(&mut self) -> Result<(), String> {
        CudaStep::run(self)
    }

    fn input_f32(&self, name: &str) -> Result<Vec<f32>, String> {
        self.input(name)
    }

    fn input_i64(&self, name: &str) -> Result<Vec<i64>, String> {
        CudaStep::input_i64(self, name)
    }

    fn output_f32(&self, name: &str) -> Result<Vec<f32>, String> {
        self.output(name)
    }

    fn output_i64(&self, name: &str) -> Result<Vec<i64>, String> {
        CudaStep::output_i64(self, name)
    }
}
