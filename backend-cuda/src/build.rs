//! `netc build FILE --target cuda`: each step graph's CUDA source, PTX and cubin written to the
//! build folder, so the generated code can be read, diffed and profiled without running it.
//! Works without a GPU (cubins for `sm_90` then, or the device's own architecture when there
//! is one); without NVRTC it still writes the sources and says why the rest was skipped.

use std::path::Path;

use netc_compiler::ir::Graph;

use crate::lower::{Config, lower, origins};
use crate::nvrtc::{Nvrtc, Target, explain};

/// The architecture cubins are built for: the GPU's own when one can be opened, else `sm_90`
/// (the H100/H200 generation).
pub fn default_arch() -> u32 {
    match crate::device::Device::open(0).map(|d| d.target()) {
        Ok(Target::Cubin(cc) | Target::Ptx(cc)) => cc,
        Err(_) => 90,
    }
}

/// Write `<name>.cu`, and with NVRTC `<name>.ptx` and `<name>.sm_<arch>.cubin` (one compile),
/// for `graph` into `dir`; `source` is the `.net` text (kernel comments name its lines). Returns
/// one summary line.
pub fn write_step(
    dir: &Path,
    name: &str,
    graph: &Graph,
    source: &str,
    nvrtc: &Result<Nvrtc, String>,
    arch: u32,
) -> Result<String, String> {
    let program = lower(graph, Config::default())?;
    let module = crate::print::module(&program.kernels, &origins(&program, Some(source)));
    let write = |file: String, bytes: &[u8]| {
        let path = dir.join(&file);
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok::<String, String>(file)
    };
    let cu = write(format!("{name}.cu"), module.as_bytes())?;
    let gemms = program
        .steps
        .iter()
        .filter(|s| matches!(s, crate::lower::Step::Gemm(_)))
        .count();
    let hosts = program
        .steps
        .iter()
        .filter(|s| matches!(s, crate::lower::Step::Host(_)))
        .count();
    let mut line = format!(
        "{cu:<28} {:>4} kernels, {gemms:>3} cuBLAS GEMMs, {hosts:>3} host steps",
        program.kernels.len()
    );
    match nvrtc {
        Err(why) => line.push_str(&format!("; PTX and cubin skipped: {why}")),
        Ok(nvrtc) => {
            let out = nvrtc
                .compile(&format!("{name}.cu"), &module, Target::Cubin(arch))
                .map_err(|e| explain(&program, &e, Some(source)))?;
            let p = write(format!("{name}.ptx"), out.ptx.as_bytes())?;
            let c = write(
                format!("{name}.sm_{arch}.cubin"),
                &out.cubin.unwrap_or_default(),
            )?;
            line.push_str(&format!(", {p}, {c}"));
        }
    }
    Ok(line)
}
