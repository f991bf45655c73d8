//! Every kernel generated for every example (each step graph, the eval and sample graphs)
//! compiled by NVRTC to PTX (`compute_90`) and to an `sm_90` cubin; a kernel that does not
//! compile fails the suite. Without NVRTC the tests say so and pass, unless
//! `NETC_REQUIRE_NVRTC=1` (set by `.ci/run`, which installs it) makes absence a failure.
//! Also: a compile error names the kernel and its `.net` origin and shows the numbered source,
//! and the disk cache serves a second compile.

mod util;

use std::path::Path;

use netc_backend_cuda::lower::{Config, lower, origins};
use netc_backend_cuda::nvrtc::{Cache, Nvrtc, Target, explain};
use netc_backend_cuda::print;
use netc_compiler::lower::program::compile_run;

fn nvrtc() -> Option<Nvrtc> {
    match Nvrtc::load() {
        Ok(n) => Some(n),
        Err(e) if std::env::var_os("NETC_REQUIRE_NVRTC").is_some_and(|v| v != "0") => {
            panic!("NETC_REQUIRE_NVRTC is set but {e}")
        }
        Err(e) => {
            eprintln!("NVRTC tests skipped: {e}");
            None
        }
    }
}

#[test]
fn every_example_kernel_compiles_to_ptx_and_an_sm90_cubin() {
    let Some(nvrtc) = nvrtc() else { return };
    eprintln!("NVRTC {}.{}", nvrtc.version.0, nvrtc.version.1);
    let mut jobs = Vec::new();
    for path in util::examples() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        // The examples' own batch sizes: the kernels a real run compiles.
        let p = compile_run(&src, None, None).unwrap_or_else(|d| panic!("{name}: {d:#?}"));
        let graphs = p
            .steps
            .into_iter()
            .map(|s| (s.name, s.graph))
            .chain(p.eval.map(|g| ("eval".to_string(), g)))
            .chain(p.sample.map(|g| ("sample".to_string(), g)));
        for (step, g) in graphs {
            jobs.push((format!("{name}.{step}.cu"), src.clone(), g));
        }
    }
    let total = std::sync::atomic::AtomicUsize::new(0);
    util::par_each(jobs, |(file, src, g)| {
        let started = std::time::Instant::now();
        let program = lower(&g, Config::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let module = print::module(&program.kernels, &origins(&program, Some(&src)));
        // One sm_90 compile gives both the PTX and the cubin.
        let out = nvrtc
            .compile(&file, &module, Target::Cubin(90))
            .unwrap_or_else(|e| panic!("{}", explain(&program, &e, Some(&src))));
        assert!(
            !out.log.contains("warning"),
            "{file}: NVRTC warns:\n{}",
            out.log
        );
        for k in &program.kernels {
            assert!(
                out.ptx.contains(&format!(".entry {}(", k.name)),
                "{file}: {} missing from the PTX",
                k.name
            );
        }
        assert!(
            out.cubin.is_some_and(|c| c.starts_with(b"\x7fELF")),
            "{file}: not an ELF cubin"
        );
        total.fetch_add(program.kernels.len(), std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "{file}: {} kernels to PTX and sm_90 in {:.0} ms",
            program.kernels.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
    });
    eprintln!("{} kernels compiled", total.into_inner());
}

#[test]
fn a_compile_error_names_the_kernel_its_origin_and_shows_the_source() {
    let Some(nvrtc) = nvrtc() else { return };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mlp.net");
    let src = std::fs::read_to_string(path).unwrap();
    let p = compile_run(&src, None, None).unwrap();
    let program = lower(&p.steps[0].graph, Config::default()).unwrap();
    let module = print::module(&program.kernels, &origins(&program, Some(&src)));
    // Break the second kernel: an undeclared identifier in its body.
    let k = &program.kernels[1];
    let at = module.find(&format!("{}(float*", k.name)).unwrap();
    let body = at + module[at..].find("F[").unwrap();
    let broken = format!("{}G[{}", &module[..body], &module[body + 2..]);
    let err = nvrtc
        .compile("mlp.train.cu", &broken, Target::Ptx(90))
        .unwrap_err();
    let text = explain(&program, &err, Some(&src));
    assert!(text.contains(&format!("in kernel {} (", k.name)), "{text}");
    assert!(text.contains(&format!("%{} at ", k.node)), "{text}");
    assert!(text.contains("identifier \"G\" is undefined"), "{text}");
    let marked = text
        .lines()
        .find(|l| l.starts_with('>'))
        .expect("a marked source line");
    assert!(marked.contains("G["), "{marked}");
}

#[test]
fn the_disk_cache_serves_a_second_compile() {
    let Some(nvrtc) = nvrtc() else { return };
    let dir = std::env::temp_dir().join(format!("netc-cuda-cache-test-{}", std::process::id()));
    let cache = Cache::at(&dir);
    let source = format!(
        "{}extern \"C\" __global__ void k(float* F) {{ F[threadIdx.x] = netc_relu(F[threadIdx.x]); }}\n",
        print::PRELUDE
    );
    let (first, hit) = cache
        .compile(&nvrtc, "k.cu", &source, Target::Cubin(90))
        .unwrap();
    assert!(!hit);
    let (second, hit) = cache
        .compile(&nvrtc, "k.cu", &source, Target::Cubin(90))
        .unwrap();
    assert!(hit);
    assert_eq!(first.cubin, second.cubin);
    // Another target is another entry.
    let (_, hit) = cache
        .compile(&nvrtc, "k.cu", &source, Target::Ptx(90))
        .unwrap();
    assert!(!hit);
    std::fs::remove_dir_all(dir).unwrap();
}
