//! The CUDA backend: a step graph's kernel IR (the CPU backend's plan, the same slots and
//! liveness) lowered to GPU kernels and cuBLAS GEMMs, printed as CUDA C and compiled at run time
//! by NVRTC.
//!
//! One module per stage:
//! - [`gpu`]: the GPU kernel AST (arena pointers, static shapes, barriers, shared memory, warp
//!   shuffles);
//! - [`lower`]: kernel IR → GPU kernels, GEMM records, host steps, copies ([`lower::CudaProgram`]);
//! - [`print`]: GPU kernels → CUDA C;
//! - [`emulate`]: GPU kernels executed on the CPU with grid/block/thread semantics, so every
//!   example's step is checked against the interpreter without a GPU;
//! - [`host`]: fallbacks on the interpreter;
//! - [`nvrtc`]: NVRTC loaded at run time, compile errors with the source, the disk cache;
//! - [`device`]: [`device::CudaStep`], a step run on a GPU through cudarc and cuBLAS;
//! - [`build`]: `netc build --target cuda` (sources, PTX, cubins).
//!
//! Nothing needs CUDA to build: cudarc loads the driver, NVRTC and cuBLAS at run time, and every
//! entry point checks for them first, so a machine without a GPU gets an error, not a panic.

pub mod build;
pub mod device;
pub mod emulate;
pub mod gpu;
pub mod host;
pub mod lower;
pub mod nvrtc;
pub mod print;
