//! Every example's step graphs (training steps: forward, backward and optimizer; the eval and
//! sample graphs) lowered for the GPU and run with every GPU kernel on the emulator, GEMM
//! records on a reference GEMM and fallbacks on the interpreter, against the interpreter:
//! every output within 1e-5 relative L2, on random inputs (no zeros). The launch configuration
//! is shrunk (64-thread blocks, at most 8 blocks) so grid-stride loops wrap and reductions use
//! several warps even at batch size 2.

#[path = "../../backend-cpu/tests/common/mod.rs"]
mod common;
mod util;

use std::collections::HashMap;
use std::path::Path;

use common::{Rng, random_inputs, reference, rel_l2};
use netc_backend_cuda::emulate;
use netc_backend_cuda::lower::{Config, CudaProgram, lower};
use netc_compiler::ir::interp::{Data, Value};
use netc_compiler::ir::{DType, Graph, Op, Role};
use netc_compiler::lower::program::{Program, compile_run};

const TOLERANCE: f64 = 1e-5;

const SMALL: Config = Config {
    block: 64,
    max_grid: 8,
};

fn program(path: &Path) -> Program {
    let src = std::fs::read_to_string(path).unwrap();
    compile_run(&src, None, Some(2)).unwrap_or_else(|d| panic!("{}: {d:#?}", path.display()))
}

/// Random inputs: data from the shared helper, parameters in [-0.2, 0.2), optimizer state and
/// running statistics positive (Adam's second moment and a variance must be), no zeros.
fn inputs(g: &Graph, rng: &mut Rng) -> HashMap<String, Value> {
    let mut values = random_inputs(g, rng, 1.0);
    for id in g.inputs() {
        let node = g.node(id);
        let Op::Input { name, role } = &node.op else {
            continue;
        };
        let n = node.ty.numel();
        let data = match (role, node.ty.dtype) {
            (Role::Param, DType::F32) => rng.vec(n, 0.2),
            (Role::State, DType::F32) => (0..n).map(|_| 0.1 + rng.unit().abs()).collect(),
            (Role::Scalar, DType::F32) => (0..n).map(|_| 0.01 + 0.1 * rng.unit().abs()).collect(),
            _ => continue,
        };
        values.insert(name.clone(), Value::f32(node.ty.shape.clone(), data));
    }
    values
}

/// Run `p` on the emulator with `values` as inputs; every output by name.
fn emulated(
    p: &CudaProgram,
    values: &HashMap<String, Value>,
) -> Result<HashMap<String, Data>, String> {
    // NaN everywhere: a kernel reading memory nothing wrote shows in the results.
    let mut f32s = vec![f32::NAN; p.f32_len];
    let mut i64s = vec![i64::MIN; p.plan.i64_len];
    for (name, slot, _) in &p.plan.inputs {
        let r = slot.offset..slot.offset + slot.len;
        match &values[name].data {
            Data::F(d) => {
                for (t, &x) in f32s[r].iter_mut().zip(d) {
                    *t = x as f32;
                }
            }
            Data::I(d) => i64s[r].copy_from_slice(d),
        }
    }
    emulate::run(p, &mut f32s, &mut i64s)?;
    Ok(p.plan
        .outputs
        .iter()
        .map(|(name, s, _)| {
            let r = s.offset..s.offset + s.len;
            let d = match s.dtype {
                DType::F32 => Data::F(f32s[r].iter().map(|&x| f64::from(x)).collect()),
                DType::I64 => Data::I(i64s[r].to_vec()),
            };
            (name.clone(), d)
        })
        .collect())
}

/// Lower `g`, run it on the emulator and on the interpreter, compare every output.
fn check(what: &str, g: &Graph, seed: u64) {
    let started = std::time::Instant::now();
    let p = lower(g, SMALL).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut rng = Rng(seed);
    let values = inputs(g, &mut rng);
    let t0 = std::time::Instant::now();
    let want = reference(g, &values);
    let interp_ms = t0.elapsed().as_secs_f64() * 1e3;
    let got = emulated(&p, &values).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut worst = (0.0, String::new());
    for (name, w) in &want {
        match (&got[name], &w.data) {
            (Data::F(a), Data::F(b)) => {
                let a: Vec<f32> = a.iter().map(|&x| x as f32).collect();
                let b: Vec<f32> = b.iter().map(|&x| x as f32).collect();
                assert!(
                    a.iter().all(|x| x.is_finite()),
                    "{what}: `{name}` has non-finite values"
                );
                let err = rel_l2(&a, &b);
                assert!(
                    err <= TOLERANCE,
                    "{what}: output `{name}`: relative error {err:e}"
                );
                if err >= worst.0 {
                    worst = (err, name.clone());
                }
            }
            (Data::I(a), Data::I(b)) => assert_eq!(a, b, "{what}: output `{name}`"),
            _ => panic!("{what}: output `{name}` has the wrong type"),
        }
    }
    eprintln!(
        "{what}: {} GPU kernels, {} steps, worst {:e} ({}), {:.0} ms (interpreter {interp_ms:.0} ms)",
        p.kernels.len(),
        p.steps.len(),
        worst.0,
        worst.1,
        started.elapsed().as_secs_f64() * 1e3
    );
}

#[test]
fn every_example_matches_the_interpreter_on_the_emulator() {
    let mut jobs = Vec::new();
    for path in util::examples() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let p = program(&path);
        for (i, step) in p.steps.into_iter().enumerate() {
            jobs.push((
                format!("{name} {}", step.name),
                step.graph,
                0x5EED + i as u64,
            ));
        }
        if let Some(g) = p.eval {
            jobs.push((format!("{name} eval"), g, 0xE7A1));
        }
        if let Some(g) = p.sample {
            jobs.push((format!("{name} sample"), g, 0x5A3F));
        }
    }
    util::par_each(jobs, |(what, g, seed)| check(&what, &g, seed));
}
