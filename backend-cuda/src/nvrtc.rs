//! NVRTC, loaded at run time through cudarc, and a disk cache of compiled kernels.
//!
//! Nothing here needs CUDA at build time: cudarc is built with `dynamic-loading`, and since its
//! calls panic when the library is missing, [`Nvrtc::load`] checks for it first and turns absence
//! into an error that says how to install it. `NETC_NVRTC_LIB` may name the library file or the
//! directory holding it (a `pip install nvidia-cuda-nvrtc-cu12` wheel's `nvidia/cuda_nvrtc/lib`):
//! it is opened by absolute path first, after which cudarc's own `dlopen("libnvrtc.so.12")`
//! finds the already-loaded library by its soname.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::nvrtc::{result, sys};

/// The NVRTC wheel that matches the cudarc version feature this crate is built with.
pub const PIP_PACKAGE: &str = "nvidia-cuda-nvrtc-cu12==12.8.93";

/// A loaded NVRTC with its version.
#[derive(Clone, Copy, Debug)]
pub struct Nvrtc {
    /// `(major, minor)` as NVRTC reports it.
    pub version: (i32, i32),
}

/// What one compilation produced.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The PTX text (NVRTC gives it for both kinds of target).
    pub ptx: String,
    /// The cubin (for an `sm_XX` target).
    pub cubin: Option<Vec<u8>>,
    /// NVRTC's log (warnings; empty when clean).
    pub log: String,
}

/// What to compile for: PTX for a virtual architecture or a cubin for a real one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `--gpu-architecture=compute_XX`: PTX, JIT-compiled by the driver.
    Ptx(u32),
    /// `--gpu-architecture=sm_XX`: a cubin for exactly that architecture (and its PTX).
    Cubin(u32),
}

/// The options every module is compiled with: the target, line info for profilers and
/// `compute-sanitizer`, and no contraction of `a * b + c` (the kernel IR places its `fma`s).
pub fn options(target: Target) -> Vec<String> {
    let arch = match target {
        Target::Ptx(cc) => format!("--gpu-architecture=compute_{cc}"),
        Target::Cubin(cc) => format!("--gpu-architecture=sm_{cc}"),
    };
    vec![
        arch,
        "-lineinfo".into(),
        "--fmad=false".into(),
        "--std=c++17".into(),
    ]
}

/// Keeps the library opened from `NETC_NVRTC_LIB` loaded for the life of the process.
static PRELOADED: OnceLock<Result<Option<libloading::Library>, String>> = OnceLock::new();

fn preload() -> Result<(), String> {
    let r = PRELOADED.get_or_init(|| {
        let Some(path) = std::env::var_os("NETC_NVRTC_LIB") else {
            return Ok(None);
        };
        let mut path = PathBuf::from(path);
        if path.is_dir() {
            path = path.join("libnvrtc.so.12");
        }
        // SAFETY: loading NVRTC runs its initialisers, which have no preconditions.
        unsafe { libloading::Library::new(&path) }
            .map(Some)
            .map_err(|e| format!("NETC_NVRTC_LIB={}: cannot load it: {e}", path.display()))
    });
    r.as_ref().map(|_| ()).map_err(Clone::clone)
}

impl Nvrtc {
    /// Find and load NVRTC, or say why not and how to install it.
    pub fn load() -> Result<Nvrtc, String> {
        static LOADED: OnceLock<Result<Nvrtc, String>> = OnceLock::new();
        LOADED
            .get_or_init(|| {
                preload()?;
                // SAFETY: only tries to dlopen the candidate names.
                if !unsafe { sys::is_culib_present() } {
                    return Err(format!(
                        "NVRTC (libnvrtc.so.12) was not found: install it with `python3 -m pip install {PIP_PACKAGE}` and set NETC_NVRTC_LIB to the wheel's nvidia/cuda_nvrtc/lib directory (or add it to LD_LIBRARY_PATH)"
                    ));
                }
                let (mut major, mut minor) = (0, 0);
                // SAFETY: the library is present (checked above); the out-pointers are valid.
                unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
                    .result()
                    .map_err(|e| format!("nvrtcVersion failed: {e:?}"))?;
                Ok(Nvrtc {
                    version: (major, minor),
                })
            })
            .clone()
    }

    /// Compile `source` (named `name` in messages, e.g. `mlp.train.cu`) for `target`. On
    /// failure the error holds NVRTC's log; [`CompileError::render`] adds the numbered source.
    pub fn compile(
        &self,
        name: &str,
        source: &str,
        target: Target,
    ) -> Result<Compiled, CompileError> {
        let fail = |log: String| CompileError {
            name: name.to_string(),
            log,
            source: source.to_string(),
        };
        let src =
            CString::new(source).map_err(|_| fail("the source contains a NUL byte".into()))?;
        let cname = CString::new(name).map_err(|_| fail("the name contains a NUL byte".into()))?;
        let prog = result::create_program(&src, Some(&cname))
            .map_err(|e| fail(format!("nvrtcCreateProgram: {e:?}")))?;
        let opts = options(target);
        // SAFETY: `prog` was just created and is destroyed exactly once below; `src` and
        // `cname` outlive it.
        unsafe {
            let compiled = result::compile_program(prog, &opts);
            let log = result::get_program_log(prog)
                .map(|l| c_text(&l))
                .unwrap_or_default();
            let out = match compiled {
                Err(e) => Err(fail(if log.is_empty() {
                    format!("{e:?}")
                } else {
                    log
                })),
                Ok(()) => result::get_ptx(prog)
                    .map_err(|e| fail(format!("nvrtcGetPTX: {e:?}")))
                    .and_then(|ptx| {
                        let cubin = match target {
                            Target::Ptx(_) => None,
                            Target::Cubin(_) => Some(get_cubin(prog).map_err(fail)?),
                        };
                        Ok(Compiled {
                            ptx: c_text(&ptx),
                            cubin,
                            log: log.clone(),
                        })
                    }),
            };
            let _ = result::destroy_program(prog);
            out
        }
    }
}

/// A NUL-terminated C buffer as text.
fn c_text(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
}

/// The cubin of a program compiled for an `sm_XX` target.
///
/// # Safety
/// `prog` must be a live, successfully compiled program.
unsafe fn get_cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, String> {
    let mut size = 0usize;
    // SAFETY: per the contract; the out-pointer is valid.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }
        .result()
        .map_err(|e| format!("nvrtcGetCUBINSize: {e:?}"))?;
    let mut buf = vec![0 as c_char; size];
    // SAFETY: `buf` holds `size` bytes, as NVRTC asked for.
    unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr()) }
        .result()
        .map_err(|e| format!("nvrtcGetCUBIN: {e:?}"))?;
    Ok(buf.into_iter().map(|c| c as u8).collect())
}

/// A failed compilation: the log and the source it refers to.
#[derive(Clone, Debug)]
pub struct CompileError {
    /// The module name NVRTC used in its messages.
    pub name: String,
    /// NVRTC's log.
    pub log: String,
    /// The CUDA source.
    pub source: String,
}

impl CompileError {
    /// The log, then the source with line numbers (every line NVRTC's log mentions marked with
    /// `>`), so the message alone is enough to see what was wrong.
    pub fn render(&self) -> String {
        let marked = error_lines(&self.name, &self.log);
        let mut out = format!(
            "NVRTC could not compile {}:\n{}\n--- {} ---\n",
            self.name,
            self.log.trim_end(),
            self.name
        );
        for (i, line) in self.source.lines().enumerate() {
            let n = i + 1;
            let mark = if marked.contains(&n) { '>' } else { ' ' };
            out.push_str(&format!("{mark}{n:5} | {line}\n"));
        }
        out
    }

    /// The source lines NVRTC's log reports problems on (`name(LINE): error: ...`).
    pub fn lines(&self) -> Vec<usize> {
        error_lines(&self.name, &self.log)
    }
}

fn error_lines(name: &str, log: &str) -> Vec<usize> {
    log.lines()
        .filter(|l| l.contains("error"))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('(')?;
            rest[..rest.find(')')?].parse().ok()
        })
        .collect()
}

/// A disk cache of compiled modules, keyed by everything that determines the output: the
/// source, the target, NVRTC's version and the options. The key text is stored in the entry
/// and compared on read, so a hash collision costs a recompile, never a wrong kernel.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `NETC_CUDA_CACHE` or `$XDG_CACHE_HOME/netc/cuda` or `~/.cache/netc/cuda`.
    pub fn default_location() -> Option<Cache> {
        let dir = if let Some(d) = std::env::var_os("NETC_CUDA_CACHE") {
            PathBuf::from(d)
        } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            PathBuf::from(d).join("netc/cuda")
        } else {
            PathBuf::from(std::env::var_os("HOME")?).join(".cache/netc/cuda")
        };
        Some(Cache { dir })
    }

    /// A cache in `dir`.
    pub fn at(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_path_buf(),
        }
    }

    fn key(nvrtc: &Nvrtc, source: &str, target: Target) -> String {
        format!(
            "netc-cuda-cache 1\nnvrtc {}.{}\ntarget {target:?}\noptions {}\nsource-bytes {}\nsource-fnv {:016x}\n",
            nvrtc.version.0,
            nvrtc.version.1,
            options(target).join(" "),
            source.len(),
            fnv1a(source.as_bytes())
        )
    }

    /// `nvrtc.compile`, served from the cache when an entry with the same key exists. Cache
    /// write failures are ignored (the result is still correct); `Ok((compiled, hit))`.
    pub fn compile(
        &self,
        nvrtc: &Nvrtc,
        name: &str,
        source: &str,
        target: Target,
    ) -> Result<(Compiled, bool), CompileError> {
        let key = Cache::key(nvrtc, source, target);
        let file = self.dir.join(format!("{:016x}.bin", fnv1a(key.as_bytes())));
        if let Ok(bytes) = std::fs::read(&file)
            && let Some(body) = bytes.strip_prefix(key.as_bytes())
        {
            // Entry body: `<ptx length>\n`, the PTX, then the cubin (if any).
            let parsed = body.iter().position(|&b| b == b'\n').and_then(|nl| {
                let n: usize = std::str::from_utf8(&body[..nl]).ok()?.parse().ok()?;
                let ptx = std::str::from_utf8(body.get(nl + 1..nl + 1 + n)?).ok()?;
                Some((ptx.to_string(), nl + 1 + n))
            });
            if let Some((ptx, end)) = parsed {
                let cubin = body[end..].to_vec();
                let compiled = Compiled {
                    ptx,
                    cubin: matches!(target, Target::Cubin(_)).then_some(cubin),
                    log: String::new(),
                };
                return Ok((compiled, true));
            }
        }
        let compiled = nvrtc.compile(name, source, target)?;
        let mut entry = key.into_bytes();
        entry.extend_from_slice(format!("{}\n", compiled.ptx.len()).as_bytes());
        entry.extend_from_slice(compiled.ptx.as_bytes());
        entry.extend_from_slice(compiled.cubin.as_deref().unwrap_or_default());
        // Write then rename, so a concurrent reader never sees half an entry.
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&tmp, &entry))
            .and_then(|()| std::fs::rename(&tmp, &file));
        Ok((compiled, false))
    }
}

/// 64-bit FNV-1a: a stable hash (std's hashers may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A compile error of `p`'s module rendered for people: NVRTC's log, the kernels the failing
/// lines belong to with their `.net` origin, and the numbered source.
pub fn explain(p: &crate::lower::CudaProgram, e: &CompileError, source: Option<&str>) -> String {
    let origins = crate::lower::origins(p, source);
    let lines: Vec<&str> = e.source.lines().collect();
    let mut named = Vec::new();
    for line in e.lines() {
        // The nearest kernel header at or above the failing line.
        let header = lines[..line.min(lines.len())]
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("extern \"C\" __global__ void "));
        let Some(header) = header else { continue };
        let name = header
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.split('(').next())
            .unwrap_or("");
        if let Some(i) = p.kernels.iter().position(|k| k.name == name)
            && !named.contains(&i)
        {
            named.push(i);
        }
    }
    let mut out = String::new();
    for i in named {
        let k = &p.kernels[i];
        out.push_str(&format!(
            "in kernel {} ({}, {})\n",
            k.name, k.what, origins[i]
        ));
    }
    out + &e.render()
}
