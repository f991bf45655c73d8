//! On a machine with an NVIDIA GPU: every example's training step run on the device for two
//! consecutive steps (parameters and state resident, updates applied on the device) against the
//! interpreter. Elsewhere each test prints "no CUDA device: skipped" and passes; the emulator
//! tests (`examples.rs`) check the same kernels without a GPU.

#[path = "../../backend-cpu/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{Rng, random_inputs, reference, rel_l2};
use netc_backend_cuda::device::{CudaStep, NO_DEVICE};
use netc_compiler::ir::interp::{Data, Value};
use netc_compiler::ir::{DType, Graph, Op, Role};
use netc_compiler::lower::program::compile_run;

fn load(step: &mut CudaStep, values: &HashMap<String, Value>) {
    for (name, v) in values {
        if !step.has_input(name) {
            continue;
        }
        match &v.data {
            Data::F(d) => step
                .set_input(name, &d.iter().map(|&x| x as f32).collect::<Vec<_>>())
                .unwrap(),
            Data::I(d) => step.set_input_i64(name, d).unwrap(),
        }
    }
}

/// Two steps of `g` on the device and on the interpreter (the second starting from the
/// interpreter's updated state), every f32 output within `tol`.
fn check(what: &str, g: &Graph, tol: f64) -> bool {
    let mut step = match CudaStep::compile(g) {
        Ok(s) => s,
        Err(e) if e.starts_with(NO_DEVICE) => {
            eprintln!("{NO_DEVICE}: skipped ({e})");
            return false;
        }
        Err(e) => panic!("{what}: {e}"),
    };
    let mut rng = Rng(0xC0DA);
    let mut values = random_inputs(g, &mut rng, 1.0);
    for id in g.inputs() {
        let node = g.node(id);
        if let Op::Input { name, role } = &node.op
            && node.ty.dtype == DType::F32
            && matches!(role, Role::Param | Role::State | Role::Scalar)
        {
            let n = node.ty.numel();
            let d: Vec<f32> = (0..n).map(|_| 0.05 + 0.1 * rng.unit().abs()).collect();
            values.insert(name.clone(), Value::f32(node.ty.shape.clone(), d));
        }
    }
    load(&mut step, &values);
    for t in 0..2 {
        let want = reference(g, &values);
        step.run().unwrap_or_else(|e| panic!("{what}: {e}"));
        for o in &g.outputs {
            let Data::F(w) = &want[&o.name].data else {
                continue;
            };
            let w: Vec<f32> = w.iter().map(|&x| x as f32).collect();
            let got = step.output(&o.name).unwrap();
            let err = rel_l2(&got, &w);
            assert!(
                err <= tol,
                "{what} step {t}: `{}`: relative error {err:e}",
                o.name
            );
            if let Some(target) = &o.updates {
                values.insert(target.clone(), want[&o.name].clone());
            }
        }
    }
    eprintln!(
        "{what}: ok (compile {:.0} ms, cache hit: {})",
        step.compile_ms(),
        step.cache_hit()
    );
    true
}

#[test]
fn every_example_trains_on_the_device_like_the_interpreter() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
    {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let p = compile_run(&std::fs::read_to_string(path).unwrap(), None, Some(8)).unwrap();
        for s in &p.steps {
            if !check(&format!("{name} {}", s.name), &s.graph, 1e-4) {
                return;
            }
        }
    }
}
